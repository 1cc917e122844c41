package proxy

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// cacheControl holds the directives of Cache-Control headers, lower-cased,
// with their values unquoted ("" for none).
type cacheControl map[string]string

func parseCacheControl(h http.Header) cacheControl {
	cc := cacheControl{}
	for _, line := range h.Values("Cache-Control") {
		for _, part := range strings.Split(line, ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			k, v, _ := strings.Cut(part, "=")
			k = strings.ToLower(strings.TrimSpace(k))
			if _, dup := cc[k]; !dup {
				cc[k] = strings.Trim(strings.TrimSpace(v), `"`)
			}
		}
	}
	return cc
}

func (cc cacheControl) has(k string) bool { _, ok := cc[k]; return ok }

// seconds returns directive k as a duration; false when absent or malformed.
func (cc cacheControl) seconds(k string) (time.Duration, bool) {
	v, ok := cc[k]
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return time.Duration(min(n, 1<<31)) * time.Second, true
}

// requestBypasses reports why a client request must not be answered from, or
// stored in, the shared cache; "" when it may be.
func requestBypasses(r *http.Request) string {
	switch {
	case r.Header.Get("Authorization") != "":
		return "authorization"
	case parseCacheControl(r.Header).has("no-store"):
		return "request no-store"
	}
	return ""
}

// requestRevalidates reports whether the client asked for an answer checked
// with the origin (no-cache, max-age=0, Pragma: no-cache).
func requestRevalidates(r *http.Request) bool {
	cc := parseCacheControl(r.Header)
	if cc.has("no-cache") {
		return true
	}
	if d, ok := cc.seconds("max-age"); ok && d == 0 {
		return true
	}
	return len(cc) == 0 && strings.EqualFold(r.Header.Get("Pragma"), "no-cache")
}

// unstorable reports why a response may not be stored by a shared cache; ""
// when it may be. Only 200 is stored: other answers pass through.
func unstorable(resp *http.Response) string {
	cc := parseCacheControl(resp.Header)
	switch {
	case resp.StatusCode != http.StatusOK:
		return "status " + strconv.Itoa(resp.StatusCode)
	case cc.has("no-store"):
		return "no-store"
	case cc.has("private"):
		return "private"
	}
	for _, v := range resp.Header.Values("Vary") {
		for _, f := range strings.Split(v, ",") {
			// The cache asks upstream without Accept-Encoding, so a
			// response varying on it alone is the one every client gets.
			if f = strings.TrimSpace(f); f != "" && !strings.EqualFold(f, "Accept-Encoding") {
				return "vary " + f
			}
		}
	}
	return ""
}

// heuristicMax caps the freshness guessed from Last-Modified.
const heuristicMax = 24 * time.Hour

// freshness returns when a response received at now stops being fresh, and
// whether it must be revalidated at every use (no-cache). The response's Age
// counts as time already spent.
func freshness(h http.Header, now time.Time) (until time.Time, always bool) {
	cc := parseCacheControl(h)
	always = cc.has("no-cache")
	born := now
	if age, err := strconv.ParseInt(h.Get("Age"), 10, 64); err == nil && age > 0 {
		born = now.Add(-time.Duration(min(age, 1<<31)) * time.Second)
	}
	if d, ok := cc.seconds("s-maxage"); ok {
		return born.Add(d), always
	}
	if d, ok := cc.seconds("max-age"); ok {
		return born.Add(d), always
	}
	date, err := http.ParseTime(h.Get("Date"))
	if err != nil {
		date = now
	}
	if v := h.Get("Expires"); v != "" {
		exp, err := http.ParseTime(v)
		if err != nil {
			return time.Time{}, always // an invalid Expires means already expired
		}
		return born.Add(exp.Sub(date)), always
	}
	if lm, err := http.ParseTime(h.Get("Last-Modified")); err == nil && lm.Before(date) {
		return born.Add(min(date.Sub(lm)/10, heuristicMax)), always
	}
	return time.Time{}, always
}

// hopHeaders are meaningful for one connection only (RFC 9110 7.6.1), or, as
// Set-Cookie, for one client only: never forwarded between client, cache and
// upstream, nor stored.
var hopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// endToEnd returns a copy of h without hop-by-hop headers and those that
// Connection names.
func endToEnd(h http.Header) http.Header {
	out := h.Clone()
	for _, v := range h.Values("Connection") {
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				out.Del(f)
			}
		}
	}
	for _, k := range hopHeaders {
		out.Del(k)
	}
	return out
}

// storedHeader is what a record keeps of a response's headers: end-to-end
// ones without Set-Cookie (one client's) and the length and range, which the
// cache sets itself when it serves.
func storedHeader(h http.Header) http.Header {
	out := endToEnd(h)
	for _, k := range []string{"Set-Cookie", "Content-Length", "Content-Range", "Age", "Accept-Ranges"} {
		out.Del(k)
	}
	return out
}

// refreshHeaders are what a 304 updates in a stored response (RFC 9111 4.3.4,
// kept to those that matter for caching and clients).
var refreshHeaders = []string{"Cache-Control", "Date", "Expires", "ETag", "Last-Modified", "Age", "Vary"}
