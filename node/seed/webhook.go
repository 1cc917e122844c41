package seed

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/patchmesh/patchmesh/node/api"
)

// Webhook bounds: queued events, tries per event, time per try.
const (
	hookQueue   = 64
	hookTries   = 3
	hookTimeout = 10 * time.Second
	hookBackoff = time.Second
)

// Event is what the webhook posts, as JSON, when a report shows a node
// newly failing or rolled back, or a site newly halted.
type Event struct {
	Kind    string    `json:"kind"` // failure, rollback, halt
	Site    string    `json:"site"`
	Node    string    `json:"node,omitempty"`
	Outcome string    `json:"outcome,omitempty"`
	Message string    `json:"message,omitempty"`
	Summary string    `json:"summary"` // the site's one line
	Time    time.Time `json:"time"`
}

// newEvents compares a site's previous report with its new one.
func newEvents(old, cur api.SiteView, had bool, now time.Time) []Event {
	was := map[string]string{}
	if had {
		for _, f := range old.Failing {
			was[f.Name] = f.Outcome
		}
	}
	var out []Event
	for _, f := range cur.Failing {
		if was[f.Name] == f.Outcome {
			continue
		}
		kind := "failure"
		if f.Outcome == "rolled-back" || f.Outcome == "aborted" {
			kind = "rollback"
		}
		out = append(out, Event{Kind: kind, Site: cur.Site, Node: f.Name, Outcome: f.Outcome, Message: f.Message, Summary: cur.Summary, Time: now})
	}
	if cur.Halted && (!had || !old.Halted) {
		out = append(out, Event{Kind: "halt", Site: cur.Site, Summary: cur.Summary, Time: now})
	}
	return out
}

// webhook posts events to a URL from one goroutine, which Run owns; a full
// queue drops the event (and logs it) rather than slow the reports down.
type webhook struct {
	url    string
	log    *slog.Logger
	client *http.Client
	queue  chan Event
}

func newWebhook(url string, log *slog.Logger) *webhook {
	return &webhook{url: url, log: log, client: &http.Client{Timeout: hookTimeout}, queue: make(chan Event, hookQueue)}
}

func (h *webhook) send(e Event) {
	select {
	case h.queue <- e:
	default:
		h.log.Warn("webhook queue full; event dropped", "kind", e.Kind, "site", e.Site, "node", e.Node)
	}
}

// run delivers queued events until ctx ends.
func (h *webhook) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-h.queue:
			h.deliver(ctx, e)
		}
	}
}

// deliver tries an event hookTries times, backing off between tries.
func (h *webhook) deliver(ctx context.Context, e Event) {
	body, err := json.Marshal(e)
	if err != nil {
		return
	}
	wait := hookBackoff
	for try := 1; ; try++ {
		err := h.post(ctx, body)
		if err == nil {
			return
		}
		if try == hookTries || ctx.Err() != nil {
			h.log.Warn("webhook: event not delivered", "kind", e.Kind, "site", e.Site, "node", e.Node, "tries", try, "err", err)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait *= 2
	}
}

func (h *webhook) post(ctx context.Context, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, hookTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook post: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "patchmesh-seed")
	resp, err := h.client.Do(req)
	if err != nil {
		return fmt.Errorf("webhook post: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook post: %s", resp.Status)
	}
	return nil
}
