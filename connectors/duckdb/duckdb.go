//go:build duckdb_arrow

// Package duckdb is Ferry's connector for DuckDB, the embedded default
// warehouse. It reads through DuckDB's own Arrow interface (never row by row),
// in rowid-ranged pages inside one read transaction so memory stays bounded
// and the read is one consistent snapshot, and writes by registering the
// incoming Arrow stream as a view and inserting from it in one transaction.
//
// URLs:
//
//	duckdb:///abs/path/warehouse.db   a database file
//	duckdb:                           an in-memory database
//
// Query parameters: schema (default "main"), read_only (true|false),
// threads, memory_limit. Any other parameter is an error.
//
// Building this package needs the duckdb_arrow build tag (DuckDB's Arrow
// interface is behind it in duckdb-go).
package duckdb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	duckdb "github.com/duckdb/duckdb-go/v2"

	fdriver "github.com/ferry-ai/ferry/connectors/driver"
)

// Scheme is the URL scheme this driver registers.
const Scheme = "duckdb"

// Default paging of reads: rows per rowid page, a whole number of DuckDB
// row groups (122,880 rows each) so that no row group is scanned by two
// pages; 8 row groups keep DuckDB's parallel scan busy and a page's
// materialized result near 40 MB for a typical row.
const defaultPageRows = 8 * 122_880

// Opener opens DuckDB connections; register it on a connectors.Mux under
// Scheme.
type Opener struct{}

// Open implements driver.Opener.
func (Opener) Open(ctx context.Context, u *url.URL, opts fdriver.Options) (fdriver.Conn, error) {
	cfg, err := parseURL(u)
	if err != nil {
		return nil, err
	}
	connector, err := duckdb.NewConnector(cfg.dsn(), nil)
	if err != nil {
		return nil, fmt.Errorf("duckdb: open %s: %w", cfg.displayPath(), err)
	}
	db := sql.OpenDB(connector)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		connector.Close()
		return nil, fmt.Errorf("duckdb: open %s: %w", cfg.displayPath(), err)
	}
	var exists bool
	if err := db.QueryRowContext(ctx, `SELECT count(*) > 0 FROM duckdb_schemas() WHERE schema_name = ?`, cfg.schema).Scan(&exists); err != nil {
		db.Close()
		connector.Close()
		return nil, fmt.Errorf("duckdb: check schema: %w", err)
	}
	if !exists {
		db.Close()
		connector.Close()
		return nil, fmt.Errorf("duckdb: schema %q does not exist in %s", cfg.schema, cfg.displayPath())
	}
	return &conn{cfg: cfg, connector: connector, db: db, pageRows: defaultPageRows}, nil
}

type config struct {
	path         string
	schema       string
	readOnly     bool
	threads      int
	memoryLimit  string
	isMemoryOnly bool
}

func (c config) displayPath() string {
	if c.isMemoryOnly {
		return "in-memory database"
	}
	return c.path
}

func (c config) dsn() string {
	v := url.Values{}
	if c.readOnly {
		v.Set("access_mode", "READ_ONLY")
	}
	if c.threads > 0 {
		v.Set("threads", strconv.Itoa(c.threads))
	}
	if c.memoryLimit != "" {
		v.Set("memory_limit", c.memoryLimit)
	}
	path := c.path
	if c.isMemoryOnly {
		path = ""
	}
	if len(v) == 0 {
		return path
	}
	return path + "?" + v.Encode()
}

func parseURL(u *url.URL) (config, error) {
	cfg := config{schema: "main"}
	switch {
	case u.Opaque != "" && u.Opaque != ":memory:":
		return cfg, fmt.Errorf("duckdb: URL must be duckdb:///absolute/path.db or duckdb: for memory, got opaque %q", u.Opaque)
	case u.Host != "":
		return cfg, fmt.Errorf("duckdb: URL must have no host (duckdb:///absolute/path.db), got host %q", u.Host)
	case u.Path == "" || u.Path == "/:memory:":
		cfg.isMemoryOnly = true
	default:
		cfg.path = u.Path
	}
	for k, vs := range u.Query() {
		v := vs[len(vs)-1]
		switch k {
		case "schema":
			if v == "" {
				return cfg, errors.New("duckdb: URL parameter schema is empty")
			}
			cfg.schema = v
		case "read_only":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return cfg, fmt.Errorf("duckdb: URL parameter read_only=%q: want true or false", v)
			}
			cfg.readOnly = b
		case "threads":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return cfg, fmt.Errorf("duckdb: URL parameter threads=%q: want a positive integer", v)
			}
			cfg.threads = n
		case "memory_limit":
			cfg.memoryLimit = v
		default:
			return cfg, fmt.Errorf("duckdb: unknown URL parameter %q (known: schema, read_only, threads, memory_limit)", k)
		}
	}
	return cfg, nil
}

// conn is one open DuckDB database. Metadata queries go through db; reads and
// writes take a dedicated driver connection from connector each.
type conn struct {
	cfg       config
	connector *duckdb.Connector
	db        *sql.DB
	pageRows  int64
}

// Ping implements driver.Pinger.
func (c *conn) Ping(ctx context.Context) error { return c.db.PingContext(ctx) }

// Close implements driver.Conn.
func (c *conn) Close() error {
	return errors.Join(c.db.Close(), c.connector.Close())
}

// rawConn opens a dedicated driver connection with its Arrow interface.
func (c *conn) rawConn(ctx context.Context) (driver.Conn, *duckdb.Arrow, error) {
	dc, err := c.connector.Connect(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("duckdb: connect: %w", err)
	}
	ar, err := duckdb.NewArrowFromConn(dc)
	if err != nil {
		dc.Close()
		return nil, nil, fmt.Errorf("duckdb: arrow interface: %w", err)
	}
	return dc, ar, nil
}

func exec(ctx context.Context, dc driver.Conn, query string) (driver.Result, error) {
	ex, ok := dc.(driver.ExecerContext)
	if !ok {
		return nil, errors.New("duckdb: driver connection cannot exec")
	}
	return ex.ExecContext(ctx, query, nil)
}

// quoteIdent quotes an identifier for DuckDB SQL.
func quoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// qualified returns the quoted schema-qualified table name.
func (c *conn) qualified(table string) string {
	return quoteIdent(c.cfg.schema) + "." + quoteIdent(table)
}
