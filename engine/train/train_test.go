package train

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferry-ai/ferry/engine/pql"
	"github.com/ferry-ai/ferry/internal/graph"
	"github.com/ferry-ai/ferry/internal/link"
)

const churnQuery = "PREDICT COUNT(orders.*, 0, 30, days) = 0 FOR EACH customers.customer_id WHERE COUNT(orders.*, -90, 0, days) > 0"

const day = int64(dayMicros)

var t0 = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()

// shop is a synthetic relational data set: customers (with a signup time and
// a segment), their orders (with an amount) and returns.
type shop struct {
	custID  []int64
	signup  []int64 // -1: null
	segment []string
	ordCust []int64
	ordAt   []int64
	amount  []float64
	retCust []int64
	retAt   []int64
}

// makeShop plants a churn signal over days days: customers with a high
// return propensity stop ordering at a random time, and return much more in
// the four months before; every customer's order rate differs, so recent
// order counts alone are a weaker signal.
func makeShop(n int, days int64, seed uint64) *shop {
	r := rand.New(rand.NewPCG(seed, 7))
	s := &shop{}
	end := t0 + days*day
	for c := 0; c < n; c++ {
		id := int64(c + 1)
		s.custID = append(s.custID, id)
		sign := t0 + int64(r.IntN(200))*day
		s.signup = append(s.signup, sign)
		s.segment = append(s.segment, []string{"consumer", "business", "vip"}[r.IntN(3)])
		gap := 3 + r.ExpFloat64()*20 // mean days between orders
		risky := r.Float64() < 0.4
		churnAt := end + 1000*day
		if risky {
			churnAt = sign + int64(60+r.IntN(int(days)-140))*day
		}
		for t := sign + int64(r.Float64()*gap*float64(day)); t < end && t < churnAt; t += int64((0.2 + r.ExpFloat64()) * gap * float64(day)) {
			s.ordCust = append(s.ordCust, id)
			s.ordAt = append(s.ordAt, t)
			s.amount = append(s.amount, 10+r.Float64()*90)
			pRet := 0.05
			if risky && churnAt-t < 120*day {
				pRet = 0.6
			}
			if r.Float64() < pRet {
				s.retCust = append(s.retCust, id)
				s.retAt = append(s.retAt, t+int64(2+r.IntN(5))*day)
			}
		}
	}
	return s
}

// layout says how a shop becomes Arrow tables.
type layout struct {
	pk, fk   arrow.DataType // customer_id in customers; in orders and returns
	time     arrow.DataType // every time column
	batches  int            // record batches per table
	noSignup bool           // customers without a time column
}

var defaultLayout = layout{pk: arrow.PrimitiveTypes.Int64, fk: arrow.PrimitiveTypes.Int32,
	time: &arrow.TimestampType{Unit: arrow.Microsecond}, batches: 1}

func appendTestKey(t *testing.T, b array.Builder, id int64) {
	switch b := b.(type) {
	case *array.Int8Builder:
		b.Append(int8(id))
	case *array.Int16Builder:
		b.Append(int16(id))
	case *array.Int32Builder:
		b.Append(int32(id))
	case *array.Int64Builder:
		b.Append(id)
	case *array.Uint16Builder:
		b.Append(uint16(id))
	case *array.Uint64Builder:
		b.Append(uint64(id))
	case *array.StringBuilder:
		b.Append(fmt.Sprintf("c-%04d", id))
	case *array.LargeStringBuilder:
		b.Append(fmt.Sprintf("c-%04d", id))
	case *array.StringViewBuilder:
		b.Append(fmt.Sprintf("c-%04d", id))
	default:
		t.Fatalf("no key builder for %T", b)
	}
}

