package plan

import (
	"fmt"
	"strings"

	"github.com/ferry-ai/ferry/engine/pql"
	"github.com/ferry-ai/ferry/internal/graph"
)

// Aliases in the rendered SQL: c is an example (entity_id, anchor_time,
// split), e its entity row, x an aggregated row, h the row between x and
// the entity on two hops.
const (
	aliasExample = "c"
	aliasEntity  = "e"
	aliasRow     = "x"
	aliasHop     = "h"
)

// TrainingSQL renders the query returning the training table: split,
// anchor_time, entity_id, label (an integer 0/1 for binary classification
// and recommendation — whether the entity has any item in the window —, a
// double for regression, a string for multiclass; null for score rows),
// baseline (the target over the window just before the anchor, of the
// label's type: the "same as last time" forecast; null for static and
// recommendation targets), then one column per feature (doubles, or text
// for Static text features), ordered by anchor time and entity.
func (p *Plan) TrainingSQL(d Dialect) (string, error) {
	r := &renderer{p: p, d: d}
	var b strings.Builder
	if err := r.examples(&b); err != nil {
		return "", err
	}
	for i, s := range p.Sources {
		fmt.Fprintf(&b, ",\nf%d AS (\n", i)
		if err := r.source(&b, i, s); err != nil {
			return "", err
		}
		b.WriteString(")")
	}
	b.WriteString("\nSELECT k.split, k.anchor_time, k.entity_id, k.label, k.baseline")
	for fi, f := range p.Features {
		b.WriteString(",\n  ")
		b.WriteString(r.featureColumn(fi, f))
		b.WriteString(" AS ")
		b.WriteString(quote(f.Name))
	}
	fmt.Fprintf(&b, "\nFROM kept k JOIN %s %s ON %s = k.entity_id", quote(p.Entity.Name), aliasEntity, col(aliasEntity, p.Query.Entity.Column))
	for i := range p.Sources {
		fmt.Fprintf(&b, "\nLEFT JOIN f%d ON f%d.entity_id = k.entity_id AND f%d.anchor_time = k.anchor_time", i, i, i)
	}
	b.WriteString("\nORDER BY k.anchor_time, k.entity_id")
	return b.String(), nil
}

// PositivesSQL renders, for a recommendation, the items of each kept
// example's target window: rows of split, anchor_time, entity_id, item.
func (p *Plan) PositivesSQL(d Dialect) (string, error) {
	a, ok := p.Query.Target.Expr.(*pql.Aggregation)
	if !ok || a.Func != pql.FuncListDistinct {
		return "", fmt.Errorf("plan: %s is not a recommendation", p.Query.Target)
	}
	r := &renderer{p: p, d: d}
	var b strings.Builder
	if err := r.examples(&b); err != nil {
		return "", err
	}
	from, where, err := r.window(a, "k")
	if err != nil {
		return "", err
	}
	fmt.Fprintf(&b, "\nSELECT DISTINCT k.split, k.anchor_time, k.entity_id, %s AS item\nFROM kept k JOIN %s ON %s\nWHERE k.split <> 'score' AND %s IS NOT NULL\nORDER BY k.anchor_time, k.entity_id, item",
		col(aliasRow, a.Column), strings.TrimPrefix(from, "FROM "), where, col(aliasRow, a.Column))
	return b.String(), nil
}

type renderer struct {
	p *Plan
	d Dialect
}

