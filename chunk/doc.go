// Package chunk cuts releases into content-defined chunks and names them.
//
// # Chunk
//
// A run of bytes of a file, cut by FastCDC (a gear rolling hash with
// normalized chunking), so that inserting or deleting bytes moves only the
// boundaries next to the edit and every later chunk keeps its name. A chunk
// is at most MaxSize bytes wherever it comes from.
//
// # CID
//
// A chunk's name: CIDv1, raw codec (0x55), sha2-256 multihash, written in
// its canonical base32 form. It is the only form accepted (Parse, Verify);
// bytes are checked against their CID when received, before they are stored
// or served.
//
// # Params
//
// Min, Avg and Max bound chunk sizes. They, and the gear table in gear.go,
// fix every boundary: changing either renames every chunk, so both are
// pinned by golden tests. DefaultParams was chosen by measurement, see
// PARAMS.md.
//
// # Store
//
// Where a node keeps the chunks it holds: package chunk/store, a badger
// database keyed by CID, which verifies every chunk before writing it.
package chunk