func appendTime(t *testing.T, b array.Builder, us int64) {
	if us < 0 {
		b.AppendNull()
		return
	}
	switch b := b.(type) {
	case *array.TimestampBuilder:
		switch b.Type().(*arrow.TimestampType).Unit {
		case arrow.Second:
			b.Append(arrow.Timestamp(us / 1e6))
		case arrow.Millisecond:
			b.Append(arrow.Timestamp(us / 1e3))
		case arrow.Microsecond:
			b.Append(arrow.Timestamp(us))
		case arrow.Nanosecond:
			b.Append(arrow.Timestamp(us * 1e3))
		}
	case *array.Date32Builder:
		b.Append(arrow.Date32(us / day))
	case *array.Date64Builder:
		b.Append(arrow.Date64(us / 1e3))
	default:
		t.Fatalf("no time builder for %T", b)
	}
}

// tables returns the shop as Arrow tables, keeping only rows with time <= cut.
func (s *shop) tables(t *testing.T, mem memory.Allocator, cut int64, l layout) map[string]Table {
	t.Helper()
	batches := func(schema *arrow.Schema, n int, fill func(b *array.RecordBuilder, i int)) []arrow.RecordBatch {
		b := array.NewRecordBuilder(mem, schema)
		defer b.Release()
		var out []arrow.RecordBatch
		per := max(1, (n+l.batches-1)/l.batches)
		for i := 0; i < n; i++ {
			fill(b, i)
			if (i+1)%per == 0 || i == n-1 {
				out = append(out, b.NewRecordBatch())
			}
		}
		if len(out) == 0 {
			out = append(out, b.NewRecordBatch())
		}
		return out
	}
	cf := []arrow.Field{{Name: "customer_id", Type: l.pk}, {Name: "segment", Type: arrow.BinaryTypes.String}, {Name: "vip", Type: arrow.FixedWidthTypes.Boolean, Nullable: true}}
	if !l.noSignup {
		cf = append(cf, arrow.Field{Name: "signup_at", Type: l.time, Nullable: true})
	}
	custs := batches(arrow.NewSchema(cf, nil), len(s.custID), func(b *array.RecordBuilder, i int) {
		appendTestKey(t, b.Field(0), s.custID[i])
		b.Field(1).(*array.StringBuilder).Append(s.segment[i])
		b.Field(2).(*array.BooleanBuilder).Append(s.segment[i] == "vip")
		if !l.noSignup {
			appendTime(t, b.Field(3), s.signup[i])
		}
	})
	var ords, rets []int
	for i, v := range s.ordAt {
		if v <= cut {
			ords = append(ords, i)
		}
	}
	for i, v := range s.retAt {
		if v <= cut {
			rets = append(rets, i)
		}
	}
	orders := batches(arrow.NewSchema([]arrow.Field{
		{Name: "order_id", Type: arrow.PrimitiveTypes.Int64}, {Name: "customer_id", Type: l.fk, Nullable: true},
		{Name: "ordered_at", Type: l.time, Nullable: true}, {Name: "amount", Type: arrow.PrimitiveTypes.Float64, Nullable: true}}, nil),
		len(ords), func(b *array.RecordBuilder, j int) {
			i := ords[j]
			b.Field(0).(*array.Int64Builder).Append(int64(i))
			appendTestKey(t, b.Field(1), s.ordCust[i])
			appendTime(t, b.Field(2), s.ordAt[i])
			b.Field(3).(*array.Float64Builder).Append(s.amount[i])
		})
	returns := batches(arrow.NewSchema([]arrow.Field{
		{Name: "return_id", Type: arrow.PrimitiveTypes.Int64}, {Name: "customer_id", Type: l.fk},
		{Name: "returned_at", Type: l.time}}, nil),
		len(rets), func(b *array.RecordBuilder, j int) {
			i := rets[j]
			b.Field(0).(*array.Int64Builder).Append(int64(i))
			appendTestKey(t, b.Field(1), s.retCust[i])
			appendTime(t, b.Field(2), s.retAt[i])
		})
	fk := []graph.ForeignKey{{Columns: []string{"customer_id"}, RefTable: "customers", RefColumns: []string{"customer_id"}}}
	meta := func(name, pk, tc string, recs []arrow.RecordBatch, fks []graph.ForeignKey) Table {
		m := graph.Table{Name: name, PrimaryKey: []string{pk}, TimeColumn: tc, ForeignKeys: fks}
		for _, f := range recs[0].Schema().Fields() {
			m.Columns = append(m.Columns, graph.Column{Name: f.Name, Type: f.Type.String(), Nullable: f.Nullable})
		}
		return Table{Meta: m, Records: recs}
	}
	signup := "signup_at"
	if l.noSignup {
		signup = ""
	}
	return map[string]Table{
		"customers": meta("customers", "customer_id", signup, custs, nil),
		"orders":    meta("orders", "order_id", "ordered_at", orders, fk),
		"returns":   meta("returns", "return_id", "returned_at", returns, fk),
	}
}

