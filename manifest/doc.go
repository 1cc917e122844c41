// Package manifest defines patchmesh's signed documents — manifests, channel heads
// and trust roots — with the keys that sign them and the rules a node applies before
// it believes one.
//
// # Manifest
//
// The description of one release of a channel: its version, sequence number,
// creation and expiry times, the platforms and versions it fits (Target), and every
// file with its path, mode, size, whole-file SHA-256 and ordered chunk CIDs. A node
// assembles a release only from what a verified manifest names.
//
// # Entry
//
// One element of a manifest's "files", of the kind its "type" says:
//
//   - absent, no "link": a regular file, with its content in "chunks".
//   - absent, with "link": a symlink whose target is "link", verbatim. Any target is
//     allowed — absolute, leaving the release, dangling — as package managers ship
//     them; it must be valid UTF-8 without NUL, at most 4096 bytes. Nothing resolves
//     it: the installer creates symlinks after everything else and never writes
//     through one. This is the form symlinks always had, so manifests without the
//     newer kinds encode exactly as before.
//   - "dir": a directory with its "mode". Publishers list the directories a release
//     needs beyond the implicit ones: empty directories and those whose mode is not
//     0755 (0o755). A directory that is not listed is created with mode 0755.
//   - "hardlink": another name of the regular file whose path is in "link", sharing
//     its inode; "mode" must equal that file's.
//
// Only the regular file has a size, digest or chunks. "mode" holds the Unix
// permission bits with setuid (0o4000), setgid (0o2000) and sticky (0o1000). No
// path may lie under an entry that is not a directory, so a path never runs through
// a symlink. Nodes older than types refuse a manifest that uses one (unknown field
// "type": upgrade), and one with a symlink leaving the release.
//
// # Channel head
//
// A small signed pointer (Head) to the newest manifest of a channel: the manifest's
// path, size and SHA-256 in the repository, with a short expiry, so a mirror cannot
// freeze a node on an old release for longer than that expiry.
//
// # Trust root
//
// The set of public keys a node trusts and how many of them must sign (TrustRoot).
// A node pins one in its configuration. A new root (key rotation) is accepted only
// if it is the next version and is signed by a threshold of the old root's keys and
// by a threshold of its own.
//
// # Envelope
//
// The signed wrapper of every document: a type, the exact payload bytes and the
// signatures. A signature covers a pre-authentication encoding of (type, payload),
// so a document signed as one type never verifies as another.
//
// # Key id
//
// The hex of the first 16 bytes of the SHA-256 of an Ed25519 public key. Signatures
// name their key by id; ids are what users see in messages.
//
// # Threshold
//
// The number of distinct trusted keys whose valid signatures a document needs.
// Signatures by unknown keys are ignored and a key counts once however often it signs.
//
// # Sequence
//
// A number that only goes up within a channel. A node remembers the highest it has
// seen and refuses anything lower (rollback); the same sequence is the same release.
package manifest
