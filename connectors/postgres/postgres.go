// Package postgres is Ferry's connector for PostgreSQL (and, through the
// same wire protocol, Redshift). Reads stream a binary
// `COPY (SELECT …) TO STDOUT (FORMAT binary)` and decode it straight into
// Arrow builders; writes bulk-load a staging table with binary COPY and swap
// it in for the target in one transaction.
//
// URLs:
//
//	postgres://host:port/db?schema=s&sslmode=disable
//	postgresql://…   (the same)
//
// Parameters: schema (the schema read, default public), output_schema (the
// schema prediction tables are written to, default schema: least privilege
// keeps it apart from the sources, see README.md), write_role (a role the
// connection's user is a member of and writes as, with SET LOCAL ROLE, so
// the tables it makes belong to that role and outlive a per-job user from
// Vault), sslmode and connect_timeout; any other is an error.
//
// Credentials ("user", "password") come from the connection options, never
// from the URL.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	fdriver "github.com/ferry-ai/ferry/connectors/driver"
)

// Schemes this driver registers.
const (
	Scheme      = "postgres"
	SchemeLong  = "postgresql"
	defaultPort = "5432"
)

// RedshiftScheme is the scheme of Amazon Redshift, which speaks the
// PostgreSQL protocol but has no COPY TO STDOUT.
const RedshiftScheme = "redshift"

// Opener opens PostgreSQL connections; register it under Scheme and
// SchemeLong.
type Opener struct{}

// RedshiftOpener opens Redshift connections: reads use the extended query
// protocol with binary results (each value in the same binary form as in a
// binary COPY); writes stage Parquet on S3 and load it with COPY … FORMAT AS
// PARQUET (see redshift_write.go and README.md).
type RedshiftOpener struct{}

// Open implements driver.Opener. The staging parameters (staging,
// staging_region, staging_endpoint, staging_path_style) are taken off the
// URL before the PostgreSQL driver parses the rest.
func (RedshiftOpener) Open(ctx context.Context, u *url.URL, opts fdriver.Options) (fdriver.Conn, error) {
	pgURL, stage, err := parseStaging(u)
	if err != nil {
		return nil, err
	}
	if pgURL.Query().Has("write_role") {
		return nil, errors.New("redshift: write_role is not supported (Redshift has no SET ROLE): grant the agent's user CREATE on output_schema")
	}
	c, err := Opener{}.Open(ctx, pgURL, opts)
	if err != nil {
		return nil, err
	}
	rc := &redshiftConn{conn: c.(*conn), staging: stage, mem: opts.Allocator, creds: opts.Credentials}
	rc.loader = redshiftCopy{iamRole: opts.Credentials["iam_role"]}
	return rc, nil
}

// redshiftConn reads through queries and writes through Parquet on S3.
type redshiftConn struct {
	*conn
	staging *url.URL // s3://bucket/prefix?endpoint=…; nil: writes refused
	mem     memory.Allocator
	creds   map[string]string
	loader  s3Loader
}

// Read implements driver.Conn through the extended query protocol.
func (c *redshiftConn) Read(ctx context.Context, req fdriver.ReadRequest) (array.RecordReader, error) {
	return c.queryRead(ctx, req)
}

type config struct {
	host, port, db, schema, sslmode string
	// outputSchema receives written tables (default schema); writeRole, if
	// set, owns them.
	outputSchema, writeRole string
	connectTimeout          time.Duration
}

func parseURL(u *url.URL) (config, error) {
	cfg := config{host: u.Hostname(), port: u.Port(), db: strings.TrimPrefix(u.Path, "/"), schema: "public", sslmode: "prefer", connectTimeout: 10 * time.Second}
	if cfg.host == "" {
		return cfg, errors.New("postgres: URL needs a host: postgres://host:port/database")
	}
	if cfg.port == "" {
		cfg.port = defaultPort
	}
	if cfg.db == "" || strings.Contains(cfg.db, "/") {
		return cfg, fmt.Errorf("postgres: URL needs one database name in its path, got %q", u.Path)
	}
	for k, vs := range u.Query() {
		v := vs[len(vs)-1]
		switch k {
		case "schema":
			if v == "" {
				return cfg, errors.New("postgres: URL parameter schema is empty")
			}
			cfg.schema = v
		case "output_schema", "write_role":
			if v == "" || len(v) > maxIdentBytes {
				return cfg, fmt.Errorf("postgres: URL parameter %s=%q: want a name of 1 to %d bytes", k, v, maxIdentBytes)
			}
			if k == "output_schema" {
				cfg.outputSchema = v
			} else {
				cfg.writeRole = v
			}
		case "sslmode":
			switch v {
			case "disable", "allow", "prefer", "require", "verify-ca", "verify-full":
				cfg.sslmode = v
			default:
				return cfg, fmt.Errorf("postgres: URL parameter sslmode=%q: want disable, allow, prefer, require, verify-ca or verify-full", v)
			}
		case "connect_timeout":
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return cfg, fmt.Errorf("postgres: URL parameter connect_timeout=%q: want a positive duration such as 5s", v)
			}
			cfg.connectTimeout = d
		default:
			return cfg, fmt.Errorf("postgres: unknown URL parameter %q (known: schema, output_schema, write_role, sslmode, connect_timeout)", k)
		}
	}
	if cfg.outputSchema == "" {
		cfg.outputSchema = cfg.schema
	}
	return cfg, nil
}

