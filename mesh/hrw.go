package mesh

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"slices"
)

// candidate is one member eligible to own chunks, as the ownership order sees it.
type candidate struct {
	name string
	role string
}

// hrwScore is the rendezvous weight of member name for the chunk whose CID
// bytes are key. sha256 keeps the weights uniform whatever the names look like.
func hrwScore(key []byte, name string) uint64 {
	h := sha256.New()
	h.Write(key)
	h.Write([]byte{0}) // separator, so ("ab","c") and ("a","bc") differ
	h.Write([]byte(name))
	var sum [sha256.Size]byte
	return binary.BigEndian.Uint64(h.Sum(sum[:0]))
}

// eligible returns the members that may own chunks: the distribution points
// if any is present, else all of them.
func eligible(members []candidate) []candidate {
	var dps []candidate
	for _, m := range members {
		if m.role == RoleDP {
			dps = append(dps, m)
		}
	}
	if len(dps) > 0 {
		return dps
	}
	return members
}

// hrwOrder returns the names of the eligible members ordered by rendezvous
// weight for key, highest (the owner) first. Ties, which need a sha256
// collision on 64 bits, break by name so every node agrees.
func hrwOrder(key []byte, members []candidate) []string {
	return hrwOrderAll(key, eligible(members))
}

// hrwOwner returns the first name of hrwOrder(key, members), or "" for none,
// without ordering the rest: it is asked for every chunk of a release.
func hrwOwner(key []byte, members []candidate) string {
	var best string
	var top uint64
	for _, m := range eligible(members) {
		sc := hrwScore(key, m.name)
		if best == "" || sc > top || (sc == top && m.name < best) {
			best, top = m.name, sc
		}
	}
	return best
}

// hrwOrderAll orders all the given members by rendezvous weight for key,
// whatever their roles.
func hrwOrderAll(key []byte, el []candidate) []string {
	type scored struct {
		name  string
		score uint64
	}
	s := make([]scored, len(el))
	for i, m := range el {
		s[i] = scored{m.name, hrwScore(key, m.name)}
	}
	slices.SortFunc(s, func(a, b scored) int {
		return cmp.Or(cmp.Compare(b.score, a.score), cmp.Compare(a.name, b.name))
	})
	out := make([]string, len(s))
	for i := range s {
		out[i] = s[i].name
	}
	return out
}
