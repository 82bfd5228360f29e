// Package pql parses and checks Ferry's predictive query language, the
// query form data teams know from Kumo:
//
//	PREDICT COUNT(orders.*, 0, 30, days) = 0
//	FOR EACH customers.customer_id
//	WHERE COUNT(orders.*, -90, 0, days) > 0
//
// A query names a target, the entities it is predicted for (a table and its
// primary key), an optional entity filter (WHERE) and optional assumptions
// (ASSUMING). Aggregations such as COUNT(orders.*, 0, 30, days) summarize the
// rows of a related table whose time lies in a window (t+start, t+end]
// relative to an anchor time t. The target's windows lie in the future
// (start >= 0), WHERE windows in the past (end <= 0), so that entity
// filters, like features, see only data at or before t.
//
// The target decides the task (Query.Task): a condition (COUNT(...) > 0,
// customers.segment = 'gold') is binary classification; a bare numeric
// aggregation or numeric column is regression; a bare string column or
// MIN/MAX/FIRST/LAST of a string column is multiclass classification;
// LIST_DISTINCT(orders.product_id, 0, 30, days) RANK TOP 10 is
// recommendation (the k items each entity is most likely to have).
//
// docs/pql.md has the grammar and an example of each form. Errors carry the
// line and column and say what was expected; names not in the graph are
// reported with the nearest valid one. The parser never panics (it is
// fuzzed) and bounds the text, nesting and list lengths it accepts.
package pql

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Unit is a time unit of a window.
type Unit string

// Supported units. Hours, days and weeks are fixed lengths (UTC); months
// are calendar months, as SQL's INTERVAL 'n months': the anchor's day of
// the month, or the month's last day when it has fewer days (January 31 +
// 1 month is February 28 or 29).
const (
	Hours  Unit = "hours"
	Days   Unit = "days"
	Weeks  Unit = "weeks"
	Months Unit = "months"
)

// Fixed reports whether the unit has a fixed length (all but months).
func (u Unit) Fixed() bool { return u != Months }

// Duration returns the length of n units; for months it is n × 30 days,
// an approximation used only to bound windows (Add is exact).
func (u Unit) Duration(n int) time.Duration {
	switch u {
	case Hours:
		return time.Duration(n) * time.Hour
	case Weeks:
		return time.Duration(n) * 7 * 24 * time.Hour
	case Months:
		return time.Duration(n) * 30 * 24 * time.Hour
	default:
		return time.Duration(n) * 24 * time.Hour
	}
}

// Add returns t moved by n units.
func (u Unit) Add(t time.Time, n int) time.Time {
	if u != Months {
		return t.Add(u.Duration(n))
	}
	y, m, d := t.Date()
	first := time.Date(y, m+time.Month(n), 1, t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), t.Location())
	last := time.Date(first.Year(), first.Month()+1, 0, 0, 0, 0, 0, t.Location()).Day()
	return first.AddDate(0, 0, min(d, last)-1)
}

// Pos is a 1-based position in the query text; Col counts characters (runes),
// not bytes.
type Pos struct {
	Line int
	Col  int
}

// Expr is a node of a target or a condition: *Aggregation, *Column,
// *Literal, *Binary, *Logical, *Not, *In or *IsNull.
type Expr interface {
	// Position is where the node starts in the query text.
	Position() Pos
	// String is the node's canonical text.
	String() string
	expr()
}

// Aggregation functions.
const (
	FuncCount         = "COUNT"
	FuncCountDistinct = "COUNT_DISTINCT"
	FuncSum           = "SUM"
	FuncAvg           = "AVG"
	FuncMin           = "MIN"
	FuncMax           = "MAX"
	FuncFirst         = "FIRST"
	FuncLast          = "LAST"
	FuncExists        = "EXISTS"
	FuncListDistinct  = "LIST_DISTINCT"
)

