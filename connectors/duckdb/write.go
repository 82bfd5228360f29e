//go:build duckdb_arrow

package duckdb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	duckdb "github.com/duckdb/duckdb-go/v2"

	fdriver "github.com/ferry-ai/ferry/connectors/driver"
	"github.com/ferry-ai/ferry/internal/graph"
)

// Write implements driver.Writer. The incoming stream is registered as a
// temporary Arrow view on a dedicated connection; the table is then created
// (or replaced) with its column types, primary and foreign keys, and filled
// by one INSERT … SELECT from the view, all in one transaction. DuckDB's MVCC
// makes the swap atomic: readers see the old table until COMMIT, the new one
// after. Nothing is staged outside the transaction, so a killed write leaves
// no debris.
func (c *conn) Write(ctx context.Context, req fdriver.WriteRequest) (int64, error) {
	if c.cfg.readOnly {
		return 0, errors.New("duckdb: database is opened read-only")
	}
	dc, ar, err := c.rawConn(ctx)
	if err != nil {
		return 0, err
	}
	defer dc.Close()

	view := "__ferry_stage_" + randomSuffix()
	release, err := ar.RegisterView(req.Reader, view)
	if err != nil {
		if col := unmappableColumn(ar, req.Reader.Schema()); col != nil {
			return 0, fmt.Errorf("duckdb: column %q has Arrow type %s, which DuckDB cannot store: %w", col.Name, col.Type, err)
		}
		return 0, fmt.Errorf("duckdb: register Arrow stream: %w", err)
	}
	defer release()

	types, err := describe(ctx, c, ar, view)
	if err != nil {
		return 0, err
	}
	ddl, err := createTableDDL(c.qualified(req.Table), req, types)
	if err != nil {
		return 0, err
	}
	if _, err := exec(ctx, dc, "BEGIN TRANSACTION"); err != nil {
		return 0, fmt.Errorf("duckdb: begin write: %w", err)
	}
	rollback := func(err error) (int64, error) {
		_, rbErr := exec(context.Background(), dc, "ROLLBACK")
		return 0, errors.Join(err, rbErr)
	}
	if _, err := exec(ctx, dc, ddl); err != nil {
		return rollback(fmt.Errorf("duckdb: create table: %w", err))
	}
	res, err := exec(ctx, dc, "INSERT INTO "+c.qualified(req.Table)+" SELECT * FROM "+quoteIdent(view))
	if err != nil {
		return rollback(fmt.Errorf("duckdb: insert: %w", err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return rollback(fmt.Errorf("duckdb: insert: %w", err))
	}
	if err := req.Reader.Err(); err != nil {
		return rollback(fmt.Errorf("duckdb: input stream: %w", err))
	}
	if _, err := exec(ctx, dc, "COMMIT"); err != nil {
		return rollback(fmt.Errorf("duckdb: commit: %w", err))
	}
	return n, nil
}

type columnType struct{ name, sqlType string }

// unmappableColumn finds the first field DuckDB refuses, by registering an
// empty stream of each field alone.
func unmappableColumn(ar *duckdb.Arrow, s *arrow.Schema) *arrow.Field {
	for i, f := range s.Fields() {
		one := arrow.NewSchema([]arrow.Field{f}, nil)
		r, err := array.NewRecordReader(one, nil)
		if err != nil {
			continue
		}
		release, err := ar.RegisterView(r, "__ferry_probe_"+randomSuffix())
		r.Release()
		if err != nil {
			return &s.Fields()[i]
		}
		release()
	}
	return nil
}

// describe asks DuckDB how it types the columns of the registered view; it
// binds the view without scanning it.
func describe(ctx context.Context, c *conn, ar interface {
	QueryContext(context.Context, string, ...any) (array.RecordReader, error)
}, view string) ([]columnType, error) {
	r, err := ar.QueryContext(ctx, "DESCRIBE SELECT * FROM "+quoteIdent(view))
	if err != nil {
		return nil, fmt.Errorf("duckdb: map Arrow types: %w", err)
	}
	defer r.Release()
	var out []columnType
	for r.Next() {
		rec := r.RecordBatch()
		names, ok1 := rec.Column(0).(*array.String)
		types, ok2 := rec.Column(1).(*array.String)
		if !ok1 || !ok2 {
			return nil, errors.New("duckdb: unexpected DESCRIBE result")
		}
		for i := 0; i < names.Len(); i++ {
			out = append(out, columnType{strings.Clone(names.Value(i)), strings.Clone(types.Value(i))})
		}
	}
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("duckdb: map Arrow types: %w", err)
	}
	return out, nil
}

func createTableDDL(qualified string, req fdriver.WriteRequest, types []columnType) (string, error) {
	fields := req.Reader.Schema().Fields()
	if len(fields) != len(types) {
		return "", fmt.Errorf("duckdb: %d Arrow fields but DuckDB typed %d columns", len(fields), len(types))
	}
	var b strings.Builder
	b.WriteString("CREATE OR REPLACE TABLE ")
	b.WriteString(qualified)
	b.WriteString(" (")
	for i, f := range fields {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(quoteIdent(f.Name))
		b.WriteString(" ")
		b.WriteString(types[i].sqlType)
		if !f.Nullable {
			b.WriteString(" NOT NULL")
		}
	}
	if len(req.PrimaryKey) > 0 {
		b.WriteString(", PRIMARY KEY (")
		b.WriteString(quoteList(req.PrimaryKey))
		b.WriteString(")")
	}
	for _, fk := range req.ForeignKeys {
		if err := checkFK(fk); err != nil {
			return "", err
		}
		fmt.Fprintf(&b, ", FOREIGN KEY (%s) REFERENCES %s (%s)", quoteList(fk.Columns), quoteIdent(fk.RefTable), quoteList(fk.RefColumns))
	}
	b.WriteString(")")
	return b.String(), nil
}

func checkFK(fk graph.ForeignKey) error {
	if len(fk.Columns) == 0 || len(fk.Columns) != len(fk.RefColumns) || fk.RefTable == "" {
		return fmt.Errorf("duckdb: malformed foreign key %v -> %s%v", fk.Columns, fk.RefTable, fk.RefColumns)
	}
	return nil
}

func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = quoteIdent(n)
	}
	return strings.Join(q, ", ")
}

func randomSuffix() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
