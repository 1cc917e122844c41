package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

const (
	maxAnswerBytes = 16 << 20         // a Status with 360 history samples and 50 errors is far below
	defaultTimeout = 30 * time.Second // a request without a deadline of its own (not Check with wait)
)

// Client is the CLI's only way to a running node: it speaks the JSON API.
type Client struct {
	BaseURL string       // "http://127.0.0.1:7780"
	Token   string       // sent as a bearer token when non-empty
	HTTP    *http.Client // zero: a client with dial and TLS handshake timeouts
}

// NewClient returns a client for the node API at addr, "127.0.0.1:7780" or a
// URL ("http://host:7780", "https://…").
func NewClient(addr, token string) *Client {
	base := strings.TrimRight(addr, "/")
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	return &Client{BaseURL: base, Token: token, HTTP: &http.Client{Transport: &http.Transport{
		Proxy:                 nil, // the node is local or on the LAN: never through a proxy
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		TLSHandshakeTimeout:   5 * time.Second,
		MaxIdleConns:          2,
		IdleConnTimeout:       30 * time.Second,
		ExpectContinueTimeout: time.Second,
	}}}
}

// Status returns the node's whole state.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	var st Status
	if err := c.do(ctx, http.MethodGet, "/api/status", nil, &st, true); err != nil {
		return nil, err
	}
	return &st, nil
}

// Releases returns the releases the node knows, newest first.
func (c *Client) Releases(ctx context.Context) ([]ReleaseInfo, error) {
	var rels []ReleaseInfo
	if err := c.do(ctx, http.MethodGet, "/api/releases", nil, &rels, true); err != nil {
		return nil, err
	}
	return rels, nil
}

// Peers returns the members of the node's site.
func (c *Client) Peers(ctx context.Context) ([]Peer, error) {
	var peers []Peer
	if err := c.do(ctx, http.MethodGet, "/api/peers", nil, &peers, true); err != nil {
		return nil, err
	}
	return peers, nil
}

// Check asks the node to check its sources now. With wait it returns the
// outcome once the check, and the fetch and apply it started, are done: ctx
// bounds the wait. Without wait it returns as soon as the node queued it.
func (c *Client) Check(ctx context.Context, wait bool) (*CheckResult, error) {
	path := "/api/update"
	if wait {
		path += "?wait=1"
	}
	var res CheckResult
	if err := c.do(ctx, http.MethodPost, path, nil, &res, !wait); err != nil {
		return nil, err
	}
	return &res, nil
}

// ApplyNow applies the staged release of channel ("": the node's first)
// that waits for a maintenance window now, as Check does otherwise. It
// returns an error wrapping ErrNothingWaiting when no release waits for a
// window, ErrNoChannel when the node does not follow channel.
func (c *Client) ApplyNow(ctx context.Context, channel string, wait bool) (*CheckResult, error) {
	q := url.Values{}
	if wait {
		q.Set("wait", "1")
	}
	path := withQuery("/api/apply-now", channel, q)
	var res CheckResult
	if err := c.do(ctx, http.MethodPost, path, nil, &res, !wait); err != nil {
		return nil, err
	}
	return &res, nil
}

// Rollback switches channel ("": the node's first) back to its previous
// release, marking the current one bad with reason. It returns an error
// wrapping ErrNoPrevious when there is nothing to go back to.
func (c *Client) Rollback(ctx context.Context, channel, reason string) (*RollbackResult, error) {
	var res RollbackResult
	if err := c.do(ctx, http.MethodPost, withQuery("/api/rollback", channel, nil), rollbackRequest{Reason: reason}, &res, true); err != nil {
		return nil, err
	}
	return &res, nil
}

// Scrub makes the node check every stored chunk now, drop the damaged ones
// and fetch again those a kept release needs. ctx bounds the wait.
func (c *Client) Scrub(ctx context.Context) (*ScrubResult, error) {
	var res ScrubResult
	if err := c.do(ctx, http.MethodPost, "/api/scrub", nil, &res, false); err != nil {
		return nil, err
	}
	return &res, nil
}

// Retry clears the bad mark of the release of version of channel ("": the
// node's first), so its next check applies it again. It returns an error
// wrapping ErrNotBad when no release of that version is marked bad.
func (c *Client) Retry(ctx context.Context, channel, version string) (*RetryResult, error) {
	var res RetryResult
	if err := c.do(ctx, http.MethodPost, withQuery("/api/releases/retry", channel, nil), retryRequest{Version: version}, &res, true); err != nil {
		return nil, err
	}
	return &res, nil
}

// StatusError is an error answer of the node API.
type StatusError struct {
	StatusCode int    // HTTP status
	Message    string // the node's message
	code       string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("node API: %s (HTTP %d)", e.Message, e.StatusCode)
}

// Unwrap gives the sentinel error of the answer, if it has one.
func (e *StatusError) Unwrap() error {
	switch {
	case e.code == codeNoPrevious:
		return ErrNoPrevious
	case e.code == codeNotBad:
		return ErrNotBad
	case e.code == codeNoChannel:
		return ErrNoChannel
	case e.code == codeNotWaiting:
		return ErrNothingWaiting
	case e.code == codeUnauthorized || e.StatusCode == http.StatusUnauthorized:
		return ErrUnauthorized
	}
	return nil
}

func (c *Client) do(ctx context.Context, method, path string, in, out any, bounded bool) error {
	if _, ok := ctx.Deadline(); !ok && bounded {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultTimeout)
		defer cancel()
	}
	var body io.Reader
	if in != nil {
		buf, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%s %s: encode: %w", method, path, err)
		}
		body = bytes.NewReader(buf)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-Patchmesh", "1")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = NewClient(c.BaseURL, "").HTTP
	}
	resp, err := hc.Do(req)
	if err != nil {
		if unreachable(err) {
			return fmt.Errorf("%w at %s: %v", ErrUnreachable, c.BaseURL, err)
		}
		return fmt.Errorf("%s %s: %w", method, c.BaseURL+path, err)
	}
	defer resp.Body.Close()
	buf, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes+1))
	if err != nil {
		if unreachable(err) {
			return fmt.Errorf("%w at %s: %v", ErrUnreachable, c.BaseURL, err)
		}
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if len(buf) > maxAnswerBytes {
		return fmt.Errorf("%s %s: answer over %d bytes", method, path, maxAnswerBytes)
	}
	if resp.StatusCode/100 != 2 {
		var eb errorBody
		if json.Unmarshal(buf, &eb) != nil || eb.Error == "" {
			eb.Error = strings.TrimSpace(string(buf))
			if len(eb.Error) > 200 {
				eb.Error = eb.Error[:200]
			}
		}
		return &StatusError{StatusCode: resp.StatusCode, Message: eb.Error, code: eb.Code}
	}
	if err := json.Unmarshal(buf, out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// unreachable tells "the node is not there" (refused, no route, timed out)
// from an answer the node gave.
func unreachable(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var ue *url.Error
	if errors.As(err, &ue) && ue.Timeout() {
		return true
	}
	return errors.Is(err, context.DeadlineExceeded)
}

// withQuery adds channel, when set, to the query q of path.
func withQuery(path, channel string, q url.Values) string {
	if channel != "" {
		if q == nil {
			q = url.Values{}
		}
		q.Set("channel", channel)
	}
	if len(q) == 0 {
		return path
	}
	return path + "?" + q.Encode()
}