func release(ts map[string]Table) {
	for _, t := range ts {
		for _, r := range t.Records {
			r.Release()
		}
	}
}

// eligibleAt lists the ids of customers the churn query scores at t: signed
// up at or before t, with an order in (t-90d, t].
func (s *shop) eligibleAt(t int64) []int64 {
	var ids []int64
	for c, id := range s.custID {
		if s.signup[c] < 0 || s.signup[c] > t {
			continue
		}
		for i, v := range s.ordAt {
			if s.ordCust[i] == id && v > t-90*day && v <= t {
				ids = append(ids, id)
				break
			}
		}
	}
	return ids
}

func TestRunFindsPlantedSignal(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	s := makeShop(3000, 640, 1)
	tables := s.tables(t, mem, math.MaxInt64, defaultLayout)
	defer release(tables)
	out, err := Run(context.Background(), Input{JobID: "j1", Query: churnQuery, Tables: tables}, Options{Allocator: mem, MaxRounds: 150})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Predictions.Release()
	r := out.Result
	t.Logf("AUROC %.4f AP %.4f | recent-count AUROC %.4f AP %.4f | label rate AUROC %.4f AP %.4f | train %d val %d test %d, %d anchors, %d features, best it %d, threshold %.3f",
		r.Test.AUROC, r.Test.AveragePrecision, r.BaselineRecentCount.AUROC, r.BaselineRecentCount.AveragePrecision,
		r.BaselineLabelRate.AUROC, r.BaselineLabelRate.AveragePrecision,
		r.TrainRows, r.ValidationRows, r.TestRows, r.Anchors, r.NumFeatures, r.BestIteration, r.Threshold)
	if r.Test.AUROC < r.BaselineRecentCount.AUROC+0.03 || r.Test.AUROC < 0.75 {
		t.Errorf("model AUROC %.4f does not beat the recent-count baseline %.4f", r.Test.AUROC, r.BaselineRecentCount.AUROC)
	}
	if r.Test.AveragePrecision <= r.BaselineRecentCount.AveragePrecision {
		t.Errorf("model AP %.4f does not beat the recent-count baseline %.4f", r.Test.AveragePrecision, r.BaselineRecentCount.AveragePrecision)
	}
	if math.Abs(r.BaselineLabelRate.AUROC-0.5) > 1e-12 || math.Abs(r.BaselineLabelRate.AveragePrecision-r.TestPositiveRate) > 1e-12 {
		t.Errorf("label-rate baseline %+v, want AUROC 0.5 and AP = test positive rate %.4f", r.BaselineLabelRate, r.TestPositiveRate)
	}
	if r.Test.AUROC <= r.BaselineLabelRate.AUROC || r.Test.AveragePrecision <= r.BaselineLabelRate.AveragePrecision {
		t.Errorf("model %+v does not beat the label rate %+v", r.Test, r.BaselineLabelRate)
	}
	latest := slices.Max(s.ordAt)
	begin := min(slices.Min(s.ordAt), slices.Min(s.retAt))
	wantAnchors := 2
	for k := int64(1); k <= 8 && latest-60*day-k*30*day >= begin+365*day; k++ {
		wantAnchors++
	}
	if !r.ScoringAnchor.Equal(time.UnixMicro(latest)) || r.Anchors != wantAnchors || wantAnchors < 5 || r.TaskType != "binary_classification" ||
		r.TrainPositives <= 0 || r.TrainPositives >= r.TrainRows || r.BestIteration < 0 || r.BestIteration >= 150 ||
		r.Threshold <= 0 || r.Threshold >= 1 || len(r.FeatureImportance) == 0 || len(r.FeatureImportance) > 20 ||
		!strings.HasPrefix(r.ModelID, "m-") || len(r.ModelID) != 14 {
		t.Errorf("result %+v", r)
	}
	for name := range r.FeatureImportance {
		if !strings.HasPrefix(name, "customers.") && !strings.HasPrefix(name, "orders.") && !strings.HasPrefix(name, "returns.") {
			t.Errorf("feature %q is not named after a table", name)
		}
	}
	// Predictions: one row per eligible customer at the latest order time.
	p := out.Predictions
	want := s.eligibleAt(latest)
	if int(p.NumRows()) != len(want) || r.PredictionRows != len(want) {
		t.Fatalf("%d predictions (result says %d), want %d eligible customers", p.NumRows(), r.PredictionRows, len(want))
	}
	wantSchema := arrow.NewSchema([]arrow.Field{
		{Name: "customer_id", Type: arrow.PrimitiveTypes.Int64},
		{Name: link.ColAnchorTime, Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}},
		{Name: link.ColScore, Type: arrow.PrimitiveTypes.Float64},
		{Name: link.ColPredictedClass, Type: arrow.FixedWidthTypes.Boolean},
	}, nil)
	if !p.Schema().Equal(wantSchema) {
		t.Fatalf("predictions schema %v, want %v", p.Schema(), wantSchema)
	}
	keys := p.Column(0).(*array.Int64)
	anchor := p.Column(1).(*array.Timestamp)
	scores := p.Column(2).(*array.Float64)
	class := p.Column(3).(*array.Boolean)
	for i := 0; i < int(p.NumRows()); i++ {
		if keys.Value(i) != want[i] || int64(anchor.Value(i)) != latest {
			t.Fatalf("row %d: key %d at %d, want %d at %d", i, keys.Value(i), anchor.Value(i), want[i], latest)
		}
		if v := scores.Value(i); v < 0 || v > 1 || class.Value(i) != (v >= r.Threshold) {
			t.Fatalf("row %d: score %v class %v threshold %v", i, v, class.Value(i), r.Threshold)
		}
	}
	// Same inputs, same model: training is deterministic.
	out2, err := Run(context.Background(), Input{JobID: "j1", Query: churnQuery, Tables: tables}, Options{Allocator: mem, MaxRounds: 150})
	if err != nil {
		t.Fatal(err)
	}
	defer out2.Predictions.Release()
	if out2.Result.Test != r.Test || out2.Result.ModelID != r.ModelID || out2.Result.BestIteration != r.BestIteration {
		t.Errorf("re-run differs: %+v vs %+v, model %s vs %s", out2.Result.Test, r.Test, out2.Result.ModelID, r.ModelID)
	}
	if s2 := out2.Predictions.Column(2).(*array.Float64); !slices.Equal(s2.Float64Values(), scores.Float64Values()) {
		t.Error("re-run scores differ")
	}
}

