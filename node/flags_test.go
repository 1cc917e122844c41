package node

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"
)

// fileOnly are the YAML settings without a flag, on purpose.
var fileOnly = map[string]bool{
	"hooks.timeout": true, "hooks.release_hooks": true, "goos": true, "goarch": true,
}

// leaf is a setting: a field of Config that is not a nested settings struct.
type leaf struct {
	yamlKey []string // the path of yaml tags: mesh, join
	index   []int
}

// leaves lists the settings of t by their yaml tags.
func leaves(t reflect.Type, key []string, index []int) []leaf {
	var out []leaf
	for i := range t.NumField() {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if tag == "-" || tag == "" {
			continue
		}
		k := append(append([]string(nil), key...), tag)
		ix := append(append([]int(nil), index...), i)
		if f.Type.Kind() == reflect.Struct {
			out = append(out, leaves(f.Type, k, ix)...)
			continue
		}
		out = append(out, leaf{k, ix})
	}
	return out
}

// flagSample is what a test gives a flag: its values on the command line and
// the same as one environment variable.
func flagSample(fl *pflag.Flag) (args []string, env string) {
	sep := ","
	if s := fl.Annotations[envSepAnnotation]; len(s) == 1 {
		sep = s[0]
	}
	switch {
	case fl.Name == "follow":
		return []string{"db=/opt/db", "sig=/opt/sig"}, "db=/opt/db,sig=/opt/sig"
	case fl.Value.Type() == "stringArray" && sep != ",":
		// Items with commas, which a comma-split environment would break.
		return []string{"Sat,Sun=off", "Mon 08:00-18:00=2Mbit"}, "Sat,Sun=off" + sep + "Mon 08:00-18:00=2Mbit"
	case fl.Value.Type() == "stringArray":
		return []string{"a1", "b2"}, "a1,b2"
	case fl.Value.Type() == "strings":
		return []string{"a1,b2"}, "a1,b2"
	case fl.Value.Type() == "int" || fl.Value.Type() == "int64":
		return []string{"7"}, "7"
	case fl.Value.Type() == "duration":
		return []string{"90s"}, "90s"
	case fl.Value.Type() == "rate":
		return []string{"2MB/s"}, "2MB/s"
	case fl.Value.Type() == "bool":
		return []string{"true"}, "true"
	}
	return []string{"x1 y2"}, "x1 y2"
}

// TestFlagsYAMLEnv: every flag of Config.AddFlags sets exactly one setting,
// and that setting's YAML key and the flag's environment variable set it to
// the same value; every YAML setting has a flag or is listed file-only. A
// setting cannot be added in one place and forgotten in another.
func TestFlagsYAMLEnv(t *testing.T) {
	all := leaves(reflect.TypeFor[Config](), nil, nil)
	withFlag := make(map[string]bool)
	var probe Config
	flags := pflag.NewFlagSet("probe", pflag.ContinueOnError)
	probe.AddFlags(flags)
	flags.VisitAll(func(fl *pflag.Flag) {
		args, env := flagSample(fl)
		var byFlag Config
		fs := pflag.NewFlagSet("flag", pflag.ContinueOnError)
		byFlag.AddFlags(fs)
		for _, a := range args {
			if err := fs.Set(fl.Name, a); err != nil {
				t.Fatalf("--%s %s: %v", fl.Name, a, err)
			}
		}
		var set []leaf
		for _, l := range all {
			if !reflect.ValueOf(byFlag).FieldByIndex(l.index).IsZero() {
				set = append(set, l)
			}
		}
		if len(set) != 1 {
			t.Errorf("--%s sets %d settings, want 1: %v", fl.Name, len(set), set)
			return
		}
		l := set[0]
		key := strings.Join(l.yamlKey, ".")
		withFlag[key] = true
		want := reflect.ValueOf(byFlag).FieldByIndex(l.index).Interface()

		t.Run(fl.Name+"/yaml "+key, func(t *testing.T) {
			var doc any = want
			for i := len(l.yamlKey) - 1; i >= 0; i-- {
				doc = map[string]any{l.yamlKey[i]: doc}
			}
			b, err := yaml.Marshal(doc)
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(t.TempDir(), "node.yaml")
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			cfg, err := LoadConfig(p)
			if err != nil {
				t.Fatalf("%s: %v", b, err)
			}
			// Compared as YAML, which writes a nil and an empty list alike.
			got := reflect.ValueOf(cfg).FieldByIndex(l.index).Interface()
			if string(mustYAML(t, got)) != string(mustYAML(t, want)) {
				t.Errorf("YAML %q set %#v, the flag %#v", b, got, want)
			}
		})
		t.Run(fl.Name+"/env "+EnvVar(fl.Name), func(t *testing.T) {
			cfg, bound := DefaultConfig(), DefaultConfig()
			fs := pflag.NewFlagSet("env", pflag.ContinueOnError)
			bound.AddFlags(fs)
			lookup := func(k string) (string, bool) { return env, k == EnvVar(fl.Name) }
			if err := SetFromEnv(fs, lookup); err != nil {
				t.Fatal(err)
			}
			if err := cfg.SetFlags(fs); err != nil {
				t.Fatal(err)
			}
			if got := reflect.ValueOf(cfg).FieldByIndex(l.index).Interface(); !reflect.DeepEqual(got, want) {
				t.Errorf("%s=%q set %#v, the flag %#v", EnvVar(fl.Name), env, got, want)
			}
		})
	})
	for _, l := range all {
		if key := strings.Join(l.yamlKey, "."); !withFlag[key] && !fileOnly[key] {
			t.Errorf("YAML setting %s has no flag: add one in Config.AddFlags, or list it in fileOnly", key)
		}
	}
}

