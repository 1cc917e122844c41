package proxy

import (
	"net/http"
	"testing"
	"time"
)

func TestFreshness(t *testing.T) {
	now := time.Date(2026, 1, 2, 12, 0, 0, 0, time.UTC)
	date := now.Format(http.TimeFormat)
	tests := []struct {
		name   string
		h      http.Header
		fresh  time.Duration // how long it stays fresh from now
		always bool
	}{
		{"s-maxage wins", http.Header{"Cache-Control": {"max-age=10, s-maxage=100"}}, 100 * time.Second, false},
		{"max-age", http.Header{"Cache-Control": {"public, max-age=60"}}, 60 * time.Second, false},
		{"age counts", http.Header{"Cache-Control": {"max-age=60"}, "Age": {"50"}}, 10 * time.Second, false},
		{"expires", http.Header{"Date": {date}, "Expires": {now.Add(time.Hour).Format(http.TimeFormat)}}, time.Hour, false},
		{"bad expires", http.Header{"Expires": {"0"}}, 0, false},
		{"heuristic", http.Header{"Date": {date}, "Last-Modified": {now.Add(-100 * time.Hour).Format(http.TimeFormat)}}, 10 * time.Hour, false},
		{"heuristic capped", http.Header{"Date": {date}, "Last-Modified": {now.Add(-1000 * time.Hour).Format(http.TimeFormat)}}, heuristicMax, false},
		{"no-cache", http.Header{"Cache-Control": {"no-cache, max-age=60"}}, 60 * time.Second, true},
		{"nothing", http.Header{}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			until, always := freshness(tt.h, now)
			var got time.Duration
			if !until.IsZero() {
				got = until.Sub(now)
			}
			if got != tt.fresh || always != tt.always {
				t.Errorf("fresh for %v (always %v), want %v (%v)", got, always, tt.fresh, tt.always)
			}
		})
	}
}

func TestStorable(t *testing.T) {
	tests := []struct {
		name   string
		status int
		h      http.Header
		ok     bool
	}{
		{"plain 200", 200, http.Header{}, true},
		{"no-store", 200, http.Header{"Cache-Control": {"max-age=60, no-store"}}, false},
		{"private", 200, http.Header{"Cache-Control": {"private"}}, false},
		{"vary encoding", 200, http.Header{"Vary": {"Accept-Encoding"}}, true},
		{"vary cookie", 200, http.Header{"Vary": {"Accept-Encoding, Cookie"}}, false},
		{"404", 404, http.Header{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			why := unstorable(&http.Response{StatusCode: tt.status, Header: tt.h})
			if (why == "") != tt.ok {
				t.Errorf("unstorable = %q, want storable %v", why, tt.ok)
			}
		})
	}
}

func TestRequestRules(t *testing.T) {
	r, _ := http.NewRequest("GET", "http://x/", nil)
	r.Header.Set("Authorization", "Basic eDp5")
	if requestBypasses(r) == "" {
		t.Error("a request with Authorization may use the shared cache")
	}
	r.Header = http.Header{"Cache-Control": {"max-age=0"}}
	if requestBypasses(r) != "" || !requestRevalidates(r) {
		t.Error("max-age=0 should revalidate, not bypass")
	}
	r.Header = http.Header{"Pragma": {"no-cache"}}
	if !requestRevalidates(r) {
		t.Error("Pragma: no-cache should revalidate")
	}
}

func TestAllowed(t *testing.T) {
	c := &Cache{o: Options{Allow: []string{"updates.vendor.example", "*.cdn.example", "mirror.example:8080"}}}
	tests := []struct {
		scheme, host string
		ok           bool
	}{
		{"http", "updates.vendor.example", true},
		{"http", "UPDATES.vendor.example:81", true},
		{"https", "a.b.cdn.example:443", true},
		{"http", "cdn.example", false},
		{"http", "mirror.example:8080", true},
		{"http", "mirror.example", false},
		{"http", "evil.example", false},
		{"http", "updates.vendor.example.evil.example", false},
	}
	for _, tt := range tests {
		if got := c.allowed(tt.scheme, tt.host); got != tt.ok {
			t.Errorf("allowed(%s, %s) = %v, want %v", tt.scheme, tt.host, got, tt.ok)
		}
	}
}