// Aggregation is FUNC(table.column [WHERE condition], start, end, unit): it
// aggregates the rows of Table whose time lies in (t+start, t+end] for an
// anchor time t and, when Where is set, for which Where holds.
type Aggregation struct {
	Func   string // one of the Func constants
	Table  string
	Column string // "*" for COUNT(table.*) and EXISTS(table.*)
	// Where filters the aggregated rows; it uses only Table's columns.
	Where Expr
	Start int
	End   int
	Unit  Unit
	At    Pos // where the function name is
	// TablePos and ColumnPos are where the table and column names are:
	// errors about them point there.
	TablePos  Pos
	ColumnPos Pos
}

// Position returns where the aggregation starts.
func (a *Aggregation) Position() Pos { return a.At }

// String returns the canonical text, e.g. COUNT(orders.*, 0, 30, days).
func (a *Aggregation) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s(%s.%s", a.Func, quoteIdent(a.Table, false), colString(a.Column))
	if a.Where != nil {
		b.WriteString(" WHERE ")
		b.WriteString(a.Where.String())
	}
	fmt.Fprintf(&b, ", %d, %d, %s)", a.Start, a.End, a.Unit)
	return b.String()
}

func (*Aggregation) expr() {}

// Window returns the window's bounds relative to an anchor at t.
func (a *Aggregation) Window(t time.Time) (start, end time.Time) {
	return a.Unit.Add(t, a.Start), a.Unit.Add(t, a.End)
}

func colString(c string) string {
	if c == "*" {
		return c
	}
	return quoteIdent(c, false)
}

// Column is table.column outside an aggregation: a column of the entity
// table (a static value of the entity) or, inside an aggregation's WHERE, a
// column of the aggregated row.
type Column struct {
	Table, Name string
	At          Pos // where the table name is
	NameAt      Pos // where the column name is
}

// Position returns where the reference starts.
func (c *Column) Position() Pos { return c.At }

// String returns table.column, quoted where needed.
func (c *Column) String() string { return quoteIdent(c.Table, false) + "." + quoteIdent(c.Name, false) }

func (*Column) expr() {}

// LiteralKind says what a literal holds.
type LiteralKind int

// Literal kinds.
const (
	LitNumber LiteralKind = iota
	LitString
	LitBool
	LitNull
)

// Literal is a constant: a number, a 'string', TRUE or FALSE, or NULL.
type Literal struct {
	Kind LiteralKind
	Num  float64
	Str  string
	Bool bool
	At   Pos
}

// Position returns where the literal is.
func (l *Literal) Position() Pos { return l.At }

// String returns the canonical text: numbers in shortest form, strings in
// single quotes, a quote inside doubled.
func (l *Literal) String() string {
	switch l.Kind {
	case LitNumber:
		return strconv.FormatFloat(l.Num, 'g', -1, 64)
	case LitString:
		return "'" + strings.ReplaceAll(l.Str, "'", "''") + "'"
	case LitBool:
		if l.Bool {
			return "TRUE"
		}
		return "FALSE"
	}
	return "NULL"
}

func (*Literal) expr() {}

// Binary operators: comparisons and string matches.
const (
	OpGT         = ">"
	OpGE         = ">="
	OpLT         = "<"
	OpLE         = "<="
	OpEQ         = "="
	OpNE         = "!="
	OpLike       = "LIKE"
	OpNotLike    = "NOT LIKE"
	OpContains   = "CONTAINS"
	OpStartsWith = "STARTS WITH"
	OpEndsWith   = "ENDS WITH"
)

// IsComparison reports whether op is one of =, !=, <, <=, >, >=.
func IsComparison(op string) bool {
	switch op {
	case OpGT, OpGE, OpLT, OpLE, OpEQ, OpNE:
		return true
	}
	return false
}

// Binary is "Left Op Right": a comparison ("<>" reads as "!=", "==" as "=")
// or a string match whose Right is a string literal.
type Binary struct {
	Op          string
	Left, Right Expr
	At          Pos
}

