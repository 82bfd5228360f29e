// Package metadb is the control plane's metadata database: embedded SQLite
// (modernc.org/sqlite, pure Go, no cgo) by default, PostgreSQL (pgx) for
// production, behind one database/sql handle.
//
// Each component of the control plane (jobs, audit log, identities, …)
// owns its tables and their migrations, applied in order and recorded per
// component in ferry_migrations. Migrations are written once for both
// databases with a few tokens for what differs:
//
//	{{id}}     an auto-incrementing 64-bit primary key
//	{{blob}}   bytes (BLOB / BYTEA)
//	{{float}}  a double (REAL / DOUBLE PRECISION)
//
// Queries use ? placeholders; Rebind turns them into PostgreSQL's $n.
package metadb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	_ "modernc.org/sqlite"             // registers the "sqlite" database/sql driver
)

// Dialect is the kind of database behind a DB.
type Dialect int

// The dialects.
const (
	SQLite Dialect = iota
	Postgres
)

func (d Dialect) String() string {
	if d == Postgres {
		return "postgres"
	}
	return "sqlite"
}

// DB is an open metadata database.
type DB struct {
	*sql.DB
	Dialect Dialect
	// Where names the database in errors and logs (a path, or host/db),
	// never a password.
	Where string
}

// Open opens the database named by target: a PostgreSQL URL
// (postgres://host:5432/db?sslmode=verify-full; the password from
// PGPASSWORD or a .pgpass file, not the URL), or the path of a SQLite file
// (created 0600 in a 0700 directory if missing).
func Open(ctx context.Context, target string) (*DB, error) {
	if strings.HasPrefix(target, "postgres://") || strings.HasPrefix(target, "postgresql://") {
		return openPostgres(ctx, target)
	}
	return openSQLite(ctx, target)
}

func openSQLite(ctx context.Context, path string) (*DB, error) {
	if path == "" || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("metadata db: SQLite path %q: want a file path without '?' or '#'", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("metadata db: %w", err)
	}
	// secure_delete: deleted rows are overwritten, not left in free pages
	// (account closure must leave nothing of a tenant in the file).
	dsn := "file:" + path + "?_busy_timeout=5000&_journal_mode=WAL&_foreign_keys=1&_synchronous=NORMAL&_txlock=immediate&_pragma=secure_delete(1)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("metadata db: open %s: %w", path, err)
	}
	db.SetMaxOpenConns(4)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("metadata db: open %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		db.Close()
		return nil, fmt.Errorf("metadata db: %w", err)
	}
	return &DB{DB: db, Dialect: SQLite, Where: path}, nil
}

func openPostgres(ctx context.Context, target string) (*DB, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("metadata db: PostgreSQL URL: %w", err)
	}
	if _, ok := u.User.Password(); ok {
		return nil, errors.New("metadata db: the PostgreSQL URL holds a password: give it in PGPASSWORD or a .pgpass file")
	}
	where := u.Host + u.Path
	db, err := sql.Open("pgx", target)
	if err != nil {
		return nil, fmt.Errorf("metadata db: open %s: %w", where, err)
	}
	db.SetMaxOpenConns(16)
	db.SetConnMaxIdleTime(5 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("metadata db: connect to %s: %w", where, err)
	}
	return &DB{DB: db, Dialect: Postgres, Where: where}, nil
}

// Rebind turns ? placeholders into $1, $2, … for PostgreSQL. A ? inside a
// quoted string is left alone.
func (db *DB) Rebind(q string) string {
	if db.Dialect != Postgres || !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	n, quoted := 0, false
	for _, r := range q {
		switch {
		case r == '\'':
			quoted = !quoted
		case r == '?' && !quoted:
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Exec, Query and QueryRow are database/sql's with ? placeholders.
func (db *DB) Exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return db.ExecContext(ctx, db.Rebind(q), args...)
}

// Query runs a query with ? placeholders.
func (db *DB) Query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return db.QueryContext(ctx, db.Rebind(q), args...)
}

// QueryRow runs a one-row query with ? placeholders.
func (db *DB) QueryRow(ctx context.Context, q string, args ...any) *sql.Row {
	return db.QueryRowContext(ctx, db.Rebind(q), args...)
}

// Tx is a transaction whose statements take ? placeholders.
type Tx struct {
	*sql.Tx
	db *DB
}

// Exec runs a statement with ? placeholders.
func (tx *Tx) Exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return tx.ExecContext(ctx, tx.db.Rebind(q), args...)
}

