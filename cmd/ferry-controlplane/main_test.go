package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-ai/ferry/internal/graph"
	"github.com/ferry-ai/ferry/internal/pki"
)

func TestRunExitCodes(t *testing.T) {
	dir := t.TempDir()
	certs := filepath.Join(dir, "certs")
	if err := pki.DevCerts(certs, "agent-1", time.Hour); err != nil {
		t.Fatal(err)
	}
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	token := write("token", "s3cret-token-value\n")
	f := pki.DevFiles(certs, "controlplane")
	good := write("good.yaml", "data_dir: "+filepath.Join(dir, "data")+"\napi_addr: 127.0.0.1:0\nagent_addr: 127.0.0.1:0\n"+
		"tls:\n  cert: "+f.Cert+"\n  key: "+f.Key+"\n  ca: "+f.CA+"\napi_token_file: "+token+"\n")

	tests := []struct {
		name       string
		args       []string
		want       int
		wantStdout string
		wantStderr string
	}{
		{"help", []string{"--help"}, 0, "Usage: ferry-controlplane", ""},
		{"unknown flag", []string{"--nope"}, 2, "", "flag provided but not defined: -nope"},
		{"extra argument", []string{"serve"}, 2, "", `unexpected argument "serve"`},
		{"missing config file", []string{"--config", filepath.Join(dir, "none.yaml")}, 2, "", "no such file"},
		{"unknown key", []string{"--config", write("unknown.yaml", "data_dir: x\nport: 1\n")}, 2, "", "field port not found"},
		{"token in yaml", []string{"--config", write("tok.yaml", "api_token: s3cret-token-value\n")}, 2, "", "api_token must not be in the config file"},
		{"no token file", []string{"--config", write("notoken.yaml", "data_dir: x\n")}, 2, "", "api_token_file is required"},
		{"bad log level", []string{"--config", good, "--log-level", "loud"}, 2, "", "log_level"},
		{"no tls", []string{"--data-dir", dir, "--api-token-file", token}, 2, "", "tls cert, key and ca are all required"},
		{"unreadable cert", []string{"--config", good, "--tls-cert", filepath.Join(dir, "none.pem")}, 2, "", "invalid config"},
		{"bad listen address", []string{"--config", good, "--api-addr", "256.0.0.1:1"}, 1, "", "control plane failed"},
		{"encryption without a key", []string{"--config", write("nokey.yaml", "encryption: {vault: {address: http://127.0.0.1:1}}\n"), "--api-token-file", token}, 2, "", "encryption.key"},
		{"encryption, Vault unreachable", []string{"--config", write("novault.yaml", "data_dir: "+filepath.Join(dir, "data")+"\napi_token_file: "+token+
			"\nencryption:\n  key: tenant\n  vault: {address: http://127.0.0.1:1, retry_for: 100ms, auth: {method: token, token_file: "+token+"}}\n")},
			1, "", "127.0.0.1:1"},
		{"runs until cancelled", []string{"--config", good}, 0, "", `"msg":"control plane stopped"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			var stdout, stderr bytes.Buffer
			got := run(ctx, tt.args, &stdout, &stderr)
			if got != tt.want {
				t.Fatalf("exit code %d, want %d; stderr: %s", got, tt.want, stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.wantStdout) {
				t.Errorf("stdout %q, want it to contain %q", stdout.String(), tt.wantStdout)
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr %q, want it to contain %q", stderr.String(), tt.wantStderr)
			}
			if tt.want == 2 && strings.Count(strings.TrimSpace(stderr.String()), "\n") != 0 {
				t.Errorf("config error is not one line: %q", stderr.String())
			}
			if strings.Contains(stderr.String(), "s3cret-token-value") {
				t.Error("the API token appears on stderr")
			}
		})
	}
}

func TestPQLPlanner(t *testing.T) {
	g := &graph.Graph{Tables: []graph.Table{
		{Name: "customers", Columns: []graph.Column{{Name: "customer_id", Type: "int64"}, {Name: "churned", Type: "bool"}}, PrimaryKey: []string{"customer_id"}},
		{Name: "orders", Columns: []graph.Column{{Name: "order_id", Type: "int64"}, {Name: "customer_id", Type: "int64"},
			{Name: "amount", Type: "double"}, {Name: "ordered_at", Type: "timestamp[us]"}},
			PrimaryKey: []string{"order_id"}, TimeColumn: "ordered_at",
			ForeignKeys: []graph.ForeignKey{{Columns: []string{"customer_id"}, RefTable: "customers", RefColumns: []string{"customer_id"}}}},
	}}
	tests := []struct {
		name       string
		query      string
		wantTables []string
		wantErr    string
	}{
		{"count target", "PREDICT COUNT(orders.*, 0, 30, days) > 0 FOR EACH customers.customer_id", []string{"customers", "orders"}, ""},
		{"unknown table", "PREDICT COUNT(ordrs.*, 0, 30, days) > 0 FOR EACH customers.customer_id", nil, `table "ordrs" not found (did you mean "orders"?)`},
		{"syntax error", "PREDIKT x", nil, "line 1, column 1: expected PREDICT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tables, err := pqlPlanner{}.Plan(tt.query, g)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.wantTables {
				found := false
				for _, tb := range tables {
					found = found || tb == w
				}
				if !found {
					t.Errorf("tables %v lack %q", tables, w)
				}
			}
		})
	}
}
