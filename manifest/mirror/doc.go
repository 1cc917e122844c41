// Package mirror collects a vendor's update tree from an upstream (an HTTP(S)
// server, an FTP server or a folder), checks it, and publishes it as a signed
// patchmesh release when it changed: the "download updates to the repository"
// task of an update server, for vendors whose agents speak only plain HTTP or
// shared folders.
//
// # Upstream
//
// How the list of files is found:
//
//   - With an index (Config.Index), the files are exactly those the index
//     lists, each checked against the size and sha256 the index gives. The
//     index file itself is part of the tree. HTTP(S), FTP and folders.
//   - With a list of URLs (Config.URLs), those files.
//   - Otherwise an HTTP(S) upstream is crawled from its index page (the HTML
//     listing Apache, nginx or lighttpd write): every link below the upstream
//     URL, directories recursively; a folder upstream is walked. An FTP
//     upstream needs an index.
//
// # Index formats
//
// A sha256sums file, as sha256sum(1) writes it: one "<64 hex digits>  <path>"
// line per file ("*" before the path is allowed; blank lines and lines starting
// with "#" are ignored). Or JSON, told by its first character ('{' or '['):
//
//	{"files": [{"path": "bases/daily.cvd", "size": 1048576, "sha256": "<hex>"}]}
//
// (a bare array of the same objects works too; "size" may be left out). Paths
// are relative to the folder of the index, use "/" and may not climb out.
//
// # Work folder
//
// Config.Work holds what makes runs cheap and resumable:
//
//	tree/        the tree of the last successful run
//	next/        the tree being collected (rebuilt on every run)
//	partial/     downloads in progress: <key>.part and its validators, resumed with Range
//	state.json   per file: URL, size, sha256 and the server's ETag and Last-Modified
//
// A file whose sha256 in the index (or, without an index, whose ETag or
// Last-Modified on a conditional GET) did not change is taken from tree/
// without downloading it. A run that fails (a network error, a file that does
// not match the index, the validator's refusal) publishes nothing and leaves
// tree/, state.json and the repository as they were; the partial downloads it
// made are kept for the next run, except those proven wrong.
package mirror
