package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// folderSource reads a repository in a local or mounted folder.
type folderSource struct {
	dir      string
	name     string
	throttle Throttle // a mounted share may sit across the WAN
}

func newFolder(dir string, throttle Throttle) (*folderSource, error) {
	dir = filepath.Clean(dir)
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(dir)}
	if u.Path != "" && u.Path[0] != '/' {
		u.Path = "/" + u.Path // file:///C:/repo
	}
	return &folderSource{dir: dir, name: u.String(), throttle: throttle}, nil
}

func (s *folderSource) String() string { return s.name }

func (s *folderSource) Open(ctx context.Context, path string, max int64) (io.ReadCloser, error) {
	if err := checkRequest(path, max); err != nil {
		return nil, err
	}
	name := s.name + "/" + path
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	// The root is opened per call so that a share mounted after start is seen,
	// and a missing folder (an unmounted share) is a failure, not "not found".
	root, err := os.OpenRoot(s.dir)
	if err != nil {
		return nil, fmt.Errorf("open source folder %s: %w", s.dir, err)
	}
	defer root.Close()
	// os.Root refuses paths and symlinks that lead out of the folder.
	f, err := root.Open(filepath.FromSlash(path))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("open %s: %w", name, ErrNotFound)
	case err != nil:
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	info, err := f.Stat()
	switch {
	case err != nil:
		f.Close()
		return nil, fmt.Errorf("stat %s: %w", name, err)
	case !info.Mode().IsRegular():
		f.Close()
		return nil, fmt.Errorf("open %s: not a regular file: %w", name, ErrNotFound)
	case info.Size() > max:
		f.Close()
		return nil, fmt.Errorf("open %s: %d bytes, over %d: %w", name, info.Size(), max, ErrTooLarge)
	}
	// Local reads do not stall in a way a timer could interrupt (a hung
	// network mount blocks in the kernel), so no abort; the size bound and
	// the context still hold.
	opts := Options{IdleTimeout: time.Duration(1<<63 - 1), Throttle: s.throttle}
	g := newGuard(ctx, name, f, max, opts, time.Now(), nil, func(bool) error { return f.Close() })
	g.size = info.Size()
	return g, nil
}
