package pql

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ferry-ai/ferry/internal/graph"
)

// Task types (Query.Task).
const (
	TaskBinaryClassification     = "binary_classification"
	TaskMulticlassClassification = "multiclass_classification"
	TaskRegression               = "regression"
	TaskRecommendation           = "recommendation"
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

func verrf(p Pos, format string, args ...any) error {
	return verr(p, fmt.Errorf(format, args...))
}

// kind is the value class of a column or an expression.
type kind int

const (
	kindUnknown kind = iota // the graph does not say
	kindNumber
	kindString
	kindBool
	kindTime
	kindList  // LIST_DISTINCT
	kindOther // binary, nested types: not comparable
)

func (k kind) String() string {
	return [...]string{"of unknown type", "a number", "a string", "a boolean", "a time", "a list", "not a scalar"}[k]
}

// kindOf classifies an Arrow type name (arrow.DataType.String()).
func kindOf(typ string) kind {
	t := strings.ToLower(typ)
	switch {
	case t == "":
		return kindUnknown
	case t == "bool":
		return kindBool
	case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "uint"), strings.HasPrefix(t, "float"),
		strings.HasPrefix(t, "decimal"), t == "halffloat", t == "double":
		return kindNumber
	case t == "utf8", t == "large_utf8", t == "string", t == "string_view", t == "large_string",
		strings.HasPrefix(t, "dictionary<values=utf8"), strings.HasPrefix(t, "dictionary<values=large_utf8"):
		return kindString
	case strings.HasPrefix(t, "timestamp"), strings.HasPrefix(t, "date"):
		return kindTime
	}
	return kindOther
}

// checker validates a query against a graph.
type checker struct {
	g      *graph.Graph
	entity *graph.Table
}

func (c *checker) table(name string, at Pos) (*graph.Table, error) {
	if t, ok := c.g.Table(name); ok {
		return t, nil
	}
	return nil, verr(at, &graph.NotFoundError{Kind: "table", Name: name, Nearest: graph.Nearest(name, c.g.TableNames())})
}

func (c *checker) column(t *graph.Table, name string, at Pos) (graph.Column, error) {
	if col, ok := t.Column(name); ok {
		return col, nil
	}
	return graph.Column{}, verr(at, &graph.NotFoundError{Kind: "column", Table: t.Name, Name: name, Nearest: graph.Nearest(name, t.ColumnNames())})
}

// Validate checks the query against a graph: every table and column exists
// (errors wrap *graph.NotFoundError with the nearest name), the entity
// column is its table's primary key, every aggregated table has a time
// column and a foreign key to the entity table, functions get columns they
// can aggregate, and comparisons, matches and conditions get operands of
// fitting types (where the graph gives column types).
func (q *Query) Validate(g *graph.Graph) error {
	_, err := q.Task(g)
	return err
}

// Task validates the query against g (as Validate) and returns its task
// type: TaskBinaryClassification for a condition or a boolean value,
// TaskRegression for a numeric value, TaskMulticlassClassification for a
// string value, TaskRecommendation for LIST_DISTINCT ... RANK TOP k.
func (q *Query) Task(g *graph.Graph) (string, error) {
	if g == nil {
		return "", errors.New("pql: validate: no graph")
	}
	c := &checker{g: g}
	et, err := c.table(q.Entity.Table, q.Entity.Pos)
	if err != nil {
		return "", err
	}
	if _, err := c.column(et, q.Entity.Column, q.Entity.ColumnPos); err != nil {
		return "", err
	}
	if len(et.PrimaryKey) != 1 || et.PrimaryKey[0] != q.Entity.Column {
		return "", verrf(q.Entity.ColumnPos, "FOR EACH %s.%s: %q is not the primary key of %q (primary key: %v)",
			et.Name, q.Entity.Column, q.Entity.Column, et.Name, et.PrimaryKey)
	}
	c.entity = et
	for _, cl := range []struct {
		name string
		e    Expr
	}{{"WHERE", q.Where}, {"ASSUMING", q.Assuming}} {
		if cl.e == nil {
			continue
		}
		if err := c.condition(cl.e, cl.name, nil); err != nil {
			return "", err
		}
	}
	k, err := c.kind(q.Target.Expr, nil)
	if err != nil {
		return "", err
	}
	if col, ok := q.Target.Expr.(*Column); ok && col.Name == q.Entity.Column {
		return "", verrf(col.At, "the target %s is the entity's own key", col)
	}
	switch k {
	case kindBool:
		return TaskBinaryClassification, nil
	case kindNumber:
		return TaskRegression, nil
	case kindString:
		return TaskMulticlassClassification, nil
	case kindList:
		return TaskRecommendation, nil
	case kindUnknown:
		return "", verrf(q.Target.At, "the graph gives no type for the target %s, so regression and classification cannot be told apart: give the column types in the graph", q.Target.Expr)
	}
	return "", verrf(q.Target.At, "cannot predict %s: it is %s; predict a number, a string, a boolean or a condition", q.Target.Expr, k)
}

