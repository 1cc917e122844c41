// Package pipeline fetches a release's chunks and assembles the release into a
// staging folder: plan, fetch (two chunk lanes and deltas), verify, assemble.
// The node wires it with its store, its chunk source and its status; staging,
// activation, hooks and rollback stay with the node and its installer.
//
// # Plan
//
// A release's distinct chunks in the order its files first use them, and the
// deltas whose bases the node holds, each replacing the fetch of some chunks.
//
// # Fetch
//
// Chunks the store lacks are fetched from a Source, many at once: the chunks
// this node owns in its site in a lane of their own (as many at once as its
// share of the site's WAN fetches, Options.OwnConcurrency), the others in a
// second; deltas beside them. Each chunk of the plan is looked up in the
// store once, where a lane or a delta reaches it. The others lane may widen
// its fetches at once, up to Options.MaxConcurrency, while that raises the
// bytes a second: far from the source each fetch waits a round trip (window).
// Whatever the windows, the lanes hold at most fetchBytes (16 MiB) of chunks
// in flight together: a manifest may name chunks of up to 1 MiB.
//
// # Verify
//
// A Source returns verified bytes and stores them itself (the mesh must serve
// what it stored to peers). The pipeline verifies what it makes: every chunk a
// delta rebuilds is checked against its CID before it is stored, in one place
// (run.decodeDelta).
//
// # Assemble
//
// Each file is written into the staging folder as soon as its chunks are
// stored, and checked against the manifest's size and sha256. A chunk this run
// fetched is written as the fetch handed it over, verified and never on disk
// (a few MiB of them at most); others are read from the store, which checks
// them again. Files are written past the page cache where the file system
// allows it (stageWriter): nothing reads them before the switch.
package pipeline
