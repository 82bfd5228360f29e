package engine

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadFileConfig(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"minimal", "addr: 127.0.0.1:8815\n", ""},
		{"gpu build", "addr: 127.0.0.1:8815\ndevice: cuda\n", ""},
		{"metrics listener", "addr: 127.0.0.1:8815\nmetrics_addr: 127.0.0.1:9465\n", ""},
		{"unknown device", "addr: 127.0.0.1:8815\ndevice: tpu\n", `device: `},
		{"no addr", "threads: 2\n", "addr is required"},
		{"negative threads", "addr: x:1\nthreads: -1\n", "must not be negative"},
		{"unknown key", "addr: x:1\ngpu: true\n", "field gpu not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "engine.yaml")
			if err := os.WriteFile(p, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := LoadFileConfig(p)
			switch {
			case tc.want == "" && err != nil:
				t.Fatal(err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p)):
				t.Fatalf("error %v, want one naming %s and containing %q", err, p, tc.want)
			}
		})
	}
}
