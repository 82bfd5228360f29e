package train

import (
	"errors"
	"fmt"
	"time"

	"github.com/ferry-ai/ferry/engine/pql"
)

// ErrUnsupported is returned (wrapped) for a valid query whose form this
// trainer does not handle yet.
var ErrUnsupported = errors.New("not supported by this trainer yet")

// countForm is the query form this trainer handles: a count of a related
// table's rows over a future window compared with a number (binary
// classification), for each entity, with WHERE conditions that AND such
// comparisons over past windows. Windows are in hours, days or weeks.
// Package pql parses the whole language; the other forms are refused with
// ErrUnsupported, naming the part that is not handled.
type countForm struct {
	target  countCmp
	filters []countCmp
}

// countCmp is COUNT(table.*, start, end, unit) op value.
type countCmp struct {
	table  string
	lo, hi time.Duration // the window (t+lo, t+hi]
	op     string
	value  float64
}

func (c countCmp) holds(n float64) bool { return pql.Compare(n, c.op, c.value) }

// fewerIsPositive reports whether a smaller count makes the comparison more
// likely to hold (= 0, <, <=), which orients the count baseline.
func (c countCmp) fewerIsPositive() bool {
	switch c.op {
	case pql.OpLT, pql.OpLE:
		return true
	case pql.OpEQ:
		return c.value <= 0
	}
	return false
}

// formOf maps a parsed query onto countForm.
func formOf(q *pql.Query) (countForm, error) {
	var f countForm
	t, err := countComparison(q.Target.Expr, "target")
	if err != nil {
		return f, err
	}
	f.target = t
	for _, c := range pql.Conjuncts(q.Where) {
		fc, err := countComparison(c, "WHERE condition")
		if err != nil {
			return f, err
		}
		f.filters = append(f.filters, fc)
	}
	if q.Assuming != nil {
		return f, unsupported(q.Assuming, "ASSUMING")
	}
	return f, nil
}

func countComparison(e pql.Expr, role string) (countCmp, error) {
	b, ok := e.(*pql.Binary)
	if !ok || !pql.IsComparison(b.Op) {
		return countCmp{}, unsupported(e, "a "+role+" that is not a comparison of COUNT(table.*) with a number")
	}
	a, ok1 := b.Left.(*pql.Aggregation)
	v, ok2 := b.Right.(*pql.Literal)
	if !ok1 || !ok2 || v.Kind != pql.LitNumber {
		return countCmp{}, unsupported(e, "a "+role+" that is not COUNT(table.*, ...) compared with a number")
	}
	if a.Func != pql.FuncCount || a.Column != "*" || a.Where != nil {
		return countCmp{}, unsupported(a, "a "+role+" aggregating with "+a.Func+" (only COUNT(table.*) without a WHERE is)")
	}
	if !a.Unit.Fixed() {
		return countCmp{}, unsupported(a, "a "+role+" window in months")
	}
	return countCmp{table: a.Table, lo: a.Unit.Duration(a.Start), hi: a.Unit.Duration(a.End), op: b.Op, value: v.Num}, nil
}

func unsupported(e pql.Expr, what string) error {
	p := e.Position()
	return fmt.Errorf("pql: line %d, column %d: %s: %w", p.Line, p.Col, what, ErrUnsupported)
}
