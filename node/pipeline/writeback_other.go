//go:build !linux

package pipeline

import (
	"errors"
	"os"
)

// errDirectRefused is never returned here: no write is direct.
var errDirectRefused = errors.ErrUnsupported

// setDirect refuses: direct writes are used on Linux only.
func setDirect(*os.File, bool) error { return errors.ErrUnsupported }
