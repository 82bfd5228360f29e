//go:build duckdb_arrow

// Package memdb is an in-memory DuckDB for one job, over Arrow batches, that
// never touches storage.
//
// A DB is one private, in-memory DuckDB database (no database file) with one
// connection. Open configures it before any data exists so that it cannot
// write anywhere:
//
//   - temp_directory is empty and max_temp_directory_size is 0 (set in the
//     database configuration at creation, so not even the default ".tmp"
//     directory ever exists): DuckDB cannot spill, and a query that needs
//     more than MemoryLimitBytes fails with an out-of-memory error instead;
//   - enable_external_access is false: SQL cannot read or write files
//     (COPY … TO, read_csv, ATTACH of a file, EXPORT DATABASE, INSTALL …);
//   - extension auto-install and auto-load, community extensions and
//     persistent secrets are disabled;
//   - lock_configuration is true, last, so no later SQL can undo any of it.
//
// Every setting is read back and checked before Open returns.
//
// Register copies Arrow batches into an in-memory DuckDB table; Query runs
// SQL and returns Arrow; Exec runs SQL for its effects. Close drops all
// tables and closes the database, which frees everything DuckDB held.
// Cancelling the context of a running Register, Query or Exec interrupts the
// query inside DuckDB, and so does Close.
//
// What memdb cannot purge: Arrow results returned by Query belong to the
// caller (release them), and freed memory is returned to the allocator, not
// zeroed.
//
// Errors are wrapped with the operation ("memdb: query: …"). DuckDB errors of
// kinds that may quote data (conversion, out-of-range, constraint, invalid
// input, …) have their message withheld; their *duckdb.Error type is kept.
//
// Building this package needs the duckdb_arrow build tag (DuckDB's Arrow
// interface is behind it in duckdb-go).
package memdb

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"

	duckdb "github.com/duckdb/duckdb-go/v2"
)

// ErrClosed is returned (wrapped) by every operation on a closed DB, and by
// an operation that Close interrupted.
var ErrClosed = errors.New("database is closed")

// Options configures Open.
type Options struct {
	// MemoryLimitBytes is DuckDB's memory_limit in bytes: the most memory
	// DuckDB may use for tables, query state and results together. Required:
	// it must be > 0. As DuckDB cannot spill, a query needing more fails.
	MemoryLimitBytes int64
	// Threads is the number of DuckDB worker threads; 0 means
	// runtime.NumCPU().
	Threads int
}

// internalPrefix starts the names of memdb's own staging views and result
// tables; Register refuses names that start with it.
const internalPrefix = "__memdb_"

// DB is one in-memory DuckDB database for one job. It is safe for concurrent
// use; operations run one at a time on its single connection (DuckDB
// parallelizes each query over Options.Threads).
type DB struct {
	connector *duckdb.Connector
	conn      driver.Conn
	execer    driver.ExecerContext
	ar        *duckdb.Arrow

	// closing is cancelled by Close to interrupt the running operation.
	closing context.Context
	stop    context.CancelFunc

	mu     sync.Mutex // serializes all use of conn
	closed bool
	tables []string // names registered, dropped by Close
	seq    uint64   // for unique internal names
}

