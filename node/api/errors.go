package api

import "errors"

// Sentinel errors callers tell apart with errors.Is.
var (
	// ErrNoPrevious: there is no previous release to roll back to. The Backend's
	// Rollback wraps it; the API answers 409 and the Client returns it again.
	ErrNoPrevious = errors.New("no previous release to roll back to")
	// ErrNotBad: the node holds no release of that version marked bad. The
	// Backend's Retry wraps it; the API answers 409 and the Client returns it again.
	ErrNotBad = errors.New("no release of that version is marked bad")
	// ErrNothingWaiting: no staged release waits for a maintenance window, so
	// apply-now has nothing to apply. The Backend's ApplyNow wraps it; the API
	// answers 409 and the Client returns it again.
	ErrNothingWaiting = errors.New("no staged release waits for a maintenance window")
	// ErrNoChannel: the node follows no channel of that name. Rollback,
	// Retry and ApplyNow wrap it; the API answers 404 and the Client returns
	// it again.
	ErrNoChannel = errors.New("the node follows no such channel")
	// ErrUnreachable: the node's API could not be reached (connection refused,
	// timeout). The CLI maps it to exit code 4.
	ErrUnreachable = errors.New("node API unreachable")
	// ErrUnauthorized: the node refused the request for a missing or wrong token.
	ErrUnauthorized = errors.New("node API refused the token")
)

// Error codes in JSON error bodies ({"error": "...", "code": "..."}) that the
// Client turns back into sentinel errors.
const (
	codeNoPrevious   = "no-previous"
	codeNotBad       = "not-bad"
	codeNotWaiting   = "not-waiting"
	codeNoChannel    = "no-channel"
	codeUnauthorized = "unauthorized"
)
