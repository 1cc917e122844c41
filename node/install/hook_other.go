//go:build !unix

package install

import "os/exec"

// Without process groups, cancellation kills only the direct child (exec's default).
func setProcessGroup(*exec.Cmd) {}

func killGroup(*exec.Cmd) {}
