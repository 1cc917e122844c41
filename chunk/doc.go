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
// # Wire form
//
// How a chunk is stored and moved: a zstd frame of it where that saves at
// least 1/16, else the raw bytes (Codec.Encode). Readers tell the two by the
// zstd magic; Codec.Decode decompresses a frame capped at MaxSize (or the
// declared size) and verifies the result against the CID, and verifies bytes
// that are not a frame, or whose frame does not decode to the chunk, as raw:
// a raw chunk may start like a frame, and objects that are frames of their
// own are named by the CID of their own bytes. Repository chunk files, store
// values and the mesh's answers all hold the wire form; nodes must be
// upgraded before a publisher writes compressed chunk files.
//
// # Params
//
// Min, Avg and Max bound chunk sizes. They, and the gear table in gear.go,
// fix every boundary: changing either renames every chunk, so both are
// pinned by golden tests. DefaultParams was chosen by measurement, see
// PARAMS.md.
//
// # Origin
//
// Where a chunk's bytes came from: an update source (the WAN), a member of
// the site, or the store (the zero Origin). The mesh reports it and the
// node's pipeline records it, with this one type.
//
// # Store
//
// Where a node keeps the chunks it holds: package chunk/store, a badger
// database keyed by CID, which verifies every chunk before writing it, keeps
// it in its wire form, and checks it again on every read: a chunk the disk
// damaged is dropped (store.ErrCorrupt) and fetched again, never used.
package chunk
