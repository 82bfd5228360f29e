package controlplane

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/ferry-ai/ferry/controlplane/auth"
	"github.com/ferry-ai/ferry/internal/graph"
	"github.com/ferry-ai/ferry/internal/pki"
	"github.com/ferry-ai/ferry/secrets"
)

// ErrConfig marks an invalid configuration; ferry-controlplane exits 2 on it.
var ErrConfig = errors.New("invalid config")

// Defaults applied by New to an empty Config field.
const (
	DefaultAPIAddr           = "127.0.0.1:8443"
	DefaultAgentAddr         = "127.0.0.1:8444"
	DefaultHeartbeatInterval = 10 * time.Second
	DefaultShutdownTimeout   = 10 * time.Second
	// DefaultJobAttempts is how many times a job is assigned before a job
	// whose agent keeps going away fails.
	DefaultJobAttempts = 3
	// MaxJobAttempts bounds Config.JobAttempts.
	MaxJobAttempts = 100
)

// Planner validates a predictive query against the schema an agent reported
// and returns the tables the engine needs, in upload order. Its error is shown
// to the user as is (first line), so it should name what is wrong and where.
type Planner interface {
	Plan(query string, g *graph.Graph) (tables []string, err error)
}

// PlannerFunc adapts a function to Planner.
type PlannerFunc func(query string, g *graph.Graph) ([]string, error)

// Plan calls f.
func (f PlannerFunc) Plan(query string, g *graph.Graph) ([]string, error) { return f(query, g) }

// FieldSealer encrypts the metadata fields the control plane keeps at rest
// that belong to the customer (see Config.Sealer), each bound to aad (its
// table, column and row). *secrets.Keyring satisfies it; its Open fails
// with an error wrapping secrets.ErrShredded once the customer's key is
// revoked, secrets.ErrNotAuthentic for a value moved from another row, and
// secrets.ErrUnavailable when Vault cannot be reached.
type FieldSealer interface {
	Seal(ctx context.Context, plaintext, aad []byte) ([]byte, error)
	Open(ctx context.Context, envelope, aad []byte) ([]byte, error)
}

// Config configures a control plane.
type Config struct {
	// DataDir holds the metadata database (DataDir/ferry.db); created 0700.
	DataDir string
	// MetadataDB, when set, is a PostgreSQL URL for the metadata database
	// instead of DataDir/ferry.db (its password from PGPASSWORD or a
	// .pgpass file, never the URL).
	MetadataDB string
	// APIAddr is the user API's HTTPS listen address (DefaultAPIAddr if
	// empty; port 0 picks a free port, see Server.Addrs).
	APIAddr string
	// AgentAddr is the agent gRPC service's mutual-TLS listen address
	// (DefaultAgentAddr if empty).
	AgentAddr string
	// TLS is the server certificate and key of both listeners and the CA
	// that verifies agents' client certificates.
	TLS pki.Files
	// CAKey is the private key (PEM file) of the CA in TLS.CA. With it the
	// control plane enrolls agents, renews their certificates and signs the
	// revocation list; without it those endpoints answer 501 and agents use
	// certificates made elsewhere.
	CAKey string
	// AgentCertValidity is the lifetime of the certificates issued to
	// agents (DefaultAgentCertValidity if zero); agents renew after two
	// thirds of it.
	AgentCertValidity time.Duration
	// APIToken is the bearer token of the user API. Only its SHA-256 is
	// kept. Set exactly one of APIToken and APITokenHash.
	APIToken string
	// APITokenHash is the hex SHA-256 of the bearer token (see HashToken).
	APITokenHash string
	// Planner validates queries and lists the tables they need. Required.
	Planner Planner
	// Logger receives JSON logs; nil means slog JSON on stderr.
	Logger *slog.Logger
	// HeartbeatInterval is told to agents in Welcome; an agent silent for
	// three intervals is disconnected (DefaultHeartbeatInterval if zero).
	HeartbeatInterval time.Duration
	// JobAttempts is how many times a job may be assigned: a job whose
	// agent session ends while it runs (the agent restarted or lost its
	// connection, or the control plane restarted) is queued again until it
	// has had this many (DefaultJobAttempts if zero; 1 fails it at once).
	JobAttempts int
	// ShutdownTimeout bounds a graceful shutdown (DefaultShutdownTimeout if
	// zero).
	ShutdownTimeout time.Duration
	// Sealer, when set, encrypts the customer's sensitive metadata fields
	// at rest (query text, error messages, the reported schema, column
	// lists, model metrics and feature importances, state notes) under the
	// customer-managed key. Nil stores them in plaintext (development). A
	// database written without a Sealer still reads with one: values are
	// sealed as they are written.
	Sealer FieldSealer
	// Auth configures sign-in (OpenID Connect per tenant, sessions, API
	// tokens, the break-glass admin). Nil: API tokens and the operator's
	// token only, no browser sign-in.
	Auth *auth.Config
	// AuditKey, when set (at least 32 bytes), makes the audit log's hash
	// chain HMAC-SHA256 under it, so that someone who can write the
	// metadata database but has not the key cannot rewrite it unseen.
	AuditKey []byte
	// AuditRetention is how long audit entries are kept
	// (audit.DefaultRetention, 12 months, if zero).
	AuditRetention time.Duration
	// SupportTenant is the tenant whose users are the provider's support
	// staff (DefaultSupportTenant if empty): they see a customer's tenant
	// only with an approved, unexpired grant.
	SupportTenant string
	// DisableFileConnections accepts customer warehouses only: a
	// connection of a file kind (catalog.FileKinds: a DuckDB file, local
	// Parquet) is refused, and so is an agent whose warehouse is one.
	DisableFileConnections bool
}

