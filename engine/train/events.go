package train

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/ferry-ai/ferry/internal/graph"
)

const dayMicros = 86400e6

// entities indexes the entity table by primary key. Entity e is the e-th row
// of the table across its batches.
type entities struct {
	table  string
	kind   keyKind
	ints   map[int64]int32
	strs   map[string]int32 // keys alias the caller's Arrow buffers; cleared by purge
	n      int
	valid  []bool  // the row has a non-null key
	time   []int64 // the entity's own time (e.g. signup), or nil
	hasT   []bool
	tcol   string // the name of the entity's time column, if any
	pk     *column
	static []staticFeature
}

// staticFeature is one feature from the entity's own columns.
type staticFeature struct {
	name   string
	values []float32 // per entity; NaN when null
}

func (e *entities) lookupInt(k int64) (int32, bool) {
	v, ok := e.ints[k]
	return v, ok
}

func (e *entities) lookupStr(k string) (int32, bool) {
	v, ok := e.strs[k]
	return v, ok
}

// purge zeroes and drops what the index holds.
func (e *entities) purge() {
	clear(e.ints)
	clear(e.strs)
	clear(e.valid)
	clear(e.time)
	clear(e.hasT)
	for _, s := range e.static {
		clear(s.values)
	}
}

// maxCategories caps the distinct values of a string column used as a
// categorical feature; columns with more are skipped (likely identifiers or
// free text).
const maxCategories = 64

func indexEntities(t Table, pkName string) (*entities, error) {
	pk, err := tableColumn(t.Records, pkName)
	if err != nil {
		return nil, err
	}
	kind, ok := kindOf(pk.typ)
	if !ok {
		return nil, fmt.Errorf("entity key %s.%s has type %s; integer and string keys are supported", t.Meta.Name, pkName, pk.typ)
	}
	if pk.n > math.MaxInt32-1 {
		return nil, fmt.Errorf("entity table %s has %d rows; at most %d are supported", t.Meta.Name, pk.n, math.MaxInt32-1)
	}
	e := &entities{table: t.Meta.Name, kind: kind, n: pk.n, pk: pk, valid: make([]bool, pk.n)}
	// Error messages name the table and column, never a key value.
	dups := 0
	if kind == keyInt {
		e.ints = make(map[int64]int32, pk.n)
		pk.each(func(row int, a arrow.Array, i int) {
			if k, ok := intKey(a, i); ok {
				if _, dup := e.ints[k]; dup {
					dups++
					return
				}
				e.ints[k] = int32(row)
				e.valid[row] = true
			}
		})
	} else {
		e.strs = make(map[string]int32, pk.n)
		pk.each(func(row int, a arrow.Array, i int) {
			if k, ok := strKey(a, i); ok {
				if _, dup := e.strs[k]; dup {
					dups++
					return
				}
				e.strs[k] = int32(row)
				e.valid[row] = true
			}
		})
	}
	if dups > 0 {
		e.purge()
		return nil, fmt.Errorf("entity table %s: primary key %s is not unique (%d repeated rows)", t.Meta.Name, pkName, dups)
	}
	if tc := t.Meta.TimeColumn; tc != "" {
		e.tcol = tc
		col, err := tableColumn(t.Records, tc)
		if err != nil {
			return nil, err
		}
		if !isTime(col.typ) {
			return nil, fmt.Errorf("time column %s.%s has type %s", t.Meta.Name, tc, col.typ)
		}
		e.time = make([]int64, e.n)
		e.hasT = make([]bool, e.n)
		col.each(func(row int, a arrow.Array, i int) {
			e.time[row], e.hasT[row] = micros(a, i)
		})
	}
	keys := keyColumns(t.Meta)
	for _, c := range t.Meta.Columns {
		if c.Name == pkName || c.Name == t.Meta.TimeColumn || keys[c.Name] {
			continue
		}
		col, err := tableColumn(t.Records, c.Name)
		if err != nil {
			return nil, err
		}
		if f, ok := staticColumn(t.Meta.Name, col); ok {
			e.static = append(e.static, f)
		}
	}
	return e, nil
}

