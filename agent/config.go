package agent

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/ferry-ai/ferry/internal/pki"
	"github.com/ferry-ai/ferry/secrets"
)

// Config is the agent's configuration, read from YAML.
type Config struct {
	// AgentID must equal the common name of the agent's client certificate.
	AgentID string `yaml:"agent_id"`
	// ControlPlane is the host:port of the control plane's agent RPC.
	ControlPlane string `yaml:"control_plane"`
	// Engine is the host:port of the engine's Flight endpoint.
	Engine string `yaml:"engine"`
	// TLS is the agent's client certificate, key and the CA that signs the
	// engine's and control plane's certificates. With Enrollment set, only
	// the CA is given: the certificate and key come from enrollment.
	TLS pki.Files `yaml:"tls"`
	// Enrollment, when set, gets the agent's certificate from Ferry's CA
	// with a one-time token and renews it before it expires.
	Enrollment *EnrollmentConfig `yaml:"enrollment"`
	// Warehouse is the connector URL of the warehouse, e.g.
	// duckdb:///var/lib/ferry/demo.db. Credentials never go here.
	Warehouse string `yaml:"warehouse"`
	// Heartbeat is the interval between heartbeats (default 5s).
	Heartbeat time.Duration `yaml:"heartbeat"`
	// BatchRows is the target rows per Arrow batch sent to the engine
	// (default DefaultBatchRows, 16384).
	BatchRows int `yaml:"batch_rows"`
	// LogLevel is debug, info, warn or error (default info).
	LogLevel string `yaml:"log_level"`
	// WindowBatches and WindowBytes bound what the agent has read from the
	// warehouse but the engine has not acknowledged yet (defaults 8
	// batches, 32 MiB): the agent's memory is bounded by them, whatever
	// the table size.
	WindowBatches int   `yaml:"window_batches"`
	WindowBytes   int64 `yaml:"window_bytes"`
	// ResumeTimeout bounds how long an upload whose connection broke keeps
	// trying to resume before the job fails (default 30s; the clock
	// restarts whenever the engine acknowledges more).
	ResumeTimeout time.Duration `yaml:"resume_timeout"`
	// Compression of the Arrow IPC bodies sent to the engine: none
	// (default), lz4 or zstd. It trades agent CPU for link bandwidth.
	Compression string `yaml:"compression"`
	// Credentials say where the warehouse's credentials come from (nil: the
	// warehouse needs none, as an embedded DuckDB file).
	Credentials *CredentialsConfig `yaml:"credentials"`
	// Dev allows development-only settings (credentials.file); it comes
	// from the --dev flag, never from the file.
	Dev bool `yaml:"-"`
	// MetricsAddr, when set, serves /metrics, /healthz and /readyz over
	// plain HTTP on this host:port. It must be a loopback address unless
	// MetricsAllowNonLoopback is set: the agent accepts no connection from
	// outside its host unless the customer says so (see telemetry.go).
	MetricsAddr             string `yaml:"metrics_addr"`
	MetricsAllowNonLoopback bool   `yaml:"metrics_allow_non_loopback"`
	// GCPercent is the Go garbage collector's target for the agent process
	// (GOGC; default DefaultGCPercent). The GOGC environment variable, when
	// set, takes precedence.
	GCPercent int `yaml:"gc_percent"`
}

// CredentialsConfig is the source of the warehouse's credentials.
type CredentialsConfig struct {
	// Vault signs in to Vault; with Database, every job takes a database
	// user of its own (revoked when the job ends); with KV, static
	// credentials are read from a KV version 2 secret whose keys are the
	// connector's (user, password, ...).
	Vault    *secrets.VaultConfig `yaml:"vault"`
	Database *VaultPath           `yaml:"database"`
	KV       *VaultPath           `yaml:"kv"`
	// File is a YAML file of credentials: for the embedded demo and local
	// development only, refused unless the agent runs with --dev.
	File string `yaml:"file"`
}

// VaultPath is a secrets engine's mount and a role (database) or path (kv).
type VaultPath struct {
	Mount string `yaml:"mount"`
	Role  string `yaml:"role"`
	Path  string `yaml:"path"`
}