// examples writes the CTEs up to kept: anchors, candidates (entities that
// exist at each anchor), examples (with label and assumption, filtered by
// WHERE) and kept (the examples with a label whose assumption held, and
// every score example).
func (r *renderer) examples(b *strings.Builder) error {
	p := r.p
	b.WriteString("WITH anchors(anchor_time, split) AS (VALUES ")
	for i, a := range p.Anchors {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(b, "(%s, %s)", timestamp(a.Time), str(string(a.Split)))
	}
	b.WriteString("),\ncandidates AS (\n")
	key := col(aliasEntity, p.Query.Entity.Column)
	fmt.Fprintf(b, "  SELECT %s AS entity_id, a.anchor_time, a.split FROM %s %s CROSS JOIN anchors a\n  WHERE %s IS NOT NULL", key, quote(p.Entity.Name), aliasEntity, key)
	if tc := p.Entity.TimeColumn; tc != "" {
		fmt.Fprintf(b, " AND %s <= a.anchor_time", col(aliasEntity, tc))
	}
	b.WriteString("),\nexamples AS (\n")
	label, err := r.label()
	if err != nil {
		return err
	}
	baseline, err := r.baseline()
	if err != nil {
		return err
	}
	fmt.Fprintf(b, "  SELECT c.entity_id, c.anchor_time, c.split,\n    CASE WHEN c.split = 'score' THEN NULL ELSE %s END AS label,\n    %s AS baseline", label, baseline)
	assumed := "TRUE"
	if p.Query.Assuming != nil {
		if assumed, err = r.expr(p.Query.Assuming, scope{alias: aliasEntity, table: p.Entity}); err != nil {
			return err
		}
	}
	fmt.Fprintf(b, ",\n    CASE WHEN c.split = 'score' THEN TRUE ELSE %s END AS assumed", assumed)
	fmt.Fprintf(b, "\n  FROM candidates c JOIN %s %s ON %s = c.entity_id", quote(p.Entity.Name), aliasEntity, key)
	if p.Query.Where != nil {
		w, err := r.expr(p.Query.Where, scope{alias: aliasEntity, table: p.Entity})
		if err != nil {
			return err
		}
		fmt.Fprintf(b, "\n  WHERE %s", w)
	}
	b.WriteString("),\nkept AS (\n  SELECT entity_id, anchor_time, split, label, baseline FROM examples\n  WHERE split = 'score' OR (label IS NOT NULL AND assumed")
	if p.Task == pql.TaskRecommendation {
		b.WriteString(" AND label = 1")
	}
	b.WriteString("))")
	return nil
}

// label renders the target as the label column's value.
func (r *renderer) label() (string, error) { return r.target(r.p.Query.Target.Expr) }

// baseline renders the target with every aggregation's window moved back
// to end at the anchor: COUNT(orders.*, 0, 30, days) becomes COUNT(orders.*,
// -30, 0, days). Static and recommendation targets have none (NULL).
func (r *renderer) baseline() (string, error) {
	if r.p.Task == pql.TaskRecommendation || len(r.p.Query.Aggregations()) == 0 {
		return "NULL", nil
	}
	// Only the target's aggregations: WHERE and ASSUMING are not part of it.
	if !hasAggregation(r.p.Query.Target.Expr) {
		return "NULL", nil
	}
	return r.target(shiftBack(r.p.Query.Target.Expr))
}

func hasAggregation(e pql.Expr) bool {
	found := false
	pql.Walk(e, func(x pql.Expr) {
		if _, ok := x.(*pql.Aggregation); ok {
			found = true
		}
	})
	return found
}

// shiftBack returns a copy of e whose aggregations' windows end at the
// anchor, keeping their length.
func shiftBack(e pql.Expr) pql.Expr {
	switch n := e.(type) {
	case *pql.Aggregation:
		c := *n
		c.Start, c.End = n.Start-n.End, 0
		return &c
	case *pql.Binary:
		c := *n
		c.Left, c.Right = shiftBack(n.Left), shiftBack(n.Right)
		return &c
	case *pql.Logical:
		c := *n
		c.Terms = make([]pql.Expr, len(n.Terms))
		for i, t := range n.Terms {
			c.Terms[i] = shiftBack(t)
		}
		return &c
	case *pql.Not:
		c := *n
		c.X = shiftBack(n.X)
		return &c
	case *pql.In:
		c := *n
		c.X = shiftBack(n.X)
		return &c
	case *pql.IsNull:
		c := *n
		c.X = shiftBack(n.X)
		return &c
	}
	return e
}

