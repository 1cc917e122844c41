package store

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// trimMapped drops the pages of the value-log files under dir from this
// process's page tables. Badger maps those files whole (MAP_SHARED) and
// writes and reads chunks through the mapping, so every chunk moved would
// otherwise stay counted in the node's resident memory until the kernel
// needs the page. For a shared file mapping MADV_DONTNEED loses nothing:
// dirty pages stay in the page cache and are written back as usual, and the
// next access maps the page again.
func trimMapped(dir string) error {
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return fmt.Errorf("trim mapped value logs: %w", err)
	}
	prefix := dir + string(os.PathSeparator)
	sc := bufio.NewScanner(bytes.NewReader(maps))
	for sc.Scan() {
		// start-end perms offset dev inode path
		f := strings.Fields(sc.Text())
		if len(f) < 6 || !strings.HasPrefix(f[5], prefix) || !strings.HasSuffix(f[5], ".vlog") {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_DONTNEED); errno != 0 {
			return fmt.Errorf("trim mapped value log %s: %w", f[5], errno)
		}
	}
	return nil
}