// builder indexes tables the way Run does, for the churn query.
func builder(t *testing.T, tables map[string]Table) *featureBuilder {
	t.Helper()
	q, err := pql.Parse(churnQuery)
	if err != nil {
		t.Fatal(err)
	}
	ents, err := indexEntities(tables["customers"], "customer_id")
	if err != nil {
		t.Fatal(err)
	}
	var related []*events
	for _, n := range []string{"orders", "returns"} {
		ev, err := buildEvents(tables[n], "customer_id", ents)
		if err != nil {
			t.Fatal(err)
		}
		related = append(related, ev)
	}
	form, err := formOf(q)
	if err != nil {
		t.Fatal(err)
	}
	fb, err := newFeatureBuilder(form, ents, related, related[0])
	if err != nil {
		t.Fatal(err)
	}
	return fb
}

// TestNoLeakage proves features at t use only data at or before t: deleting
// every row with time after t changes no feature and no eligibility at t.
func TestNoLeakage(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	s := makeShop(400, 540, 2)
	for _, cut := range []int64{t0 + 200*day, t0 + 333*day + 12345, t0 + 500*day - 1} {
		full := s.tables(t, mem, math.MaxInt64, defaultLayout)
		past := s.tables(t, mem, cut, defaultLayout)
		a := builder(t, full).build(context.Background(), []int64{cut}, false)
		b := builder(t, past).build(context.Background(), []int64{cut}, false)
		release(full)
		release(past)
		if a.rows < 50 || a.rows != b.rows || !slices.Equal(a.entity, b.entity) {
			t.Fatalf("cut %d: %d rows with the future, %d without", cut, a.rows, b.rows)
		}
		for i := range a.data {
			x, y := a.data[i], b.data[i]
			if math.Float32bits(x) != math.Float32bits(y) && !(x != x && y != y) {
				t.Fatalf("cut %d: feature %d of row %d is %v with future rows and %v without", cut, i%a.cols, i/a.cols, x, y)
			}
		}
		if !slices.Equal(a.baseline, b.baseline) {
			t.Fatalf("cut %d: the recent-count baseline sees the future", cut)
		}
	}
}

