package train

import (
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/ferry-ai/ferry/internal/graph"
)

const dayMicros = 86400e6

// entities indexes the entity table by primary key.
type entities struct {
	kind   keyKind
	ints   map[int64]int32
	strs   map[string]int32
	n      int
	time   []int64 // the entity's own time (e.g. signup), or nil
	hasT   []bool
	pk     *column
	static []staticFeature
}

// staticFeature is one feature from the entity's own columns.
type staticFeature struct {
	name   string
	values []float32 // per entity; NaN when null
}

func (e *entities) lookupInt(k int64) (int32, bool) { v, ok := e.ints[k]; return v, ok }
func (e *entities) lookupStr(k string) (int32, bool) {
	v, ok := e.strs[k]
	return v, ok
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
	e := &entities{kind: kind, n: pk.n, pk: pk}
	var dupErr error
	if kind == keyInt {
		e.ints = make(map[int64]int32, pk.n)
		pk.each(func(row int, a arrow.Array, i int) {
			if k, ok := intKey(a, i); ok {
				if _, dup := e.ints[k]; dup && dupErr == nil {
					dupErr = fmt.Errorf("entity table %s has a duplicate primary key value", t.Meta.Name)
				}
				e.ints[k] = int32(row)
			}
		})
	} else {
		e.strs = make(map[string]int32, pk.n)
		pk.each(func(row int, a arrow.Array, i int) {
			if k, ok := strKey(a, i); ok {
				if _, dup := e.strs[k]; dup && dupErr == nil {
					dupErr = fmt.Errorf("entity table %s has a duplicate primary key value", t.Meta.Name)
				}
				e.strs[k] = int32(row)
			}
		})
	}
	if dupErr != nil {
		return nil, dupErr
	}
	if tc := t.Meta.TimeColumn; tc != "" {
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

// staticColumn turns an entity column into a feature: numbers as they are,
// low-cardinality strings as category codes in sorted order.
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
		f.name += "#category"
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
	minTime int64
	maxTime int64
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
	tcol.each(func(row int, a arrow.Array, i int) {
		v, ok := micros(a, i)
		if !ok {
			ent[row] = -1
		}
		tm[row] = v
	})
	order := make([]int32, 0, n)
	for r := 0; r < n; r++ {
		if ent[r] >= 0 {
			order = append(order, int32(r))
		}
	}
	defer clear(order)
	slices.SortStableFunc(order, func(a, b int32) int {
		if ent[a] != ent[b] {
			return int(ent[a] - ent[b])
		}
		switch {
		case tm[a] < tm[b]:
			return -1
		case tm[a] > tm[b]:
			return 1
		}
		return 0
	})
	ev := &events{table: meta.Name, offsets: make([]int32, ents.n+1), times: make([]int64, len(order)), minTime: math.MaxInt64, maxTime: math.MinInt64}
	for j, r := range order {
		ev.offsets[ent[r]+1]++
		ev.times[j] = tm[r]
		ev.minTime = min(ev.minTime, tm[r])
		ev.maxTime = max(ev.maxTime, tm[r])
	}
	for e := 0; e < ents.n; e++ {
		ev.offsets[e+1] += ev.offsets[e]
	}
	for _, col := range valCols {
		vals := make([]float64, n)
		has := make([]bool, n)
		col.each(func(row int, a arrow.Array, i int) { vals[row], has[row] = numeric(a, i) })
		p := make([]float64, len(order)+1)
		c := make([]int32, len(order)+1)
		for j, r := range order {
			p[j+1], c[j+1] = p[j], c[j]
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
