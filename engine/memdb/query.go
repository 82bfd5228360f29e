//go:build duckdb_arrow

package memdb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// Register makes batches queryable as the table name (any string: spaces,
// quotes and unicode are fine; in SQL write it as QuoteIdent(name)). Every
// batch must have exactly schema; there may be none (an empty table).
//
// The data is copied once into an in-memory DuckDB table, which counts
// against MemoryLimitBytes. It is not a zero-copy view: DuckDB reads a
// registered Arrow stream (duckdb-go's RegisterView) only once, and a second
// scan of such a view silently returns no rows. So Register registers the
// batches as a temporary view, runs CREATE TABLE name AS SELECT * FROM it,
// and drops the view; nothing goes to disk. Register does not retain the
// batches: the caller may release them as soon as it returns.
//
// A name that already exists, compared case-insensitively, is an error, as
// is one starting with "__memdb_" (reserved). Cancelling ctx interrupts the
// copy; the table then does not exist.
func (db *DB) Register(ctx context.Context, name string, schema *arrow.Schema, batches []arrow.RecordBatch) error {
	wrap := func(err error) error { return fmt.Errorf("memdb: register %q: %w", name, err) }
	switch {
	case name == "":
		return wrap(errors.New("empty table name"))
	case strings.HasPrefix(strings.ToLower(name), internalPrefix):
		return wrap(fmt.Errorf("names starting with %q are reserved", internalPrefix))
	case schema == nil:
		return wrap(errors.New("nil schema"))
	case schema.NumFields() == 0:
		return wrap(errors.New("schema has no fields"))
	}
	for i, b := range batches {
		if b == nil {
			return wrap(fmt.Errorf("batch %d is nil", i))
		}
		if !b.Schema().Equal(schema) {
			return wrap(fmt.Errorf("batch %d has schema %s, want %s", i, b.Schema(), schema))
		}
	}

	db.mu.Lock()
	defer db.mu.Unlock()
	if db.closed {
		return wrap(ErrClosed)
	}
	ctx, done := db.opContext(ctx)
	defer done()

	rdr, err := array.NewRecordReader(schema, batches)
	if err != nil {
		return wrap(err)
	}
	defer rdr.Release()
	view := db.internalName("stage")
	release, err := db.ar.RegisterView(rdr, view)
	if err != nil {
		if f := db.unmappableField(schema); f != nil {
			return wrap(fmt.Errorf("column %q has Arrow type %s, which DuckDB cannot scan: %w", f.Name, f.Type, err))
		}
		return wrap(fmt.Errorf("register Arrow stream: %w", err))
	}
	defer func() {
		_, _ = db.execer.ExecContext(context.Background(), "DROP VIEW IF EXISTS "+QuoteIdent(view), nil)
		release()
	}()
	if _, err := db.execer.ExecContext(ctx, "CREATE TABLE "+QuoteIdent(name)+" AS SELECT * FROM "+QuoteIdent(view), nil); err != nil {
		return wrap(opError(ctx, err))
	}
	db.tables = append(db.tables, name)
	return nil
}

// unmappableField finds the first field DuckDB cannot scan, by registering an
// empty stream of each field alone.
func (db *DB) unmappableField(s *arrow.Schema) *arrow.Field {
	for i, f := range s.Fields() {
		one := arrow.NewSchema([]arrow.Field{f}, nil)
		r, err := array.NewRecordReader(one, nil)
		if err != nil {
			continue
		}
		view := db.internalName("probe")
		release, err := db.ar.RegisterView(r, view)
		if err != nil {
			r.Release()
			return &s.Fields()[i]
		}
		_, _ = db.execer.ExecContext(context.Background(), "DROP VIEW IF EXISTS "+QuoteIdent(view), nil)
		release()
		r.Release()
	}
	return nil
}