// TestFeaturesByHand checks feature values and window bounds on one
// customer: windows are (t-d, t], so an order exactly d days before t is out
// and one exactly at t is in.
func TestFeaturesByHand(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	at := t0 + 400*day
	s := &shop{custID: []int64{1, 2}, signup: []int64{t0, t0}, segment: []string{"b", "a"},
		ordCust: []int64{1, 1, 1, 1, 1, 1},
		ordAt:   []int64{at - 380*day, at - 90*day, at - 30*day, at - 7*day, at, at + day},
		amount:  []float64{1, 2, 4, 8, 16, 32},
		retCust: []int64{1}, retAt: []int64{at - 3*day}}
	tables := s.tables(t, mem, math.MaxInt64, defaultLayout)
	defer release(tables)
	fb := builder(t, tables)
	m := fb.build(context.Background(), []int64{at}, true)
	if m.rows != 1 || m.entity[0] != 0 {
		t.Fatalf("%d rows (entities %v), want customer 1 only", m.rows, m.entity)
	}
	got := map[string]float64{}
	for i, n := range fb.names {
		got[n] = float64(m.data[i])
	}
	for name, want := range map[string]float64{
		"customers.segment":              1, // codes in sorted order: a=0, b=1
		"customers.vip":                  0,
		"customers.days_since_signup_at": 400,
		"orders.count_7d":                1, // at; at-7d is out
		"orders.count_30d":               2, // at-7d, at
		"orders.count_90d":               3,
		"orders.count_365d":              4,
		"orders.count_all":               5,
		"orders.days_since_last":         0,
		"orders.days_since_first":        380,
		"orders.ratio_30d_90d":           2.0 / 3,
		"orders.amount_sum_30d":          24,
		"orders.amount_sum_90d":          28,
		"orders.amount_sum_all":          31,
		"orders.amount_mean_30d":         12,
		"orders.amount_mean_90d":         28.0 / 3,
		"orders.amount_mean_all":         31.0 / 5,
		"returns.count_7d":               1,
		"returns.count_all":              1,
		"returns.days_since_last":        3,
		"returns.ratio_30d_90d":          1,
	} {
		if g, ok := got[name]; !ok || math.Abs(g-want) > 1e-5 {
			t.Errorf("%s = %v, want %v", name, g, want)
		}
	}
	if m.labels[0] != 0 {
		t.Errorf("label %v: customer 1 orders at t+1d, so the churn label is 0", m.labels[0])
	}
	// Customer 2 never orders: not eligible; with no WHERE its features are
	// missing, not zero, where undefined.
	q, _ := pql.Parse("PREDICT COUNT(orders.*, 0, 30, days) = 0 FOR EACH customers.customer_id")
	form, err := formOf(q)
	if err != nil {
		t.Fatal(err)
	}
	fb.form, fb.filters = form, nil
	m2 := fb.build(context.Background(), []int64{at}, true)
	if m2.rows != 2 || m2.labels[1] != 1 {
		t.Fatalf("without WHERE: %d rows, labels %v", m2.rows, m2.labels)
	}
	row := m2.data[m2.cols:]
	for i, n := range fb.names {
		undefined := strings.HasSuffix(n, "days_since_last") || strings.HasSuffix(n, "days_since_first") ||
			strings.Contains(n, "ratio") || strings.Contains(n, "rate_") || strings.Contains(n, "_mean_")
		if isNaN := row[i] != row[i]; isNaN != undefined {
			t.Errorf("customer without orders: %s = %v", n, row[i])
		}
	}
}

