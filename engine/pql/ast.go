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
	Pos    Pos
}

// Window returns the window's bounds relative to the anchor.
func (a Aggregation) Window() (start, end time.Duration) {
	return a.Unit.Duration(a.Start), a.Unit.Duration(a.End)
}

func (a Aggregation) String() string {
	return fmt.Sprintf("%s(%s.%s, %d, %d, %s)", a.Func, quoteIdent(a.Table, false), colString(a.Column), a.Start, a.End, a.Unit)
}

func colString(c string) string {
	if c == "*" {
		return c
	}
	return quoteIdent(c, false)
}

// Comparison is an aggregation compared with a number.
type Comparison struct {
	Agg   Aggregation
	Op    string // one of > >= < <= = !=
	Value float64
	Pos   Pos
}

func (c Comparison) String() string {
	return fmt.Sprintf("%s %s %s", c.Agg, c.Op, strconv.FormatFloat(c.Value, 'g', -1, 64))
}

// Holds reports whether the comparison holds for the value v.
func (c Comparison) Holds(v float64) bool {
	switch c.Op {
	case ">":
		return v > c.Value
	case ">=":
		return v >= c.Value
	case "<":
		return v < c.Value
	case "<=":
		return v <= c.Value
	case "=":
		return v == c.Value
	case "!=":
		return v != c.Value
	}
	return false
}

// FewerIsPositive reports whether a smaller aggregate makes the comparison
// more likely to hold (= 0, <, <=), which orients count-based baselines.
func (c Comparison) FewerIsPositive() bool {
	switch c.Op {
	case "<", "<=":
		return true
	case "=":
		return c.Value <= 0
	}
	return false
}

// EntityRef is FOR EACH table.column: the entities and their key.
type EntityRef struct {
	Table  string
	Column string
	Pos    Pos
}

// Query is a parsed predictive query.
type Query struct {
	Target Comparison
	Entity EntityRef
	// Filters are the WHERE conditions, all of which must hold (AND).
	Filters []Comparison
	// Text is the query as given.
	Text string
}

// TaskType names the learning task the query asks for.
func (q *Query) TaskType() string { return "binary_classification" }

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

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("pql: line %d, column %d: %s", e.Line, e.Col, e.Msg)
}

// quoteIdent renders an identifier, quoted when it is not a plain one (or
// always when force is set).
func quoteIdent(s string, force bool) string {
	plain := s != "" && !keywords[strings.ToUpper(s)]
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

var keywords = map[string]bool{"PREDICT": true, "FOR": true, "EACH": true, "WHERE": true, "AND": true, "COUNT": true}
