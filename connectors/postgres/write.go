package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	fdriver "github.com/ferry-ai/ferry/connectors/driver"
)

// maxIdentBytes is PostgreSQL's identifier length; longer names would be
// truncated silently, so they are refused.
const maxIdentBytes = 63

// pgType returns the column type DDL for an Arrow type.
func pgType(t arrow.DataType) (string, error) {
	switch t := t.(type) {
	case *arrow.Int8Type, *arrow.Int16Type, *arrow.Uint8Type:
		return "smallint", nil
	case *arrow.Int32Type, *arrow.Uint16Type:
		return "integer", nil
	case *arrow.Int64Type, *arrow.Uint32Type:
		return "bigint", nil
	case *arrow.Uint64Type:
		return "numeric(20,0)", nil
	case *arrow.Float32Type:
		return "real", nil
	case *arrow.Float64Type:
		return "double precision", nil
	case *arrow.BooleanType:
		return "boolean", nil
	case *arrow.StringType, *arrow.LargeStringType, *arrow.StringViewType:
		return "text", nil
	case *arrow.BinaryType, *arrow.LargeBinaryType, *arrow.BinaryViewType:
		return "bytea", nil
	case *arrow.Date32Type, *arrow.Date64Type:
		return "date", nil
	case *arrow.TimestampType:
		if t.TimeZone != "" {
			return "timestamptz", nil
		}
		return "timestamp", nil
	case *arrow.Time64Type, *arrow.Time32Type:
		return "time", nil
	case *arrow.MonthDayNanoIntervalType:
		return "interval", nil
	case *arrow.Decimal128Type:
		if t.Scale < 0 {
			return "", fmt.Errorf("decimal with negative scale %d", t.Scale)
		}
		return fmt.Sprintf("numeric(%d,%d)", t.Precision, t.Scale), nil
	case *arrow.ListType:
		switch t.Elem().(type) {
		case arrow.NestedType, *arrow.DictionaryType, *arrow.RunEndEncodedType, *arrow.Uint64Type:
			return "", fmt.Errorf("list of %s has no PostgreSQL array mapping", t.Elem())
		}
		elem, err := pgType(t.Elem())
		if err != nil {
			return "", err
		}
		return elem + "[]", nil
	case *arrow.DictionaryType:
		return pgType(t.ValueType)
	case *arrow.RunEndEncodedType:
		return pgType(t.Encoded())
	}
	return "", fmt.Errorf("type %s has no PostgreSQL mapping", t)
}