// Open creates an empty in-memory DuckDB database with the settings described
// in the package documentation, verifies each of them, and locks the
// configuration. It fails if any setting does not read back as set.
func Open(ctx context.Context, opts Options) (*DB, error) {
	if opts.MemoryLimitBytes <= 0 {
		return nil, fmt.Errorf("memdb: open: MemoryLimitBytes must be > 0, got %d", opts.MemoryLimitBytes)
	}
	if opts.Threads < 0 {
		return nil, fmt.Errorf("memdb: open: Threads must be >= 0, got %d", opts.Threads)
	}
	threads := opts.Threads
	if threads == 0 {
		threads = runtime.NumCPU()
	}
	// Options in the DSN apply when DuckDB creates the database. Only options
	// whose effect does not depend on the order DuckDB applies them go here
	// (duckdb-go applies them in map order); the access restrictions and the
	// lock follow as SQL, in a fixed order, below.
	v := url.Values{}
	v.Set("memory_limit", strconv.FormatInt(opts.MemoryLimitBytes, 10)+"B")
	v.Set("threads", strconv.Itoa(threads))
	v.Set("temp_directory", "")
	v.Set("max_temp_directory_size", "0B")
	// An empty path (before "?") is an in-memory database, a new one each time.
	connector, err := duckdb.NewConnector("?"+v.Encode(), nil)
	if err != nil {
		return nil, fmt.Errorf("memdb: open: %w", err)
	}
	dc, err := connector.Connect(ctx)
	if err != nil {
		connector.Close()
		return nil, fmt.Errorf("memdb: open: connect: %w", err)
	}
	closing, stop := context.WithCancel(context.Background())
	db := &DB{connector: connector, conn: dc, closing: closing, stop: stop}
	fail := func(err error) (*DB, error) {
		return nil, errors.Join(err, db.Close())
	}
	ex, ok := dc.(driver.ExecerContext)
	if !ok {
		return fail(errors.New("memdb: open: DuckDB driver connection cannot exec"))
	}
	db.execer = ex
	if db.ar, err = duckdb.NewArrowFromConn(dc); err != nil {
		return fail(fmt.Errorf("memdb: open: arrow interface: %w", err))
	}
	if err := db.lockDown(ctx, opts.MemoryLimitBytes, threads); err != nil {
		return fail(err)
	}
	return db, nil
}

// lockDown verifies the creation-time settings, applies the access
// restrictions, locks the configuration, and verifies the result.
func (db *DB) lockDown(ctx context.Context, memoryLimit int64, threads int) error {
	// Verify the no-spill settings before anything else runs.
	if err := db.checkSettings(ctx, []setting{
		{name: "temp_directory", want: ""},
		{name: "max_temp_directory_size", bytes: 0},
	}); err != nil {
		return err
	}
	// enable_external_access must come after temp_directory (DuckDB refuses
	// to change the temp directory once external access is off), and
	// lock_configuration last.
	for _, stmt := range []string{
		"SET enable_external_access = false",
		"SET autoinstall_known_extensions = false",
		"SET autoload_known_extensions = false",
		"SET allow_community_extensions = false",
		"SET allow_persistent_secrets = false",
		"SET lock_configuration = true",
	} {
		if _, err := db.execer.ExecContext(ctx, stmt, nil); err != nil {
			return fmt.Errorf("memdb: open: %s: %w", stmt, err)
		}
	}
	return db.checkSettings(ctx, lockedSettings(memoryLimit, threads))
}

// lockedSettings lists every setting Open establishes, as it must read back.
func lockedSettings(memoryLimit int64, threads int) []setting {
	return []setting{
		{name: "temp_directory", want: ""},
		{name: "max_temp_directory_size", bytes: 0},
		{name: "memory_limit", bytes: memoryLimit},
		{name: "threads", want: strconv.Itoa(threads)},
		{name: "enable_external_access", want: "false"},
		{name: "autoinstall_known_extensions", want: "false"},
		{name: "autoload_known_extensions", want: "false"},
		{name: "allow_community_extensions", want: "false"},
		{name: "allow_persistent_secrets", want: "false"},
		{name: "lock_configuration", want: "true"},
	}
}

// setting is an expected value of a DuckDB setting: want compared as text,
// or, when it is a size, bytes compared within DuckDB's display rounding.
type setting struct {
	name  string
	want  string
	bytes int64
}

func (s setting) isSize() bool {
	return s.name == "memory_limit" || s.name == "max_temp_directory_size"
}

