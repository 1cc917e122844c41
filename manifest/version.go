package manifest

import (
	"strings"

	"golang.org/x/mod/semver"
)

// CompareVersions compares two version labels as semantic versions ("1.4.2" or
// "v1.4.2"): -1, 0 or +1 and ok=true when both parse, ok=false otherwise (labels
// that are not semver have no order; sequence numbers order releases).
func CompareVersions(a, b string) (int, bool) {
	va, vb := withV(a), withV(b)
	if !semver.IsValid(va) || !semver.IsValid(vb) {
		return 0, false
	}
	return semver.Compare(va, vb), true
}

func withV(s string) string {
	if strings.HasPrefix(s, "v") {
		return s
	}
	return "v" + s
}