// Write implements driver.Writer: binary COPY into a staging table, then,
// in the same transaction, the old table is dropped and the staging table
// renamed. Readers see the old table until COMMIT, the new one after; a
// failure rolls everything back, leaving the old table and no staging table.
func (c *conn) Write(ctx context.Context, req fdriver.WriteRequest) (int64, error) {
	if len(req.Table) > maxIdentBytes {
		return 0, fmt.Errorf("postgres: table name %q is longer than %d bytes", req.Table, maxIdentBytes)
	}
	schema := req.Reader.Schema()
	defs := make([]string, 0, schema.NumFields()+2)
	names := make([]string, schema.NumFields())
	for i, f := range schema.Fields() {
		if len(f.Name) > maxIdentBytes {
			return 0, fmt.Errorf("postgres: column name %q is longer than %d bytes", f.Name, maxIdentBytes)
		}
		typ, err := pgType(f.Type)
		if err != nil {
			return 0, fmt.Errorf("postgres: column %q: %w", f.Name, err)
		}
		def := quoteIdent(f.Name) + " " + typ
		if !f.Nullable {
			def += " NOT NULL"
		}
		defs = append(defs, def)
		names[i] = f.Name
	}
	if len(req.PrimaryKey) > 0 {
		defs = append(defs, "PRIMARY KEY ("+quoteList(req.PrimaryKey)+")")
	}
	for _, fk := range req.ForeignKeys {
		if len(fk.Columns) == 0 || len(fk.Columns) != len(fk.RefColumns) {
			return 0, fmt.Errorf("postgres: malformed foreign key %v -> %s%v", fk.Columns, fk.RefTable, fk.RefColumns)
		}
		defs = append(defs, fmt.Sprintf("FOREIGN KEY (%s) REFERENCES %s (%s)", quoteList(fk.Columns), c.qualifiedOut(fk.RefTable), quoteList(fk.RefColumns)))
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	staging := "__ferry_stage_" + hex.EncodeToString(rnd[:])

	tx, err := c.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("postgres: begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after commit
	if c.cfg.writeRole != "" {
		// The new table belongs to the write role, not to this (perhaps
		// per-job) user: the next job's user can replace it, and Vault can
		// drop this user when the job ends.
		if _, err := tx.Exec(ctx, "SET LOCAL ROLE "+quoteIdent(c.cfg.writeRole)); err != nil {
			return 0, fmt.Errorf("postgres: write as role %q: %w", c.cfg.writeRole, err)
		}
	}
	if _, err := tx.Exec(ctx, "CREATE TABLE "+c.qualifiedOut(staging)+" ("+strings.Join(defs, ", ")+")"); err != nil {
		return 0, fmt.Errorf("postgres: create staging table: %w", err)
	}
	src := &arrowSource{r: req.Reader, row: make([]any, schema.NumFields())}
	n, err := tx.CopyFrom(ctx, pgx.Identifier{c.cfg.outputSchema, staging}, names, src)
	if err != nil {
		if src.err != nil {
			err = src.err
		}
		return 0, fmt.Errorf("postgres: copy: %w", err)
	}
	if err := req.Reader.Err(); err != nil {
		return 0, fmt.Errorf("postgres: input stream: %w", err)
	}
	if _, err := tx.Exec(ctx, "DROP TABLE IF EXISTS "+c.qualifiedOut(req.Table)); err != nil {
		return 0, fmt.Errorf("postgres: drop the old table: %w", err)
	}
	if _, err := tx.Exec(ctx, "ALTER TABLE "+c.qualifiedOut(staging)+" RENAME TO "+quoteIdent(req.Table)); err != nil {
		return 0, fmt.Errorf("postgres: swap in the new table: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("postgres: commit: %w", err)
	}
	return n, nil
}

func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = quoteIdent(n)
	}
	return strings.Join(q, ", ")
}

// arrowSource feeds Arrow records to pgx's binary COPY, one row at a time
// through a reused slice.
type arrowSource struct {
	r   array.RecordReader
	rec arrow.RecordBatch
	i   int
	row []any
	err error
}

func (s *arrowSource) Next() bool {
	for s.rec == nil || s.i+1 >= int(s.rec.NumRows()) {
		if !s.r.Next() {
			if err := s.r.Err(); err != nil {
				s.err = err
			}
			return false
		}
		s.rec = s.r.RecordBatch()
		s.i = -1
		if s.rec.NumRows() > 0 {
			break
		}
	}
	s.i++
	for j := range s.row {
		v, err := value(s.rec.Column(j), s.i)
		if err != nil {
			s.err = fmt.Errorf("column %q: %w", s.rec.Schema().Field(j).Name, err)
			return false
		}
		s.row[j] = v
	}
	return true
}

func (s *arrowSource) Values() ([]any, error) { return s.row, s.err }
func (s *arrowSource) Err() error             { return s.err }

// value converts one Arrow value to what pgx encodes.
func value(a arrow.Array, i int) (any, error) {
	if a.IsNull(i) {
		return nil, nil
	}
	switch a := a.(type) {
	case *array.Int8:
		return int16(a.Value(i)), nil
	case *array.Int16:
		return a.Value(i), nil
	case *array.Int32:
		return a.Value(i), nil
	case *array.Int64:
		return a.Value(i), nil
	case *array.Uint8:
		return int16(a.Value(i)), nil
	case *array.Uint16:
		return int32(a.Value(i)), nil
	case *array.Uint32:
		return int64(a.Value(i)), nil
	case *array.Uint64:
		return pgtype.Numeric{Int: new(big.Int).SetUint64(a.Value(i)), Valid: true}, nil
	case *array.Float32:
		return a.Value(i), nil
	case *array.Float64:
		return a.Value(i), nil
	case *array.Boolean:
		return a.Value(i), nil
	case *array.String:
		s := a.Value(i)
		if strings.IndexByte(s, 0) >= 0 {
			return nil, errors.New("text with a NUL byte cannot be stored in PostgreSQL")
		}
		return s, nil
	case *array.LargeString:
		return a.Value(i), nil
	case *array.Binary:
		return a.Value(i), nil
	case *array.LargeBinary:
		return a.Value(i), nil
	case *array.Date32:
		return pgtype.Date{Time: a.Value(i).ToTime(), Valid: true}, nil
	case *array.Date64:
		return pgtype.Date{Time: a.Value(i).ToTime(), Valid: true}, nil
	case *array.Timestamp:
		tt := a.DataType().(*arrow.TimestampType)
		t := a.Value(i).ToTime(tt.Unit).UTC()
		if tt.TimeZone != "" {
			return pgtype.Timestamptz{Time: t, Valid: true}, nil
		}
		return pgtype.Timestamp{Time: t, Valid: true}, nil
	case *array.Time64:
		unit := a.DataType().(*arrow.Time64Type).Unit
		us := int64(a.Value(i))
		if unit == arrow.Nanosecond {
			us /= 1000
		}
		return pgtype.Time{Microseconds: us, Valid: true}, nil
	case *array.MonthDayNanoInterval:
		v := a.Value(i)
		return pgtype.Interval{Months: v.Months, Days: v.Days, Microseconds: v.Nanoseconds / 1000, Valid: true}, nil
	case *array.Decimal128:
		dt := a.DataType().(*arrow.Decimal128Type)
		return pgtype.Numeric{Int: a.Value(i).BigInt(), Exp: -dt.Scale, Valid: true}, nil
	case *array.List:
		start, end := a.ValueOffsets(i)
		elems := make([]any, 0, end-start)
		for j := start; j < end; j++ {
			v, err := value(a.ListValues(), int(j))
			if err != nil {
				return nil, err
			}
			elems = append(elems, v)
		}
		return elems, nil
	case *array.Dictionary:
		return value(a.Dictionary(), a.GetValueIndex(i))
	case *array.RunEndEncoded:
		return value(a.Values(), a.GetPhysicalIndex(i))
	}
	return nil, fmt.Errorf("type %s has no PostgreSQL mapping", a.DataType())
}
