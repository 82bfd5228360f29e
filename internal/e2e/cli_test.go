package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-ai/ferry/internal/devstack"
	"github.com/ferry-ai/ferry/internal/pki"
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
	for _, sub := range []string{"demo-data", "dev", "tables", "read", "copy", "jobs", "agents", "pql", "demo", "tokens", "connections", "queries", "graphs"} {
		cases = append(cases, []string{"ferry", sub, "--help"})
	}
	cases = append(cases, []string{"ferry", "dev", "certs", "--help"}, []string{"ferry", "jobs", "submit", "--help"},
		[]string{"ferry", "jobs", "status", "--help"}, []string{"ferry", "jobs", "list", "--help"},
		[]string{"ferry", "jobs", "cancel", "--help"}, []string{"ferry", "jobs", "logs", "--help"}, []string{"ferry", "tokens", "create", "--help"},
		[]string{"ferry", "agents", "list", "--help"}, []string{"ferry", "agents", "enroll", "--help"}, []string{"ferry", "agents", "revoke", "--help"}, []string{"ferry", "graphs", "show", "--help"})
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

// TestAgentsCLI: `ferry agents` lists the enrolled agent, issues a one-time
// enrollment token into a 0600 file, and revokes an agent; bad input exits 2.
func TestAgentsCLI(t *testing.T) {
	s := startStack(t, copyDB(t))
	env := []string{"FERRY_API=" + s.APIURL, "FERRY_TOKEN_FILE=" + filepath.Join(s.Opts.Dir, "api-token"), "FERRY_CA=" + filepath.Join(s.Certs, pki.CAFile)}
	code, out, errOut := ferry(t, env, "agents", "list")
	if code != 0 || !strings.Contains(out, devstack.AgentID) || !strings.Contains(out, "true") {
		t.Fatalf("agents list: exit %d\n%s%s", code, out, errOut)
	}
	tokenFile := filepath.Join(t.TempDir(), "token")
	code, out, errOut = ferry(t, env, "agents", "enroll", "--agent-id", "agent-new", "--tenant", "acme", "--ttl", "10m", "--token-out", tokenFile)
	if code != 0 || !strings.Contains(out, tokenFile) {
		t.Fatalf("agents enroll: exit %d\n%s%s", code, out, errOut)
	}
	if fi, err := os.Stat(tokenFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v %v", fi, err)
	}
	tok, _ := os.ReadFile(tokenFile)
	if !strings.HasPrefix(string(tok), "fet_") || strings.Contains(out+errOut, strings.TrimSpace(string(tok))) {
		t.Fatalf("token %q printed or malformed", tok)
	}
	code, out, errOut = ferry(t, env, "agents", "revoke", "agent-new", "--reason", "test")
	if code != 0 || !strings.Contains(out, "revoked agent agent-new") {
		t.Fatalf("agents revoke: exit %d\n%s%s", code, out, errOut)
	}
	for _, args := range [][]string{
		{"agents", "enroll", "--agent-id", "bad id!", "--tenant", "acme"},
		{"agents", "enroll", "--agent-id", "agent-new", "--tenant", "acme"}, // revoked: refused
		{"agents", "revoke"},
		{"agents", "frobnicate"},
	} {
		code, out, errOut := ferry(t, env, args...)
		if code == 0 || strings.Count(strings.TrimSpace(errOut), "\n") > 0 {
			t.Errorf("ferry %v: exit %d, want an error on one line\n%s%s", args, code, out, errOut)
		}
	}
}

// TestPQLCheck: `ferry pql check` against a warehouse URL and a graph file
// (`ferry tables --json`): exit 0 and a one-line summary, or exit 2 and one
// line naming the line and column and, for a wrong name, the nearest one.
func TestPQLCheck(t *testing.T) {
	db := copyDB(t)
	url := "duckdb://" + db
	code, graphJSON, errOut := ferry(t, nil, "tables", "--json", url)
	if code != 0 {
		t.Fatalf("tables --json: %d %s", code, errOut)
	}
	graphFile := filepath.Join(t.TempDir(), "graph.json")
	if err := os.WriteFile(graphFile, []byte(graphJSON), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, query, graph string
		code               int
		want               string
	}{
		{"warehouse", demoQuery, url, 0, "ok: binary_classification for each customers.customer_id; tables customers, orders"},
		{"graph file", demoQuery, graphFile, 0, "ok: binary_classification"},
		{"regression", "PREDICT SUM(orders.amount WHERE orders.status != 'cancelled', 0, 30, days) FOR EACH customers.customer_id", graphFile, 0, "ok: regression for each customers.customer_id"},
		{"multiclass", "PREDICT customers.segment FOR EACH customers.customer_id WHERE customers.country IN ('FR', 'DE')", graphFile, 0, "ok: multiclass_classification"},
		{"recommendation", "PREDICT LIST_DISTINCT(orders.status, 0, 30, days) RANK TOP 3 FOR EACH customers.customer_id", url, 0, "ok: recommendation"},
		{"type error", "PREDICT SUM(orders.status, 0, 30, days) FOR EACH customers.customer_id", graphFile, 2, "line 1, column 20: SUM needs a numeric column; orders.status is a string"},
		{"unknown table", "PREDICT COUNT(order.*, 0, 30, days) = 0 FOR EACH customers.customer_id", graphFile, 2, `line 1, column 15: table "order" not found (did you mean "orders"?)`},
		{"syntax", "PREDICT COUNT(orders.*, 0, 30 days) > 0 FOR EACH customers.customer_id", graphFile, 2, `line 1, column 31: expected ","`},
		{"unknown key column", "PREDICT COUNT(orders.*, 0, 30, days) > 0 FOR EACH customers.customer", graphFile, 2, `line 1, column 61: column "customer" not found in table "customers"`},
		{"missing graph file", demoQuery, filepath.Join(t.TempDir(), "none.json"), 2, "graph file"},
		{"not a graph", demoQuery, db, 2, "graph file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := ferry(t, nil, "pql", "check", tc.query, "--graph", tc.graph)
			got := strings.TrimSpace(out + errOut)
			if code != tc.code || !strings.Contains(got, tc.want) || strings.Count(got, "\n") > 0 {
				t.Fatalf("exit %d, output %q; want exit %d and one line containing %q", code, got, tc.code, tc.want)
			}
		})
	}
}
