//go:build patchmesh_liar

package mesh

// liar is built only with the tag patchmesh_liar, by the integration test of
// a lying peer: that binary serves every chunk with one byte flipped. No
// release build carries it.
func liar() func([]byte) []byte {
	return func(b []byte) []byte {
		out := append([]byte(nil), b...)
		if len(out) > 0 {
			out[len(out)/2] ^= 0xff
		}
		return out
	}
}