// target renders a target expression as a label-typed value.
func (r *renderer) target(t pql.Expr) (string, error) {
	if a, ok := t.(*pql.Aggregation); ok && a.Func == pql.FuncListDistinct {
		// Whether the entity has any item in the window.
		from, where, err := r.window(a, aliasExample)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("CAST(EXISTS (SELECT 1 %s WHERE %s AND %s IS NOT NULL) AS INTEGER)", from, where, col(aliasRow, a.Column)), nil
	}
	v, err := r.expr(t, scope{alias: aliasEntity, table: r.p.Entity})
	if err != nil {
		return "", err
	}
	switch r.p.Task {
	case pql.TaskBinaryClassification:
		return "CAST(" + v + " AS INTEGER)", nil
	case pql.TaskRegression:
		return "CAST(" + v + " AS " + r.d.Double() + ")", nil
	case pql.TaskMulticlassClassification:
		return "CAST(" + v + " AS " + r.d.Text() + ")", nil
	}
	return "", fmt.Errorf("plan: no label for task %s", r.p.Task)
}

// scope says what a column reference means: a column of table under alias.
type scope struct {
	alias string
	table *graph.Table
}

// expr renders a condition or a value.
func (r *renderer) expr(e pql.Expr, s scope) (string, error) {
	switch n := e.(type) {
	case *pql.Literal:
		return literal(n), nil
	case *pql.Column:
		return col(s.alias, n.Name), nil
	case *pql.Aggregation:
		return r.aggregation(n)
	case *pql.Binary:
		left, err := r.expr(n.Left, s)
		if err != nil {
			return "", err
		}
		right, err := r.operand(n.Right, n.Left, s)
		if err != nil {
			return "", err
		}
		if l, ok := n.Left.(*pql.Literal); ok {
			left = r.timeLiteral(l, n.Right, s)
		}
		switch n.Op {
		case pql.OpEQ, pql.OpNE, pql.OpLT, pql.OpLE, pql.OpGT, pql.OpGE:
			op := n.Op
			if op == pql.OpNE {
				op = "<>"
			}
			return "(" + left + " " + op + " " + right + ")", nil
		case pql.OpLike:
			return "(" + left + " LIKE " + right + ")", nil
		case pql.OpNotLike:
			return "(" + left + " NOT LIKE " + right + ")", nil
		case pql.OpContains:
			return "(strpos(" + left + ", " + right + ") > 0)", nil
		case pql.OpStartsWith:
			return "starts_with(" + left + ", " + right + ")", nil
		case pql.OpEndsWith:
			return "(right(" + left + ", length(" + right + ")) = " + right + ")", nil
		}
		return "", fmt.Errorf("plan: operator %s", n.Op)
	case *pql.Logical:
		parts := make([]string, len(n.Terms))
		for i, t := range n.Terms {
			p, err := r.expr(t, s)
			if err != nil {
				return "", err
			}
			parts[i] = p
		}
		return "(" + strings.Join(parts, " "+n.Op+" ") + ")", nil
	case *pql.Not:
		x, err := r.expr(n.X, s)
		if err != nil {
			return "", err
		}
		return "(NOT " + x + ")", nil
	case *pql.In:
		x, err := r.expr(n.X, s)
		if err != nil {
			return "", err
		}
		parts := make([]string, len(n.List))
		for i, l := range n.List {
			parts[i] = r.timeLiteral(l, n.X, s)
		}
		op := " IN ("
		if n.Negated {
			op = " NOT IN ("
		}
		return "(" + x + op + strings.Join(parts, ", ") + "))", nil
	case *pql.IsNull:
		x, err := r.expr(n.X, s)
		if err != nil {
			return "", err
		}
		if n.Negated {
			return "(" + x + " IS NOT NULL)", nil
		}
		return "(" + x + " IS NULL)", nil
	}
	return "", fmt.Errorf("plan: unexpected node %T", e)
}

// operand renders the right side of a comparison; a string constant
// compared with a time becomes a TIMESTAMP.
func (r *renderer) operand(e, other pql.Expr, s scope) (string, error) {
	if l, ok := e.(*pql.Literal); ok {
		return r.timeLiteral(l, other, s), nil
	}
	return r.expr(e, s)
}

// timeLiteral renders l, as a TIMESTAMP when it is a string compared with
// a time-typed column or aggregation.
func (r *renderer) timeLiteral(l *pql.Literal, other pql.Expr, s scope) string {
	if l.Kind == pql.LitString && r.isTimeValued(other, s) {
		if t, err := pql.ParseTime(l.Str); err == nil {
			return timestamp(t)
		}
	}
	return literal(l)
}

