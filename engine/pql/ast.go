// Package pql parses and checks Ferry's predictive query language, the
// query form data teams know from Kumo:
//
//	PREDICT COUNT(orders.*, 0, 30, days) = 0
//	FOR EACH customers.customer_id
//	WHERE COUNT(orders.*, -90, 0, days) > 0
//
// A target aggregates a related table over a window relative to an anchor
// time t: COUNT(orders.*, 0, 30, days) counts orders with time in
// (t+0, t+30d]. Comparing it with a number makes a binary classification
// task. WHERE conditions choose the entities scored at t; their windows lie
// in the past (end <= 0), so they use only data at or before t.
//
// The skeleton supports COUNT(table.*) targets and filters; docs/pql.md has
// the grammar. Errors carry the line and column and say what was expected.
// The parser never panics (it is fuzzed).
package pql

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Unit is a time unit of a window.
type Unit string

// Supported units.
const (
	Hours Unit = "hours"
	Days  Unit = "days"
	Weeks Unit = "weeks"
)

// Duration returns the length of n units.
func (u Unit) Duration(n int) time.Duration {
	switch u {
	case Hours:
		return time.Duration(n) * time.Hour
	case Weeks:
		return time.Duration(n) * 7 * 24 * time.Hour
	default:
		return time.Duration(n) * 24 * time.Hour
	}
}

// Aggregation is FUNC(table.column, start, end, unit): it aggregates the rows
// of Table whose time lies in (t+start, t+end] for an anchor time t.
type Aggregation struct {
	Func   string // "COUNT"
	Table  string
	Column string // "*" for COUNT(table.*)
	Start  int
	End    int
	Unit   Unit
	Pos    Pos // where the aggregation starts in the query text
	// TablePos is where the table name is: errors about the table point there.
	TablePos Pos
}

// Window returns the window's bounds relative to the anchor.
func (a Aggregation) Window() (start, end time.Duration) {
	return a.Unit.Duration(a.Start), a.Unit.Duration(a.End)
}

// String returns the canonical text, e.g. COUNT(orders.*, 0, 30, days).
func (a Aggregation) String() string {
	return fmt.Sprintf("%s(%s.%s, %d, %d, %s)", a.Func, quoteIdent(a.Table, false), colString(a.Column), a.Start, a.End, a.Unit)
}

func colString(c string) string {
	if c == "*" {
		return c
	}
	return quoteIdent(c, false)
}

// Comparison operators, as they appear in canonical text ("<>" is read as
// "!=" and "==" as "=").
const (
	OpGT = ">"
	OpGE = ">="
	OpLT = "<"
	OpLE = "<="
	OpEQ = "="
	OpNE = "!="
)

// TaskBinaryClassification is the task type of a target that compares an
// aggregation with a number.
const TaskBinaryClassification = "binary_classification"

// Target is what a query predicts: for now an aggregation over a future
// window compared with a number, which makes a binary label. Later forms
// (bare aggregations for regression, static columns, RANK TOP k) add fields.
type Target struct {
	Agg   Aggregation
	Op    string // one of the Op constants
	Value float64
	Pos   Pos // where the target starts in the query text
}

// String returns the canonical text, e.g. COUNT(orders.*, 0, 30, days) = 0.
func (c Target) String() string { return comparisonString(c.Agg, c.Op, c.Value) }

// Holds reports whether the target's comparison holds for the aggregate v,
// that is, whether the label is positive.
func (c Target) Holds(v float64) bool { return Compare(v, c.Op, c.Value) }

// FewerIsPositive reports whether a smaller aggregate makes the label more
// likely to be positive (= 0, <, <=), which orients count-based baselines.
func (c Target) FewerIsPositive() bool {
	switch c.Op {
	case OpLT, OpLE:
		return true
	case OpEQ:
		return c.Value <= 0
	}
	return false
}

// Condition is one WHERE filter: an aggregation over a past window compared
// with a number.
type Condition struct {
	Agg   Aggregation
	Op    string // one of the Op constants
	Value float64
	Pos   Pos // where the condition starts in the query text
}

// String returns the canonical text, e.g. COUNT(orders.*, -90, 0, days) > 0.
func (c Condition) String() string { return comparisonString(c.Agg, c.Op, c.Value) }

// Holds reports whether the condition holds for the aggregate v.
func (c Condition) Holds(v float64) bool { return Compare(v, c.Op, c.Value) }

// Compare evaluates "a op b" for one of the Op constants; an unknown operator
// is false.
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

func comparisonString(a Aggregation, op string, v float64) string {
	return fmt.Sprintf("%s %s %s", a, op, strconv.FormatFloat(v, 'g', -1, 64))
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
	// Filters are the WHERE conditions, all of which must hold (AND).
	Filters []Condition
	// Text is the query as given.
	Text string
}

// TaskType names the learning task the query asks for: a comparison target is
// TaskBinaryClassification (the only form this version parses).
func (q *Query) TaskType() string { return TaskBinaryClassification }

// String returns the query in canonical form.
func (q *Query) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "PREDICT %s FOR EACH %s.%s", q.Target, quoteIdent(q.Entity.Table, false), quoteIdent(q.Entity.Column, false))
	for i, f := range q.Filters {
		if i == 0 {
			b.WriteString(" WHERE ")
		} else {
			b.WriteString(" AND ")
		}
		b.WriteString(f.String())
	}
	return b.String()
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

// isKeyword reports whether s is a reserved word (case-insensitively),
// including those of the full language that this version refuses: a name
// spelled like one is quoted in canonical text so that it stays a name.
func isKeyword(s string) bool {
	switch strings.ToUpper(s) {
	case "PREDICT", "FOR", "EACH", "WHERE", "AND", "OR", "NOT", "COUNT", "SUM", "AVG", "MIN", "MAX",
		"COUNT_DISTINCT", "FIRST", "LAST", "EXISTS", "LIST_DISTINCT", "RANK", "TOP", "ASSUMING", "IN", "IS", "NULL":
		return true
	}
	return false
}