// TestEligibilityAndLabels checks who is scored at t and their labels, at
// the window bounds.
func TestEligibilityAndLabels(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	at := t0 + 200*day
	s := &shop{
		custID:  []int64{1, 2, 3, 4, 5, 6, 7},
		signup:  []int64{t0, t0, at + 1, t0, t0, t0, -1},
		segment: []string{"a", "b", "a", "b", "a", "b", "a"},
	}
	order := func(c int64, ts ...int64) {
		for _, v := range ts {
			s.ordCust = append(s.ordCust, c)
			s.ordAt = append(s.ordAt, v)
			s.amount = append(s.amount, 1)
		}
	}
	order(1, at-10*day, at+5*day)  // eligible; orders in (t, t+30d]: label 0
	order(2, at-100*day)           // no order in (t-90d, t]: not eligible
	order(3, at-day)               // signed up after t: not eligible
	order(4, at-90*day, at+40*day) // at t-90d is outside (t-90d, t]: not eligible
	order(5, at, at+30*day)        // at t counts; t+30d is inside (t, t+30d]: label 0
	order(6, at-day, at+30*day+1)  // next order after the window: label 1
	order(7, at-day)               // no signup time: not eligible
	tables := s.tables(t, mem, math.MaxInt64, defaultLayout)
	defer release(tables)
	fb := builder(t, tables)
	m := fb.build(context.Background(), []int64{at}, true)
	var ids []int64
	for _, e := range m.entity {
		ids = append(ids, s.custID[e])
	}
	if !slices.Equal(ids, []int64{1, 5, 6}) || !slices.Equal(m.labels, []float32{0, 0, 1}) {
		t.Errorf("eligible %v with labels %v, want [1 5 6] with [0 0 1]", ids, m.labels)
	}
	// The baseline is minus the count in (t-30d, t]: fewer orders, likelier churn.
	if !slices.Equal(m.baseline, []float64{-1, -1, -1}) {
		t.Errorf("baseline %v", m.baseline)
	}
	if got := s.eligibleAt(at); !slices.Equal(got, []int64{1, 5, 6}) {
		t.Errorf("test oracle disagrees: %v", got)
	}
}

