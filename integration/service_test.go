package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServiceInstallCLI: `node service install --root` writes the unit for the
// node run flags given after "--", refuses bad ones with exit 2, and
// uninstall removes it; nothing is registered on this machine.
func TestServiceInstallCLI(t *testing.T) {
	root := t.TempDir()
	unit := filepath.Join(root, "etc/systemd/system/shop-node.service")

	r := pm(t, "node", "service", "install", "--root", root, "--name", "shop-node", "--", "--bogus")
	if r.code != 2 || !strings.Contains(r.stderr, "unknown flag: --bogus") {
		t.Fatalf("bad node run flag: exit %d, stderr %q; want 2 naming the flag", r.code, r.stderr)
	}
	if _, err := os.Stat(unit); err == nil {
		t.Fatal("a refused install wrote the unit")
	}

	mustPM(t, "node", "service", "install", "--root", root, "--name", "shop-node", "--user", "patchmesh",
		"--exec", "/usr/bin/patchmesh", "--", "--config", "/etc/patchmesh/shop.yaml", "--api", "127.0.0.1:7781")
	b, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	want := "\nExecStart=/usr/bin/patchmesh node run --config /etc/patchmesh/shop.yaml --api 127.0.0.1:7781\nUser=patchmesh\n"
	if !strings.Contains(string(b), want) {
		t.Errorf("unit lacks %q:\n%s", want, b)
	}
	if r := pm(t, "node", "service", "start", "--root", root, "--name", "shop-node"); r.code != 1 || !strings.Contains(r.stderr, "--root") {
		t.Errorf("start under --root: exit %d, %q; want 1 saying why", r.code, r.stderr)
	}
	mustPM(t, "node", "service", "uninstall", "--root", root, "--name", "shop-node")
	if _, err := os.Stat(unit); err == nil {
		t.Error("unit still there after uninstall")
	}
}