// Query runs one query and returns its result as Arrow record batches. The
// query must be one that may stand as a subquery: SELECT, WITH, VALUES,
// FROM-first, TABLE, DESCRIBE, SHOW, SUMMARIZE, PIVOT (not EXPLAIN, PRAGMA,
// or several statements); a trailing semicolon is allowed. args bind its
// placeholders (? or $1 positionally, sql.Named for $name).
//
// Cancelling ctx (or calling Close) interrupts the query inside DuckDB, and
// Query returns an error wrapping ctx.Err() (or ErrClosed). To make that
// possible the query runs as CREATE TEMP TABLE … AS SELECT * FROM (query),
// which duckdb-go can interrupt, and the result is then read through DuckDB's
// Arrow interface, which it cannot. The temporary table is dropped before
// Query returns. Result column names are therefore unique (DuckDB renames a
// repeated name a to a_1).
//
// The result is read completely before Query returns: DuckDB's Arrow query
// API materializes it anyway, and so the returned reader does not hold the
// connection or outlive the database. Its batches live in memory that
// DuckDB's Arrow export allocated, outside MemoryLimitBytes; the caller owns
// the reader and must Release it. Peak DuckDB memory is about twice the
// result size.
func (db *DB) Query(ctx context.Context, query string, args ...any) (array.RecordReader, error) {
	wrap := func(err error) error { return fmt.Errorf("memdb: query: %w", err) }
	body := trimStatement(query)
	if body == "" {
		return nil, wrap(errors.New("empty query"))
	}

	db.mu.Lock()
	defer db.mu.Unlock()
	if db.closed {
		return nil, wrap(ErrClosed)
	}
	ctx, done := db.opContext(ctx)
	defer done()

	tmp := QuoteIdent(db.internalName("result"))
	// The newline before ")" ends a trailing -- comment in body.
	if _, err := db.execer.ExecContext(ctx, "CREATE TEMP TABLE "+tmp+" AS SELECT * FROM (\n"+body+"\n)", namedValues(args)); err != nil {
		return nil, wrap(opError(ctx, err))
	}
	rr, err := db.ar.QueryContext(ctx, "FROM temp.main."+tmp)
	// The Arrow result is already materialized: drop the table now.
	_, dropErr := db.execer.ExecContext(context.Background(), "DROP TABLE IF EXISTS temp.main."+tmp, nil)
	if err != nil || dropErr != nil {
		if rr != nil {
			rr.Release()
		}
		if err != nil {
			err = opError(ctx, err)
		}
		if dropErr != nil {
			dropErr = fmt.Errorf("drop result table: %w", redact(dropErr))
		}
		return nil, wrap(errors.Join(err, dropErr))
	}
	defer rr.Release()
	var recs []arrow.RecordBatch
	defer func() {
		for _, r := range recs {
			r.Release()
		}
	}()
	for rr.Next() {
		rec := rr.RecordBatch()
		rec.Retain()
		recs = append(recs, rec)
	}
	if err := rr.Err(); err != nil {
		return nil, wrap(opError(ctx, err))
	}
	out, err := array.NewRecordReader(rr.Schema(), recs)
	if err != nil {
		return nil, wrap(err)
	}
	return out, nil
}

// Exec runs SQL for its effects (DDL, INSERT, UPDATE, …); it may hold several
// statements, and args bind the placeholders of the last one. Cancelling ctx
// (or calling Close) interrupts it inside DuckDB, and Exec returns an error
// wrapping ctx.Err() (or ErrClosed).
func (db *DB) Exec(ctx context.Context, query string, args ...any) error {
	wrap := func(err error) error { return fmt.Errorf("memdb: exec: %w", err) }
	if strings.TrimSpace(query) == "" {
		return wrap(errors.New("empty statement"))
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.closed {
		return wrap(ErrClosed)
	}
	ctx, done := db.opContext(ctx)
	defer done()
	if _, err := db.execer.ExecContext(ctx, query, namedValues(args)); err != nil {
		return wrap(opError(ctx, err))
	}
	return nil
}

// opContext derives the context of one operation: cancelled by ctx, or by
// Close with cause ErrClosed.
func (db *DB) opContext(ctx context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(db.closing, func() { cancel(ErrClosed) })
	return ctx, func() {
		stop()
		cancel(nil)
	}
}

// opError reports an interrupted operation as its context's error (or
// ErrClosed), and any other error with its message redacted if need be.
func opError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		if errors.Is(context.Cause(ctx), ErrClosed) {
			return fmt.Errorf("interrupted: %w", ErrClosed)
		}
		return fmt.Errorf("interrupted: %w", ctx.Err())
	}
	return redact(err)
}

// internalName returns a fresh name for a staging view or result table.
// Caller holds db.mu.
func (db *DB) internalName(kind string) string {
	db.seq++
	return internalPrefix + kind + "_" + strconv.FormatUint(db.seq, 10)
}

// trimStatement drops surrounding space and trailing semicolons.
func trimStatement(s string) string {
	for {
		t := strings.TrimRight(strings.TrimSpace(s), ";")
		if t == s {
			return t
		}
		s = t
	}
}

// namedValues converts Query/Exec arguments for the driver.
func namedValues(args []any) []driver.NamedValue {
	if len(args) == 0 {
		return nil
	}
	out := make([]driver.NamedValue, len(args))
	for i, a := range args {
		out[i] = driver.NamedValue{Ordinal: i + 1, Value: a}
		if na, ok := a.(sql.NamedArg); ok {
			out[i].Name, out[i].Value = na.Name, na.Value
		}
	}
	return out
}
