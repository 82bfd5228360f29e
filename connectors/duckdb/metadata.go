//go:build duckdb_arrow

package duckdb

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

type columnInfo struct {
	name     string
	dataType string
	nullable bool
	comment  string
}

// Tables implements driver.Conn.
func (c *conn) Tables(ctx context.Context) ([]fdriver.TableInfo, error) {
	names, err := c.tableNames(ctx)
	if err != nil {
		return nil, err
	}
	cols, err := c.columns(ctx)
	if err != nil {
		return nil, err
	}
	pks, fks, err := c.constraints(ctx)
	if err != nil {
		return nil, err
	}
	dc, ar, err := c.rawConn(ctx)
	if err != nil {
		return nil, err
	}
	defer dc.Close()

	out := make([]fdriver.TableInfo, 0, len(names))
	for _, name := range names {
		r, err := ar.QueryContext(ctx, "SELECT * FROM "+c.qualified(name)+" LIMIT 0")
		if err != nil {
			return nil, fmt.Errorf("duckdb: schema of %q: %w", name, err)
		}
		sc := r.Schema()
		r.Release()
		fields := make([]arrow.Field, sc.NumFields())
		tcols := cols[name]
		for i, f := range sc.Fields() {
			f.Nullable = true
			if i < len(tcols) && tcols[i].name == f.Name {
				f.Nullable = tcols[i].nullable
			}
			fields[i] = f
		}
		schema := arrow.NewSchema(fields, nil)
		t := fdriver.TableInfo{
			Table: graph.Table{
				Name:        name,
				PrimaryKey:  pks[name],
				ForeignKeys: fks[name],
				TimeColumn:  timeColumn(tcols),
			},
			Schema: schema,
		}
		for _, f := range fields {
			t.Columns = append(t.Columns, graph.Column{Name: f.Name, Type: f.Type.String(), Nullable: f.Nullable})
		}
		out = append(out, t)
	}
	return out, nil
}

func timeColumn(cols []columnInfo) string {
	for _, c := range cols {
		if strings.Contains(c.comment, TimeColumnComment) {
			return c.name
		}
	}
	for _, c := range cols {
		switch {
		case strings.HasPrefix(c.dataType, "TIMESTAMP"), c.dataType == "DATE":
			return c.name
		}
	}
	return ""
}

func (c *conn) tableNames(ctx context.Context) ([]string, error) {
	rows, err := c.db.QueryContext(ctx,
		`SELECT table_name FROM duckdb_tables() WHERE schema_name = ? AND database_name = current_database() AND NOT temporary ORDER BY table_name`, c.cfg.schema)
	if err != nil {
		return nil, fmt.Errorf("duckdb: list tables: %w", err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("duckdb: list tables: %w", err)
		}
		names = append(names, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("duckdb: list tables: %w", err)
	}
	return names, nil
}

func (c *conn) columns(ctx context.Context) (map[string][]columnInfo, error) {
	rows, err := c.db.QueryContext(ctx,
		`SELECT table_name, column_name, data_type, is_nullable, coalesce(comment, '')
		 FROM duckdb_columns() WHERE schema_name = ? AND database_name = current_database() AND NOT internal
		 ORDER BY table_name, column_index`, c.cfg.schema)
	if err != nil {
		return nil, fmt.Errorf("duckdb: list columns: %w", err)
	}
	defer rows.Close()
	out := map[string][]columnInfo{}
	for rows.Next() {
		var t string
		var ci columnInfo
		if err := rows.Scan(&t, &ci.name, &ci.dataType, &ci.nullable, &ci.comment); err != nil {
			return nil, fmt.Errorf("duckdb: list columns: %w", err)
		}
		out[t] = append(out[t], ci)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("duckdb: list columns: %w", err)
	}
	return out, nil
}

func (c *conn) constraints(ctx context.Context) (map[string][]string, map[string][]graph.ForeignKey, error) {
	rows, err := c.db.QueryContext(ctx,
		`SELECT table_name, constraint_type, constraint_column_names, coalesce(referenced_table, ''), referenced_column_names
		 FROM duckdb_constraints()
		 WHERE schema_name = ? AND database_name = current_database() AND constraint_type IN ('PRIMARY KEY', 'FOREIGN KEY')
		 ORDER BY table_name, constraint_index`, c.cfg.schema)
	if err != nil {
		return nil, nil, fmt.Errorf("duckdb: list constraints: %w", err)
	}
	defer rows.Close()
	pks := map[string][]string{}
	fks := map[string][]graph.ForeignKey{}
	for rows.Next() {
		var table, typ, ref string
		var cols, refCols any
		if err := rows.Scan(&table, &typ, &cols, &ref, &refCols); err != nil {
			return nil, nil, fmt.Errorf("duckdb: list constraints: %w", err)
		}
		switch typ {
		case "PRIMARY KEY":
			pks[table] = toStrings(cols)
		case "FOREIGN KEY":
			fks[table] = append(fks[table], graph.ForeignKey{Columns: toStrings(cols), RefTable: ref, RefColumns: toStrings(refCols)})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("duckdb: list constraints: %w", err)
	}
	return pks, fks, nil
}

func toStrings(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, x := range list {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}
