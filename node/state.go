package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/patchmesh/patchmesh/chunk/store"
	"github.com/patchmesh/patchmesh/manifest"
)

// Keys of the node's durable state in the store's meta area.
const (
	metaHighestSeq = "seq/"     // + channel: highest head sequence ever verified (rollback protection)
	metaRoot       = "root/"    // + version: trust root envelopes reached by rotation
	metaHead       = "head/"    // + channel: the newest verified head envelope
	metaManifest   = "mf/"      // + channel/seq: verified manifest envelopes of kept releases
	metaRelease    = "release/" // + name: releaseRecord
)

// releaseRecord is what the node remembers of a release it fetched.
type releaseRecord struct {
	Name      string `json:"name"`
	Channel   string `json:"channel"`
	Version   string `json:"version"`
	Sequence  uint64 `json:"sequence"`
	Files     int    `json:"files"`
	Bytes     int64  `json:"bytes"`
	FromWAN   int64  `json:"from_wan"`
	FromLAN   int64  `json:"from_lan"`
	FromLocal int64  `json:"from_local"`
	// Rebuilt counts chunk bytes made from deltas; the deltas' own bytes
	// count in FromWAN, FromLAN and FromLocal.
	Rebuilt int64 `json:"rebuilt,omitempty"`
}

func releaseName(version string, seq uint64) string {
	return strconv.FormatUint(seq, 10) + "-" + version
}

// isReleaseOf reports whether name is a releaseName of version.
func isReleaseOf(name, version string) bool {
	seq, v, ok := strings.Cut(name, "-")
	if !ok || v != version {
		return false
	}
	_, err := strconv.ParseUint(seq, 10, 64)
	return err == nil
}

func manifestKey(channel string, seq uint64) string {
	return metaManifest + channel + "/" + strconv.FormatUint(seq, 10)
}

func (f *follower) highestSeq() (uint64, error) {
	b, err := f.store.GetMeta(metaHighestSeq + f.channel)
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read highest sequence: %w", err)
	}
	return strconv.ParseUint(string(b), 10, 64)
}

func (f *follower) setHighestSeq(seq uint64) error {
	cur, err := f.highestSeq()
	if err != nil {
		return err
	}
	if seq <= cur {
		return nil
	}
	// Not synced here: check syncs it with the manifest it stores next.
	return f.store.SetMetaLazy(metaHighestSeq+f.channel, []byte(strconv.FormatUint(seq, 10)))
}

// saveRecord stores r without waiting for the disk: syncing the store then
// would write out every chunk just fetched, on the way to the apply. A record
// lost in a crash is written again by the next check, which finds the release
// not current by its record and fetches nothing it holds.
func (f *follower) saveRecord(r releaseRecord) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return f.store.SetMetaLazy(f.recordKey(r.Name), b)
}

// recordKey is where the record of f's release name is kept: the first
// channel's as on single-channel nodes, the others' under their channel, as
// two channels may both have a release "1-1.0.0".
func (f *follower) recordKey(name string) string {
	if f.first {
		return metaRelease + name
	}
	return metaRelease + f.channel + "/" + name
}

func (f *follower) records() map[string]releaseRecord {
	out := make(map[string]releaseRecord)
	all, err := f.store.ListMeta(f.recordKey(""))
	if err != nil {
		return out
	}
	for k, v := range all {
		if f.first && strings.Contains(strings.TrimPrefix(k, metaRelease), "/") {
			continue // another channel's
		}
		var r releaseRecord
		if json.Unmarshal(v, &r) == nil {
			out[r.Name] = r
		}
	}
	return out
}

// storedManifest reads the manifest of an installed release back from the
// store and checks its signatures again, so a damaged or altered store is
// never trusted. Expiry is not checked: the release was verified current
// when it was installed, and a kept release keeps serving as a delta base,
// as chunks to keep and as the file view's digests long after its manifest
// would no longer be accepted as a new release.
func (n *Node) storedManifest(rec releaseRecord) (*manifest.Manifest, error) {
	env, err := n.store.GetMeta(manifestKey(rec.Channel, rec.Sequence))
	if err != nil {
		return nil, fmt.Errorf("manifest of release %s: %w", rec.Name, err)
	}
	m, err := n.trustRoot().VerifyManifestKept(env)
	if err != nil {
		return nil, fmt.Errorf("manifest of release %s: %w", rec.Name, err)
	}
	return m, nil
}

// keptManifests calls fn with the follower, the record and the stored
// manifest of every release the installers of every channel keep, or with
// the error that stopped its manifest from being read.
func (n *Node) keptManifests(fn func(f *follower, rec releaseRecord, m *manifest.Manifest, err error)) {
	for _, f := range n.followers {
		recs := f.records()
		for _, r := range f.inst.Releases() {
			rec, ok := recs[r.Name]
			if !ok {
				continue
			}
			m, err := n.storedManifest(rec)
			fn(f, rec, m, err)
		}
	}
}