// HashToken returns the hex SHA-256 of a bearer token, the form
// Config.APITokenHash takes.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// normalize checks cfg, fills defaults and returns the token hash.
func (cfg *Config) normalize() ([sha256.Size]byte, error) {
	var hash [sha256.Size]byte
	bad := func(format string, args ...any) ([sha256.Size]byte, error) {
		return hash, fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...))
	}
	if cfg.DataDir == "" {
		return bad("data_dir is required")
	}
	if cfg.TLS.Cert == "" || cfg.TLS.Key == "" || cfg.TLS.CA == "" {
		return bad("tls cert, key and ca are all required")
	}
	if cfg.Planner == nil {
		return bad("a query planner is required")
	}
	switch {
	case cfg.APIToken != "" && cfg.APITokenHash != "":
		return bad("set the API token or its hash, not both")
	case cfg.APIToken != "":
		hash = sha256.Sum256([]byte(cfg.APIToken))
	case cfg.APITokenHash != "":
		b, err := hex.DecodeString(cfg.APITokenHash)
		if err != nil || len(b) != sha256.Size {
			return bad("the API token hash must be 64 hex digits (a SHA-256)")
		}
		copy(hash[:], b)
	default:
		return bad("an API token is required (api_token_file)")
	}
	if cfg.APIAddr == "" {
		cfg.APIAddr = DefaultAPIAddr
	}
	if cfg.AgentAddr == "" {
		cfg.AgentAddr = DefaultAgentAddr
	}
	if cfg.AgentCertValidity == 0 {
		cfg.AgentCertValidity = DefaultAgentCertValidity
	}
	if cfg.HeartbeatInterval < 0 || cfg.ShutdownTimeout < 0 || cfg.AgentCertValidity < 0 {
		return bad("durations must not be negative")
	}
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = DefaultHeartbeatInterval
	}
	switch {
	case cfg.JobAttempts == 0:
		cfg.JobAttempts = DefaultJobAttempts
	case cfg.JobAttempts < 0 || cfg.JobAttempts > MaxJobAttempts:
		return bad("job_attempts %d: want 1 to %d", cfg.JobAttempts, MaxJobAttempts)
	}
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = DefaultShutdownTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	return hash, nil
}

// FileConfig is the YAML configuration file of ferry-controlplane. The API
// token is never in it: api_token_file names a file holding the token.
type FileConfig struct {
	DataDir string `yaml:"data_dir"`
	// MetadataDB is a PostgreSQL URL for the metadata database (empty:
	// SQLite in data_dir).
	MetadataDB   string    `yaml:"metadata_db"`
	APIAddr      string    `yaml:"api_addr"`
	AgentAddr    string    `yaml:"agent_addr"`
	TLS          pki.Files `yaml:"tls"`
	APITokenFile string    `yaml:"api_token_file"`
	// CAKey is the CA's private key file; it turns enrollment on.
	CAKey             string        `yaml:"ca_key"`
	AgentCertValidity time.Duration `yaml:"agent_cert_validity"`
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval"`
	// JobAttempts is Config.JobAttempts.
	JobAttempts int `yaml:"job_attempts"`
	// DisableFileConnections is Config.DisableFileConnections.
	DisableFileConnections bool `yaml:"disable_file_connections"`
	// LogLevel is debug, info, warn or error (info if empty).
	LogLevel string `yaml:"log_level"`
	// Encryption turns on customer-managed keys for the sensitive
	// metadata fields (Config.Sealer).
	Encryption *EncryptionConfig `yaml:"encryption"`
	// Auth configures sign-in: OpenID Connect per tenant, sessions, API
	// token limits, the break-glass admin (auth.Config).
	Auth *auth.Config `yaml:"auth"`
	// AuditKeyFile names a file (0600) of at least 32 bytes that keys the
	// audit log's hash chain (HMAC-SHA256); AuditRetention is how long
	// entries are kept (12 months if zero).
	AuditKeyFile   string        `yaml:"audit_key_file"`
	AuditRetention time.Duration `yaml:"audit_retention"`
}