func (r *renderer) isTimeValued(e pql.Expr, s scope) bool {
	switch n := e.(type) {
	case *pql.Column:
		return isTime(typeOf(s.table, n.Name))
	case *pql.Aggregation:
		switch n.Func {
		case pql.FuncMin, pql.FuncMax, pql.FuncFirst, pql.FuncLast:
			t, ok := r.p.Graph.Table(n.Table)
			return ok && isTime(typeOf(t, n.Column))
		}
	}
	return false
}

func literal(l *pql.Literal) string {
	switch l.Kind {
	case pql.LitNumber:
		return number(l.Num)
	case pql.LitString:
		return str(l.Str)
	case pql.LitBool:
		if l.Bool {
			return "TRUE"
		}
		return "FALSE"
	}
	return "NULL"
}

// window renders FROM and WHERE of the rows an aggregation takes: its
// table's rows linked to the example's entity, in the window, passing its
// filter.
func (r *renderer) window(a *pql.Aggregation, example string) (from, where string, err error) {
	t, ok := r.p.Graph.Table(a.Table)
	if !ok {
		return "", "", fmt.Errorf("plan: no table %q", a.Table)
	}
	link, ok := linkTo(t, r.p.Entity)
	if !ok {
		return "", "", fmt.Errorf("plan: table %q has no foreign key to %q", a.Table, r.p.Entity.Name)
	}
	anchor := example + ".anchor_time"
	tc := col(aliasRow, t.TimeColumn)
	where = fmt.Sprintf("%s = %s.entity_id AND %s > %s AND %s <= %s",
		col(aliasRow, link), example, tc, shift(anchor, a.Start, a.Unit), tc, shift(anchor, a.End, a.Unit))
	if a.Where != nil {
		f, err := r.expr(a.Where, scope{alias: aliasRow, table: t})
		if err != nil {
			return "", "", err
		}
		where += " AND " + f
	}
	return "FROM " + quote(t.Name) + " " + aliasRow, where, nil
}

// aggregation renders an aggregation as a scalar subquery correlated with
// the example c.
func (r *renderer) aggregation(a *pql.Aggregation) (string, error) {
	from, where, err := r.window(a, aliasExample)
	if err != nil {
		return "", err
	}
	t, _ := r.p.Graph.Table(a.Table)
	v := col(aliasRow, a.Column)
	sub := func(sel string) string { return "(SELECT " + sel + " " + from + " WHERE " + where + ")" }
	switch a.Func {
	case pql.FuncCount:
		if a.Column == "*" {
			return sub("COUNT(*)"), nil
		}
		return sub("COUNT(" + v + ")"), nil
	case pql.FuncCountDistinct:
		return sub("COUNT(DISTINCT " + v + ")"), nil
	case pql.FuncSum:
		return "COALESCE(" + sub("SUM("+r.num(t, a.Column, aliasRow)+")") + ", 0)", nil
	case pql.FuncAvg:
		return sub("AVG(" + r.num(t, a.Column, aliasRow) + ")"), nil
	case pql.FuncMin:
		return sub("MIN(" + v + ")"), nil
	case pql.FuncMax:
		return sub("MAX(" + v + ")"), nil
	case pql.FuncFirst, pql.FuncLast:
		dir := "ASC"
		if a.Func == pql.FuncLast {
			dir = "DESC"
		}
		// Ties in time are broken by the value, so that every dialect
		// picks the same row.
		return fmt.Sprintf("(SELECT %s %s WHERE %s ORDER BY %s %s, %s %s NULLS LAST LIMIT 1)",
			v, from, where, col(aliasRow, t.TimeColumn), dir, v, dir), nil
	case pql.FuncExists:
		if a.Column == "*" {
			return "EXISTS (SELECT 1 " + from + " WHERE " + where + ")", nil
		}
		return "EXISTS (SELECT 1 " + from + " WHERE " + where + " AND " + v + " IS NOT NULL)", nil
	}
	return "", fmt.Errorf("plan: %s cannot be used here", a.Func)
}

// num renders a numeric column as a double (booleans as 0 and 1).
func (r *renderer) num(t *graph.Table, column, alias string) string {
	c := col(alias, column)
	if typeOf(t, column) == "bool" {
		c = "CAST(" + c + " AS INTEGER)"
	}
	return "CAST(" + c + " AS " + r.d.Double() + ")"
}

