// Package plan turns a predictive query (package pql) and a graph into the
// logical plan of its training table — the examples (an entity at an anchor
// time), their labels and their features — and renders that plan to SQL for
// a Dialect. The engine runs the SQL in its in-memory DuckDB; the same plan
// rendered for PostgreSQL runs inside a warehouse, so that only the training
// matrix leaves it (the next step of warehouse-native execution).
//
// # Time
//
// Every example is an entity e at an anchor time t with a split (train,
// validation, test or score). Its label comes from rows with time in the
// target's window (t+start, t+end]; its features and its WHERE condition come
// only from rows with time at or before t (and the entity itself exists at
// t when its table has a time column), so nothing leaks from the future
// (TestNoLeakage). Examples whose label is null (AVG, MIN, MAX, FIRST, LAST
// of no rows) or whose ASSUMING condition did not hold are left out; score
// examples have no label and no assumption.
//
// # Features
//
// Per example: the entity table's own columns (numbers and booleans as
// doubles, strings as text for the engine to encode; never a column the
// target reads) and the days since its time; for every table with a time column and a foreign key to the entity
// (one hop): row counts over 7, 30, 90 and 365 days and all history, days
// since the last and the first row, distinct counts of its other foreign
// keys, and sum, mean, min and max of each numeric column over 30 and 90
// days and all history; for every table that references such a table (two
// hops, e.g. order_items through orders): row counts, and sum and mean of
// each numeric column, over 30 and 90 days and all history, its rows timed
// by their own time column or their parent's. Feature names come from table
// and column names only: orders.count_30d, orders.amount_mean_90d,
// orders.order_items.quantity_sum_all.
package plan

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ferry-ai/ferry/engine/pql"
	"github.com/ferry-ai/ferry/internal/graph"
)

// Split is the role of an anchor.
type Split string

// Splits.
const (
	Train      Split = "train"
	Validation Split = "validation"
	Test       Split = "test"
	Score      Split = "score"
)

// Anchor is an anchor time and its split.
type Anchor struct {
	Time  time.Time
	Split Split
}

// Options tune the features; the zero value uses the defaults.
type Options struct {
	// CountWindows are the day windows of row counts (default 7, 30, 90,
	// 365); all history is always added.
	CountWindows []int
	// ValueWindows are the day windows of sums, means, minimums and
	// maximums (default 30, 90); all history is always added.
	ValueWindows []int
	// NoTwoHop leaves out the features of tables two foreign keys away.
	NoTwoHop bool
}

// FeatureKind is what a feature computes.
type FeatureKind int

// Feature kinds.
const (
	Static     FeatureKind = iota // a column of the entity table
	Age                           // days since the entity's own time
	Count                         // rows of a source in the window
	Sum                           // of a numeric column
	Mean                          // of a numeric column
	Min                           // of a numeric column
	Max                           // of a numeric column
	Distinct                      // distinct values of a key column
	SinceLast                     // days since the source's last row
	SinceFirst                    // days since the source's first row
)

// Hop is the table between a two-hop source and the entity.
type Hop struct {
	Table      string
	Key        string // its primary key, which the source references
	Link       string // its column referencing the entity key
	TimeColumn string
}

// Source is a table whose rows features aggregate: linked to the entity
// (Via nil) or to a table that is (Via set).
type Source struct {
	Table string
	// Link is Table's column referencing the entity key (one hop) or
	// Via's key (two hops).
	Link string
	Via  *Hop
	// TimeColumn is Table's own time column; empty when a two-hop source
	// is timed by Via's.
	TimeColumn string
	// Name prefixes its feature names: "orders", "orders.order_items".
	Name string
}

// Feature is one column of the training table.
type Feature struct {
	Name   string
	Kind   FeatureKind
	Source int    // index in Plan.Sources; -1 for Static and Age
	Column string // the aggregated or static column
	Window int    // days; 0 means all history
	// Text marks a Static string column (the engine encodes it).
	Text bool
}

