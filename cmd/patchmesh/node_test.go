package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// TestNodeRunSettings: node run's flags, PATCHMESH_* variables (the config
// file's own included) and the file layer as documented.
func TestNodeRunSettings(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "node.yaml")
	if err := os.WriteFile(file, []byte("data: /file\nkeep: 3\nchannel: beta\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    string // the settings checked, as data/keep/channel
		wantErr string
	}{
		{"file", []string{"--config", file}, nil, "/file/3/beta", ""},
		{"config from env", nil, map[string]string{"PATCHMESH_CONFIG": file, "PATCHMESH_KEEP": "4"}, "/file/4/beta", ""},
		{"flag over env over file", []string{"--config", file, "--data", "/flag"}, map[string]string{"PATCHMESH_DATA": "/env", "PATCHMESH_CHANNEL": "rc"}, "/flag/3/rc", ""},
		{"defaults", nil, nil, "/2/stable", ""},
		{"bad env", nil, map[string]string{"PATCHMESH_KEEP": "many"}, "", "PATCHMESH_KEEP"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f nodeFlags
			fs := pflag.NewFlagSet("node run", pflag.ContinueOnError)
			f.register(fs)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			cfg, err := f.toConfig(fs, func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, want an error naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join([]string{cfg.DataDir, strconv.Itoa(cfg.Keep), cfg.Channel}, "/"); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}