// condition checks that e is a boolean condition; clause names it in errors.
func (c *checker) condition(e Expr, clause string, agg *graph.Table) error {
	k, err := c.kind(e, agg)
	if err != nil {
		return err
	}
	if k != kindBool && k != kindUnknown {
		return verrf(e.Position(), "%s is %s, not a condition: the %s needs a comparison such as %s > 0", e, k, clause, e)
	}
	return nil
}

// kind checks e and returns its kind. agg is the aggregated table inside an
// aggregation's WHERE, nil outside (columns are then the entity's).
func (c *checker) kind(e Expr, agg *graph.Table) (kind, error) {
	switch n := e.(type) {
	case *Literal:
		switch n.Kind {
		case LitNumber:
			return kindNumber, nil
		case LitString:
			return kindString, nil
		case LitBool:
			return kindBool, nil
		}
		return kindUnknown, nil
	case *Column:
		t := agg
		if t == nil {
			t = c.entity
		}
		if n.Table != t.Name {
			// The parser keeps columns to their table; a graph that
			// differs in case lands here.
			return 0, verrf(n.At, "%s is not a column of %s", n, t.Name)
		}
		col, err := c.column(t, n.Name, n.NameAt)
		if err != nil {
			return 0, err
		}
		return kindOf(col.Type), nil
	case *Aggregation:
		return c.aggregation(n)
	case *Binary:
		lk, err := c.kind(n.Left, agg)
		if err != nil {
			return 0, err
		}
		rk, err := c.kind(n.Right, agg)
		if err != nil {
			return 0, err
		}
		if !IsComparison(n.Op) {
			if lk != kindString && lk != kindUnknown {
				return 0, verrf(n.At, "%s matches strings; %s is %s", n.Op, n.Left, lk)
			}
			return kindBool, nil
		}
		if err := comparable(n, lk, rk); err != nil {
			return 0, err
		}
		return kindBool, nil
	case *Logical:
		for _, t := range n.Terms {
			if err := c.condition(t, n.Op, agg); err != nil {
				return 0, err
			}
		}
		return kindBool, nil
	case *Not:
		if err := c.condition(n.X, "NOT", agg); err != nil {
			return 0, err
		}
		return kindBool, nil
	case *In:
		xk, err := c.kind(n.X, agg)
		if err != nil {
			return 0, err
		}
		lk, _ := c.kind(n.List[0], agg)
		if xk != kindUnknown && xk != lk && !(xk == kindTime && lk == kindString) {
			return 0, verrf(n.At, "%s is %s but the IN list holds %s values", n.X, xk, kindName(lk))
		}
		if xk == kindTime {
			for _, l := range n.List {
				if _, err := ParseTime(l.Str); err != nil {
					return 0, verr(l.At, err)
				}
			}
		}
		return kindBool, nil
	case *IsNull:
		if _, err := c.kind(n.X, agg); err != nil {
			return 0, err
		}
		return kindBool, nil
	}
	return 0, fmt.Errorf("pql: unexpected node %T", e)
}

