package api

import (
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDashboardScriptsLoad follows every script the dashboard page names and
// every module those scripts import: each must be served as JavaScript, and
// a script that imports must be loaded as a module, or the browser refuses it
// and the page stays blank.
func TestDashboardScriptsLoad(t *testing.T) {
	srv, _ := serve(t, newFakeNode(), Options{})
	_, page, _ := call(t, nil, "GET", srv.URL+"/", nil, "")

	scriptTag := regexp.MustCompile(`<script([^>]*)\ssrc="([^"]+)"`)
	importFrom := regexp.MustCompile(`(?m)^import\s[^;]*?from\s+"([^"]+)"`)
	type script struct {
		url    string
		module bool
	}
	var queue []script
	for _, m := range scriptTag.FindAllStringSubmatch(page, -1) {
		queue = append(queue, script{m[2], strings.Contains(m[1], `type="module"`)})
	}
	if len(queue) == 0 {
		t.Fatal("the dashboard loads no script")
	}
	seen := map[string]bool{}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		if seen[s.url] {
			continue
		}
		seen[s.url] = true
		code, body, hdr := call(t, nil, "GET", srv.URL+s.url, nil, "")
		if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/javascript") {
			t.Errorf("GET %s = %d %s, want 200 text/javascript", s.url, code, hdr.Get("Content-Type"))
			continue
		}
		imports := importFrom.FindAllStringSubmatch(body, -1)
		if len(imports) > 0 && !s.module {
			t.Errorf("%s imports modules but is not loaded as one", s.url)
		}
		for _, m := range imports {
			queue = append(queue, script{path.Join(path.Dir(s.url), m[1]), true})
		}
	}
	for _, want := range []string{"/static/app.js", "/static/format.js", "/static/check.js"} {
		if !seen[want] {
			t.Errorf("the dashboard never loads %s", want)
		}
	}
	// The seed dashboard takes the shared helpers from WebFS.
	if _, err := fs.ReadFile(WebFS(), "format.js"); err != nil {
		t.Errorf("WebFS lacks format.js: %v", err)
	}
}

// TestQueuedCheckCarriesItsTime: the dashboard turns its "checking" notice
// into the outcome once a check finishes after the time the node took the
// request, so a queued answer must carry that time even when the node's
// answer has none.
func TestQueuedCheckCarriesItsTime(t *testing.T) {
	srv, _ := serve(t, newFakeNode(), Options{})
	before := time.Now()
	code, body, _ := call(t, nil, "POST", srv.URL+"/api/update", actionHeader(), "")
	after := time.Now()
	var res CheckResult
	if err := json.Unmarshal([]byte(body), &res); err != nil || code != 202 {
		t.Fatalf("POST /api/update = %d %s (%v), want 202 and a CheckResult", code, body, err)
	}
	if res.Outcome != "queued" || res.Started.Before(before) || res.Started.After(after) {
		t.Errorf("queued answer = %+v, want outcome queued and started between %v and %v", res, before, after)
	}
}

// TestDashboardScripts runs testdata/dashboard.test.mjs with node against the
// embedded scripts: when a "check now" has finished, whichever status shows
// it, what the notice says, and the shared format helpers.
func TestDashboardScripts(t *testing.T) {
	nodeBin, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node (Node.js) is not installed: the dashboard's scripts are not run")
	}
	dir := t.TempDir()
	web, err := fs.Sub(webFiles, "web")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(filepath.Join(dir, "web"), web); err != nil {
		t.Fatal(err)
	}
	test, err := os.ReadFile(filepath.Join("testdata", "dashboard.test.mjs"))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"package.json": `{"type": "module"}` + "\n", "dashboard.test.mjs": string(test)}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, nodeBin, "--test", "dashboard.test.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "TZ=UTC", "NODE_OPTIONS=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node --test dashboard.test.mjs: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "# fail 0") {
		t.Errorf("node --test reported failures:\n%s", out)
	}
}
