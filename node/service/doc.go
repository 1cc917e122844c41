// Package service registers a patchmesh node with the machine's service manager
// (systemd on Linux, launchd on macOS, the service control manager on Windows)
// and runs a node under it, so that the manager's stop request ends the node's
// Run cleanly.
package service