// checkSettings reads each setting back with current_setting() and compares.
func (db *DB) checkSettings(ctx context.Context, settings []setting) error {
	cols := make([]string, len(settings))
	for i, s := range settings {
		cols[i] = "CAST(current_setting(" + quoteString(s.name) + ") AS VARCHAR)"
	}
	got, err := db.selectStrings(ctx, "SELECT "+strings.Join(cols, ", "))
	if err != nil {
		return fmt.Errorf("memdb: open: read settings: %w", err)
	}
	if len(got) != len(settings) {
		return fmt.Errorf("memdb: open: read settings: got %d values for %d settings", len(got), len(settings))
	}
	for i, s := range settings {
		if s.isSize() {
			n, err := parseSize(got[i])
			if err != nil {
				return fmt.Errorf("memdb: open: setting %s: %w", s.name, err)
			}
			// DuckDB shows sizes with one decimal (e.g. "95.4 MiB").
			if d := n - s.bytes; d > s.bytes/20+1024 || -d > s.bytes/20+1024 {
				return fmt.Errorf("memdb: open: setting %s is %q, want %d bytes", s.name, got[i], s.bytes)
			}
			continue
		}
		if got[i] != s.want {
			return fmt.Errorf("memdb: open: setting %s is %q, want %q", s.name, got[i], s.want)
		}
	}
	return nil
}

// selectStrings runs a one-row query of VARCHAR columns and returns the row.
func (db *DB) selectStrings(ctx context.Context, query string) ([]string, error) {
	r, err := db.ar.QueryContext(ctx, query)
	if err != nil {
		return nil, err
	}
	defer r.Release()
	if !r.Next() {
		if err := r.Err(); err != nil {
			return nil, err
		}
		return nil, errors.New("no row")
	}
	rec := r.RecordBatch()
	out := make([]string, rec.NumCols())
	for i, col := range rec.Columns() {
		if col.Len() != 1 || col.IsNull(0) {
			return nil, fmt.Errorf("column %d: want one non-null value", i)
		}
		out[i] = strings.Clone(col.ValueStr(0))
	}
	return out, nil
}

var sizeUnits = map[string]int64{
	"bytes": 1, "byte": 1, "B": 1,
	"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40, "PiB": 1 << 50,
	"KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12, "PB": 1e15,
}

// parseSize parses DuckDB's display of a size, such as "64.0 MiB" or
// "0 bytes".
func parseSize(s string) (int64, error) {
	num, unit, ok := strings.Cut(strings.TrimSpace(s), " ")
	mult, known := sizeUnits[unit]
	if !ok || !known {
		return 0, fmt.Errorf("cannot parse size %q", s)
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("cannot parse size %q", s)
	}
	return int64(f * float64(mult)), nil
}

// Close drops every registered table, closes the connection and the
// database (DuckDB frees all its memory: tables, views, buffers), and
// interrupts a running operation first. Close is idempotent; after it, every
// operation returns an error wrapping ErrClosed. The caller's batches were
// never retained past Register, so there is nothing else to release.
func (db *DB) Close() error {
	db.stop()
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.closed {
		return nil
	}
	db.closed = true
	var errs []error
	if db.execer != nil {
		for _, name := range db.tables {
			// Best effort: closing the database below frees the tables anyway.
			_, _ = db.execer.ExecContext(context.Background(), "DROP TABLE IF EXISTS "+QuoteIdent(name), nil)
		}
	}
	db.tables = nil
	if err := db.conn.Close(); err != nil {
		errs = append(errs, fmt.Errorf("memdb: close connection: %w", err))
	}
	if err := db.connector.Close(); err != nil {
		errs = append(errs, fmt.Errorf("memdb: close database: %w", err))
	}
	db.ar, db.execer = nil, nil
	return errors.Join(errs...)
}

// QuoteIdent quotes name as a DuckDB SQL identifier, for SQL that refers to a
// registered table: QuoteIdent(`o"rders`) is `"o""rders"`. DuckDB matches
// identifiers case-insensitively, even quoted ones.
func QuoteIdent(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// quoteString quotes s as a DuckDB SQL string literal.
func quoteString(s string) string {
	return `'` + strings.ReplaceAll(s, `'`, `''`) + `'`
}
