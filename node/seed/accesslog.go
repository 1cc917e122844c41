package seed

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/patchmesh/patchmesh/manifest/repo"
)

// reopenCheck is how often an access log file checks that its name still
// leads to it.
const reopenCheck = time.Second

// warnEach is the least time between two warnings of an access log file: a
// full disk must not turn every request into a warning.
const warnEach = time.Minute

// accessFile appends request lines to a file by name. When the name no longer
// leads to the open file (logrotate moved or removed it, its default "create"
// mode) the next write opens the name again, so rotating needs no signal.
type accessFile struct {
	path       string
	checkEvery time.Duration
	log        *slog.Logger // write errors, at most one a minute

	mu      sync.Mutex
	f       *os.File
	checked time.Time
	warned  time.Time
	line    []byte
	now     func() time.Time // tests replace it
}

func openAccessFile(path string, checkEvery time.Duration, log *slog.Logger) (*accessFile, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("seed: open access log: %w", err)
	}
	return &accessFile{path: path, checkEvery: checkEvery, log: log, f: f, checked: time.Now(), now: time.Now}, nil
}

// Access writes e as one line of the Combined Log Format, the one web
// servers write and log tools read.
func (a *accessFile) Access(e repo.AccessEntry) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.line = appendCombined(a.line[:0], e)
	now := a.now()
	if now.Sub(a.checked) >= a.checkEvery {
		a.checked = now
		if err := a.reopenIfMoved(); err != nil {
			a.warn(now, err)
		}
	}
	if _, err := a.f.Write(a.line); err != nil {
		a.warn(now, fmt.Errorf("seed: write access log: %w", err))
	}
}

// reopenIfMoved opens the path again when it is missing or names another file.
func (a *accessFile) reopenIfMoved() error {
	cur, err := a.f.Stat()
	if err != nil {
		return fmt.Errorf("seed: access log: %w", err)
	}
	if fi, err := os.Stat(a.path); err == nil && os.SameFile(fi, cur) {
		return nil
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("seed: access log: %w", err)
	}
	f, err := os.OpenFile(a.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		// Keep writing to the moved file: nothing is lost, and the name is
		// tried again at the next check.
		return fmt.Errorf("seed: reopen access log: %w", err)
	}
	a.f.Close()
	a.f = f
	return nil
}

// warn logs err unless another was logged within warnEach.
func (a *accessFile) warn(now time.Time, err error) {
	if !a.warned.IsZero() && now.Sub(a.warned) < warnEach {
		return
	}
	a.warned = now
	a.log.Warn("access log", "path", a.path, "err", err)
}

// Close closes the file.
func (a *accessFile) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.f.Close()
}

// appendCombined appends e in the Combined Log Format:
//
//	host - - [day/Mon/year:hh:mm:ss zone] "METHOD path proto" status bytes "referer" "user-agent"
func appendCombined(b []byte, e repo.AccessEntry) []byte {
	host := e.Remote
	if h, _, err := net.SplitHostPort(e.Remote); err == nil {
		host = h
	}
	b = appendField(b, host)
	b = append(b, " - - ["...)
	b = e.Start.AppendFormat(b, "02/Jan/2006:15:04:05 -0700")
	b = append(b, "] \""...)
	target := e.Path
	if e.Query != "" {
		target += "?" + e.Query
	}
	b = appendEscaped(b, e.Method+" "+target+" "+e.Proto)
	b = append(b, "\" "...)
	b = strconv.AppendInt(b, int64(e.Status), 10)
	b = append(b, ' ')
	if e.Bytes > 0 {
		b = strconv.AppendInt(b, e.Bytes, 10)
	} else {
		b = append(b, '-')
	}
	b = append(b, " \""...)
	b = appendEscaped(b, orDash(e.Referer))
	b = append(b, "\" \""...)
	b = appendEscaped(b, orDash(e.UserAgent))
	return append(b, "\"\n"...)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// appendField appends s with spaces escaped too: it is not quoted.
func appendField(b []byte, s string) []byte {
	if s == "" {
		return append(b, '-')
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == ' ' {
			b = append(b, `\x20`...)
		} else {
			b = appendByte(b, c)
		}
	}
	return b
}

// appendEscaped appends s with quotes, backslashes and bytes outside
// printable ASCII as \xHH, as nginx does, so a client cannot forge a line or
// a field.
func appendEscaped(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		b = appendByte(b, s[i])
	}
	return b
}

func appendByte(b []byte, c byte) []byte {
	if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
		const hex = "0123456789ABCDEF"
		return append(b, '\\', 'x', hex[c>>4], hex[c&15])
	}
	return append(b, c)
}
