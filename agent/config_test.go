package agent

import (
	"strings"
	"testing"
	"time"
)

const baseConfig = `
agent_id: a1
control_plane: 127.0.0.1:7443
engine: 127.0.0.1:8443
warehouse: duckdb:///tmp/w.db
tls: {ca: ca.pem, cert: agent.pem, key: agent-key.pem}
`

func TestParseConfigDefaults(t *testing.T) {
	cfg, err := ParseConfig("agent.yaml", []byte(baseConfig))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"batch_rows", cfg.BatchRows, DefaultBatchRows},
		{"gc_percent", cfg.GCPercent, DefaultGCPercent},
		{"heartbeat", cfg.Heartbeat, 5 * time.Second},
		{"resume_timeout", cfg.ResumeTimeout, 30 * time.Second},
		{"compression", cfg.Compression, CompressionNone},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestParseConfigErrors(t *testing.T) {
	for _, c := range []struct {
		name, extra, want string
	}{
		{"unknown key", "batch_size: 10", "field batch_size not found"},
		{"negative gc_percent", "gc_percent: -1", "gc_percent -1 must be positive"},
		{"negative batch_rows", "batch_rows: -5", "batch_rows -5 must be positive"},
		{"short heartbeat", "heartbeat: 10ms", "heartbeat 10ms is below 100ms"},
		{"negative window", "window_bytes: -1", "window_bytes -1 must not be negative"},
		{"unknown compression", "compression: brotli", `compression "brotli": want none, lz4 or zstd`},
		{"negative resume_timeout", "resume_timeout: -1s", "resume_timeout -1s must not be negative"},
		{"credentials file without --dev", "credentials: {file: creds.yaml}", "credentials.file is for development only"},
		{"vault without a source", "credentials: {vault: {address: 'https://vault:8200'}}", "needs one of credentials.database"},
		{"vault with both sources", "credentials: {vault: {address: 'https://vault:8200'}, database: {mount: db, role: r}, kv: {mount: kv, path: p}}", "needs one of"},
		{"vault and file", "credentials: {vault: {address: 'https://vault:8200'}, file: f}", "not both"},
		{"database without a role", "credentials: {vault: {address: 'https://vault:8200'}, database: {mount: db}}", "needs mount and role"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseConfig("agent.yaml", []byte(baseConfig+c.extra+"\n"))
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "agent.yaml") {
				t.Fatalf("error %v, want one naming agent.yaml and containing %q", err, c.want)
			}
		})
	}
}

func TestParseConfigRequired(t *testing.T) {
	_, err := ParseConfig("agent.yaml", []byte("log_level: info\n"))
	if err == nil {
		t.Fatal("an empty configuration was accepted")
	}
	for _, want := range []string{"agent_id is required", "control_plane is required", "engine is required", "warehouse is required", "tls.ca is required", "tls.cert is required"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

func TestParseConfigCredentials(t *testing.T) {
	ok := []string{
		"credentials: {vault: {address: 'https://vault:8200', auth: {method: approle, role_id: r, secret_id_file: /run/sid}}, database: {mount: database, role: ferry}}",
		"credentials: {vault: {address: 'http://127.0.0.1:8200', auth: {method: token, token_file: /run/t}}, kv: {mount: secret, path: ferry/warehouse}}",
	}
	for _, extra := range ok {
		if _, err := ParseConfig("agent.yaml", []byte(baseConfig+extra+"\n")); err != nil {
			t.Errorf("%s: %v", extra, err)
		}
	}
	cfg, err := parseConfig("agent.yaml", []byte(baseConfig+"credentials: {file: creds.yaml}\n"), true)
	if err != nil || cfg.Credentials.File != "creds.yaml" || !cfg.Dev {
		t.Errorf("credentials.file with --dev: %+v %v", cfg.Credentials, err)
	}
	for _, tc := range []struct{ address, want string }{
		{"https://vault.internal:8200", "vault.internal:8200"},
		{"https://vault.internal", "vault.internal:443"},
		{"http://127.0.0.1", "127.0.0.1:80"},
	} {
		if got, err := vaultEndpoint(tc.address); err != nil || got != tc.want {
			t.Errorf("vaultEndpoint(%q) = %q, %v; want %q", tc.address, got, err, tc.want)
		}
	}
	if _, err := vaultEndpoint("vault:8200"); err == nil {
		t.Error("an address without a scheme was accepted")
	}
}
