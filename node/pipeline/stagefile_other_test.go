//go:build !linux

package pipeline

import "testing"

// directWorks reports false: direct writes are used on Linux only.
func directWorks(*testing.T, string) bool { return false }

// cachedPages is not called where directWorks is false.
func cachedPages(t *testing.T, _ string) (int, int) {
	t.Fatal("cachedPages off Linux")
	return 0, 0
}
