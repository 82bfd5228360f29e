package e2e

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestHelpEverywhere: every binary and every ferry subcommand answers --help
// with usage on stdout and exit code 0; an unknown flag is exit 2 with one
// line.
func TestHelpEverywhere(t *testing.T) {
	cases := [][]string{
		{"ferry", "--help"},
		{"ferry-agent", "--help"},
		{"ferry-engine", "--help"},
		{"ferry-controlplane", "--help"},
	}
	for _, sub := range []string{"demo-data", "dev", "tables", "read", "copy", "jobs", "demo"} {
		cases = append(cases, []string{"ferry", sub, "--help"})
	}
	cases = append(cases, []string{"ferry", "dev", "certs", "--help"}, []string{"ferry", "jobs", "submit", "--help"},
		[]string{"ferry", "jobs", "status", "--help"}, []string{"ferry", "jobs", "list", "--help"})
	for _, args := range cases {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			cmd := exec.Command(filepath.Join(binDir, args[0]), args[1:]...)
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("exit: %v", err)
			}
			if !strings.Contains(strings.ToLower(string(out)), "usage") {
				t.Fatalf("no usage on stdout: %q", out)
			}
		})
		bad := append(append([]string{}, args[:len(args)-1]...), "--no-such-flag")
		t.Run(strings.Join(bad, " "), func(t *testing.T) {
			cmd := exec.Command(filepath.Join(binDir, bad[0]), bad[1:]...)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			err := cmd.Run()
			ee, ok := err.(*exec.ExitError)
			if !ok || ee.ExitCode() != 2 {
				t.Fatalf("exit %v, want 2 (stderr %q)", err, stderr.String())
			}
			if n := strings.Count(strings.TrimRight(stderr.String(), "\n"), "\n"); n != 0 {
				t.Errorf("stderr has %d lines, want 1: %q", n+1, stderr.String())
			}
		})
	}
}