// Position returns where the left operand starts.
func (b *Binary) Position() Pos { return b.At }

// String returns "left op right".
func (b *Binary) String() string { return b.Left.String() + " " + b.Op + " " + b.Right.String() }

func (*Binary) expr() {}

// Logical is Terms joined by AND or OR (two or more terms).
type Logical struct {
	Op    string // "AND" or "OR"
	Terms []Expr
	At    Pos
}

// Position returns where the first term starts.
func (l *Logical) Position() Pos { return l.At }

// String joins the terms; an OR inside an AND is parenthesized.
func (l *Logical) String() string {
	parts := make([]string, len(l.Terms))
	for i, t := range l.Terms {
		parts[i] = t.String()
		if in, ok := t.(*Logical); ok && in.Op == "OR" && l.Op == "AND" {
			parts[i] = "(" + parts[i] + ")"
		}
	}
	return strings.Join(parts, " "+l.Op+" ")
}

func (*Logical) expr() {}

// Not is NOT X.
type Not struct {
	X  Expr
	At Pos
}

// Position returns where NOT is.
func (n *Not) Position() Pos { return n.At }

// String returns NOT x, parenthesizing an AND or OR.
func (n *Not) String() string {
	if _, ok := n.X.(*Logical); ok {
		return "NOT (" + n.X.String() + ")"
	}
	return "NOT " + n.X.String()
}

func (*Not) expr() {}

// In is X [NOT] IN (literal, ...).
type In struct {
	X       Expr
	List    []*Literal
	Negated bool
	At      Pos
}

// Position returns where X starts.
func (n *In) Position() Pos { return n.At }

// String returns "x IN (a, b)".
func (n *In) String() string {
	parts := make([]string, len(n.List))
	for i, l := range n.List {
		parts[i] = l.String()
	}
	op := " IN ("
	if n.Negated {
		op = " NOT IN ("
	}
	return n.X.String() + op + strings.Join(parts, ", ") + ")"
}

func (*In) expr() {}

// IsNull is X IS [NOT] NULL.
type IsNull struct {
	X       Expr
	Negated bool
	At      Pos
}

// Position returns where X starts.
func (n *IsNull) Position() Pos { return n.At }

// String returns "x IS NULL" or "x IS NOT NULL".
func (n *IsNull) String() string {
	if n.Negated {
		return n.X.String() + " IS NOT NULL"
	}
	return n.X.String() + " IS NULL"
}

func (*IsNull) expr() {}

// Target is what a query predicts: a bare value (an aggregation over a
// future window, or a column of the entity table) or a condition over such
// values. TopK is set (> 0) for LIST_DISTINCT(...) RANK TOP k.
type Target struct {
	Expr Expr
	TopK int
	At   Pos
}

// String returns the canonical text.
func (t Target) String() string {
	if t.TopK > 0 {
		return fmt.Sprintf("%s RANK TOP %d", t.Expr, t.TopK)
	}
	return t.Expr.String()
}

// EntityRef is FOR EACH table.column: the entities and their key.
type EntityRef struct {
	Table  string
	Column string
	Pos    Pos // where the table name is in the query text
	// ColumnPos is where the key column's name is.
	ColumnPos Pos
}

// Query is a parsed predictive query.
type Query struct {
	Target Target
	Entity EntityRef
	// Where filters the entities (nil: every entity). It uses the entity
	// table's columns and aggregations over past windows.
	Where Expr
	// Assuming states conditions over future windows that training
	// examples must meet and that are taken to hold when scoring (nil:
	// none).
	Assuming Expr
	// Text is the query as given.
	Text string
}

// String returns the query in canonical form.
func (q *Query) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "PREDICT %s FOR EACH %s.%s", q.Target, quoteIdent(q.Entity.Table, false), quoteIdent(q.Entity.Column, false))
	if q.Where != nil {
		b.WriteString(" WHERE ")
		b.WriteString(q.Where.String())
	}
	if q.Assuming != nil {
		b.WriteString(" ASSUMING ")
		b.WriteString(q.Assuming.String())
	}
	return b.String()
}

