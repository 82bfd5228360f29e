package train

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
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

var day = int64(86400e6)
var t0 = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()

type shop struct {
	custID  []int64
	signup  []int64
	segment []string
	ordCust []int32 // int32 foreign key against an int64 primary key
	ordAt   []int64
	amount  []float64
	retCust []int32
	retAt   []int64
}

// makeShop plants a churn signal: customers with a high return propensity
// stop ordering at a random time; every customer's base rate differs, so
// recent order counts alone are a weak signal.
func makeShop(n int, seed uint64) *shop {
	r := rand.New(rand.NewPCG(seed, 7))
	s := &shop{}
	end := t0 + 540*day
	for c := 0; c < n; c++ {
		s.custID = append(s.custID, int64(1000+c))
		sign := t0 + int64(r.IntN(200))*day
		s.signup = append(s.signup, sign)
		seg := []string{"consumer", "business", "vip"}[r.IntN(3)]
		s.segment = append(s.segment, seg)
		gap := 3 + r.ExpFloat64()*20 // mean days between orders
		risky := r.Float64() < 0.4
		churnAt := end + 1000*day
		if risky {
			churnAt = sign + int64(60+r.IntN(420))*day
		}
		for t := sign + int64(r.Float64()*gap*float64(day)); t < end && t < churnAt; t += int64((0.2 + r.ExpFloat64()) * gap * float64(day)) {
			s.ordCust = append(s.ordCust, int32(1000+c))
			s.ordAt = append(s.ordAt, t)
			s.amount = append(s.amount, 10+r.Float64()*90)
			pRet := 0.05
			if risky && churnAt-t < 120*day {
				pRet = 0.6
			}
			if r.Float64() < pRet {
				s.retCust = append(s.retCust, int32(1000+c))
				s.retAt = append(s.retAt, t+int64(2+r.IntN(5))*day)
			}
		}
	}
	return s
}

var tsType = &arrow.TimestampType{Unit: arrow.Microsecond}

// tables returns the shop as Arrow tables, keeping only rows with time <= cut.
func (s *shop) tables(mem memory.Allocator, cut int64) map[string]Table {
	cb := array.NewRecordBuilder(mem, arrow.NewSchema([]arrow.Field{
		{Name: "customer_id", Type: arrow.PrimitiveTypes.Int64}, {Name: "signup_at", Type: tsType}, {Name: "segment", Type: arrow.BinaryTypes.String}}, nil))
	defer cb.Release()
	for i := range s.custID {
		cb.Field(0).(*array.Int64Builder).Append(s.custID[i])
		cb.Field(1).(*array.TimestampBuilder).Append(arrow.Timestamp(s.signup[i]))
		cb.Field(2).(*array.StringBuilder).Append(s.segment[i])
	}
	ob := array.NewRecordBuilder(mem, arrow.NewSchema([]arrow.Field{
		{Name: "order_id", Type: arrow.PrimitiveTypes.Int64}, {Name: "customer_id", Type: arrow.PrimitiveTypes.Int32},
		{Name: "ordered_at", Type: tsType}, {Name: "amount", Type: arrow.PrimitiveTypes.Float64}}, nil))
	defer ob.Release()
	for i := range s.ordAt {
		if s.ordAt[i] > cut {
			continue
		}
		ob.Field(0).(*array.Int64Builder).Append(int64(i))
		ob.Field(1).(*array.Int32Builder).Append(s.ordCust[i])
		ob.Field(2).(*array.TimestampBuilder).Append(arrow.Timestamp(s.ordAt[i]))
		ob.Field(3).(*array.Float64Builder).Append(s.amount[i])
	}
	rb := array.NewRecordBuilder(mem, arrow.NewSchema([]arrow.Field{
		{Name: "return_id", Type: arrow.PrimitiveTypes.Int64}, {Name: "customer_id", Type: arrow.PrimitiveTypes.Int32},
		{Name: "returned_at", Type: tsType}}, nil))
	defer rb.Release()
	for i := range s.retAt {
		if s.retAt[i] > cut {
			continue
		}
		rb.Field(0).(*array.Int64Builder).Append(int64(i))
		rb.Field(1).(*array.Int32Builder).Append(s.retCust[i])
		rb.Field(2).(*array.TimestampBuilder).Append(arrow.Timestamp(s.retAt[i]))
	}
	fk := []graph.ForeignKey{{Columns: []string{"customer_id"}, RefTable: "customers", RefColumns: []string{"customer_id"}}}
	meta := func(name, pk, tc string, rec arrow.RecordBatch, fks []graph.ForeignKey) Table {
		t := graph.Table{Name: name, PrimaryKey: []string{pk}, TimeColumn: tc, ForeignKeys: fks}
		for _, f := range rec.Schema().Fields() {
			t.Columns = append(t.Columns, graph.Column{Name: f.Name, Type: f.Type.String()})
		}
		return Table{Meta: t, Records: []arrow.RecordBatch{rec}}
	}
	return map[string]Table{
		"customers": meta("customers", "customer_id", "signup_at", cb.NewRecordBatch(), nil),
		"orders":    meta("orders", "order_id", "ordered_at", ob.NewRecordBatch(), fk),
		"returns":   meta("returns", "return_id", "returned_at", rb.NewRecordBatch(), fk),
	}
}

func release(ts map[string]Table) {
	for _, t := range ts {
		for _, r := range t.Records {
			r.Release()
		}
	}
}