// Plan is the logical plan of a query's training table.
type Plan struct {
	Query   *pql.Query
	Task    string
	Graph   *graph.Graph
	Entity  *graph.Table
	Anchors []Anchor
	Sources []Source
	// Features are the training table's feature columns, in order.
	Features []Feature
}

// Output column names of the training table, before the features.
const (
	ColSplit  = "split"
	ColAnchor = "anchor_time"
	ColEntity = "entity_id"
	ColLabel  = "label"
	// ColItem is the item column of a recommendation's positives.
	ColItem = "item"
)

// New plans the training table of q over g at the anchors.
func New(q *pql.Query, g *graph.Graph, anchors []Anchor, opts Options) (*Plan, error) {
	task, err := q.Task(g)
	if err != nil {
		return nil, err
	}
	if len(anchors) == 0 {
		return nil, errors.New("plan: no anchors")
	}
	for _, a := range anchors {
		switch a.Split {
		case Train, Validation, Test, Score:
		default:
			return nil, fmt.Errorf("plan: anchor %s: unknown split %q", a.Time.Format(time.RFC3339), a.Split)
		}
	}
	et, _ := g.Table(q.Entity.Table)
	p := &Plan{Query: q, Task: task, Graph: g, Entity: et, Anchors: anchors}
	if len(opts.CountWindows) == 0 {
		opts.CountWindows = []int{7, 30, 90, 365}
	}
	if len(opts.ValueWindows) == 0 {
		opts.ValueWindows = []int{30, 90}
	}
	p.staticFeatures()
	p.sources(opts)
	for i, s := range p.Sources {
		p.sourceFeatures(i, s, opts)
	}
	return p, nil
}

// typeOf returns a column's Arrow type name.
func typeOf(t *graph.Table, name string) string {
	c, _ := t.Column(name)
	return strings.ToLower(c.Type)
}

func isNumeric(typ string) bool {
	return strings.HasPrefix(typ, "int") || strings.HasPrefix(typ, "uint") || strings.HasPrefix(typ, "float") ||
		strings.HasPrefix(typ, "decimal") || typ == "double" || typ == "halffloat" || typ == "bool"
}

func isText(typ string) bool {
	return typ == "utf8" || typ == "large_utf8" || typ == "string" || typ == "string_view" || typ == "large_string"
}

func isTime(typ string) bool {
	return strings.HasPrefix(typ, "timestamp") || strings.HasPrefix(typ, "date")
}

// keyColumns are a table's primary and foreign key columns.
func keyColumns(t *graph.Table) map[string]bool {
	keys := map[string]bool{}
	for _, k := range t.PrimaryKey {
		keys[k] = true
	}
	for _, fk := range t.ForeignKeys {
		for _, c := range fk.Columns {
			keys[c] = true
		}
	}
	return keys
}

func (p *Plan) staticFeatures() {
	keys := keyColumns(p.Entity)
	// A column the target reads outside an aggregation is the label of a
	// static target: it is never a feature.
	target := map[string]bool{}
	pql.Walk(p.Query.Target.Expr, func(e pql.Expr) {
		if c, ok := e.(*pql.Column); ok {
			target[c.Name] = true
		}
	})
	for _, c := range p.Entity.Columns {
		if keys[c.Name] || c.Name == p.Entity.TimeColumn || target[c.Name] {
			continue
		}
		typ := strings.ToLower(c.Type)
		switch {
		case isNumeric(typ):
			p.Features = append(p.Features, Feature{Name: p.Entity.Name + "." + c.Name, Kind: Static, Source: -1, Column: c.Name})
		case isText(typ):
			p.Features = append(p.Features, Feature{Name: p.Entity.Name + "." + c.Name, Kind: Static, Source: -1, Column: c.Name, Text: true})
		}
	}
	if p.Entity.TimeColumn != "" {
		p.Features = append(p.Features, Feature{Name: p.Entity.Name + ".days_since_" + p.Entity.TimeColumn, Kind: Age, Source: -1})
	}
}

