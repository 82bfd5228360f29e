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

const day = int64(24 * time.Hour / time.Microsecond)

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
	channel []string
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
			amount := 10 + r.Float64()*90
			if s.segment[c] == "vip" {
				amount += 60 // vip customers spend more: a static target's signal
			}
			s.amount = append(s.amount, amount)
			// The channel follows the segment most of the time.
			ch := map[string]string{"consumer": "web", "business": "phone", "vip": "store"}[s.segment[c]]
			if r.Float64() < 0.3 {
				ch = []string{"web", "phone", "store"}[r.IntN(3)]
			}
			s.channel = append(s.channel, ch)
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
		{Name: "ordered_at", Type: l.time, Nullable: true}, {Name: "amount", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "channel", Type: arrow.BinaryTypes.String, Nullable: true}}, nil),
		len(ords), func(b *array.RecordBuilder, j int) {
			i := ords[j]
			b.Field(0).(*array.Int64Builder).Append(int64(i))
			appendTestKey(t, b.Field(1), s.ordCust[i])
			appendTime(t, b.Field(2), s.ordAt[i])
			b.Field(3).(*array.Float64Builder).Append(s.amount[i])
			b.Field(4).(*array.StringBuilder).Append(s.channel[i])
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
	if err := checkPlots(r); err != nil {
		t.Error(err)
	}
	latest := slices.Max(s.ordAt)
	begin := min(slices.Min(s.ordAt), slices.Min(s.retAt))
	wantAnchors := 3 // validation, test, score
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
		{"no eligible entity", "PREDICT COUNT(orders.*, 0, 30, days) > 0 FOR EACH customers.customer_id WHERE COUNT(orders.*, -30, 0, days) > 100000", full, "no example at the training anchors", ErrNoData},
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

// TestOtherTasks trains a regression and a multiclass classification on the
// shop and checks each beats its baselines: the spend of the next 30 days
// (the order rate differs per customer, so history predicts it), and the
// channel of a customer's first order in the next 30 days (it follows the
// segment, a static column, most of the time).
func TestOtherTasks(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	s := makeShop(1500, 640, 2)
	tables := s.tables(t, mem, math.MaxInt64, defaultLayout)
	defer release(tables)
	for _, tc := range []struct {
		query, task string
		check       func(r link.TrainResult) error
		predicted   arrow.DataType
	}{
		{"PREDICT SUM(orders.amount, 0, 30, days) FOR EACH customers.customer_id WHERE COUNT(orders.*, -90, 0, days) > 0", pql.TaskRegression,
			func(r link.TrainResult) error {
				if r.Test.MAE <= 0 || r.Test.MAE >= 0.9*r.BaselineLabelRate.MAE || r.Test.MAE >= r.BaselineRecentCount.MAE || r.Test.RMSE < r.Test.MAE {
					return fmt.Errorf("MAE %.2f RMSE %.2f; mean baseline MAE %.2f, last-window MAE %.2f", r.Test.MAE, r.Test.RMSE, r.BaselineLabelRate.MAE, r.BaselineRecentCount.MAE)
				}
				return nil
			}, nil},
		{"PREDICT FIRST(orders.channel, 0, 30, days) FOR EACH customers.customer_id", pql.TaskMulticlassClassification,
			func(r link.TrainResult) error {
				if r.Classes != 3 || r.Test.Accuracy < r.BaselineLabelRate.Accuracy+0.15 || r.Test.Accuracy < 0.6 {
					return fmt.Errorf("%d classes, accuracy %.3f; majority baseline %.3f, last-window %.3f", r.Classes, r.Test.Accuracy, r.BaselineLabelRate.Accuracy, r.BaselineRecentCount.Accuracy)
				}
				return nil
			}, arrow.BinaryTypes.String},
		// A static target: the segment. The vip flag tells vip customers
		// apart, nothing tells consumers from businesses: about 2/3 of
		// the customers can be classed, against 1/3 for the majority.
		{"PREDICT customers.segment FOR EACH customers.customer_id", pql.TaskMulticlassClassification,
			func(r link.TrainResult) error {
				// Split by entity: about 70/15/15 of the customers.
				n := r.TrainRows + r.ValidationRows + r.TestRows
				if r.Test.Accuracy < 0.55 || r.Test.Accuracy < r.BaselineLabelRate.Accuracy+0.15 || r.TrainRows < n*6/10 || r.TestRows < n/10 || r.Anchors != 2 {
					return fmt.Errorf("static target: accuracy %.3f (majority %.3f), %d/%d/%d examples, %d anchors",
						r.Test.Accuracy, r.BaselineLabelRate.Accuracy, r.TrainRows, r.ValidationRows, r.TestRows, r.Anchors)
				}
				if _, ok := r.FeatureImportance["customers.segment"]; ok {
					return errors.New("the target column is a feature")
				}
				return nil
			}, arrow.BinaryTypes.String},
	} {
		t.Run(tc.task+" "+tc.query[8:24], func(t *testing.T) {
			out, err := Run(context.Background(), Input{JobID: "j", Query: tc.query, Tables: tables}, Options{Allocator: mem, MaxRounds: 100})
			if err != nil {
				t.Fatal(err)
			}
			defer out.Predictions.Release()
			r := out.Result
			t.Logf("%s: test %+v validation %+v | constant %+v | last window %+v | train %d val %d test %d, %d features",
				tc.task, r.Test, r.Validation, r.BaselineLabelRate, r.BaselineRecentCount, r.TrainRows, r.ValidationRows, r.TestRows, r.NumFeatures)
			if r.TaskType != tc.task {
				t.Errorf("task %s, want %s", r.TaskType, tc.task)
			}
			if err := tc.check(r); err != nil {
				t.Error(err)
			}
			if err := checkPlots(r); err != nil {
				t.Error(err)
			}
			p := out.Predictions
			if p.NumRows() == 0 || int(p.NumRows()) != r.PredictionRows {
				t.Fatalf("%d predictions, result says %d", p.NumRows(), r.PredictionRows)
			}
			if tc.predicted == nil {
				if p.NumCols() != 3 {
					t.Errorf("regression predictions have %d columns, want key, anchor, score", p.NumCols())
				}
				return
			}
			if p.NumCols() != 4 || !arrow.TypeEqual(p.Schema().Field(3).Type, tc.predicted) {
				t.Errorf("predictions schema %v", p.Schema())
			}
		})
	}
}

// TestRecommendation ranks the channels each customer will order through in
// the next 30 days (the channel follows the customer's segment most of the
// time): the ranker's MAP@k beats ranking by popularity, and the
// predictions hold the top k items of every customer scored, ranked 1 to k.
func TestRecommendation(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	s := makeShop(1500, 640, 6)
	tables := s.tables(t, mem, math.MaxInt64, defaultLayout)
	defer release(tables)
	const query = "PREDICT LIST_DISTINCT(orders.channel, 0, 30, days) RANK TOP 1 FOR EACH customers.customer_id"
	out, err := Run(context.Background(), Input{JobID: "j", Query: query, Tables: tables}, Options{Allocator: mem, MaxRounds: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Predictions.Release()
	r := out.Result
	t.Logf("MAP@%d test %.4f validation %.4f | popularity %.4f | history %.4f | %d/%d/%d examples, %d predictions",
		r.TopK, r.Test.MAPAtK, r.Validation.MAPAtK, r.BaselineLabelRate.MAPAtK, r.BaselineRecentCount.MAPAtK,
		r.TrainRows, r.ValidationRows, r.TestRows, r.PredictionRows)
	if r.TaskType != pql.TaskRecommendation || r.TopK != 1 || r.Test.MAPAtK < r.BaselineLabelRate.MAPAtK+0.1 || r.Test.MAPAtK > 1 {
		t.Errorf("result %+v", r)
	}
	if err := checkPlots(r); err != nil {
		t.Error(err)
	}
	p := out.Predictions
	want := arrow.NewSchema([]arrow.Field{
		{Name: "customer_id", Type: arrow.PrimitiveTypes.Int64},
		{Name: link.ColAnchorTime, Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}},
		{Name: link.ColScore, Type: arrow.PrimitiveTypes.Float64},
		{Name: link.ColItem, Type: arrow.BinaryTypes.String},
		{Name: link.ColRank, Type: arrow.PrimitiveTypes.Int32},
	}, nil)
	if !p.Schema().Equal(want) || p.NumRows() == 0 || int(p.NumRows()) != r.PredictionRows {
		t.Fatalf("predictions %v with %d rows (result says %d)", p.Schema(), p.NumRows(), r.PredictionRows)
	}
	seen := map[int64]int{}
	for i := 0; i < int(p.NumRows()); i++ {
		id := p.Column(0).(*array.Int64).Value(i)
		seen[id]++
		if rank := p.Column(4).(*array.Int32).Value(i); int(rank) != seen[id] {
			t.Fatalf("customer %d: rank %d at its row %d", id, rank, seen[id])
		}
		if ch := p.Column(3).(*array.String).Value(i); ch != "web" && ch != "phone" && ch != "store" {
			t.Fatalf("item %q", ch)
		}
	}
}

// TestSearch: the search tries the parameter sets its options allow, judged
// on validation only — one set by default, SearchSets of them, and within
// SearchBudget no more than fit in the time.
func TestSearch(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	tables := makeShop(800, 560, 9).tables(t, mem, math.MaxInt64, defaultLayout)
	defer release(tables)
	for _, tc := range []struct {
		name     string
		opts     Options
		in       link.JobOptions
		min, max int
	}{
		{"default", Options{}, link.JobOptions{}, 1, 1},
		{"three sets", Options{SearchSets: 3}, link.JobOptions{}, 3, 3},
		{"sets from the job options", Options{}, link.JobOptions{SearchSets: 2}, 2, 2},
		{"a budget spent at once", Options{SearchBudget: time.Nanosecond}, link.JobOptions{}, 1, 1},
		{"a budget of the job options", Options{}, link.JobOptions{SearchBudgetSeconds: 600}, 6, 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Allocator, tc.opts.MaxRounds = mem, 20
			out, err := Run(context.Background(), Input{JobID: "j", Query: churnQuery, Tables: tables, Options: tc.in}, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			out.Predictions.Release()
			if n := out.Result.ParameterSets; n < tc.min || n > tc.max {
				t.Errorf("%d parameter sets tried, want %d to %d", n, tc.min, tc.max)
			}
		})
	}
}

// checkPlots checks a result's plots: a ROC curve for a binary classifier,
// whose trapezoid area is the test AUROC within 0.005, a residual histogram
// counting every test row for a regression, neither for other tasks.
func checkPlots(r link.TrainResult) error {
	switch r.TaskType {
	case pql.TaskBinaryClassification:
		if len(r.ROC) < 3 || len(r.ROC) > 101 || len(r.Residuals) != 0 {
			return fmt.Errorf("%d ROC points, %d residual bins", len(r.ROC), len(r.Residuals))
		}
		area := 0.0
		for i := 1; i < len(r.ROC); i++ {
			p, q := r.ROC[i-1], r.ROC[i]
			area += (q.FalsePositiveRate - p.FalsePositiveRate) * (q.TruePositiveRate + p.TruePositiveRate) / 2
		}
		if math.Abs(area-r.Test.AUROC) > 0.005 {
			return fmt.Errorf("ROC area %.4f, test AUROC %.4f", area, r.Test.AUROC)
		}
	case pql.TaskRegression:
		var n int64
		for _, b := range r.Residuals {
			n += b.Count
		}
		if len(r.Residuals) < 2 || n != int64(r.TestRows) || len(r.ROC) != 0 {
			return fmt.Errorf("%d residual bins counting %d of %d test rows, %d ROC points", len(r.Residuals), n, r.TestRows, len(r.ROC))
		}
	default:
		if len(r.ROC) != 0 || len(r.Residuals) != 0 {
			return fmt.Errorf("%s: %d ROC points, %d residual bins, want none", r.TaskType, len(r.ROC), len(r.Residuals))
		}
	}
	return nil
}