func (c *CredentialsConfig) validate(dev bool) error {
	switch {
	case c.File != "" && c.Vault != nil:
		return errors.New("credentials: give vault or file, not both")
	case c.File != "" && !dev:
		return errors.New("credentials.file is for development only: use credentials.vault, or start the agent with --dev")
	case c.File != "":
		return nil
	case c.Vault == nil:
		return errors.New("credentials: vault (or, for development, file) is required")
	case (c.Database == nil) == (c.KV == nil):
		return errors.New("credentials.vault needs one of credentials.database (dynamic users) or credentials.kv (static secret)")
	case c.Database != nil && (c.Database.Mount == "" || c.Database.Role == ""):
		return errors.New("credentials.database needs mount and role")
	case c.KV != nil && (c.KV.Mount == "" || c.KV.Path == ""):
		return errors.New("credentials.kv needs mount and path")
	case c.Vault.Address == "":
		return errors.New("credentials.vault.address is required")
	}
	return nil
}

// DefaultGCPercent is the agent's default garbage-collector target. The
// agent's heap is mostly Arrow batches that come and go through its window
// and it allocates little per batch, so a tighter target than Go's 100
// keeps its memory near the window at no measurable cost in throughput (in
// the link benchmark: peak RssAnon 23 MB at 100, 18 MB at 25).
const DefaultGCPercent = 25

// LoadConfig reads and checks a YAML configuration file. Unknown keys are
// errors.
func LoadConfig(path string) (Config, error) { return LoadConfigDev(path, false) }

// LoadConfigDev is LoadConfig with development-only settings allowed when
// dev is set (the agent's --dev flag).
func LoadConfigDev(path string, dev bool) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	return parseConfig(path, data, dev)
}

// ParseConfig parses YAML configuration; name is used in errors.
func ParseConfig(name string, data []byte) (Config, error) { return parseConfig(name, data, false) }

func parseConfig(name string, data []byte, dev bool) (Config, error) {
	cfg := Config{Dev: dev}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		return Config{}, fmt.Errorf("config %s: %w", name, err)
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, fmt.Errorf("config %s: %w", name, err)
	}
	return cfg, nil
}

// Validate checks required fields and fills defaults.
func (c *Config) Validate() error {
	var missing []error
	for _, f := range []struct{ name, v string }{
		{"agent_id", c.AgentID}, {"control_plane", c.ControlPlane}, {"engine", c.Engine},
		{"warehouse", c.Warehouse}, {"tls.ca", c.TLS.CA},
	} {
		if f.v == "" {
			missing = append(missing, fmt.Errorf("%s is required", f.name))
		}
	}
	if e := c.Enrollment; e != nil {
		if c.TLS.Cert != "" || c.TLS.Key != "" {
			missing = append(missing, errors.New("tls.cert and tls.key must be empty with enrollment (the agent makes its own key)"))
		}
		if e.API == "" || e.StateDir == "" || e.TokenFile == "" {
			missing = append(missing, errors.New("enrollment needs api, token_file and state_dir"))
		}
	} else {
		for _, f := range []struct{ name, v string }{{"tls.cert", c.TLS.Cert}, {"tls.key", c.TLS.Key}} {
			if f.v == "" {
				missing = append(missing, fmt.Errorf("%s is required (or use enrollment)", f.name))
			}
		}
	}
	if err := errors.Join(missing...); err != nil {
		return err
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = 5 * time.Second
	}
	if c.Heartbeat < 100*time.Millisecond {
		return fmt.Errorf("heartbeat %s is below 100ms", c.Heartbeat)
	}
	if c.BatchRows == 0 {
		c.BatchRows = DefaultBatchRows
	}
	if c.BatchRows < 1 {
		return fmt.Errorf("batch_rows %d must be positive", c.BatchRows)
	}
	if c.ResumeTimeout == 0 {
		c.ResumeTimeout = 30 * time.Second
	}
	if c.ResumeTimeout < 0 {
		return fmt.Errorf("resume_timeout %s must not be negative", c.ResumeTimeout)
	}
	if c.WindowBatches < 0 || c.WindowBytes < 0 {
		return fmt.Errorf("window_batches %d and window_bytes %d must not be negative", c.WindowBatches, c.WindowBytes)
	}
	if c.Credentials != nil {
		if err := c.Credentials.validate(c.Dev); err != nil {
			return err
		}
	}
	if c.GCPercent == 0 {
		c.GCPercent = DefaultGCPercent
	}
	if c.GCPercent < 0 {
		return fmt.Errorf("gc_percent %d must be positive", c.GCPercent)
	}
	if c.MetricsAddr != "" {
		if err := checkMetricsAddr(c.MetricsAddr, c.MetricsAllowNonLoopback); err != nil {
			return err
		}
	}
	if c.Compression == "none" {
		c.Compression = CompressionNone
	}
	if _, err := ipcCompression(c.Compression); err != nil {
		return err
	}
	return nil
}
