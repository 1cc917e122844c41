package repo

import (
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"

	"github.com/ipfs/go-cid"
)

// Paths of the repository's documents, relative and slash-separated.
const (
	RootFile   = "root.json"
	rootsDir   = "roots"
	chunksDir  = "chunks"
	lockFile   = ".publish.lock"
	tempPrefix = ".tmp-"
)

var channelRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// ValidChannel reports whether name can be a channel: lower-case letters, digits,
// '.', '_' and '-', at most 64 characters, so it is safe as a path element everywhere.
func ValidChannel(name string) error {
	if !channelRE.MatchString(name) {
		return fmt.Errorf("channel %q: want 1-64 characters of a-z, 0-9, '.', '_', '-', starting with a letter or digit", name)
	}
	return nil
}

// RootPath is the path of trust root version v.
func RootPath(v uint64) string { return path.Join(rootsDir, strconv.FormatUint(v, 10)+".json") }

// HeadPath is the path of a channel's head.
func HeadPath(channel string) string { return path.Join("channels", channel, "head.json") }

// ManifestPath is the path of a channel's manifest with sequence seq.
func ManifestPath(channel string, seq uint64) string {
	return path.Join("manifests", channel, strconv.FormatUint(seq, 10)+".json")
}

// ManifestZstPath is the path of the zstd-compressed form of a manifest
// envelope, which publish writes beside it when it is smaller.
func ManifestZstPath(channel string, seq uint64) string { return ManifestPath(channel, seq) + ".zst" }

// ManifestDeltaPath is the path of a manifest envelope compressed with the
// envelope of manifest from as zstd raw dictionary: what a node that holds
// manifest from pulls for a small update. publish writes it against the
// previous head's manifest.
func ManifestDeltaPath(channel string, seq, from uint64) string {
	return path.Join("manifests", channel, strconv.FormatUint(seq, 10)+".from-"+strconv.FormatUint(from, 10)+".zst")
}

// ParseManifestPath returns the channel and sequence of a ManifestPath.
func ParseManifestPath(p string) (channel string, seq uint64, ok bool) {
	dir, file := path.Split(p)
	parent, channel := path.Split(path.Clean(dir))
	num, isJSON := strings.CutSuffix(file, ".json")
	if parent != "manifests/" || !isJSON {
		return "", 0, false
	}
	seq, err := strconv.ParseUint(num, 10, 64)
	if err != nil || ManifestPath(channel, seq) != p {
		return "", 0, false
	}
	return channel, seq, true
}

// ChunkPath is the path of a chunk. The shard is taken near the end of the CID
// because every CIDv1 raw sha2-256 shares its first characters.
func ChunkPath(c cid.Cid) string {
	s := c.String()
	return path.Join(chunksDir, s[len(s)-3:len(s)-1], s)
}
