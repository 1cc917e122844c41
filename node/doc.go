// Package node is the service that runs on every machine of a fleet: it keeps one
// channel's release current from an ordered list of update sources (and, with a
// site key, from the other nodes of its site), verifies everything against a
// pinned trust root, and applies each release atomically with hooks, a health
// check and rollback, without restarting.
//
// # Check
//
// At start, on a schedule (hourly by default, with jitter) and on demand the node
// walks trust-root rotations, reads the channel head from the first source that
// has a valid one (stale, expired or badly signed heads are refused and the next
// source is tried), refuses sequences below the highest it has ever seen
// (persisted), fetches and verifies the manifest and checks the target.
//
// node/schedule decides when the checks run: it takes the node's check of
// channel i, its next-time rule, its collection and the update-now cap as
// funcs, and a clock, so it is tested alone on a fake clock. The node gives
// it those and asks it for on-demand checks (Check, ApplyNow).
//
// # Fetch
//
// Only chunks missing from the store are fetched, many at once with a bound, each
// verified against its CID before it is stored. A node killed at any point resumes
// without refetching verified chunks. node/pipeline plans, fetches and assembles a
// release; the node gives it its store and a pipeline.Source: the site mesh when
// there is one (asked before the WAN), else the update sources.
//
// Verification happens once, where bytes arrive: the WAN source decodes and
// checks what the update sources send, the mesh what peers send, the pipeline
// what a delta makes; each stores with PutVerifiedWire, without hashing again.
// The store checks every read.
//
// # Mesh
//
// The node reaches its site through one seam: meshDelegate (site.go) is the
// mesh.Delegate given once in mesh.Config, through which the mesh asks the
// node's WAN source for the chunks it owns, reads its documents and proxy
// objects, and tells it of stored chunks and lying peers. The WAN source
// holds what it needs, not the node. Byte counters live where the bytes
// move: the WAN source counts WAN bytes, the mesh LAN bytes; the status
// reads both.
//
// # Apply
//
// The pipeline assembles the release from the store into a staging folder, every
// file's sha256 checked, then node/install switches it in and rolls back on failure.
package node