// TestKeyAndTimeTypes runs the whole pipeline on keys and times of several
// types, split over several record batches.
func TestKeyAndTimeTypes(t *testing.T) {
	paris := &arrow.TimestampType{Unit: arrow.Second, TimeZone: "Europe/Paris"}
	for _, tc := range []struct {
		name string
		l    layout
	}{
		{"int64 pk, int32 fk, timestamp us", layout{pk: arrow.PrimitiveTypes.Int64, fk: arrow.PrimitiveTypes.Int32, time: &arrow.TimestampType{Unit: arrow.Microsecond}, batches: 3}},
		{"string pk, large string fk, date32", layout{pk: arrow.BinaryTypes.String, fk: arrow.BinaryTypes.LargeString, time: arrow.FixedWidthTypes.Date32, batches: 2}},
		{"string view pk and fk, timestamp ns", layout{pk: arrow.BinaryTypes.StringView, fk: arrow.BinaryTypes.StringView, time: &arrow.TimestampType{Unit: arrow.Nanosecond, TimeZone: "UTC"}, batches: 1}},
		{"uint16 pk, int64 fk, timestamp s with zone", layout{pk: arrow.PrimitiveTypes.Uint16, fk: arrow.PrimitiveTypes.Int64, time: paris, batches: 4}},
		{"int16 pk, uint64 fk, date64, no signup", layout{pk: arrow.PrimitiveTypes.Int16, fk: arrow.PrimitiveTypes.Uint64, time: arrow.FixedWidthTypes.Date64, batches: 2, noSignup: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			s := makeShop(600, 560, 5)
			tables := s.tables(t, mem, math.MaxInt64, tc.l)
			defer release(tables)
			out, err := Run(context.Background(), Input{JobID: "k", Query: churnQuery, Tables: tables}, Options{Allocator: mem, MaxRounds: 25})
			if err != nil {
				t.Fatal(err)
			}
			defer out.Predictions.Release()
			p := out.Predictions
			if f := p.Schema().Field(0); f.Name != "customer_id" || !arrow.TypeEqual(f.Type, tc.l.pk) {
				t.Fatalf("key field %v, want customer_id %v", f, tc.l.pk)
			}
			if out.Result.Test.AUROC < 0.6 || p.NumRows() == 0 {
				t.Errorf("AUROC %.3f, %d predictions", out.Result.Test.AUROC, p.NumRows())
			}
			if tc.l.noSignup {
				return
			}
			// Same customers as the oracle (dates are truncated to days).
			latest := out.Result.ScoringAnchor.UnixMicro()
			want := s.eligibleAt(latest)
			if arrow.TypeEqual(tc.l.time, arrow.FixedWidthTypes.Date32) {
				return // day granularity changes window edges
			}
			if int(p.NumRows()) != len(want) {
				t.Fatalf("%d predictions, want %d", p.NumRows(), len(want))
			}
			for i, id := range want {
				if got, w := p.Column(0).ValueStr(i), wantKey(tc.l.pk, id); got != w {
					t.Fatalf("row %d: key %s, want %s", i, got, w)
				}
			}
		})
	}
}

func wantKey(t arrow.DataType, id int64) string {
	switch t.ID() {
	case arrow.STRING, arrow.LARGE_STRING, arrow.STRING_VIEW:
		return fmt.Sprintf("c-%04d", id)
	}
	return fmt.Sprint(id)
}

func TestRunErrors(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	s := makeShop(300, 540, 3)
	short := s.tables(t, mem, t0+100*day, defaultLayout) // too little history
	defer release(short)
	full := s.tables(t, mem, math.MaxInt64, defaultLayout)
	defer release(full)
	strFK := s.tables(t, mem, math.MaxInt64, layout{pk: arrow.PrimitiveTypes.Int64, fk: arrow.BinaryTypes.String, time: defaultLayout.time, batches: 1})
	defer release(strFK)
	dup := &shop{custID: []int64{1, 1}, signup: []int64{t0, t0}, segment: []string{"a", "b"}}
	dupTables := dup.tables(t, mem, math.MaxInt64, defaultLayout)
	defer release(dupTables)
	for _, tc := range []struct {
		name   string
		query  string
		tables map[string]Table
		want   string
		is     error
	}{
		{"short history", churnQuery, short, "too short", ErrNoData},
		{"unknown table", "PREDICT COUNT(ordrs.*, 0, 30, days) > 0 FOR EACH customers.customer_id", full, `did you mean "orders"`, nil},
		{"syntax", "PREDICT FOR EACH customers.customer_id", full, "line 1, column 9", nil},
		{"a form the trainer does not take", "PREDICT SUM(orders.amount, 0, 30, days) FOR EACH customers.customer_id", full,
			"line 1, column 9: a target that is not a comparison", ErrUnsupported},
		{"a month window", "PREDICT COUNT(orders.*, 0, 1, months) > 0 FOR EACH customers.customer_id", full, "window in months", ErrUnsupported},
		{"a filter inside the count", "PREDICT COUNT(orders.* WHERE orders.amount > 1, 0, 30, days) > 0 FOR EACH customers.customer_id", full, "only COUNT(table.*) without a WHERE", ErrUnsupported},
		{"no eligible entity", "PREDICT COUNT(orders.*, 0, 30, days) > 0 FOR EACH customers.customer_id WHERE COUNT(orders.*, -30, 0, days) > 100000", full, "no entity is eligible", ErrNoData},
		{"one-class labels", "PREDICT COUNT(orders.*, 0, 30, days) >= 0 FOR EACH customers.customer_id", full, "label is true", ErrNoData},
		{"key types differ", churnQuery, strFK, "does not match the entity key type", nil},
		{"duplicate key", churnQuery, dupTables, "primary key customer_id is not unique (1 repeated rows)", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Run(context.Background(), Input{JobID: "j", Query: tc.query, Tables: tc.tables}, Options{Allocator: mem, MaxRounds: 5})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("%v is not %v", err, tc.is)
			}
		})
	}
}

