// Package install is the hot-apply half of a node: it assembles a release beside the
// running one, switches to it atomically, confirms it only after a health check passes,
// and rolls back to the previous release on failure — including after a crash between
// the switch and the confirmation. It knows nothing of chunks or manifests: the caller
// writes a release's files into a staging directory through a callback.
//
// # Layout
//
// Everything lives under [Config.Root]:
//
//	current  -> releases/<name>   symlink to the running release
//	previous -> releases/<name>   symlink to the release before it, for rollback
//	releases/<name>/              installed releases; files have their write bits cleared
//	staging/<name>.<random>/      assembly area; anything here at Open is crash garbage
//	state.json                    per-release state, reasons and times
//	pending.json                  switch marker: written before the switch, removed on confirm
//
// Symlink targets are relative, so the root may be moved or bind-mounted. A link is
// switched by creating it under a temporary name and rename(2)ing it over the old one,
// then fsyncing the root directory: a reader that resolves `current` always finds a whole
// release, never a missing link or a partial tree. Small files (state.json, pending.json)
// are written to a temporary file, fsynced and renamed the same way.
//
// # Release
//
// A directory under releases/, named by the caller (one safe path element, e.g. a
// version). Its state is one of:
//
//   - current: `current` points at it.
//   - previous: `previous` points at it; [Installer.Rollback] returns to it.
//   - kept: installed and not bad, neither current nor previous; [Installer.Prune] may remove it.
//   - bad: a hook failed, its health check was cut short by a crash twice in a row, or
//     it was rolled back by hand. [Installer.Activate] refuses it unless forced, and
//     [Installer.ClearBad] forgets the mark. The record of a bad release outlives its
//     files, so a node does not fetch and try it again.
//
// # Apply
//
// [Installer.Activate] runs the pre-activate hooks in the new release directory (a
// failure leaves `current` untouched), writes pending.json, points `previous` at the old
// release and `current` at the new one, runs the health checks, and then removes
// pending.json. A failing or hanging health check switches both links back and marks the
// release bad. If the process dies while pending.json exists, [Installer.Recover] on the
// next start switches back the same way, and leaves the release to be tried once more.
package install