// Aggregations returns every aggregation in the query (target, WHERE,
// ASSUMING), outermost first, in text order.
func (q *Query) Aggregations() []*Aggregation {
	var out []*Aggregation
	for _, e := range []Expr{q.Target.Expr, q.Where, q.Assuming} {
		Walk(e, func(x Expr) {
			if a, ok := x.(*Aggregation); ok {
				out = append(out, a)
			}
		})
	}
	return out
}

// Walk calls fn for e and every node below it, parents first; an
// aggregation's WHERE is visited after the aggregation. A nil e is skipped.
func Walk(e Expr, fn func(Expr)) {
	if e == nil {
		return
	}
	fn(e)
	switch n := e.(type) {
	case *Aggregation:
		Walk(n.Where, fn)
	case *Binary:
		Walk(n.Left, fn)
		Walk(n.Right, fn)
	case *Logical:
		for _, t := range n.Terms {
			Walk(t, fn)
		}
	case *Not:
		Walk(n.X, fn)
	case *In:
		Walk(n.X, fn)
	case *IsNull:
		Walk(n.X, fn)
	}
}

// Conjuncts splits e into the terms of its top-level ANDs (e itself when it
// is not an AND; nothing when e is nil).
func Conjuncts(e Expr) []Expr {
	if e == nil {
		return nil
	}
	if l, ok := e.(*Logical); ok && l.Op == "AND" {
		return l.Terms
	}
	return []Expr{e}
}

// Compare evaluates "a op b" for a numeric comparison operator; any other
// operator is false.
func Compare(a float64, op string, b float64) bool {
	switch op {
	case OpGT:
		return a > b
	case OpGE:
		return a >= b
	case OpLT:
		return a < b
	case OpLE:
		return a <= b
	case OpEQ:
		return a == b
	case OpNE:
		return a != b
	}
	return false
}

// SyntaxError is a parse error at a position.
type SyntaxError struct {
	Line int
	Col  int
	Msg  string
}

// Error returns "pql: line L, column C: message".
func (e *SyntaxError) Error() string {
	return fmt.Sprintf("pql: line %d, column %d: %s", e.Line, e.Col, e.Msg)
}

// quoteIdent renders an identifier, quoted when it is not a plain one or is
// a keyword (or always when force is set).
func quoteIdent(s string, force bool) string {
	plain := s != "" && !isKeyword(s)
	for i, r := range s {
		if !(isIdentStart(r) || (i > 0 && isIdentPart(r))) {
			plain = false
			break
		}
	}
	if plain && !force {
		return s
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// keywords are the reserved words (upper case): a name spelled like one is
// quoted in canonical text so that it stays a name.
var keywords = map[string]bool{
	"PREDICT": true, "FOR": true, "EACH": true, "WHERE": true, "ASSUMING": true,
	"AND": true, "OR": true, "NOT": true, "IN": true, "IS": true, "NULL": true,
	"TRUE": true, "FALSE": true, "LIKE": true, "CONTAINS": true, "STARTS": true,
	"ENDS": true, "WITH": true, "RANK": true, "TOP": true,
	FuncCount: true, FuncCountDistinct: true, FuncSum: true, FuncAvg: true, FuncMin: true,
	FuncMax: true, FuncFirst: true, FuncLast: true, FuncExists: true, FuncListDistinct: true,
	"HOURS": true, "DAYS": true, "WEEKS": true, "MONTHS": true,
	"HOUR": true, "DAY": true, "WEEK": true, "MONTH": true,
}

// isKeyword reports whether s is a reserved word, case-insensitively.
func isKeyword(s string) bool { return len(s) <= 14 && keywords[strings.ToUpper(s)] }
