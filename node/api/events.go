package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// events streams "status" events: at least every eventsEvery and within
// eventsPoll of a change. A stream ends after eventsLifetime; EventSource
// reconnects by itself, so no stream outlives a forgotten browser tab for long.
func (h *handler) events(w http.ResponseWriter, r *http.Request) {
	select {
	case h.streams <- struct{}{}:
		defer func() { <-h.streams }()
	default:
		writeError(w, http.StatusServiceUnavailable, "", "too many event streams open; poll /api/status instead")
		return
	}
	rc := http.NewResponseController(w)
	ctx, cancel := context.WithTimeout(r.Context(), h.eventsLifetime)
	defer cancel()

	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprintf(w, "retry: 2000\n\n"); err != nil {
		return
	}

	var last []byte
	var sent time.Time
	tick := time.NewTicker(h.eventsPoll)
	defer tick.Stop()
	for {
		st := sanitize(h.b.Status())
		// Uptime changes on every call; it alone is no reason to send.
		uptime := st.Node.UptimeSeconds
		st.Node.UptimeSeconds = 0
		fp, err := json.Marshal(st)
		if err != nil {
			return
		}
		if !bytes.Equal(fp, last) || time.Since(sent) >= h.eventsEvery {
			last = fp
			sent = time.Now()
			st.Node.UptimeSeconds = uptime
			data, _ := json.Marshal(st)
			_ = rc.SetWriteDeadline(time.Now().Add(writeTimeout))
			if _, err := fmt.Fprintf(w, "event: status\ndata: %s\n\n", data); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
