package mirror

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/patchmesh/patchmesh/manifest"
)

// ErrBadIndex wraps every refusal of a vendor index.
var ErrBadIndex = errors.New("bad index")

// maxIndexSize bounds the vendor index, read whole before parsing.
const maxIndexSize = 16 << 20

// IndexEntry is one file of a vendor index. Size is -1 when the index gives none.
type IndexEntry struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// ParseIndex reads a sha256sums file or a JSON list (see the package
// documentation). Paths are checked: relative, slash-separated, not climbing
// out, each listed once.
func ParseIndex(data []byte) ([]IndexEntry, error) {
	var out []IndexEntry
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) > 0 && (trimmed[0] == '{' || trimmed[0] == '[') {
		var err error
		if out, err = parseJSONIndex(trimmed); err != nil {
			return nil, err
		}
	} else {
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(make([]byte, 0, 64<<10), 64<<10)
		line := 0
		for sc.Scan() {
			line++
			s := strings.TrimRight(sc.Text(), "\r")
			if strings.TrimSpace(s) == "" || strings.HasPrefix(s, "#") {
				continue
			}
			sum, rest, ok := strings.Cut(s, " ")
			if !ok || len(rest) < 2 || (rest[0] != ' ' && rest[0] != '*') {
				return nil, fmt.Errorf("%w: line %d: want \"<sha256>  <path>\"", ErrBadIndex, line)
			}
			out = append(out, IndexEntry{Path: rest[1:], Size: -1, SHA256: strings.ToLower(sum)})
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("%w: line %d: %w", ErrBadIndex, line+1, err)
		}
	}
	seen := make(map[string]bool, len(out))
	for i := range out {
		e := &out[i]
		e.Path = strings.TrimPrefix(e.Path, "./")
		if err := checkPath(e.Path); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadIndex, err)
		}
		if seen[e.Path] {
			return nil, fmt.Errorf("%w: %s listed twice", ErrBadIndex, e.Path)
		}
		seen[e.Path] = true
		if b, err := hex.DecodeString(e.SHA256); err != nil || len(b) != 32 {
			return nil, fmt.Errorf("%w: %s: sha256 %q is not 64 hex digits", ErrBadIndex, e.Path, e.SHA256)
		}
		if e.Size < -1 {
			return nil, fmt.Errorf("%w: %s: negative size", ErrBadIndex, e.Path)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: it lists no file", ErrBadIndex)
	}
	return out, nil
}

func parseJSONIndex(data []byte) ([]IndexEntry, error) {
	type jsonEntry struct {
		Path   string `json:"path"`
		Size   *int64 `json:"size"`
		SHA256 string `json:"sha256"`
	}
	var list []jsonEntry
	if data[0] == '{' {
		var doc struct {
			Files []jsonEntry `json:"files"`
		}
		if err := json.Unmarshal(data, &doc); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadIndex, err)
		}
		list = doc.Files
	} else if err := json.Unmarshal(data, &list); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadIndex, err)
	}
	out := make([]IndexEntry, len(list))
	for i, e := range list {
		out[i] = IndexEntry{Path: e.Path, Size: -1, SHA256: strings.ToLower(e.SHA256)}
		if e.Size != nil {
			out[i].Size = *e.Size
		}
	}
	return out, nil
}

// checkPath accepts the paths a release can hold.
func checkPath(p string) error {
	if !fs.ValidPath(p) || p == "." || strings.ContainsAny(p, `\`) {
		return fmt.Errorf("path %q is not a clean relative path", p)
	}
	return manifest.SafePath(p)
}
