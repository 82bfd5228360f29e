package train

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferry-ai/ferry/engine/memdb"
	"github.com/ferry-ai/ferry/engine/plan"
	"github.com/ferry-ai/ferry/internal/link"
)

// Recommendation (LIST_DISTINCT(t.item, ...) RANK TOP k): every example (an
// entity at an anchor whose window holds an item) gets candidates — the
// items it had before the anchor and the items most popular in the 90 days
// before it — each with pair features (plan.PairFeatures) and label 1 when
// the item is in the window. A ranker (rank:pairwise, one query group per
// example) orders them; MAP@k counts every item of the window, candidate or
// not, so a missed candidate costs. The baselines rank by popularity and by
// the entity's own history.

// rankGroup is one example's candidates: rows [start, start+n) of a split.
type rankGroup struct {
	start, n  int
	positives int // items in the window, candidates or not
}

// candidateTable holds the candidates of every split.
type candidateTable struct {
	tt     *trainingTable
	groups map[*split][]rankGroup
	items  arrow.Array // the score split's candidate items, one per row
}

func (ct *candidateTable) purge() {
	ct.tt.purge()
	if ct.items != nil {
		ct.items.Release()
		ct.items = nil
	}
}

// readCandidates runs the plan's candidate SQL and its positives count.
func readCandidates(ctx context.Context, db *memdb.DB, p *plan.Plan, topK int, mem memory.Allocator) (*candidateTable, error) {
	query, err := p.CandidatesSQL(plan.DuckDB{}, max(20, 2*topK))
	if err != nil {
		return nil, err
	}
	tt := &trainingTable{task: p.Task, names: plan.PairFeatures, cols: len(plan.PairFeatures),
		train: &split{name: "training"}, val: &split{name: "validation"}, test: &split{name: "test"}, score: &split{name: "score"}}
	ct := &candidateTable{tt: tt, groups: map[*split][]rankGroup{}}
	ok := false
	defer func() {
		if !ok {
			ct.purge()
		}
	}()
	bySplit := map[string]*split{string(plan.Train): tt.train, string(plan.Validation): tt.val, string(plan.Test): tt.test, string(plan.Score): tt.score}
	type groupKey struct {
		anchor int64
		entity string
	}
	index := map[groupKey]struct {
		s *split
		g int
	}{}
	var keySlices, itemSlices []arrow.Array
	defer func() {
		for _, a := range append(keySlices, itemSlices...) {
			a.Release()
		}
	}()
	r, err := db.Query(ctx, query)
	if err != nil {
		return nil, err
	}
	defer r.Release()
	const first = 5 // split, anchor_time, entity_id, item, label
	for r.Next() {
		rec := r.RecordBatch()
		if int(rec.NumCols()) != first+tt.cols {
			return nil, fmt.Errorf("the candidates have %d columns, want %d", rec.NumCols(), first+tt.cols)
		}
		if tt.keyType == nil {
			tt.keyType = rec.Column(colEntity).DataType()
		}
		for i := 0; i < int(rec.NumRows()); i++ {
			name, _ := str(rec.Column(colSplit), i)
			s := bySplit[name]
			if s == nil {
				return nil, fmt.Errorf("row %d: unknown split %q", i, name)
			}
			us, _ := micros(rec.Column(colAnchor), i)
			key := groupKey{us, rec.Column(colEntity).ValueStr(i)}
			gs := ct.groups[s]
			if len(gs) == 0 || index[key].s != s || index[key].g != len(gs)-1 {
				ct.groups[s] = append(gs, rankGroup{start: s.rows})
				index[key] = struct {
					s *split
					g int
				}{s, len(gs)}
				if s == tt.score {
					keySlices = append(keySlices, array.NewSlice(rec.Column(colEntity), int64(i), int64(i+1)))
				}
			}
			ct.groups[s][len(ct.groups[s])-1].n++
			s.rows++
			s.anchor = append(s.anchor, us)
			v, ok := num(rec.Column(4), i)
			if !ok {
				v = math.NaN()
			}
			s.y = append(s.y, float32(v))
			s.base = append(s.base, math.NaN())
			if s == tt.score {
				itemSlices = append(itemSlices, array.NewSlice(rec.Column(3), int64(i), int64(i+1)))
			}
			for j := 0; j < tt.cols; j++ {
				v, ok := num(rec.Column(first+j), i)
				if !ok {
					v = math.NaN()
				}
				s.x = append(s.x, float32(v))
			}
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	if err := r.Err(); err != nil {
		return nil, err
	}
	// Every item of each example's window, candidate or not.
	pq, err := p.PositivesSQL(plan.DuckDB{})
	if err != nil {
		return nil, err
	}
	pr, err := db.Query(ctx, pq)
	if err != nil {
		return nil, err
	}
	defer pr.Release()
	for pr.Next() {
		rec := pr.RecordBatch()
		for i := 0; i < int(rec.NumRows()); i++ {
			us, _ := micros(rec.Column(1), i)
			if at, found := index[groupKey{us, rec.Column(2).ValueStr(i)}]; found {
				ct.groups[at.s][at.g].positives++
			}
		}
	}
	if err := pr.Err(); err != nil {
		return nil, err
	}
	if len(keySlices) > 0 {
		if tt.score.keys, err = array.Concatenate(keySlices, mem); err != nil {
			return nil, fmt.Errorf("entity keys: %w", err)
		}
		if ct.items, err = array.Concatenate(itemSlices, mem); err != nil {
			return nil, fmt.Errorf("items: %w", err)
		}
	}
	for _, s := range []*split{tt.train, tt.val, tt.test} {
		for _, g := range ct.groups[s] {
			s.groups = append(s.groups, uint32(g.n))
		}
	}
	ok = true
	return ct, nil
}

// mapAtK is the mean over examples of the average precision of the top k
// of scores: the hits among the first k, each weighted by the precision at
// its rank, over min(k, the example's items).
func mapAtK(groups []rankGroup, y []float32, scores []float64, k int) float64 {
	if len(groups) == 0 {
		return math.NaN()
	}
	var sum float64
	idx := make([]int, 0, 64)
	for _, g := range groups {
		if g.positives == 0 {
			continue
		}
		idx = idx[:0]
		for i := g.start; i < g.start+g.n; i++ {
			idx = append(idx, i)
		}
		slices.SortStableFunc(idx, func(a, b int) int {
			switch {
			case scores[a] > scores[b]:
				return -1
			case scores[a] < scores[b]:
				return 1
			}
			return 0
		})
		hits, ap := 0, 0.0
		for rank, i := range idx[:min(k, len(idx))] {
			if y[i] > 0 {
				hits++
				ap += float64(hits) / float64(rank+1)
			}
		}
		sum += ap / float64(min(k, g.positives))
	}
	return sum / float64(len(groups))
}

// column returns column j of a split's matrix as scores (NaN as -1).
func column(s *split, cols, j int) []float64 {
	out := make([]float64, s.rows)
	for i := range out {
		v := float64(s.x[i*cols+j])
		if math.IsNaN(v) {
			v = -1
		}
		out[i] = v
	}
	return out
}

// recommendResult evaluates the ranker and its baselines on MAP@k and
// builds the predictions: the top k items of every score example.
func recommendResult(ct *candidateTable, m *model, topK int, keyName string, keyType arrow.DataType, mem memory.Allocator) (link.TrainResult, arrow.RecordBatch, error) {
	tt := ct.tt
	res := link.TrainResult{
		TrainRows: len(ct.groups[tt.train]), ValidationRows: len(ct.groups[tt.val]), TestRows: len(ct.groups[tt.test]),
		NumFeatures: tt.cols, BestIteration: m.best, FeatureImportance: m.importance, ParameterSets: m.tried, TopK: topK,
	}
	pv, err := m.predict(tt.val, tt.cols)
	if err != nil {
		return res, nil, fmt.Errorf("score validation: %w", err)
	}
	pt, err := m.predict(tt.test, tt.cols)
	if err != nil {
		return res, nil, fmt.Errorf("score test: %w", err)
	}
	ps, err := m.predict(tt.score, tt.cols)
	if err != nil {
		return res, nil, fmt.Errorf("score: %w", err)
	}
	defer func() { clear(pv); clear(pt); clear(ps) }()
	res.Validation = link.Metrics{MAPAtK: mapAtK(ct.groups[tt.val], tt.val.y, pv, topK)}
	res.Test = link.Metrics{MAPAtK: mapAtK(ct.groups[tt.test], tt.test.y, pt, topK)}
	pop := column(tt.test, tt.cols, plan.ItemCount90d)
	res.BaselineLabelRate = link.Metrics{MAPAtK: mapAtK(ct.groups[tt.test], tt.test.y, pop, topK)}
	hist := column(tt.test, tt.cols, plan.PairCountAll)
	for i := range hist {
		hist[i] = hist[i]*1e9 + pop[i] // the entity's own items first, then popular ones
	}
	res.BaselineRecentCount = link.Metrics{MAPAtK: mapAtK(ct.groups[tt.test], tt.test.y, hist, topK)}

	// Predictions: the top k candidates of each score example.
	fields := []arrow.Field{
		{Name: keyName, Type: keyType},
		{Name: link.ColAnchorTime, Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}},
		{Name: link.ColScore, Type: arrow.PrimitiveTypes.Float64},
		{Name: link.ColItem, Type: ct.itemType()},
		{Name: link.ColRank, Type: arrow.PrimitiveTypes.Int32},
	}
	var rows []int
	var ranks []int32
	for _, g := range ct.groups[tt.score] {
		idx := make([]int, g.n)
		for i := range idx {
			idx[i] = g.start + i
		}
		slices.SortStableFunc(idx, func(a, b int) int {
			switch {
			case ps[a] > ps[b]:
				return -1
			case ps[a] < ps[b]:
				return 1
			}
			return 0
		})
		for r, i := range idx[:min(topK, len(idx))] {
			rows = append(rows, i)
			ranks = append(ranks, int32(r+1))
		}
	}
	res.PredictionRows = len(rows)
	if len(ps) > 0 {
		res.ScoringAnchor = time.UnixMicro(tt.score.anchor[0]).UTC()
	}
	keys, err := scoreKeys(tt, keyType, mem)
	if err != nil {
		return res, nil, err
	}
	defer keys.Release()
	groupOf := make([]int, tt.score.rows) // score row -> its example
	for gi, g := range ct.groups[tt.score] {
		for i := g.start; i < g.start+g.n; i++ {
			groupOf[i] = gi
		}
	}
	kb := array.NewBuilder(mem, keyType)
	defer kb.Release()
	ib := array.NewBuilder(mem, ct.itemType())
	defer ib.Release()
	b := array.NewRecordBuilder(mem, arrow.NewSchema([]arrow.Field{fields[1], fields[2], fields[4]}, nil))
	defer b.Release()
	for n, i := range rows {
		if err := appendValue(kb, keys, groupOf[i]); err != nil {
			return res, nil, err
		}
		if err := appendValue(ib, ct.items, i); err != nil {
			return res, nil, err
		}
		b.Field(0).(*array.TimestampBuilder).Append(arrow.Timestamp(tt.score.anchor[i]))
		b.Field(1).(*array.Float64Builder).Append(ps[i])
		b.Field(2).(*array.Int32Builder).Append(ranks[n])
	}
	rest := b.NewRecordBatch()
	defer rest.Release()
	ka, ia := kb.NewArray(), ib.NewArray()
	defer ka.Release()
	defer ia.Release()
	cols := []arrow.Array{ka, rest.Column(0), rest.Column(1), ia, rest.Column(2)}
	return res, array.NewRecordBatch(arrow.NewSchema(fields, nil), cols, int64(len(rows))), nil
}

func (ct *candidateTable) itemType() arrow.DataType {
	if ct.items == nil {
		return arrow.Null
	}
	return ct.items.DataType()
}

// appendValue appends a's value at i to b (a scalar copy through arrow's
// scalar machinery keeps every type).
func appendValue(b array.Builder, a arrow.Array, i int) error {
	if a.IsNull(i) {
		b.AppendNull()
		return nil
	}
	s := array.NewSlice(a, int64(i), int64(i+1))
	defer s.Release()
	return b.AppendValueFromString(s.ValueStr(0))
}
