package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestAgentDependencies keeps the customer-zone binary lean: no engine, no
// control-plane server, no XGBoost. Only wire types may come from the
// control plane: the agent RPC (controlplane/agentapi) and the JSON
// documents of enrollment (controlplane/api).
func TestAgentDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-tags", "duckdb_arrow", "-deps", "-f", "{{.ImportPath}} {{join .CgoFiles \",\"}} {{join .CgoLDFLAGS \" \"}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	forbidden := []string{
		"github.com/ferry-ai/ferry/engine",
		"github.com/ferry-ai/ferry/controlplane",
		"github.com/ferry-ai/ferry/internal/devstack",
		"modernc.org/sqlite",
	}
	allowed := map[string]bool{"github.com/ferry-ai/ferry/controlplane/agentapi": true, "github.com/ferry-ai/ferry/controlplane/api": true}
	seen := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		seen++
		pkg, rest, _ := strings.Cut(line, " ")
		if strings.Contains(rest, "xgboost") {
			t.Errorf("ferry-agent links XGBoost through %s", pkg)
		}
		if allowed[pkg] {
			continue
		}
		for _, f := range forbidden {
			if pkg == f || strings.HasPrefix(pkg, f+"/") {
				t.Errorf("ferry-agent depends on %s", pkg)
			}
		}
	}
	if seen < 50 {
		t.Fatalf("go list returned %d packages; the check saw too little to mean anything", seen)
	}
}
