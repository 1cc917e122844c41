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

func (n *Node) highestSeq() (uint64, error) {
	b, err := n.store.GetMeta(metaHighestSeq + n.cfg.Channel)
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read highest sequence: %w", err)
	}
	return strconv.ParseUint(string(b), 10, 64)
}

func (n *Node) setHighestSeq(seq uint64) error {
	cur, err := n.highestSeq()
	if err != nil {
		return err
	}
	if seq <= cur {
		return nil
	}
	// Not synced here: check syncs it with the manifest it stores next.
	return n.store.SetMetaLazy(metaHighestSeq+n.cfg.Channel, []byte(strconv.FormatUint(seq, 10)))
}

// saveRecord stores r without waiting for the disk: syncing the store then
// would write out every chunk just fetched, on the way to the apply. A record
// lost in a crash is written again by the next check, which finds the release
// not current by its record and fetches nothing it holds.
func (n *Node) saveRecord(r releaseRecord) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return n.store.SetMetaLazy(metaRelease+r.Name, b)
}

func (n *Node) records() map[string]releaseRecord {
	out := make(map[string]releaseRecord)
	all, err := n.store.ListMeta(metaRelease)
	if err != nil {
		return out
	}
	for _, v := range all {
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

// keptManifests calls fn with the record and the stored manifest of every
// release the installer keeps, or with the error that stopped its manifest
// from being read.
func (n *Node) keptManifests(fn func(rec releaseRecord, m *manifest.Manifest, err error)) {
	recs := n.records()
	for _, r := range n.inst.Releases() {
		rec, ok := recs[r.Name]
		if !ok {
			continue
		}
		m, err := n.storedManifest(rec)
		fn(rec, m, err)
	}
}
