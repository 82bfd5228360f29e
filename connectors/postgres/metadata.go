package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"

	fdriver "github.com/ferry-ai/ferry/connectors/driver"
	"github.com/ferry-ai/ferry/internal/graph"
)

// TimeColumnComment marks a column as its table's time column when found in
// its comment (see driver.TimeColumnComment).
const TimeColumnComment = fdriver.TimeColumnComment

// pgColumn is a column as the catalogue describes it.
type pgColumn struct {
	name    string
	typname string // pg_type.typname, e.g. int8, timestamptz
	typmod  int32
	notNull bool
	comment string
	arrow   arrow.DataType
	// cast is the SQL cast applied when reading ("" = none): types whose
	// binary form Ferry does not decode are read as text.
	cast string
}

// mapType returns the Arrow type of a PostgreSQL column and the cast its
// read needs.
func mapType(typname string, typmod int32) (arrow.DataType, string) {
	switch typname {
	case "int2":
		return arrow.PrimitiveTypes.Int16, ""
	case "int4":
		return arrow.PrimitiveTypes.Int32, ""
	case "int8":
		return arrow.PrimitiveTypes.Int64, ""
	case "float4":
		return arrow.PrimitiveTypes.Float32, ""
	case "float8":
		return arrow.PrimitiveTypes.Float64, ""
	case "bool":
		return arrow.FixedWidthTypes.Boolean, ""
	case "numeric":
		if typmod >= 4 {
			p := int32(((typmod - 4) >> 16) & 0xffff)
			s := int32((typmod - 4) & 0xffff)
			if p <= 38 {
				return &arrow.Decimal128Type{Precision: p, Scale: s}, ""
			}
		}
		return arrow.BinaryTypes.String, "text" // unconstrained or wider than 38 digits: exact as text
	case "text", "varchar", "bpchar", "name", "char":
		return arrow.BinaryTypes.String, ""
	case "bytea":
		return arrow.BinaryTypes.Binary, ""
	case "date":
		return arrow.FixedWidthTypes.Date32, ""
	case "timestamp":
		return &arrow.TimestampType{Unit: arrow.Microsecond}, ""
	case "timestamptz":
		return &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, ""
	case "time":
		return arrow.FixedWidthTypes.Time64us, ""
	case "interval":
		return arrow.FixedWidthTypes.MonthDayNanoInterval, ""
	default:
		// One-dimensional arrays of a decoded type are lists (the element's
		// typmod is the column's). json, jsonb, uuid, xml, enums, ranges,
		// composites and other arrays: read as their text.
		if elem, ok := strings.CutPrefix(typname, "_"); ok {
			if et, cast := mapType(elem, typmod); cast == "" {
				return arrow.ListOf(et), ""
			}
		}
		return arrow.BinaryTypes.String, "text"
	}
}

// Tables implements driver.Conn.
func (c *conn) Tables(ctx context.Context) ([]fdriver.TableInfo, error) {
	cols, order, err := c.columns(ctx)
	if err != nil {
		return nil, err
	}
	pks, fks, err := c.constraints(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]fdriver.TableInfo, 0, len(order))
	for _, name := range order {
		tcols := cols[name]
		fields := make([]arrow.Field, len(tcols))
		t := fdriver.TableInfo{Table: graph.Table{Name: name, PrimaryKey: pks[name], ForeignKeys: fks[name], TimeColumn: timeColumn(tcols)}}
		for i, pc := range tcols {
			fields[i] = arrow.Field{Name: pc.name, Type: pc.arrow, Nullable: !pc.notNull}
			t.Columns = append(t.Columns, graph.Column{Name: pc.name, Type: pc.arrow.String(), Nullable: !pc.notNull})
		}
		t.Schema = arrow.NewSchema(fields, nil)
		out = append(out, t)
	}
	return out, nil
}

func timeColumn(cols []pgColumn) string {
	for _, c := range cols {
		if strings.Contains(c.comment, TimeColumnComment) {
			return c.name
		}
	}
	for _, c := range cols {
		switch c.typname {
		case "timestamp", "timestamptz", "date":
			return c.name
		}
	}
	return ""
}

// columns lists every table's columns in order, and the table names sorted.
func (c *conn) columns(ctx context.Context) (map[string][]pgColumn, []string, error) {
	rows, err := c.pool.Query(ctx, `
		SELECT cl.relname, a.attname, t.typname, a.atttypmod, a.attnotnull, coalesce(col_description(cl.oid, a.attnum), '')
		FROM pg_class cl
		JOIN pg_namespace n ON n.oid = cl.relnamespace
		JOIN pg_attribute a ON a.attrelid = cl.oid AND a.attnum > 0 AND NOT a.attisdropped
		JOIN pg_type t ON t.oid = a.atttypid
		WHERE n.nspname = $1 AND cl.relkind IN ('r', 'p', 'v', 'm', 'f')
		ORDER BY cl.relname COLLATE "C", a.attnum`, c.cfg.schema)
	if err != nil {
		return nil, nil, fmt.Errorf("postgres: list columns: %w", err)
	}
	defer rows.Close()
	out := map[string][]pgColumn{}
	var order []string
	for rows.Next() {
		var table string
		var pc pgColumn
		if err := rows.Scan(&table, &pc.name, &pc.typname, &pc.typmod, &pc.notNull, &pc.comment); err != nil {
			return nil, nil, fmt.Errorf("postgres: list columns: %w", err)
		}
		pc.arrow, pc.cast = mapType(pc.typname, pc.typmod)
		if _, seen := out[table]; !seen {
			order = append(order, table)
		}
		out[table] = append(out[table], pc)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("postgres: list columns: %w", err)
	}
	return out, order, nil
}

func (c *conn) constraints(ctx context.Context) (map[string][]string, map[string][]graph.ForeignKey, error) {
	rows, err := c.pool.Query(ctx, `
		SELECT cl.relname, con.contype::text,
		       array(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(n, o)
		             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.o),
		       coalesce(rc.relname::text, ''),
		       array(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(n, o)
		             JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.o)
		FROM pg_constraint con
		JOIN pg_class cl ON cl.oid = con.conrelid
		JOIN pg_namespace n ON n.oid = cl.relnamespace
		LEFT JOIN pg_class rc ON rc.oid = con.confrelid
		WHERE n.nspname = $1 AND con.contype IN ('p', 'f')
		ORDER BY cl.relname, con.conname`, c.cfg.schema)
	if err != nil {
		return nil, nil, fmt.Errorf("postgres: list constraints: %w", err)
	}
	defer rows.Close()
	pks := map[string][]string{}
	fks := map[string][]graph.ForeignKey{}
	for rows.Next() {
		var table, typ, ref string
		var cols, refCols []string
		if err := rows.Scan(&table, &typ, &cols, &ref, &refCols); err != nil {
			return nil, nil, fmt.Errorf("postgres: list constraints: %w", err)
		}
		if typ == "p" {
			pks[table] = cols
		} else {
			fks[table] = append(fks[table], graph.ForeignKey{Columns: cols, RefTable: ref, RefColumns: refCols})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("postgres: list constraints: %w", err)
	}
	return pks, fks, nil
}