func TestRunCancelled(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	tables := makeShop(500, 540, 4).tables(t, mem, math.MaxInt64, defaultLayout)
	defer release(tables)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, Input{JobID: "j", Query: churnQuery, Tables: tables}, Options{Allocator: mem}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled run: got %v, want context.Canceled", err)
	}
	// Cancelled while training: the logger cancels when the model is
	// about to train; Run stops before the next round.
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(cancelOn{msg: "training table built", cancel: cancel})
	if _, err := Run(ctx, Input{JobID: "j", Query: churnQuery, Tables: tables}, Options{Allocator: mem, Logger: log}); !errors.Is(err, context.Canceled) {
		t.Errorf("run cancelled before training: got %v, want context.Canceled", err)
	}
}

// cancelOn is a log handler that calls cancel when msg is logged.
type cancelOn struct {
	msg    string
	cancel context.CancelFunc
}

func (c cancelOn) Enabled(context.Context, slog.Level) bool { return true }
func (c cancelOn) Handle(_ context.Context, r slog.Record) error {
	if r.Message == c.msg {
		c.cancel()
	}
	return nil
}
func (c cancelOn) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c cancelOn) WithGroup(string) slog.Handler      { return c }

func TestSchedule(t *testing.T) {
	T := t0 + 1000*day
	for _, tc := range []struct {
		name      string
		query     string
		begin     int64
		wantTrain int
		short     bool
		err       bool
	}{
		{"long history: eight anchors", churnQuery, T - 1000*day, 8, false, false},
		{"a year and a bit: as many as fit", churnQuery, T - (60+365+3*30)*day, 3, false, false},
		{"under a year: anchors leaving the WHERE window", churnQuery, T - 300*day, 5, true, false},
		{"too short", churnQuery, T - 100*day, 0, true, true},
		{"weekly target", "PREDICT COUNT(orders.*, 0, 1, weeks) > 0 FOR EACH customers.customer_id", T - 1000*day, 8, false, false},
		{"two-year WHERE window", "PREDICT COUNT(orders.*, 0, 30, days) > 0 FOR EACH customers.customer_id WHERE COUNT(orders.*, -730, 0, days) > 0",
			T - (60+730+2*30)*day, 2, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, err := pql.Parse(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			form, err := formOf(q)
			if err != nil {
				t.Fatal(err)
			}
			a, err := schedule(form, T, tc.begin)
			if (err != nil) != tc.err {
				t.Fatalf("error %v, want error %v", err, tc.err)
			}
			if err != nil {
				if !errors.Is(err, ErrNoData) {
					t.Errorf("%v is not ErrNoData", err)
				}
				return
			}
			w := form.target.hi.Microseconds()
			if a.score != T || a.test != T-w || a.val != T-2*w || len(a.train) != tc.wantTrain || a.short != tc.short {
				t.Fatalf("anchors %+v, want %d training anchors (short %v)", a, tc.wantTrain, tc.short)
			}
			for k, at := range a.train {
				if at != a.val-int64(k+1)*w {
					t.Errorf("training anchor %d at %d, want %d", k, at, a.val-int64(k+1)*w)
				}
			}
		})
	}
}
