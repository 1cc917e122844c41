package service_test

import (
	"context"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/patchmesh/patchmesh/node/service"
)

// TestSystemdInstallIntoRoot installs the unit for given node run flags into a
// scratch root, as a package build would, and removes it again.
func TestSystemdInstallIntoRoot(t *testing.T) {
	tests := []struct {
		name     string
		cfg      service.Config
		execLine string
		user     bool
	}{
		{
			name:     "package defaults",
			cfg:      service.Config{Executable: "/usr/bin/patchmesh", Args: []string{"node", "run", "--config", "/etc/patchmesh/node.yaml"}, User: "patchmesh"},
			execLine: "ExecStart=/usr/bin/patchmesh node run --config /etc/patchmesh/node.yaml",
			user:     true,
		},
		{
			name: "flags with spaces, quotes, specifiers and variables",
			cfg: service.Config{Name: "pm-shop", Executable: "/opt/pm bin/patchmesh",
				Args: []string{"node", "run", "--data", "/srv/my data", "--health-check", `check "all" 100%`, "--name", "$HOST"}},
			execLine: `ExecStart="/opt/pm bin/patchmesh" node run --data "/srv/my data" --health-check "check \"all\" 100%%" --name $$HOST`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			root := t.TempDir()
			tt.cfg.Root = root
			m, err := service.NewSystemd(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Install(ctx); err != nil {
				t.Fatal(err)
			}
			name := tt.cfg.Name
			if name == "" {
				name = "patchmesh-node"
			}
			unitPath := filepath.Join(root, "etc/systemd/system", name+".service")
			unit, err := os.ReadFile(unitPath)
			if err != nil {
				t.Fatalf("unit not written: %v", err)
			}
			lines := strings.Split(string(unit), "\n")
			if !contains(lines, tt.execLine) {
				t.Errorf("unit has no line %q:\n%s", tt.execLine, unit)
			}
			if got := contains(lines, "User=patchmesh") && contains(lines, "Group=patchmesh"); got != tt.user {
				t.Errorf("User=/Group= patchmesh present: %v, want %v", got, tt.user)
			}
			for _, want := range []string{"[Install]", "WantedBy=multi-user.target", "Restart=on-failure", "KillSignal=SIGTERM", "StateDirectory=patchmesh"} {
				if !contains(lines, want) {
					t.Errorf("unit has no line %q", want)
				}
			}
			link := filepath.Join(root, "etc/systemd/system/multi-user.target.wants", name+".service")
			if target, err := os.Readlink(link); err != nil || target != "/etc/systemd/system/"+name+".service" {
				t.Errorf("not enabled: link %s -> %q, %v", link, target, err)
			}
			if fi, err := os.Stat(unitPath); err != nil || fi.Mode().Perm() != 0o644 {
				t.Errorf("unit mode: %v, %v; want 0644", fi.Mode(), err)
			}
			// Start and stop need the real service manager.
			if err := m.Start(ctx); !errors.Is(err, service.ErrRoot) {
				t.Errorf("Start under a root: %v, want ErrRoot", err)
			}
			if err := m.Uninstall(ctx); err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{unitPath, link} {
				if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s still there after uninstall: %v", p, err)
				}
			}
			if err := m.Uninstall(ctx); err == nil {
				t.Error("second uninstall succeeded; want a not-installed error")
			}
		})
	}
}

// TestShippedUnit: the unit the packages ship is the one install writes for them.
func TestShippedUnit(t *testing.T) {
	s, err := service.NewSystemd(service.Config{Executable: "/usr/bin/patchmesh",
		Args: []string{"node", "run", "--config", "/etc/patchmesh/node.yaml"}, User: "patchmesh"})
	if err != nil {
		t.Fatal(err)
	}
	want, err := s.Unit()
	if err != nil {
		t.Fatal(err)
	}
	shipped, err := os.ReadFile(filepath.Join("..", "..", "scripts", "patchmesh-node.service"))
	if err != nil {
		t.Fatal(err)
	}
	if string(shipped) != want {
		t.Fatalf("scripts/patchmesh-node.service differs from what `node service install --user patchmesh --exec /usr/bin/patchmesh` writes; regenerate it:\n%s", want)
	}
}

func TestConfigRefused(t *testing.T) {
	tests := []struct {
		name string
		cfg  service.Config
	}{
		{"relative executable", service.Config{Executable: "patchmesh"}},
		{"name with a slash", service.Config{Name: "../x", Executable: "/usr/bin/patchmesh"}},
		{"line break in a flag", service.Config{Executable: "/usr/bin/patchmesh", Args: []string{"a\nb"}, Root: "/nonexistent"}},
		{"user with a space", service.Config{Executable: "/usr/bin/patchmesh", User: "a b", Root: "/nonexistent"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := service.NewSystemd(tt.cfg)
			if err == nil {
				_, err = s.Unit()
			}
			if err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

// TestLaunchdPlist writes the macOS property list into a scratch root and reads
// its program arguments back as launchd would.
func TestLaunchdPlist(t *testing.T) {
	root := t.TempDir()
	args := []string{"node", "run", "--config", "/usr/local/etc/patchmesh/node.yaml", "--name", "a<b>&c"}
	l, err := service.NewLaunchd(service.Config{Executable: "/usr/local/bin/patchmesh", Args: args, User: "_patchmesh", Root: root})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Install(context.Background()); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(root, "Library/LaunchDaemons/patchmesh-node.plist"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Collect the <string>s of the ProgramArguments array and the UserName.
	dec := xml.NewDecoder(f)
	var key, inArray string
	var got []string
	var user string
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("plist is not XML: %v", err)
		}
		switch tk := tok.(type) {
		case xml.StartElement:
			switch tk.Name.Local {
			case "key":
				var k string
				if err := dec.DecodeElement(&k, &tk); err != nil {
					t.Fatal(err)
				}
				key = k
			case "array":
				inArray = key
			case "string":
				var s string
				if err := dec.DecodeElement(&s, &tk); err != nil {
					t.Fatal(err)
				}
				if inArray == "ProgramArguments" {
					got = append(got, s)
				} else if key == "UserName" {
					user = s
				}
			}
		case xml.EndElement:
			if tk.Name.Local == "array" {
				inArray = ""
			}
		}
	}
	want := append([]string{"/usr/local/bin/patchmesh"}, args...)
	if strings.Join(got, "\x00") != strings.Join(want, "\x00") {
		t.Errorf("ProgramArguments = %q, want %q", got, want)
	}
	if user != "_patchmesh" {
		t.Errorf("UserName = %q", user)
	}
	if err := l.Stop(context.Background()); !errors.Is(err, service.ErrRoot) {
		t.Errorf("Stop under a root: %v, want ErrRoot", err)
	}
}

func contains(lines []string, s string) bool {
	for _, l := range lines {
		if l == s {
			return true
		}
	}
	return false
}