// TestSettingsPrecedence: defaults, then the file, then the environment, then
// the flags, each over the one before.
func TestSettingsPrecedence(t *testing.T) {
	tests := []struct {
		name  string
		yaml  string
		env   map[string]string
		args  []string
		check func(Config) bool
	}{
		{"default", "", nil, nil, func(c Config) bool { return c.Keep == 2 && c.Channel == "stable" }},
		{"file over default", "keep: 3\n", nil, nil, func(c Config) bool { return c.Keep == 3 }},
		{"env over file", "keep: 3\n", map[string]string{"PATCHMESH_KEEP": "4"}, nil, func(c Config) bool { return c.Keep == 4 }},
		{"flag over env", "keep: 3\n", map[string]string{"PATCHMESH_KEEP": "4"}, []string{"--keep", "5"}, func(c Config) bool { return c.Keep == 5 }},
		{"file untouched by others", "channel: beta\n", map[string]string{"PATCHMESH_KEEP": "4"}, []string{"--keep", "5"}, func(c Config) bool { return c.Channel == "beta" }},
		{"env list replaces file list", "sources: [f]\n", map[string]string{"PATCHMESH_SOURCE": "u1,u2"}, nil,
			func(c Config) bool { return reflect.DeepEqual(c.Sources, []string{"u1", "u2"}) }},
		{"flag list replaces env list", "", map[string]string{"PATCHMESH_SOURCE": "u1,u2"}, []string{"--source", "u3"},
			func(c Config) bool { return reflect.DeepEqual(c.Sources, []string{"u3"}) }},
		{"follow adds to the file's channels", "channels: [{name: db, install_dir: /d}]\n", nil, []string{"--follow", "sig=/s"},
			func(c Config) bool { return len(c.Channels) == 2 && c.Channels[1].Name == "sig" }},
		{"schedule items keep their commas", "", map[string]string{"PATCHMESH_WAN_RATE_SCHEDULE": "Sat,Sun=off;* 22:00-06:00=50Mbit"}, nil,
			func(c Config) bool {
				return reflect.DeepEqual(c.Caps.WANSchedule, []string{"Sat,Sun=off", "* 22:00-06:00=50Mbit"})
			}},
		{"exact rate", "", nil, []string{"--wan-rate", "1234567"}, func(c Config) bool { return c.Caps.WAN == 1234567 }},
		{"mdns off", "", nil, []string{"--mdns=false"}, func(c Config) bool { return c.Mesh.MDNS != nil && !*c.Mesh.MDNS }},
		{"command split", "", nil, []string{"--health-check", "/bin/check --quick"},
			func(c Config) bool { return reflect.DeepEqual(c.Hooks.HealthCheck, []string{"/bin/check", "--quick"}) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bound := DefaultConfig()
			fs := pflag.NewFlagSet("node run", pflag.ContinueOnError)
			bound.AddFlags(fs)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			if err := SetFromEnv(fs, func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(t.TempDir(), "node.yaml")
			if err := os.WriteFile(p, []byte(tt.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			cfg, err := LoadConfig(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := cfg.SetFlags(fs); err != nil {
				t.Fatal(err)
			}
			if !tt.check(cfg) {
				t.Errorf("got %+v", cfg)
			}
		})
	}
}

func mustYAML(t *testing.T, v any) []byte {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