// Query runs a query with ? placeholders.
func (tx *Tx) Query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return tx.QueryContext(ctx, tx.db.Rebind(q), args...)
}

// QueryRow runs a one-row query with ? placeholders.
func (tx *Tx) QueryRow(ctx context.Context, q string, args ...any) *sql.Row {
	return tx.QueryRowContext(ctx, tx.db.Rebind(q), args...)
}

// InTx runs fn in a transaction, committed if fn returns nil. On SQLite it
// is a write transaction from its start (BEGIN IMMEDIATE), so transactions
// never deadlock upgrading a read lock.
func (db *DB) InTx(ctx context.Context, fn func(*Tx) error) error {
	stx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("metadata db: begin: %w", err)
	}
	tx := &Tx{Tx: stx, db: db}
	if err := fn(tx); err != nil {
		_ = stx.Rollback()
		return err
	}
	if err := stx.Commit(); err != nil {
		return fmt.Errorf("metadata db: commit: %w", err)
	}
	return nil
}

// DDL renders a migration's tokens for the dialect.
func (db *DB) DDL(stmt string) string {
	r := map[Dialect]*strings.Replacer{
		SQLite:   strings.NewReplacer("{{id}}", "INTEGER PRIMARY KEY AUTOINCREMENT", "{{blob}}", "BLOB", "{{float}}", "REAL"),
		Postgres: strings.NewReplacer("{{id}}", "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", "{{blob}}", "BYTEA", "{{float}}", "DOUBLE PRECISION"),
	}[db.Dialect]
	return r.Replace(stmt)
}

// Migrate brings component's tables to len(steps): the steps not yet
// applied run in order, in one transaction with the version's update. A
// database newer than steps is refused. Never edit a released step: append
// a new one.
func (db *DB) Migrate(ctx context.Context, component string, steps []string) error {
	return db.InTx(ctx, func(tx *Tx) error {
		if db.Dialect == Postgres {
			// Two control planes starting at once migrate one after the other.
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(7419)`); err != nil {
				return fmt.Errorf("metadata db: migrate %s: lock: %w", component, err)
			}
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS ferry_migrations (component TEXT PRIMARY KEY, version INTEGER NOT NULL)`); err != nil {
			return fmt.Errorf("metadata db: migrate %s: %w", component, err)
		}
		var version int
		err := tx.QueryRow(ctx, `SELECT version FROM ferry_migrations WHERE component = ?`, component).Scan(&version)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			if _, err := tx.Exec(ctx, `INSERT INTO ferry_migrations (component, version) VALUES (?, 0)`, component); err != nil {
				return fmt.Errorf("metadata db: migrate %s: %w", component, err)
			}
		case err != nil:
			return fmt.Errorf("metadata db: migrate %s: read version: %w", component, err)
		}
		if version > len(steps) {
			return fmt.Errorf("metadata db: %s schema version %d is newer than this binary supports (%d)", component, version, len(steps))
		}
		for i := version; i < len(steps); i++ {
			if _, err := tx.ExecContext(ctx, db.DDL(steps[i])); err != nil {
				return fmt.Errorf("metadata db: %s migration %d: %w", component, i+1, err)
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE ferry_migrations SET version = ? WHERE component = ?`, len(steps), component); err != nil {
			return fmt.Errorf("metadata db: migrate %s: %w", component, err)
		}
		return nil
	})
}

// Scrub makes deleted rows unrecoverable from the database's own files, as
// far as the database allows: SQLite (secure_delete is on) checkpoints and
// truncates its write-ahead log, which still holds the pages as they were;
// PostgreSQL rewrites the tables (VACUUM FULL), so their old files — with
// the dead rows — are removed (the file system may keep the freed blocks:
// encrypted storage, and the customer-managed key, cover that).
func (db *DB) Scrub(ctx context.Context, tables ...string) error {
	if db.Dialect == SQLite {
		if _, err := db.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
			return fmt.Errorf("metadata db: scrub: %w", err)
		}
		return nil
	}
	for _, t := range tables {
		if _, err := db.ExecContext(ctx, `VACUUM FULL `+t); err != nil {
			return fmt.Errorf("metadata db: scrub %s: %w", t, err)
		}
	}
	return nil
}

// Version returns the number of component's migrations applied (0 for a
// component never migrated).
func (db *DB) Version(ctx context.Context, component string) (int, error) {
	var v int
	err := db.QueryRow(ctx, `SELECT version FROM ferry_migrations WHERE component = ?`, component).Scan(&v)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("metadata db: %s version: %w", component, err)
	}
	return v, nil
}