func kindName(k kind) string {
	return strings.TrimPrefix(strings.TrimPrefix(k.String(), "a "), "an ")
}

// comparable checks the operands of a comparison.
func comparable(n *Binary, lk, rk kind) error {
	if lk == kindUnknown || rk == kindUnknown {
		return nil
	}
	// A time compares with a time or with a 'YYYY-MM-DD[ hh:mm:ss]' string.
	for _, side := range []struct {
		k   kind
		lit Expr
	}{{lk, n.Right}, {rk, n.Left}} {
		if l, ok := side.lit.(*Literal); ok && side.k == kindTime && l.Kind == LitString {
			if _, err := ParseTime(l.Str); err != nil {
				return verr(l.At, err)
			}
			return nil
		}
	}
	if lk != rk {
		return verrf(n.At, "cannot compare %s (%s) with %s (%s)", n.Left, lk, n.Right, rk)
	}
	switch lk {
	case kindBool:
		if n.Op != OpEQ && n.Op != OpNE {
			return verrf(n.At, "booleans compare with = and != only, not %s", n.Op)
		}
	case kindList, kindOther:
		return verrf(n.At, "cannot compare %s: it is %s", n.Left, lk)
	}
	return nil
}

// ParseTime parses a time constant: RFC 3339, "2006-01-02 15:04:05" or
// "2006-01-02" (UTC).
func ParseTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05", "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("'%s' is not a time: write 'YYYY-MM-DD', 'YYYY-MM-DD hh:mm:ss' or RFC 3339", truncate(s, 40))
}

// aggregation checks an aggregation and returns the kind of its value.
func (c *checker) aggregation(a *Aggregation) (kind, error) {
	t, err := c.table(a.Table, a.TablePos)
	if err != nil {
		return 0, err
	}
	if t.TimeColumn == "" {
		return 0, verrf(a.At, "%s: table %q has no time column, so it cannot be aggregated over a window", a.Func, t.Name)
	}
	if _, ok := linkColumn(t, c.entity); !ok {
		return 0, verrf(a.At, "%s: table %q has no foreign key to %q(%s)", a.Func, t.Name, c.entity.Name, c.entity.PrimaryKey[0])
	}
	if a.Where != nil {
		if err := c.condition(a.Where, a.Func+"'s WHERE", t); err != nil {
			return 0, err
		}
	}
	ck := kindUnknown
	if a.Column != "*" {
		col, err := c.column(t, a.Column, a.ColumnPos)
		if err != nil {
			return 0, err
		}
		ck = kindOf(col.Type)
	}
	switch a.Func {
	case FuncCount, FuncCountDistinct:
		return kindNumber, nil
	case FuncExists:
		return kindBool, nil
	case FuncSum, FuncAvg:
		if ck != kindNumber && ck != kindUnknown && ck != kindBool {
			return 0, verrf(a.ColumnPos, "%s needs a numeric column; %s.%s is %s", a.Func, t.Name, a.Column, ck)
		}
		return kindNumber, nil
	case FuncMin, FuncMax, FuncFirst, FuncLast:
		if ck == kindList || ck == kindOther {
			return 0, verrf(a.ColumnPos, "%s needs a scalar column; %s.%s is %s", a.Func, t.Name, a.Column, ck)
		}
		return ck, nil
	case FuncListDistinct:
		if ck == kindList || ck == kindOther {
			return 0, verrf(a.ColumnPos, "%s needs a scalar column (the items); %s.%s is %s", a.Func, t.Name, a.Column, ck)
		}
		return kindList, nil
	}
	return 0, verrf(a.At, "unknown aggregation %s", a.Func)
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

// RequiredTables lists the tables the engine needs for a query: the entity
// table first, then the aggregated tables in text order, then every other
// table with a time column and a foreign key to the entity table (feature
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
	for _, a := range q.Aggregations() {
		add(a.Table)
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
