package train

import (
	"context"
	"fmt"
	"math"
)

// matrix is a dense row-major feature matrix with labels: one row per
// eligible (entity, anchor).
type matrix struct {
	rows     int
	cols     int
	data     []float32
	labels   []float32 // 1 or 0; empty when built without labels
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

// purge zeroes the matrix.
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
	form    countForm
	ents    *entities
	related []*events // feature tables, in name order
	target  *events
	filters []*events // the table of each WHERE condition
	names   []string
	// Target window and baseline window, in microseconds.
	labelLo, labelHi int64
	recent           int64
	baselineSign     float64
	// Feature windows in days: counts over countDays (which must hold 30, 90
	// and 365 at indexes 1 to 3), sums and means over valueDays.
	countDays, valueDays []int64
	// Scratch space of features.
	counts, sums, ns []float64
}

func newFeatureBuilder(form countForm, ents *entities, related []*events, target *events) (*featureBuilder, error) {
	fb := &featureBuilder{form: form, ents: ents, related: related, target: target,
		countDays: []int64{7, 30, 90, 365}, valueDays: []int64{30, 90}}
	fb.counts = make([]float64, len(fb.countDays))
	fb.sums = make([]float64, len(fb.valueDays))
	fb.ns = make([]float64, len(fb.valueDays))
	byName := map[string]*events{}
	for _, ev := range related {
		byName[ev.table] = ev
	}
	for _, f := range form.filters {
		ev := byName[f.table]
		if ev == nil {
			return nil, fmt.Errorf("WHERE table %s is not linked to %s", f.table, ents.table)
		}
		fb.filters = append(fb.filters, ev)
	}
	fb.labelLo, fb.labelHi = form.target.lo.Microseconds(), form.target.hi.Microseconds()
	fb.recent = form.target.hi.Microseconds()
	fb.baselineSign = 1
	if form.target.fewerIsPositive() {
		fb.baselineSign = -1
	}
	for _, s := range ents.static {
		fb.names = append(fb.names, s.name)
	}
	if ents.time != nil {
		fb.names = append(fb.names, ents.table+".days_since_"+ents.tcol)
	}
	for _, ev := range related {
		for _, w := range fb.countDays {
			fb.names = append(fb.names, fmt.Sprintf("%s.count_%dd", ev.table, w))
		}
		fb.names = append(fb.names, ev.table+".count_all",
			ev.table+".days_since_last", ev.table+".days_since_first",
			ev.table+".ratio_30d_90d", ev.table+".rate_30d_vs_365d")
		for _, c := range ev.cols {
			for _, w := range fb.valueDays {
				fb.names = append(fb.names, fmt.Sprintf("%s.%s_sum_%dd", ev.table, c, w))
			}
			fb.names = append(fb.names, ev.table+"."+c+"_sum_all")
			for _, w := range fb.valueDays {
				fb.names = append(fb.names, fmt.Sprintf("%s.%s_mean_%dd", ev.table, c, w))
			}
			fb.names = append(fb.names, ev.table+"."+c+"_mean_all")
		}
	}
	return fb, nil
}

// eligible reports whether entity e is scored at t: it has a key, it exists
// at t (its own time, if any, is at or before t) and every WHERE condition
// holds on data at or before t.
func (fb *featureBuilder) eligible(e int32, t int64) bool {
	if !fb.ents.valid[e] {
		return false
	}
	if fb.ents.time != nil && (!fb.ents.hasT[e] || fb.ents.time[e] > t) {
		return false
	}
	for i, f := range fb.form.filters {
		n := fb.filters[i].count(e, t+f.lo.Microseconds(), t+f.hi.Microseconds())
		if !f.holds(float64(n)) {
			return false
		}
	}
	return true
}

// label returns 1 when the target holds for e's events in (t+start, t+end].
func (fb *featureBuilder) label(e int32, t int64) float32 {
	if fb.form.target.holds(float64(fb.target.count(e, t+fb.labelLo, t+fb.labelHi))) {
		return 1
	}
	return 0
}

// build computes one row per eligible (entity, anchor), with labels when
// withLabels is set. It stops early, with a partial matrix, when ctx is done.
func (fb *featureBuilder) build(ctx context.Context, anchors []int64, withLabels bool) *matrix {
	m := &matrix{cols: len(fb.names)}
	row := make([]float32, m.cols)
	defer clear(row)
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
			m.baseline = append(m.baseline, fb.baselineSign*float64(fb.target.count(e, t-fb.recent, t)))
			if withLabels {
				m.labels = append(m.labels, fb.label(e, t))
			}
			m.rows++
		}
	}
	return m
}

// features writes entity e's features at anchor t into row, using only
// events with time at or before t. Missing values are NaN.
func (fb *featureBuilder) features(e int32, t int64, row []float32) {
	k := 0
	put := func(v float64, ok bool) {
		if ok && !math.IsNaN(v) && !math.IsInf(v, 0) {
			row[k] = float32(v)
		} else {
			row[k] = float32(math.NaN())
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
		counts := fb.counts
		for i, d := range fb.countDays {
			counts[i] = float64(ev.count(e, t-d*dayMicros, t))
			put(counts[i], true)
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
		put(c30/c90, c90 > 0)
		put(c30/(c365*30/365), c365 > 0)
		for c := range ev.cols {
			sums, ns := fb.sums, fb.ns
			for i, d := range fb.valueDays {
				a, b := ev.span(e, t-d*dayMicros, t)
				s, n := ev.sum(c, e, a, b)
				sums[i], ns[i] = s, float64(n)
				put(s, true)
			}
			sAll, nAll := ev.sum(c, e, first, end)
			put(sAll, true)
			for i := range fb.valueDays {
				put(sums[i]/ns[i], ns[i] > 0)
			}
			put(sAll/float64(nAll), nAll > 0)
		}
	}
}