// keyColumns returns the names of a table's key columns (primary and foreign).
func keyColumns(t graph.Table) map[string]bool {
	m := map[string]bool{}
	for _, k := range t.PrimaryKey {
		m[k] = true
	}
	for _, fk := range t.ForeignKeys {
		for _, c := range fk.Columns {
			m[c] = true
		}
	}
	return m
}

// staticColumn turns an entity column into a feature named table.column:
// numbers as they are (bool as 0/1), strings with 2 to maxCategories distinct
// values as category codes in sorted order (deterministic), null as NaN.
func staticColumn(table string, col *column) (staticFeature, bool) {
	f := staticFeature{name: table + "." + col.name, values: make([]float32, col.n)}
	switch {
	case isNumeric(col.typ):
		col.each(func(row int, a arrow.Array, i int) {
			if v, ok := numeric(a, i); ok {
				f.values[row] = float32(v)
			} else {
				f.values[row] = float32(math.NaN())
			}
		})
		return f, true
	case col.typ.ID() == arrow.STRING || col.typ.ID() == arrow.LARGE_STRING || col.typ.ID() == arrow.STRING_VIEW:
		distinct := map[string]bool{}
		col.each(func(_ int, a arrow.Array, i int) {
			if len(distinct) <= maxCategories {
				if s, ok := strKey(a, i); ok && !distinct[s] {
					distinct[string([]byte(s))] = true
				}
			}
		})
		if len(distinct) > maxCategories || len(distinct) < 2 {
			return f, false
		}
		cats := make([]string, 0, len(distinct))
		for s := range distinct {
			cats = append(cats, s)
		}
		sort.Strings(cats)
		code := make(map[string]float32, len(cats))
		for i, s := range cats {
			code[s] = float32(i)
		}
		col.each(func(row int, a arrow.Array, i int) {
			if s, ok := strKey(a, i); ok {
				f.values[row] = code[s]
			} else {
				f.values[row] = float32(math.NaN())
			}
		})
		clear(cats)
		clear(code)
		return f, true
	}
	return f, false
}

// events is a related table's rows grouped by entity and sorted by time
// (compressed sparse rows): the events of entity e are
// times[offsets[e]:offsets[e+1]], with prefix sums of each numeric column.
type events struct {
	table   string
	offsets []int32
	times   []int64
	cols    []string    // numeric value columns
	prefix  [][]float64 // per column: prefix[c][j] = sum of values before event j (len = len(times)+1)
	counts  [][]int32   // per column: prefix count of non-null values
	// minTime and maxTime bound the times of all rows with a time, linked to
	// an entity or not; both are 0 when there is none (see hasTime).
	minTime, maxTime int64
	hasTime          bool
}

