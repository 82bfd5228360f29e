package pql

import (
	"fmt"

	"github.com/ferry-ai/ferry/internal/graph"
)

// ValidationError is a query that parses but does not fit the graph.
type ValidationError struct {
	Line int
	Col  int
	Err  error
}

// Error returns "pql: line L, column C: " and the underlying error.
func (e *ValidationError) Error() string {
	return fmt.Sprintf("pql: line %d, column %d: %v", e.Line, e.Col, e.Err)
}

// Unwrap returns the underlying error, such as a *graph.NotFoundError.
func (e *ValidationError) Unwrap() error { return e.Err }

func verr(p Pos, err error) error { return &ValidationError{Line: p.Line, Col: p.Col, Err: err} }

func findTable(g *graph.Graph, name string, at Pos) (*graph.Table, error) {
	if t, ok := g.Table(name); ok {
		return t, nil
	}
	return nil, verr(at, &graph.NotFoundError{Kind: "table", Name: name, Nearest: graph.Nearest(name, g.TableNames())})
}

// Validate checks the query against a graph: every table and column exists
// (errors wrap *graph.NotFoundError with the nearest name), the entity column
// is its table's primary key, and every aggregated table has a time column
// and a foreign key to the entity table.
func (q *Query) Validate(g *graph.Graph) error {
	if g == nil {
		return fmt.Errorf("pql: validate: no graph")
	}
	et, err := findTable(g, q.Entity.Table, q.Entity.Pos)
	if err != nil {
		return err
	}
	if _, ok := et.Column(q.Entity.Column); !ok {
		return verr(q.Entity.ColumnPos, &graph.NotFoundError{Kind: "column", Table: et.Name, Name: q.Entity.Column, Nearest: graph.Nearest(q.Entity.Column, et.ColumnNames())})
	}
	if len(et.PrimaryKey) != 1 || et.PrimaryKey[0] != q.Entity.Column {
		return verr(q.Entity.ColumnPos, fmt.Errorf("FOR EACH %s.%s: %q is not the primary key of %q (primary key: %v)",
			et.Name, q.Entity.Column, q.Entity.Column, et.Name, et.PrimaryKey))
	}
	aggs := []Aggregation{q.Target.Agg}
	for _, f := range q.Filters {
		aggs = append(aggs, f.Agg)
	}
	for _, a := range aggs {
		t, err := findTable(g, a.Table, a.TablePos)
		if err != nil {
			return err
		}
		if a.Column != "*" {
			if _, ok := t.Column(a.Column); !ok {
				return verr(a.Pos, &graph.NotFoundError{Kind: "column", Table: t.Name, Name: a.Column, Nearest: graph.Nearest(a.Column, t.ColumnNames())})
			}
		}
		if t.TimeColumn == "" {
			return verr(a.Pos, fmt.Errorf("%s: table %q has no time column, so it cannot be aggregated over a window", a.Func, t.Name))
		}
		if _, ok := linkColumn(t, et); !ok {
			return verr(a.Pos, fmt.Errorf("%s: table %q has no foreign key to %q(%s)", a.Func, t.Name, et.Name, q.Entity.Column))
		}
	}
	return nil
}

// linkColumn returns the single column of t that references the primary key
// of the entity table.
func linkColumn(t, entity *graph.Table) (string, bool) {
	for _, fk := range t.ForeignKeys {
		if fk.RefTable == entity.Name && len(fk.Columns) == 1 && len(fk.RefColumns) == 1 &&
			len(entity.PrimaryKey) == 1 && fk.RefColumns[0] == entity.PrimaryKey[0] {
			return fk.Columns[0], true
		}
	}
	return "", false
}

// LinkColumn returns the column of table that references the entity table's
// primary key, if there is one.
func LinkColumn(g *graph.Graph, table, entity string) (string, bool) {
	t, ok1 := g.Table(table)
	e, ok2 := g.Table(entity)
	if !ok1 || !ok2 {
		return "", false
	}
	return linkColumn(t, e)
}

// RequiredTables lists the tables the engine needs for a validated query:
// the entity table first, then the aggregated tables, then every other table
// with a time column and a foreign key to the entity table (feature
// sources), each once.
func RequiredTables(q *Query, g *graph.Graph) []string {
	seen := map[string]bool{}
	var out []string
	add := func(n string) {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	add(q.Entity.Table)
	add(q.Target.Agg.Table)
	for _, f := range q.Filters {
		add(f.Agg.Table)
	}
	et, ok := g.Table(q.Entity.Table)
	if !ok {
		return out
	}
	for _, t := range g.Tables {
		if t.TimeColumn == "" {
			continue
		}
		if _, ok := linkColumn(&t, et); ok {
			add(t.Name)
		}
	}
	return out
}
