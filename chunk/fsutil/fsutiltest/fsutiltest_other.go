//go:build !linux

package fsutiltest

// onTmpfs is false: only Linux is asked.
func onTmpfs(string) (bool, error) { return false, nil }