// source writes the body of a source's feature CTE: its aggregates per
// kept example, over its rows at or before the anchor.
func (r *renderer) source(b *strings.Builder, i int, s Source) error {
	t, ok := r.p.Graph.Table(s.Table)
	if !ok {
		return fmt.Errorf("plan: no table %q", s.Table)
	}
	anchor := aliasExample + ".anchor_time"
	var timeExpr string
	var join string
	if s.Via == nil {
		timeExpr = col(aliasRow, s.TimeColumn)
		join = fmt.Sprintf("JOIN %s %s ON %s = %s.entity_id AND %s <= %s",
			quote(s.Table), aliasRow, col(aliasRow, s.Link), aliasExample, timeExpr, anchor)
	} else {
		hopTime := col(aliasHop, s.Via.TimeColumn)
		join = fmt.Sprintf("JOIN %s %s ON %s = %s.entity_id AND %s <= %s\n  JOIN %s %s ON %s = %s",
			quote(s.Via.Table), aliasHop, col(aliasHop, s.Via.Link), aliasExample, hopTime, anchor,
			quote(s.Table), aliasRow, col(aliasRow, s.Link), col(aliasHop, s.Via.Key))
		timeExpr = hopTime
		if s.TimeColumn != "" {
			timeExpr = col(aliasRow, s.TimeColumn)
			join += fmt.Sprintf(" AND %s <= %s", timeExpr, anchor)
		}
	}
	fmt.Fprintf(b, "  SELECT %s.entity_id, %s.anchor_time", aliasExample, aliasExample)
	for fi, f := range r.p.Features {
		if f.Source != i {
			continue
		}
		var agg string
		filter := ""
		if f.Window > 0 {
			filter = fmt.Sprintf(" FILTER (WHERE %s > %s)", timeExpr, shift(anchor, -f.Window, pql.Days))
		}
		switch f.Kind {
		case Count:
			agg = "COUNT(*)" + filter
		case Sum:
			agg = "SUM(" + r.num(t, f.Column, aliasRow) + ")" + filter
		case Mean:
			agg = "AVG(" + r.num(t, f.Column, aliasRow) + ")" + filter
		case Min:
			agg = "MIN(" + r.num(t, f.Column, aliasRow) + ")" + filter
		case Max:
			agg = "MAX(" + r.num(t, f.Column, aliasRow) + ")" + filter
		case Distinct:
			agg = "COUNT(DISTINCT " + col(aliasRow, f.Column) + ")" + filter
		case SinceLast:
			agg = r.d.Seconds(anchor, "MAX("+timeExpr+")") + " / 86400.0"
		case SinceFirst:
			agg = r.d.Seconds(anchor, "MIN("+timeExpr+")") + " / 86400.0"
		default:
			return fmt.Errorf("plan: feature %s of kind %d in a source", f.Name, f.Kind)
		}
		fmt.Fprintf(b, ",\n    %s AS v%d", agg, fi)
	}
	fmt.Fprintf(b, "\n  FROM kept %s\n  %s\n  GROUP BY %s.entity_id, %s.anchor_time\n", aliasExample, join, aliasExample, aliasExample)
	return nil
}

// featureColumn renders a feature's value in the final SELECT: counts and
// sums of no rows are 0, other aggregates of no rows are null.
func (r *renderer) featureColumn(fi int, f Feature) string {
	switch f.Kind {
	case Static:
		if f.Text {
			return "CAST(" + col(aliasEntity, f.Column) + " AS " + r.d.Text() + ")"
		}
		return r.num(r.p.Entity, f.Column, aliasEntity)
	case Age:
		return r.d.Seconds("k.anchor_time", col(aliasEntity, r.p.Entity.TimeColumn)) + " / 86400.0"
	}
	v := fmt.Sprintf("f%d.v%d", f.Source, fi)
	switch f.Kind {
	case Count, Sum, Distinct:
		return "CAST(COALESCE(" + v + ", 0) AS " + r.d.Double() + ")"
	}
	return "CAST(" + v + " AS " + r.d.Double() + ")"
}