// linkTo returns t's single-column foreign key to ref's single-column
// primary key.
func linkTo(t, ref *graph.Table) (string, bool) {
	if len(ref.PrimaryKey) != 1 {
		return "", false
	}
	for _, fk := range t.ForeignKeys {
		if fk.RefTable == ref.Name && len(fk.Columns) == 1 && len(fk.RefColumns) == 1 && fk.RefColumns[0] == ref.PrimaryKey[0] {
			return fk.Columns[0], true
		}
	}
	return "", false
}

// sources finds the one-hop and two-hop feature sources, in name order.
func (p *Plan) sources(opts Options) {
	var oneHop []*graph.Table
	names := p.Graph.TableNames()
	slices.Sort(names)
	for _, n := range names {
		t, _ := p.Graph.Table(n)
		if t.Name == p.Entity.Name || t.TimeColumn == "" {
			continue
		}
		if l, ok := linkTo(t, p.Entity); ok {
			oneHop = append(oneHop, t)
			p.Sources = append(p.Sources, Source{Table: t.Name, Link: l, TimeColumn: t.TimeColumn, Name: t.Name})
		}
	}
	if opts.NoTwoHop {
		return
	}
	for _, parent := range oneHop {
		pl, _ := linkTo(parent, p.Entity)
		for _, n := range names {
			t, _ := p.Graph.Table(n)
			if t.Name == p.Entity.Name || t.Name == parent.Name {
				continue
			}
			if _, direct := linkTo(t, p.Entity); direct && t.TimeColumn != "" {
				continue // already a one-hop source
			}
			l, ok := linkTo(t, parent)
			if !ok {
				continue
			}
			p.Sources = append(p.Sources, Source{Table: t.Name, Link: l, TimeColumn: t.TimeColumn, Name: parent.Name + "." + t.Name,
				Via: &Hop{Table: parent.Name, Key: parent.PrimaryKey[0], Link: pl, TimeColumn: parent.TimeColumn}})
		}
	}
}

// valueColumns are a source's numeric columns that are not keys or times.
func valueColumns(t *graph.Table) []string {
	keys := keyColumns(t)
	var out []string
	for _, c := range t.Columns {
		if !keys[c.Name] && c.Name != t.TimeColumn && isNumeric(strings.ToLower(c.Type)) {
			out = append(out, c.Name)
		}
	}
	return out
}

func (p *Plan) sourceFeatures(i int, s Source, opts Options) {
	t, _ := p.Graph.Table(s.Table)
	add := func(name string, kind FeatureKind, column string, window int) {
		p.Features = append(p.Features, Feature{Name: s.Name + "." + name, Kind: kind, Source: i, Column: column, Window: window})
	}
	wname := func(w int) string {
		if w == 0 {
			return "all"
		}
		return fmt.Sprintf("%dd", w)
	}
	if s.Via != nil {
		for _, w := range append(slices.Clone(opts.ValueWindows), 0) {
			add("count_"+wname(w), Count, "", w)
		}
		for _, c := range valueColumns(t) {
			for _, w := range append(slices.Clone(opts.ValueWindows), 0) {
				add(c+"_sum_"+wname(w), Sum, c, w)
				add(c+"_mean_"+wname(w), Mean, c, w)
			}
		}
		return
	}
	for _, w := range append(slices.Clone(opts.CountWindows), 0) {
		add("count_"+wname(w), Count, "", w)
	}
	add("days_since_last", SinceLast, "", 0)
	add("days_since_first", SinceFirst, "", 0)
	for _, fk := range t.ForeignKeys {
		if len(fk.Columns) != 1 || fk.Columns[0] == s.Link {
			continue
		}
		add(fk.Columns[0]+"_distinct_90d", Distinct, fk.Columns[0], 90)
		add(fk.Columns[0]+"_distinct_all", Distinct, fk.Columns[0], 0)
	}
	for _, c := range valueColumns(t) {
		for _, w := range append(slices.Clone(opts.ValueWindows), 0) {
			add(c+"_sum_"+wname(w), Sum, c, w)
			add(c+"_mean_"+wname(w), Mean, c, w)
			add(c+"_min_"+wname(w), Min, c, w)
			add(c+"_max_"+wname(w), Max, c, w)
		}
	}
}
