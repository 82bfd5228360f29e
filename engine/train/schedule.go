package train

import (
	"context"
	"fmt"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/ferry-ai/ferry/engine/memdb"
	"github.com/ferry-ai/ferry/engine/plan"
	"github.com/ferry-ai/ferry/engine/pql"
	"github.com/ferry-ai/ferry/internal/graph"
	"github.com/ferry-ai/ferry/internal/link"
)

// Default schedule.
const (
	maxTrainAnchors = 8
	// featureHistory is the longest past feature window.
	featureHistory = 365 * 24 * time.Hour
)

// scheduleAnchors places the anchors: split by the options' dates when
// they are set (plan.SplitSchedule, from the earliest time of the tables
// to the latest time of the target's tables), otherwise as the package
// doc says.
func scheduleAnchors(ctx context.Context, db *memdb.DB, q *pql.Query, g *graph.Graph, o link.JobOptions) ([]plan.Anchor, error) {
	if o.ValidationStart.IsZero() {
		return defaultAnchors(ctx, db, q, g)
	}
	window, _, eventBegin, latest, err := dataSpan(ctx, db, q, g)
	if err != nil {
		return nil, err
	}
	step := window.Unit.Duration(window.End)
	if o.AnchorStepDays > 0 {
		step = time.Duration(o.AnchorStepDays) * 24 * time.Hour
	}
	// Training anchors step back to the first event: the earliest time of
	// the tables linked to the entity (the entity's own time, such as a
	// birth or signup date, is not an event).
	s := plan.SplitSchedule{Begin: eventBegin, End: latest, ValidationStart: o.ValidationStart.UTC(), TestStart: o.TestStart.UTC(),
		Step: step, MaxEval: o.MaxEvalAnchors, Score: true}
	anchors, err := s.Anchors()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", err, ErrNoData)
	}
	return anchors, nil
}

// dataSpan returns the target's longest window, the earliest time of the
// query's tables and of those other than the entity's (events), and the
// latest time of the target's tables.
func dataSpan(ctx context.Context, db *memdb.DB, q *pql.Query, g *graph.Graph) (window *pql.Aggregation, begin, eventBegin, latest time.Time, err error) {
	targetTables := map[string]bool{}
	pql.Walk(q.Target.Expr, func(e pql.Expr) {
		if a, ok := e.(*pql.Aggregation); ok {
			targetTables[a.Table] = true
			if window == nil || a.Unit.Duration(a.End) > window.Unit.Duration(window.End) {
				window = a
			}
		}
	})
	for _, n := range pql.RequiredTables(q, g) {
		t, _ := g.Table(n)
		if t.TimeColumn == "" {
			continue
		}
		lo, hi, ok, rerr := timeRange(ctx, db, t)
		if rerr != nil {
			return nil, begin, eventBegin, latest, rerr
		}
		if !ok {
			continue
		}
		if begin.IsZero() || lo.Before(begin) {
			begin = lo
		}
		if targetTables[n] && hi.After(latest) {
			latest = hi
		}
		if n != q.Entity.Table && (eventBegin.IsZero() || lo.Before(eventBegin)) {
			eventBegin = lo
		}
	}
	if latest.IsZero() {
		return nil, begin, eventBegin, latest, fmt.Errorf("the target's tables have no rows with a time: %w", ErrNoData)
	}
	return window, begin, eventBegin, latest, nil
}

// defaultAnchors places the anchors as the package doc says: back from the
// latest time of the target's tables by the target's window.
func defaultAnchors(ctx context.Context, db *memdb.DB, q *pql.Query, g *graph.Graph) ([]plan.Anchor, error) {
	window, begin, _, latest, err := dataSpan(ctx, db, q, g)
	if err != nil {
		return nil, err
	}
	var where time.Duration
	pql.Walk(q.Where, func(e pql.Expr) {
		if a, ok := e.(*pql.Aggregation); ok {
			where = max(where, a.Unit.Duration(-a.Start))
		}
	})
	at := func(k int) time.Time { return window.Unit.Add(latest, -k*window.End) }
	w := window.Unit.Duration(window.End)
	anchors := []plan.Anchor{{Time: at(2), Split: plan.Validation}, {Time: at(1), Split: plan.Test}, {Time: latest, Split: plan.Score}}
	for _, need := range []time.Duration{max(featureHistory, where), max(w, where)} {
		var train []plan.Anchor
		for k := 1; k <= maxTrainAnchors; k++ {
			t := at(2 + k)
			if t.Before(begin.Add(need)) {
				break
			}
			train = append(train, plan.Anchor{Time: t, Split: plan.Train})
		}
		if len(train) > 0 {
			return append(train, anchors...), nil
		}
	}
	return nil, fmt.Errorf("the data spans %s to %s, too short for a training anchor with %s of history before validation and test anchors %s apart: %w",
		begin.Format(time.DateOnly), latest.Format(time.DateOnly), max(w, where), w, ErrNoData)
}

// timeRange returns the earliest and latest time of a table's time column.
func timeRange(ctx context.Context, db *memdb.DB, t *graph.Table) (lo, hi time.Time, ok bool, err error) {
	tc := memdb.QuoteIdent(t.TimeColumn)
	r, err := db.Query(ctx, fmt.Sprintf(`SELECT epoch_us(CAST(min(%s) AS TIMESTAMP)), epoch_us(CAST(max(%s) AS TIMESTAMP)) FROM %s`,
		tc, tc, memdb.QuoteIdent(t.Name)))
	if err != nil {
		return lo, hi, false, fmt.Errorf("time range of %s: %w", t.Name, err)
	}
	defer r.Release()
	for r.Next() {
		rec := r.RecordBatch()
		if rec.NumRows() == 0 {
			continue
		}
		a, okA := rec.Column(0).(*array.Int64)
		b, okB := rec.Column(1).(*array.Int64)
		if !okA || !okB || a.IsNull(0) || b.IsNull(0) {
			return lo, hi, false, nil
		}
		return time.UnixMicro(a.Value(0)).UTC(), time.UnixMicro(b.Value(0)).UTC(), true, nil
	}
	return lo, hi, false, r.Err()
}

// staticAnchors are a static target's: its examples at the latest time of
// the query's tables (or now, when none has a time), as training rows that
// splitByEntity divides, and the score anchor at the same time.
func staticAnchors(ctx context.Context, db *memdb.DB, q *pql.Query, g *graph.Graph) ([]plan.Anchor, error) {
	var latest time.Time
	for _, n := range pql.RequiredTables(q, g) {
		t, _ := g.Table(n)
		if t.TimeColumn == "" {
			continue
		}
		_, hi, ok, err := timeRange(ctx, db, t)
		if err != nil {
			return nil, err
		}
		if ok && hi.After(latest) {
			latest = hi
		}
	}
	if latest.IsZero() {
		latest = time.Now().UTC().Truncate(time.Second)
	}
	return []plan.Anchor{{Time: latest, Split: plan.Train}, {Time: latest, Split: plan.Score}}, nil
}
