package train

import (
	"context"
	"fmt"
	"math"

	"github.com/ferry-ai/ferry/engine/pql"
)

// matrix is a dense row-major feature matrix with labels.
type matrix struct {
	rows     int
	cols     int
	data     []float32
	labels   []float32
	entity   []int32   // entity row of each matrix row
	baseline []float64 // the recent-count baseline's score per row
}

func (m *matrix) positives() int {
	n := 0
	for _, l := range m.labels {
		if l > 0 {
			n++
		}
	}
	return n
}

func (m *matrix) purge() {
	if m == nil {
		return
	}
	clear(m.data)
	clear(m.labels)
	clear(m.entity)
	clear(m.baseline)
}

// featureBuilder computes features, labels and eligibility at anchors.
type featureBuilder struct {
	q       *pql.Query
	ents    *entities
	related []*events
	target  *events
	filters []*events
	names   []string
}

func newFeatureBuilder(q *pql.Query, ents *entities, related []*events, target *events) *featureBuilder {
	fb := &featureBuilder{q: q, ents: ents, related: related, target: target}
	byName := map[string]*events{}
	for _, ev := range related {
		byName[ev.table] = ev
	}
	for _, f := range q.Filters {
		fb.filters = append(fb.filters, byName[f.Agg.Table])
	}
	for _, s := range ents.static {
		fb.names = append(fb.names, s.name)
	}
	if ents.time != nil {
		fb.names = append(fb.names, q.Entity.Table+".days_since_start")
	}
	for _, ev := range related {
		for _, w := range countWindows {
			fb.names = append(fb.names, fmt.Sprintf("%s.count_%dd", ev.table, w))
		}
		fb.names = append(fb.names, ev.table+".count_all",
			ev.table+".days_since_last", ev.table+".days_since_first",
			ev.table+".ratio_30d_90d", ev.table+".rate_30d_vs_365d")
		for _, c := range ev.cols {
			for _, w := range sumWindows {
				fb.names = append(fb.names, fmt.Sprintf("%s.%s_sum_%dd", ev.table, c, w))
			}
			fb.names = append(fb.names, ev.table+"."+c+"_sum_all", ev.table+"."+c+"_mean_90d", ev.table+"."+c+"_mean_all")
		}
	}
	return fb
}

// eligible reports whether entity e is scored at t: it exists at t and every
// WHERE condition holds.
func (fb *featureBuilder) eligible(e int32, t int64) bool {
	if fb.ents.time != nil && (!fb.ents.hasT[e] || fb.ents.time[e] > t) {
		return false
	}
	for i, f := range fb.q.Filters {
		s, en := f.Agg.Window()
		n := fb.filters[i].count(e, t+s.Microseconds(), t+en.Microseconds())
		if !f.Holds(float64(n)) {
			return false
		}
	}
	return true
}

// build computes one row per eligible (entity, anchor); with labels when
// withLabels is set.
func (fb *featureBuilder) build(ctx context.Context, anchors []int64, withLabels bool) *matrix {
	m := &matrix{cols: len(fb.names)}
	ts, te := fb.q.Target.Agg.Window()
	w := (te - ts).Microseconds()
	sign := 1.0
	if fb.q.Target.FewerIsPositive() {
		sign = -1
	}
	row := make([]float32, m.cols)
	for _, t := range anchors {
		for e := int32(0); e < int32(fb.ents.n); e++ {
			if e%4096 == 0 && ctx.Err() != nil {
				return m
			}
			if !fb.eligible(e, t) {
				continue
			}
			fb.features(e, t, row)
			m.data = append(m.data, row...)
			m.entity = append(m.entity, e)
			m.baseline = append(m.baseline, sign*float64(fb.target.count(e, t-w, t)))
			if withLabels {
				n := fb.target.count(e, t+ts.Microseconds(), t+te.Microseconds())
				l := float32(0)
				if fb.q.Target.Holds(float64(n)) {
					l = 1
				}
				m.labels = append(m.labels, l)
			}
			m.rows++
		}
	}
	clear(row)
	return m
}

// features writes entity e's features at anchor t into row, using only
// events at or before t.
func (fb *featureBuilder) features(e int32, t int64, row []float32) {
	nan := float32(math.NaN())
	k := 0
	put := func(v float64, ok bool) {
		if ok && !math.IsNaN(v) && !math.IsInf(v, 0) {
			row[k] = float32(v)
		} else {
			row[k] = nan
		}
		k++
	}
	for _, s := range fb.ents.static {
		row[k] = s.values[e]
		k++
	}
	if fb.ents.time != nil {
		put(float64(t-fb.ents.time[e])/dayMicros, fb.ents.hasT[e])
	}
	for _, ev := range fb.related {
		counts := make([]int, len(countWindows))
		for i, d := range countWindows {
			counts[i] = ev.count(e, t-int64(d)*dayMicros, t)
			put(float64(counts[i]), true)
		}
		first, end := ev.span(e, math.MinInt64, t)
		all := end - first
		put(float64(all), true)
		if all > 0 {
			put(float64(t-ev.times[end-1])/dayMicros, true)
			put(float64(t-ev.times[first])/dayMicros, true)
		} else {
			put(0, false)
			put(0, false)
		}
		c30, c90, c365 := counts[1], counts[2], counts[3]
		put(float64(c30)/float64(c90), c90 > 0)
		put(float64(c30)/(float64(c365)*30/365), c365 > 0)
		for c := range ev.cols {
			p, cnt := ev.prefix[c], ev.counts[c]
			for _, d := range sumWindows {
				a, b := ev.span(e, t-int64(d)*dayMicros, t)
				put(p[b]-p[a], true)
			}
			put(p[end]-p[first], true)
			a90, b90 := ev.span(e, t-90*dayMicros, t)
			n90 := cnt[b90] - cnt[a90]
			put((p[b90]-p[a90])/float64(n90), n90 > 0)
			nAll := cnt[end] - cnt[first]
			put((p[end]-p[first])/float64(nAll), nAll > 0)
		}
	}
}
