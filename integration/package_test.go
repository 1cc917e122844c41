package integration

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/patchmesh/patchmesh/node"
)

// TestDebPackage builds the .deb with scripts/package.sh from the test binary,
// checks its listing, unpacks it into a scratch root, and installs it for real
// with dpkg -i into an overlay of this machine's root, in private mount and
// network namespaces, so this machine keeps no trace of it.
func TestDebPackage(t *testing.T) {
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Skip("dpkg-deb not found: the .deb test needs Debian's dpkg (CI runs on Debian, where it runs)")
	}
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "../scripts/package.sh")
	build.Env = append(os.Environ(), "BINARY="+binary, "ARCHS="+runtime.GOARCH, "OUT="+out, "VERSION=9.8.7")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("package.sh: %v\n%s", err, b)
	}
	deb := filepath.Join(out, "patchmesh_9.8.7_"+runtime.GOARCH+".deb")
	if _, err := os.Stat(filepath.Join(out, "patchmesh-9.8.7-1."+rpmArch()+".rpm")); err != nil {
		t.Errorf("no .rpm beside the .deb: %v", err)
	}

	t.Run("contents", func(t *testing.T) {
		listing := run(t, "dpkg-deb", "--contents", deb)
		// path -> "mode owner/group", as dpkg-deb lists them.
		got := map[string]string{}
		for _, l := range strings.Split(listing, "\n") {
			f := strings.Fields(l)
			if len(f) >= 6 {
				got[strings.TrimSuffix(strings.TrimPrefix(f[5], "."), "/")] = f[0] + " " + f[1]
			}
		}
		want := map[string]string{
			"/usr/bin/patchmesh":                             "-rwxr-xr-x root/root",
			"/usr/lib/systemd/system/patchmesh-node.service": "-rw-r--r-- root/root",
			"/etc/patchmesh":                                 "drwxr-x--- root/root",
			"/etc/patchmesh/node.yaml":                       "-rw-r----- root/root",
			"/var/lib/patchmesh":                             "drwxr-x--- root/root",
			"/opt/patchmesh-app":                             "drwxr-xr-x root/root",
		}
		for p, w := range want {
			if got[p] != w {
				t.Errorf("%s: listed as %q, want %q\n%s", p, got[p], w, listing)
			}
		}
		if c := run(t, "dpkg-deb", "--info", deb, "conffiles"); !strings.Contains(c, "/etc/patchmesh/node.yaml") {
			t.Errorf("node.yaml is not a conffile (an upgrade would overwrite the admin's edits): %q", c)
		}
	})

	t.Run("unpacked", func(t *testing.T) {
		root := t.TempDir()
		run(t, "dpkg-deb", "-x", deb, root)
		unit, err := os.ReadFile(filepath.Join(root, "usr/lib/systemd/system/patchmesh-node.service"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(unit), "\nExecStart=/usr/bin/patchmesh node run --config /etc/patchmesh/node.yaml\n") ||
			!strings.Contains(string(unit), "\nUser=patchmesh\n") {
			t.Errorf("unit does not run /usr/bin/patchmesh as patchmesh with the packaged config:\n%s", unit)
		}
		// The config the unit names is one the node reads.
		cfg, err := node.LoadConfig(filepath.Join(root, "etc/patchmesh/node.yaml"))
		if err != nil {
			t.Fatalf("packaged node.yaml: %v", err)
		}
		if cfg.DataDir != "/var/lib/patchmesh" || cfg.InstallDir != "/opt/patchmesh-app" {
			t.Errorf("packaged config: data %q, install_dir %q; want the folders the package makes", cfg.DataDir, cfg.InstallDir)
		}
		run(t, filepath.Join(root, "usr/bin/patchmesh"), "node", "service", "--help")
	})

	t.Run("dpkg -i", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("installing for real needs root (mount namespace, chroot); CI runs as root")
		}
		if _, err := exec.LookPath("unshare"); err != nil {
			t.Fatal("unshare (util-linux) not found")
		}
		scratch := t.TempDir()
		for _, d := range []string{"upper", "work", "root"} {
			if err := os.Mkdir(filepath.Join(scratch, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Link(deb, filepath.Join(scratch, "upper", "patchmesh.deb")); err != nil {
			b, _ := os.ReadFile(deb)
			if err := os.WriteFile(filepath.Join(scratch, "upper", "patchmesh.deb"), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		script := `set -eu
s=$1
mount -t overlay overlay -o lowerdir=/,upperdir=$s/upper,workdir=$s/work $s/root
mount -t proc proc $s/root/proc
mount --rbind /dev $s/root/dev
chroot $s/root /bin/sh -eu -c '
dpkg -i /patchmesh.deb >/tmp/dpkg.log 2>&1 || { cat /tmp/dpkg.log; exit 1; }
echo "status=$(dpkg-query -W -f="\${Status}" patchmesh)"
echo "user=$(getent passwd patchmesh | cut -d: -f1,6,7)"
for p in /var/lib/patchmesh /opt/patchmesh-app /etc/patchmesh /etc/patchmesh/node.yaml /usr/bin/patchmesh; do
  echo "stat $p=$(stat -c "%U:%G %a" $p)"
done
runuser -u patchmesh -- touch /var/lib/patchmesh/written && echo "node writes data=yes"
runuser -u patchmesh -- cat /etc/patchmesh/node.yaml >/dev/null && echo "node reads config=yes"
runuser -u patchmesh -- touch /etc/patchmesh/x 2>/dev/null || echo "node writes config=no"
dpkg -r patchmesh >/dev/null 2>&1
[ -e /usr/bin/patchmesh ] || echo "removed binary=yes"
[ -e /var/lib/patchmesh/written ] && echo "kept data=yes"
'
`
		cmd := exec.CommandContext(ctx, "unshare", "--mount", "--net", "--fork", "sh", "-c", script, "sh", scratch)
		var outb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &outb, &outb
		if err := cmd.Run(); err != nil {
			t.Fatalf("dpkg -i in an overlay root: %v\n%s", err, outb.String())
		}
		got := outb.String()
		for _, want := range []string{
			"status=install ok installed",
			"user=patchmesh:/var/lib/patchmesh:/usr/sbin/nologin",
			"stat /var/lib/patchmesh=patchmesh:patchmesh 750",
			"stat /opt/patchmesh-app=patchmesh:patchmesh 755",
			"stat /etc/patchmesh=root:patchmesh 750",
			"stat /etc/patchmesh/node.yaml=root:patchmesh 640",
			"stat /usr/bin/patchmesh=root:root 755",
			"node writes data=yes",
			"node reads config=yes",
			"node writes config=no",
			"removed binary=yes",
			"kept data=yes",
		} {
			if !strings.Contains(got, want+"\n") {
				t.Errorf("after dpkg -i: no %q in:\n%s", want, got)
			}
		}
		if _, err := os.Stat("/usr/bin/patchmesh"); err == nil {
			t.Log("note: this machine has its own /usr/bin/patchmesh; the test did not touch it")
		}
	})
}

// rpmArch is nfpm's rpm name of this machine's architecture.
func rpmArch() string {
	switch runtime.GOARCH {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	}
	return runtime.GOARCH
}

// run runs a command and returns its output, failing the test when it fails.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}
