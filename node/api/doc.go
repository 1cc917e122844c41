// Package api is a node's local HTTP interface: the JSON API under /api/ that the
// CLI (status, releases, update, rollback) and the dashboard use, the dashboard
// itself, and Prometheus metrics under /metrics. It depends on the node only
// through the Backend interface.
package api