// EncryptionConfig names the customer's Transit key in Vault that wraps the
// data keys of the sealed metadata fields.
type EncryptionConfig struct {
	// Vault is how the control plane reaches Vault and signs in.
	Vault secrets.VaultConfig `yaml:"vault"`
	// TransitMount is the Transit engine's mount (default "transit").
	TransitMount string `yaml:"transit_mount"`
	// Key is the customer's Transit key. Required.
	Key string `yaml:"key"`
	// CacheTTL is how long a data key is kept in memory after Vault issued
	// or unwrapped it (secrets.DefaultKeyCacheTTL if zero; a negative value
	// keeps none): revoking the key takes effect within it.
	CacheTTL time.Duration `yaml:"cache_ttl"`
}

// OpenSealer signs in to Vault as e says and returns the customer's
// keyring (with its data-key cache) and the Vault client to close when the
// control plane stops. It seals and opens a probe value first, so a wrong
// key name or policy fails at start, naming the path.
func OpenSealer(ctx context.Context, e EncryptionConfig, log *slog.Logger) (*secrets.Keyring, *secrets.Vault, error) {
	if e.Key == "" {
		return nil, nil, fmt.Errorf("%w: encryption.key (the customer's Transit key) is required", ErrConfig)
	}
	if e.TransitMount == "" {
		e.TransitMount = "transit"
	}
	v, err := secrets.OpenVault(ctx, e.Vault, log)
	if err != nil {
		return nil, nil, fmt.Errorf("encryption: %w", err)
	}
	k := v.Keyring(e.TransitMount, e.Key)
	if e.CacheTTL >= 0 {
		k = k.WithCache(secrets.KeyringCache{TTL: e.CacheTTL})
	}
	probe := []byte("ferry-controlplane/start-up check")
	env, err := k.Seal(ctx, probe, probe)
	if err == nil {
		_, err = k.Open(ctx, env, probe)
	}
	if err != nil {
		v.Close()
		return nil, nil, fmt.Errorf("encryption: key %s/%s: %w", e.TransitMount, e.Key, err)
	}
	return k, v, nil
}

// ParseFileConfig decodes a YAML configuration; unknown keys are errors
// wrapping ErrConfig.
func ParseFileConfig(data []byte) (FileConfig, error) {
	var fc FileConfig
	// Refuse a token in the file outright, with a message saying what to do.
	var keys map[string]any
	if err := yaml.Unmarshal(data, &keys); err == nil {
		for _, k := range []string{"api_token", "token"} {
			if _, ok := keys[k]; ok {
				return fc, fmt.Errorf("%w: %s must not be in the config file: put the token in a file of its own and set api_token_file", ErrConfig, k)
			}
		}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&fc); err != nil && !errors.Is(err, io.EOF) {
		return fc, fmt.Errorf("%w: %s", ErrConfig, joinLines(err.Error()))
	}
	return fc, nil
}

// LoadFileConfig reads and decodes a YAML configuration file.
func LoadFileConfig(path string) (FileConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return FileConfig{}, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	fc, err := ParseFileConfig(data)
	if err != nil {
		return fc, fmt.Errorf("%s: %w", path, err)
	}
	return fc, nil
}

// ReadTokenFile reads a bearer token from a file, trimming surrounding white
// space; an empty token is an error wrapping ErrConfig.
func ReadTokenFile(path string) (string, error) {
	if path == "" {
		return "", fmt.Errorf("%w: api_token_file is required", ErrConfig)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%w: api token: %w", ErrConfig, err)
	}
	tok := strings.TrimSpace(string(data))
	if tok == "" {
		return "", fmt.Errorf("%w: api token file %s is empty", ErrConfig, path)
	}
	if strings.ContainsAny(tok, " \t\r\n") {
		return "", fmt.Errorf("%w: api token file %s must hold one token without white space", ErrConfig, path)
	}
	return tok, nil
}

// ParseLogLevel maps debug, info, warn or error ("" is info) to a level.
func ParseLogLevel(s string) (slog.Level, error) {
	var l slog.Level
	if s == "" {
		return slog.LevelInfo, nil
	}
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("%w: log_level %q: want debug, info, warn or error", ErrConfig, s)
	}
	return l, nil
}

// joinLines puts a multi-line message (yaml's) on one line.
func joinLines(s string) string {
	var parts []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			parts = append(parts, l)
		}
	}
	return strings.ReplaceAll(strings.Join(parts, " "), ": line", " line")
}

// oneLine returns the first line of s.
func oneLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}
