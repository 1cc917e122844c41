package proxy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// metaPrefix is where records live in the store's meta area.
const metaPrefix = "proxy/"

// record is one cached object: its response headers, validators, freshness
// and the chunks of its body, in order.
type record struct {
	URL    string      `json:"url"`
	Header http.Header `json:"header"`
	Size   int64       `json:"size"`
	Chunks []chunkRef  `json:"chunks"`
	// Until is the end of its freshness; Always marks no-cache responses,
	// revalidated at every use.
	Until  time.Time `json:"until"`
	Always bool      `json:"always,omitempty"`
	// Checked is when upstream last gave or confirmed it (for Age).
	Checked time.Time `json:"checked"`
	Used    time.Time `json:"used"`
}

// chunkRef is one chunk of a body.
type chunkRef struct {
	CID  string `json:"cid"`
	Size int64  `json:"size"`
}

// objectKey names the record of url in the meta area.
func objectKey(url string) string {
	d := sha256.Sum256([]byte(url))
	return metaPrefix + hex.EncodeToString(d[:])
}

// id names the body's version: the same on every node that serves it, so a
// continuation asks for the bytes of the body it started with.
func (r *record) id() string {
	h := sha256.New()
	for _, c := range r.Chunks {
		h.Write([]byte(c.CID))
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// fresh reports whether r may be served at now without asking upstream.
func (r *record) fresh(now time.Time) bool { return !r.Always && now.Before(r.Until) }

// maxRecord bounds a record read back from the store: 1 GiB of 4 KiB chunks
// would list 256k of them.
const maxRecord = 32 << 20

func decodeRecord(b []byte) (*record, error) {
	if len(b) > maxRecord {
		return nil, fmt.Errorf("decode proxy record: %d bytes", len(b))
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decode proxy record: %w", err)
	}
	var sum int64
	for _, c := range r.Chunks {
		sum += c.Size
	}
	if r.URL == "" || sum != r.Size || r.Header == nil {
		return nil, fmt.Errorf("decode proxy record %s: inconsistent", r.URL)
	}
	return &r, nil
}
