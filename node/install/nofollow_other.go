//go:build !unix

package install

// oNoFollow is not available here; seal walks with WalkDir, which reports links
// as links, and opens only what it listed as regular files and directories.
const oNoFollow = 0
