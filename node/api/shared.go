package api

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"log/slog"
	"net/http"
)

// Guard serves next behind the node API's security rules, so another dashboard
// (the seed's) keeps the same promises: the security headers and the
// Content-Security-Policy, the loopback Host check when opts.Token is empty, and
// with a token the bearer header or the session cookie set by /?token=T. Only
// opts.Token and opts.Logger are used; next must refuse actions from other sites
// itself if it takes any.
func Guard(next http.Handler, opts Options) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", next)
	h := &handler{opts: opts, log: opts.Logger, mux: mux}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if opts.Token != "" {
		sum := sha256.Sum256([]byte("patchmesh dashboard session\x00" + opts.Token))
		h.session = hex.EncodeToString(sum[:])
	}
	return h
}

// WebFS returns the node dashboard's embedded assets (app.css, app.js,
// index.html, and the modules format.js and dom.js), so another dashboard can
// share the stylesheet and helpers and look alike.
func WebFS() fs.FS {
	static, err := fs.Sub(webFiles, "web")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return static
}