func buildEvents(t Table, link string, ents *entities) (*events, error) {
	meta := t.Meta
	key, err := tableColumn(t.Records, link)
	if err != nil {
		return nil, err
	}
	kind, ok := kindOf(key.typ)
	if !ok || kind != ents.kind {
		return nil, fmt.Errorf("foreign key %s.%s has type %s, which does not match the entity key type %s", meta.Name, link, key.typ, ents.pk.typ)
	}
	tcol, err := tableColumn(t.Records, meta.TimeColumn)
	if err != nil {
		return nil, err
	}
	if !isTime(tcol.typ) {
		return nil, fmt.Errorf("time column %s.%s has type %s", meta.Name, meta.TimeColumn, tcol.typ)
	}
	keys := keyColumns(meta)
	var valCols []*column
	for _, c := range meta.Columns {
		if keys[c.Name] || c.Name == meta.TimeColumn {
			continue
		}
		col, err := tableColumn(t.Records, c.Name)
		if err != nil {
			return nil, err
		}
		if isNumeric(col.typ) {
			valCols = append(valCols, col)
		}
	}
	// Each row's entity and time; rows with a null or unknown key or time are
	// left out.
	n := key.n
	if n > math.MaxInt32-1 {
		return nil, fmt.Errorf("table %s has %d rows; at most %d are supported", meta.Name, n, math.MaxInt32-1)
	}
	ent := make([]int32, n)
	tm := make([]int64, n)
	defer clear(ent)
	defer clear(tm)
	key.each(func(row int, a arrow.Array, i int) {
		ent[row] = -1
		if kind == keyInt {
			if k, ok := intKey(a, i); ok {
				if e, ok := ents.lookupInt(k); ok {
					ent[row] = e
				}
			}
		} else if k, ok := strKey(a, i); ok {
			if e, ok := ents.lookupStr(k); ok {
				ent[row] = e
			}
		}
	})
	ev := &events{table: meta.Name, offsets: make([]int32, ents.n+1), minTime: math.MaxInt64, maxTime: math.MinInt64}
	tcol.each(func(row int, a arrow.Array, i int) {
		v, ok := micros(a, i)
		if !ok {
			ent[row] = -1
			return
		}
		tm[row] = v
		ev.minTime = min(ev.minTime, v)
		ev.maxTime = max(ev.maxTime, v)
		ev.hasTime = true
	})
	if !ev.hasTime {
		ev.minTime, ev.maxTime = 0, 0
	}
	order := make([]int32, 0, n)
	for r := 0; r < n; r++ {
		if ent[r] >= 0 {
			order = append(order, int32(r))
		}
	}
	defer clear(order)
	slices.SortStableFunc(order, func(a, b int32) int {
		if ent[a] != ent[b] {
			return cmp.Compare(ent[a], ent[b])
		}
		switch {
		case tm[a] < tm[b]:
			return -1
		case tm[a] > tm[b]:
			return 1
		}
		return 0
	})
	ev.times = make([]int64, len(order))
	for j, r := range order {
		ev.offsets[ent[r]+1]++
		ev.times[j] = tm[r]
	}
	for e := 0; e < ents.n; e++ {
		ev.offsets[e+1] += ev.offsets[e]
	}
	for _, col := range valCols {
		vals := make([]float64, n)
		has := make([]bool, n)
		col.each(func(row int, a arrow.Array, i int) { vals[row], has[row] = numeric(a, i) })
		// Sums restart at each entity, so that a window's sum depends only on
		// that entity's rows up to the window's end (exactly, no rounding
		// from other rows).
		p := make([]float64, len(order)+1)
		c := make([]int32, len(order)+1)
		for j, r := range order {
			p[j+1], c[j+1] = p[j], c[j]
			if j == 0 || ent[order[j-1]] != ent[r] {
				p[j+1] = 0
			}
			if has[r] {
				p[j+1] += vals[r]
				c[j+1]++
			}
		}
		clear(vals)
		clear(has)
		ev.cols = append(ev.cols, col.name)
		ev.prefix = append(ev.prefix, p)
		ev.counts = append(ev.counts, c)
	}
	return ev, nil
}

// span returns the event index range of entity e with time in (lo, hi].
func (ev *events) span(e int32, lo, hi int64) (int, int) {
	ts := ev.times[ev.offsets[e]:ev.offsets[e+1]]
	a := sort.Search(len(ts), func(i int) bool { return ts[i] > lo })
	b := sort.Search(len(ts), func(i int) bool { return ts[i] > hi })
	base := int(ev.offsets[e])
	return base + a, base + b
}

// sum returns the sum and the number of non-null values of value column c
// over events [a, b) of entity e (indices from span).
func (ev *events) sum(c int, e int32, a, b int) (float64, int) {
	if a >= b {
		return 0, 0
	}
	p := ev.prefix[c]
	before := 0.0
	if a > int(ev.offsets[e]) {
		before = p[a]
	}
	return p[b] - before, int(ev.counts[c][b] - ev.counts[c][a])
}

// count returns the number of events of e with time in (lo, hi].
func (ev *events) count(e int32, lo, hi int64) int {
	a, b := ev.span(e, lo, hi)
	return b - a
}

func (ev *events) purge() {
	clear(ev.offsets)
	clear(ev.times)
	for i := range ev.prefix {
		clear(ev.prefix[i])
		clear(ev.counts[i])
	}
}
