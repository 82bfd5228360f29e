package plan

import (
	"fmt"
	"strings"

	"github.com/ferry-ai/ferry/engine/pql"
	"github.com/ferry-ai/ferry/internal/graph"
)

// Pair features of a recommendation's candidates, in CandidatesSQL's
// column order after split, anchor_time, entity_id, item and label.
var PairFeatures = []string{
	"pair.count_30d", "pair.count_90d", "pair.count_365d", "pair.count_all", "pair.days_since_last",
	"item.count_7d", "item.count_30d", "item.count_90d",
	"entity.count_30d", "entity.count_all",
}

// Indexes into PairFeatures that baselines rank by.
const (
	PairCountAll   = 3 // the entity's past rows with the item
	ItemCount90d   = 7 // the item's rows in the 90 days before the anchor
	popularWindow  = 90
	popularDefault = 20
)

// CandidatesSQL renders a recommendation's candidate pairs: for every kept
// example (an entity at an anchor), the items it had before the anchor and
// the popular items of the 90 days before the anchor (at most popular of
// them; 0 means 20), with label 1 when the item is in the target's window
// (null for score rows) and the PairFeatures, all from rows at or before the
// anchor. Rows are ordered by anchor time, entity and item, so that each
// example's candidates are contiguous.
func (p *Plan) CandidatesSQL(d Dialect, popular int) (string, error) {
	a, ok := p.Query.Target.Expr.(*pql.Aggregation)
	if !ok || a.Func != pql.FuncListDistinct {
		return "", fmt.Errorf("plan: %s is not a recommendation", p.Query.Target)
	}
	if popular <= 0 {
		popular = popularDefault
	}
	t, ok := p.Graph.Table(a.Table)
	if !ok {
		return "", fmt.Errorf("plan: no table %q", a.Table)
	}
	link, ok := linkTo(t, p.Entity)
	if !ok {
		return "", fmt.Errorf("plan: table %q has no foreign key to %q", a.Table, p.Entity.Name)
	}
	r := &renderer{p: p, d: d}
	filter := ""
	if a.Where != nil {
		f, err := r.expr(a.Where, scope{alias: aliasRow, table: t})
		if err != nil {
			return "", err
		}
		filter = " AND " + f
	}
	var b strings.Builder
	if err := r.examples(&b); err != nil {
		return "", err
	}
	item, tc, fk := col(aliasRow, a.Column), col(aliasRow, t.TimeColumn), col(aliasRow, link)
	days := func(anchor string, n int) string { return shift(anchor, -n, pql.Days) }
	fmt.Fprintf(&b, `,
hist AS (
  SELECT k.entity_id, k.anchor_time, %[1]s AS item,
    COUNT(*) FILTER (WHERE %[2]s > %[3]s) AS c30, COUNT(*) FILTER (WHERE %[2]s > %[4]s) AS c90,
    COUNT(*) FILTER (WHERE %[2]s > %[5]s) AS c365, COUNT(*) AS call, MAX(%[2]s) AS last
  FROM kept k JOIN %[6]s %[7]s ON %[8]s = k.entity_id AND %[2]s <= k.anchor_time AND %[1]s IS NOT NULL%[9]s
  GROUP BY k.entity_id, k.anchor_time, %[1]s),
pop AS (
  SELECT a.anchor_time, %[1]s AS item,
    COUNT(*) FILTER (WHERE %[2]s > %[10]s) AS p7, COUNT(*) FILTER (WHERE %[2]s > %[11]s) AS p30, COUNT(*) AS p90
  FROM (SELECT DISTINCT anchor_time FROM kept) a JOIN %[6]s %[7]s ON %[2]s > %[12]s AND %[2]s <= a.anchor_time AND %[1]s IS NOT NULL%[9]s
  GROUP BY a.anchor_time, %[1]s),
top AS (
  SELECT anchor_time, item FROM (
    SELECT anchor_time, item, row_number() OVER (PARTITION BY anchor_time ORDER BY p90 DESC, item) AS r FROM pop) ranked
  WHERE r <= %[13]d),
cand AS (
  SELECT entity_id, anchor_time, item FROM hist
  UNION
  SELECT k.entity_id, k.anchor_time, t.item FROM kept k JOIN top t ON t.anchor_time = k.anchor_time),
act AS (
  SELECT entity_id, anchor_time, SUM(c30) AS n30, SUM(call) AS nall FROM hist GROUP BY entity_id, anchor_time)`,
		item, tc, days("k.anchor_time", 30), days("k.anchor_time", 90), days("k.anchor_time", 365),
		quote(t.Name), aliasRow, fk, filter,
		days("a.anchor_time", 7), days("a.anchor_time", 30), days("a.anchor_time", popularWindow), popular)
	from, where, err := r.window(a, "k")
	if err != nil {
		return "", err
	}
	dbl := func(v string) string { return "CAST(COALESCE(" + v + ", 0) AS " + d.Double() + ")" }
	cols := []string{
		dbl("h.c30"), dbl("h.c90"), dbl("h.c365"), dbl("h.call"),
		"CAST(" + d.Seconds("k.anchor_time", "h.last") + " / 86400.0 AS " + d.Double() + ")",
		dbl("p.p7"), dbl("p.p30"), dbl("p.p90"), dbl("ac.n30"), dbl("ac.nall"),
	}
	fmt.Fprintf(&b, "\nSELECT k.split, k.anchor_time, k.entity_id, c.item,\n  CASE WHEN k.split = 'score' THEN NULL ELSE CAST(EXISTS (SELECT 1 %s WHERE %s AND %s = c.item) AS INTEGER) END AS label", from, where, item)
	for i, c := range cols {
		fmt.Fprintf(&b, ",\n  %s AS %s", c, quote(PairFeatures[i]))
	}
	b.WriteString(`
FROM kept k JOIN cand c ON c.entity_id = k.entity_id AND c.anchor_time = k.anchor_time
LEFT JOIN hist h ON h.entity_id = k.entity_id AND h.anchor_time = k.anchor_time AND h.item = c.item
LEFT JOIN pop p ON p.anchor_time = k.anchor_time AND p.item = c.item
LEFT JOIN act ac ON ac.entity_id = k.entity_id AND ac.anchor_time = k.anchor_time
ORDER BY k.anchor_time, k.entity_id, c.item`)
	return b.String(), nil
}

// ItemTable returns the table a recommendation's items come from and the
// item column.
func (p *Plan) ItemTable() (*graph.Table, string, bool) {
	a, ok := p.Query.Target.Expr.(*pql.Aggregation)
	if !ok || a.Func != pql.FuncListDistinct {
		return nil, "", false
	}
	t, ok := p.Graph.Table(a.Table)
	return t, a.Column, ok
}
