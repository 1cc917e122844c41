package pipeline

import (
	"os"

	"golang.org/x/sys/unix"
)

// errDirectRefused is what a direct write fails with where the file system
// or the device wants other alignment.
var errDirectRefused = unix.EINVAL

// setDirect sets or clears O_DIRECT on f.
func setDirect(f *os.File, on bool) error {
	sc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = sc.Control(func(fd uintptr) {
		fl, err := unix.FcntlInt(fd, unix.F_GETFL, 0)
		if err != nil {
			serr = err
			return
		}
		if on {
			fl |= unix.O_DIRECT
		} else {
			fl &^= unix.O_DIRECT
		}
		_, serr = unix.FcntlInt(fd, unix.F_SETFL, fl)
	})
	if err != nil {
		return err
	}
	return serr
}