// Open implements driver.Opener.
func (Opener) Open(ctx context.Context, u *url.URL, opts fdriver.Options) (fdriver.Conn, error) {
	cfg, err := parseURL(u)
	if err != nil {
		return nil, err
	}
	pcfg, err := pgxpool.ParseConfig(fmt.Sprintf("host=%s port=%s dbname=%s sslmode=%s", quoteConn(cfg.host), quoteConn(cfg.port), quoteConn(cfg.db), cfg.sslmode))
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	pcfg.ConnConfig.ConnectTimeout = cfg.connectTimeout
	if v := opts.Credentials["user"]; v != "" {
		pcfg.ConnConfig.User = v
	}
	if v := opts.Credentials["password"]; v != "" {
		pcfg.ConnConfig.Password = v
	}
	pcfg.MaxConns = 8
	// A pooled connection idle for a moment is pinged before use, so one the
	// server dropped (a restart, a failover, an idle timeout on the path) is
	// replaced instead of failing the next read.
	pcfg.ShouldPing = func(_ context.Context, p pgxpool.ShouldPingParams) bool {
		return p.IdleDuration > 100*time.Millisecond
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", redact(err, opts.Credentials))
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: connect to %s:%s/%s: %w", cfg.host, cfg.port, cfg.db, redact(err, opts.Credentials))
	}
	for _, s := range []string{cfg.schema, cfg.outputSchema} {
		var exists bool
		if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, s).Scan(&exists); err != nil {
			pool.Close()
			return nil, fmt.Errorf("postgres: check schema: %w", err)
		}
		if !exists {
			pool.Close()
			return nil, fmt.Errorf("postgres: schema %q does not exist in database %q", s, cfg.db)
		}
	}
	return &conn{cfg: cfg, pool: pool}, nil
}

// quoteConn quotes a value for a libpq key=value connection string.
func quoteConn(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// redact removes credential values from an error's text.
func redact(err error, creds map[string]string) error {
	msg := err.Error()
	changed := false
	for k, v := range creds {
		if v != "" && (k == "password" || strings.Contains(k, "secret")) && strings.Contains(msg, v) {
			msg = strings.ReplaceAll(msg, v, "[redacted]")
			changed = true
		}
	}
	if !changed {
		return err
	}
	return errors.New(msg)
}

type conn struct {
	cfg  config
	pool *pgxpool.Pool
}

// Ping implements driver.Pinger.
func (c *conn) Ping(ctx context.Context) error { return c.pool.Ping(ctx) }

// Close implements driver.Conn.
func (c *conn) Close() error {
	c.pool.Close()
	return nil
}

func quoteIdent(s string) string { return pgx.Identifier{s}.Sanitize() }

func (c *conn) qualified(table string) string { return pgx.Identifier{c.cfg.schema, table}.Sanitize() }

// qualifiedOut is the quoted name of a table in the output schema.
func (c *conn) qualifiedOut(table string) string {
	return pgx.Identifier{c.cfg.outputSchema, table}.Sanitize()
}

// timeLiteral renders t as a typed SQL literal: for timestamptz an instant
// in UTC, for timestamp (and date columns) the UTC wall clock.
func timeLiteral(t time.Time, typ string) string {
	s := t.UTC().Format("2006-01-02 15:04:05.999999")
	if typ == "timestamptz" {
		return "'" + s + "+00'::timestamptz"
	}
	return "'" + s + "'::timestamp"
}
