// Package integration drives real patchmesh processes — seeds, nodes and the CLI —
// over loopback, as a user would. TestMain builds the binary once; each test
// starts the processes it needs in its own temporary folders.
package integration