func TestRunFindsPlantedSignal(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	s := makeShop(3000, 1)
	tables := s.tables(mem, math.MaxInt64)
	defer release(tables)
	out, err := Run(context.Background(), Input{JobID: "j1", Query: churnQuery, Tables: tables}, Options{Allocator: mem, MaxRounds: 150})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Predictions.Release()
	r := out.Result
	t.Logf("AUROC %.4f AP %.4f | recent-count AUROC %.4f | label rate AP %.4f | train %d val %d test %d, %d features, best it %d",
		r.Test.AUROC, r.Test.AveragePrecision, r.BaselineRecentCount.AUROC, r.BaselineLabelRate.AveragePrecision,
		r.TrainRows, r.ValidationRows, r.TestRows, r.NumFeatures, r.BestIteration)
	if r.Test.AUROC < r.BaselineRecentCount.AUROC+0.03 || r.Test.AUROC < 0.7 {
		t.Errorf("model AUROC %.4f does not beat the recent-count baseline %.4f", r.Test.AUROC, r.BaselineRecentCount.AUROC)
	}
	if math.Abs(r.BaselineLabelRate.AUROC-0.5) > 1e-9 {
		t.Errorf("label-rate baseline AUROC %.4f, want 0.5", r.BaselineLabelRate.AUROC)
	}
	if r.Test.AveragePrecision <= r.BaselineLabelRate.AveragePrecision {
		t.Errorf("model AP %.4f not above the label rate %.4f", r.Test.AveragePrecision, r.BaselineLabelRate.AveragePrecision)
	}
	// Predictions: one row per eligible customer at the latest order time.
	latest := int64(0)
	for _, v := range s.ordAt {
		latest = max(latest, v)
	}
	want := 0
	for c := range s.custID {
		if s.signup[c] > latest {
			continue
		}
		for i, v := range s.ordAt {
			if s.ordCust[i] == int32(s.custID[c]) && v > latest-90*day && v <= latest {
				want++
				break
			}
		}
	}
	p := out.Predictions
	if int(p.NumRows()) != want || r.PredictionRows != want {
		t.Fatalf("%d predictions, want %d eligible customers", p.NumRows(), want)
	}
	if p.Schema().Field(0).Name != "customer_id" || !arrow.TypeEqual(p.Schema().Field(0).Type, arrow.PrimitiveTypes.Int64) ||
		p.Schema().Field(2).Name != link.ColScore {
		t.Fatalf("predictions schema %v", p.Schema())
	}
	scores := p.Column(2).(*array.Float64)
	for i := 0; i < scores.Len(); i++ {
		if v := scores.Value(i); v < 0 || v > 1 {
			t.Fatalf("score %v out of [0,1]", v)
		}
	}
	// Same inputs, same model: training is deterministic.
	out2, err := Run(context.Background(), Input{JobID: "j1", Query: churnQuery, Tables: tables}, Options{Allocator: mem, MaxRounds: 150})
	if err != nil {
		t.Fatal(err)
	}
	defer out2.Predictions.Release()
	if out2.Result.Test.AUROC != r.Test.AUROC || out2.Result.ModelID != r.ModelID {
		t.Errorf("re-run differs: AUROC %v vs %v, model %s vs %s", out2.Result.Test.AUROC, r.Test.AUROC, out2.Result.ModelID, r.ModelID)
	}
}

// TestNoLeakage proves features at t use only data at or before t: deleting
// every row after t changes no feature and no eligibility at t.
func TestNoLeakage(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	s := makeShop(400, 2)
	q, err := pql.Parse(churnQuery)
	if err != nil {
		t.Fatal(err)
	}
	for _, cut := range []int64{t0 + 200*day, t0 + 333*day + 12345} {
		full := s.tables(mem, math.MaxInt64)
		past := s.tables(mem, cut)
		a := buildAt(t, q, full, cut)
		b := buildAt(t, q, past, cut)
		release(full)
		release(past)
		if a.rows == 0 || a.rows != b.rows || len(a.data) != len(b.data) {
			t.Fatalf("cut %d: %d rows with the future, %d without", cut, a.rows, b.rows)
		}
		for i := range a.data {
			x, y := a.data[i], b.data[i]
			if x != y && !(math.IsNaN(float64(x)) && math.IsNaN(float64(y))) {
				t.Fatalf("cut %d: feature %d of row %d is %v with future rows and %v without", cut, i%a.cols, i/a.cols, x, y)
			}
		}
	}
}

func buildAt(t *testing.T, q *pql.Query, tables map[string]Table, at int64) *matrix {
	t.Helper()
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
	fb := newFeatureBuilder(q, ents, related, related[0])
	return fb.build(context.Background(), []int64{at}, false)
}

func TestRunErrors(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	s := makeShop(50, 3)
	tables := s.tables(mem, t0+40*day) // too little history
	defer release(tables)
	for _, tc := range []struct{ query, want string }{
		{churnQuery, "not enough data"},
		{"PREDICT COUNT(ordrs.*, 0, 30, days) > 0 FOR EACH customers.customer_id", `did you mean "orders"`},
		{"PREDICT nonsense", "line 1"},
	} {
		_, err := Run(context.Background(), Input{JobID: "j", Query: tc.query, Tables: tables}, Options{Allocator: mem})
		if err == nil || !contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want an error containing %q", tc.query, err, tc.want)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	big := makeShop(500, 4).tables(mem, math.MaxInt64)
	defer release(big)
	if _, err := Run(ctx, Input{JobID: "j", Query: churnQuery, Tables: big}, Options{Allocator: mem}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled run: got %v, want context.Canceled", err)
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}
