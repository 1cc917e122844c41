package manifest

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

const (
	maxPathLen    = 4096
	maxElemLen    = 255
	maxNameLen    = 64
	maxVersionLen = 128
)

// SafePath checks a release file path: slash-separated, relative and clean, with no
// "." or ".." element, no empty element, no NUL, no backslash (a separator on
// Windows), valid UTF-8, at most 4096 bytes and 255 per element. Installers may join
// a safe path under their staging folder without further checks.
func SafePath(p string) error {
	bad := func(why string) error { return fmt.Errorf("path %q: %s: %w", p, why, ErrPath) }
	switch {
	case p == "":
		return bad("empty")
	case len(p) > maxPathLen:
		return bad(fmt.Sprintf("longer than %d bytes", maxPathLen))
	case !utf8.ValidString(p):
		return bad("not valid UTF-8")
	case strings.ContainsRune(p, 0):
		return bad("contains NUL")
	case strings.ContainsRune(p, '\\'):
		return bad(`contains a backslash`)
	case p[0] == '/':
		return bad("absolute")
	}
	for elem := range strings.SplitSeq(p, "/") {
		switch {
		case elem == "":
			return bad("empty element")
		case elem == "." || elem == "..":
			return bad(fmt.Sprintf("%q element", elem))
		case len(elem) > maxElemLen:
			return bad(fmt.Sprintf("element longer than %d bytes", maxElemLen))
		}
	}
	return nil
}

// CheckChannel checks a channel name: 1 to 64 of [A-Za-z0-9._-], not starting with
// '.' or '-'. Channel names become repository folder names.
func CheckChannel(name string) error {
	if name == "" || len(name) > maxNameLen || name[0] == '.' || name[0] == '-' || !allowed(name, "._-") {
		return fmt.Errorf("channel %q: want 1 to %d of letters, digits, '.', '_', '-', not starting with '.' or '-': %w", name, maxNameLen, ErrMalformed)
	}
	return nil
}

// CheckVersion checks a version label: 1 to 128 of [A-Za-z0-9._+~-] (semver fits).
func CheckVersion(v string) error {
	if v == "" || len(v) > maxVersionLen || !allowed(v, "._+~-") {
		return fmt.Errorf("version %q: want 1 to %d of letters, digits, '.', '_', '+', '~', '-': %w", v, maxVersionLen, ErrMalformed)
	}
	return nil
}

func allowed(s, extra string) bool {
	for i := range len(s) {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(extra, c) >= 0) {
			return false
		}
	}
	return true
}
