package demodata

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferry-ai/ferry/connectors"
)

// collectSink is a connectors.Sink that hashes every value it receives (one
// hash per column, so batch boundaries do not matter) and keeps the columns
// the tests inspect, releasing every batch.
type collectSink struct {
	hashes  map[string]hash.Hash // by "table.column"
	order   []string
	opts    map[string]connectors.WriteOptions
	schemas map[string]*arrow.Schema
	batches map[string]int
	// int64 and timestamp columns by table and column name.
	ints map[string]map[string][]int64
	// float64 columns by table and column name.
	floats map[string]map[string][]float64
	// string columns by table and column name.
	strs map[string]map[string][]string
}

func newCollectSink() *collectSink {
	return &collectSink{
		hashes:  map[string]hash.Hash{},
		opts:    map[string]connectors.WriteOptions{},
		schemas: map[string]*arrow.Schema{},
		batches: map[string]int{},
		ints:    map[string]map[string][]int64{},
		floats:  map[string]map[string][]float64{},
		strs:    map[string]map[string][]string{},
	}
}

func (s *collectSink) Write(ctx context.Context, table string, r array.RecordReader, opts connectors.WriteOptions) (int64, error) {
	s.order = append(s.order, table)
	s.opts[table] = opts
	s.schemas[table] = r.Schema()
	s.ints[table] = map[string][]int64{}
	s.floats[table] = map[string][]float64{}
	s.strs[table] = map[string][]string{}
	var n int64
	var b8 [8]byte
	for r.Next() {
		rec := r.RecordBatch()
		s.batches[table]++
		n += rec.NumRows()
		for i, col := range rec.Columns() {
			name := rec.ColumnName(i)
			h := s.hashes[table+"."+name]
			if h == nil {
				h = sha256.New()
				s.hashes[table+"."+name] = h
			}
			if col.NullN() != 0 {
				return n, fmt.Errorf("%s.%s: %d nulls", table, name, col.NullN())
			}
			switch a := col.(type) {
			case *array.Int64:
				for _, v := range a.Int64Values() {
					binary.LittleEndian.PutUint64(b8[:], uint64(v))
					h.Write(b8[:])
				}
				s.ints[table][name] = append(s.ints[table][name], a.Int64Values()...)
			case *array.Timestamp:
				for _, v := range a.TimestampValues() {
					binary.LittleEndian.PutUint64(b8[:], uint64(v))
					h.Write(b8[:])
					s.ints[table][name] = append(s.ints[table][name], int64(v))
				}
			case *array.Int32:
				for _, v := range a.Int32Values() {
					binary.LittleEndian.PutUint64(b8[:], uint64(v))
					h.Write(b8[:])
					s.ints[table][name] = append(s.ints[table][name], int64(v))
				}
			case *array.Float64:
				for _, v := range a.Float64Values() {
					binary.LittleEndian.PutUint64(b8[:], math.Float64bits(v))
					h.Write(b8[:])
				}
				s.floats[table][name] = append(s.floats[table][name], a.Float64Values()...)
			case *array.Boolean:
				for j := 0; j < a.Len(); j++ {
					v := int64(0)
					if a.Value(j) {
						v = 1
						h.Write([]byte{1})
					} else {
						h.Write([]byte{0})
					}
					s.ints[table][name] = append(s.ints[table][name], v)
				}
			case *array.String:
				for j := 0; j < a.Len(); j++ {
					h.Write([]byte(a.Value(j)))
					h.Write([]byte{0})
					s.strs[table][name] = append(s.strs[table][name], a.Value(j))
				}
			default:
				return n, fmt.Errorf("%s.%s: unexpected type %s", table, name, col.DataType())
			}
		}
	}
	return n, r.Err()
}

// sum combines the column hashes in table and column order, with the schemas.
func (s *collectSink) sum() string {
	h := sha256.New()
	for _, table := range s.order {
		fmt.Fprintf(h, "table %s %s\n", table, s.schemas[table])
		for _, f := range s.schemas[table].Fields() {
			if ch := s.hashes[table+"."+f.Name]; ch != nil {
				h.Write(ch.Sum(nil))
			}
		}
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

func generate(t testing.TB, cfg Config) (*collectSink, Summary) {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	cfg.Allocator = mem
	s := newCollectSink()
	sum, err := Generate(context.Background(), s, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s, sum
}

func TestDeterministic(t *testing.T) {
	for _, tc := range []struct {
		name      string
		a, b      Config
		wantEqual bool
	}{
		{"same config", Config{Scale: 0.05, Seed: 7}, Config{Scale: 0.05, Seed: 7}, true},
		{"batch size does not change values", Config{Scale: 0.05, Seed: 7, BatchSize: 1000}, Config{Scale: 0.05, Seed: 7}, true},
		{"explicit defaults", Config{Scale: 1.0 / 20, Seed: 7, Days: 730, Start: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}, Config{Scale: 0.05, Seed: 7}, true},
		{"other start", Config{Scale: 0.05, Seed: 7, Start: time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)}, Config{Scale: 0.05, Seed: 7}, false},
		{"seed 0 means 1", Config{Scale: 0.05}, Config{Scale: 0.05, Seed: 1}, true},
		{"other seed", Config{Scale: 0.05, Seed: 7}, Config{Scale: 0.05, Seed: 8}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, sa := generate(t, tc.a)
			b, sb := generate(t, tc.b)
			if got := a.sum() == b.sum(); got != tc.wantEqual {
				t.Errorf("hashes equal = %v, want %v", got, tc.wantEqual)
			}
			if tc.wantEqual && !slices.Equal(sa.Tables, sb.Tables) {
				t.Errorf("summaries differ: %v vs %v", sa.Tables, sb.Tables)
			}
		})
	}
}

// TestParallelDeterministic checks that the simulation does not depend on
// the number of goroutines.
func TestParallelDeterministic(t *testing.T) {
	cfg, err := Config{Scale: 0.05, Seed: 9}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	var want *dataset
	for _, parallel := range []int{1, 2, 3, 8} {
		d, err := build(context.Background(), cfg, parallel)
		if err != nil {
			t.Fatal(err)
		}
		d.p.parallel = 0
		if want == nil {
			want = d
			continue
		}
		if !reflect.DeepEqual(d, want) {
			t.Errorf("%d goroutines: data differs from 1 goroutine's", parallel)
		}
	}
}

// TestRowCounts checks the tables' sizes and rates; scale 1 (about 1.3M
// rows, a few seconds) is skipped with -short.
// TestTimelines checks each simulated customer's story: orders in time
// order after signup, a dormancy of at least dormancyMin days before every
// reactivation, declines that only make gaps longer, and churners whose
// last order is followed by no other.
func TestTimelines(t *testing.T) {
	for _, seed := range []uint64{1, 5} {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			cfg, err := Config{Scale: 0.1, Seed: seed}.withDefaults()
			if err != nil {
				t.Fatal(err)
			}
			d, err := build(context.Background(), cfg, 2)
			if err != nil {
				t.Fatal(err)
			}
			var declining, reactivated, churnedAfterDecline int
			for i := range d.custs {
				c := &d.custs[i]
				long := 0
				sawDecline := false
				for k, o := range c.orders {
					if o.at < c.signup || o.at > d.p.end {
						t.Fatalf("customer %d order %d at %d: outside [signup, end]", c.id, k, o.at)
					}
					if k > 0 && o.at < c.orders[k-1].at {
						t.Fatalf("customer %d: orders out of time order", c.id)
					}
					if k > 0 && o.at-c.orders[k-1].at >= dormancyMin*microsPerDay {
						long++
					}
					if o.progress > 0 {
						sawDecline = true
					}
				}
				if long < c.reactivations {
					t.Errorf("customer %d: %d reactivations but %d gaps of %d+ days", c.id, c.reactivations, long, dormancyMin)
				}
				if sawDecline {
					declining++
					if c.churned {
						churnedAfterDecline++
					}
				}
				if c.reactivations > 0 {
					reactivated++
				}
			}
			t.Logf("%d customers: %d declined, %d of them churned; %d reactivated", len(d.custs), declining, churnedAfterDecline, reactivated)
			if declining == 0 || churnedAfterDecline == 0 || reactivated == 0 || churnedAfterDecline == declining {
				t.Errorf("want some declines, some ending in churn and some not, and some reactivations")
			}
		})
	}
}

func TestRowCounts(t *testing.T) {
	for _, tc := range []struct {
		scale               float64
		minItems, maxItems  int64
		minCustomers, maxCu int
	}{
		{0.05, 40_000, 65_000, 500, 500},
		{0.2, 170_000, 240_000, 2000, 2000},
		{1, 900_000, 1_100_000, 10_000, 10_000},
	} {
		t.Run(fmt.Sprint(tc.scale), func(t *testing.T) {
			if tc.scale >= 1 && testing.Short() {
				t.Skip("scale 1 skipped in -short mode")
			}
			batch := 10_000
			if tc.scale >= 1 {
				batch = 0 // the default
			}
			s, sum := generate(t, Config{Scale: tc.scale, BatchSize: batch})
			want := []string{TableCustomers, TableProducts, TableOrders, TableOrderItems, TableReturns}
			if !slices.Equal(s.order, want) {
				t.Fatalf("write order %v, want %v", s.order, want)
			}
			rows := map[string]int64{}
			for _, ts := range sum.Tables {
				rows[ts.Name] = ts.Rows
			}
			t.Logf("scale %g: %v churners %d reactivated %d of %d", tc.scale, sum.Tables, sum.Churners, sum.Reactivated, sum.Customers)
			if sum.Customers < tc.minCustomers || sum.Customers > tc.maxCu || rows[TableCustomers] != int64(sum.Customers) {
				t.Errorf("customers %d (%d rows)", sum.Customers, rows[TableCustomers])
			}
			if n := rows[TableOrderItems]; n < tc.minItems || n > tc.maxItems {
				t.Errorf("order_items %d, want [%d, %d]", n, tc.minItems, tc.maxItems)
			}
			perOrder := float64(rows[TableOrderItems]) / float64(rows[TableOrders])
			if perOrder < 2.5 || perOrder > 3.5 {
				t.Errorf("items per order %.2f, want ~3", perOrder)
			}
			retRate := float64(rows[TableReturns]) / float64(rows[TableOrders])
			if retRate < 0.05 || retRate > 0.2 {
				t.Errorf("returns per order %.3f", retRate)
			}
			churn := float64(sum.Churners) / float64(sum.Customers)
			if churn < 0.25 || churn > 0.45 {
				t.Errorf("churners %.2f of customers, want 0.25-0.45", churn)
			}
			react := float64(sum.Reactivated) / float64(sum.Customers)
			if react < 0.02 || react > 0.1 {
				t.Errorf("reactivated %.3f of customers, want 0.02-0.10", react)
			}
			if s.batches[TableOrderItems] < 2 {
				t.Errorf("order_items came in %d batches", s.batches[TableOrderItems])
			}
		})
	}
}

func TestIntegrity(t *testing.T) {
	for _, cfg := range []Config{
		{Scale: 0.1, Seed: 3},
		{Scale: 0.05, Seed: 4, Days: 365, Start: time.Date(2022, 6, 15, 0, 0, 0, 0, time.UTC), BatchSize: 777},
	} {
		t.Run(fmt.Sprintf("seed %d", cfg.Seed), func(t *testing.T) {
			s, sum := generate(t, cfg)
			full, _ := cfg.withDefaults()
			start, end := full.Start.UnixMicro(), full.Start.AddDate(0, 0, full.Days).UnixMicro()

			unique := func(table, col string) map[int64]int {
				ids := s.ints[table][col]
				idx := make(map[int64]int, len(ids))
				for i, id := range ids {
					if _, dup := idx[id]; dup {
						t.Fatalf("%s.%s: duplicate %d", table, col, id)
					}
					idx[id] = i
				}
				return idx
			}
			custs := unique(TableCustomers, "customer_id")
			prods := unique(TableProducts, "product_id")
			orders := unique(TableOrders, "order_id")
			unique(TableOrderItems, "order_item_id")
			unique(TableReturns, "return_id")
			if len(custs) != sum.Customers {
				t.Errorf("%d customers, summary says %d", len(custs), sum.Customers)
			}
			for _, tc := range []struct {
				table, col string
				ref        map[int64]int
			}{
				{TableOrders, "customer_id", custs},
				{TableOrderItems, "order_id", orders},
				{TableOrderItems, "product_id", prods},
				{TableReturns, "order_id", orders},
				{TableReturns, "customer_id", custs},
			} {
				for _, v := range s.ints[tc.table][tc.col] {
					if _, ok := tc.ref[v]; !ok {
						t.Fatalf("%s.%s = %d references nothing", tc.table, tc.col, v)
					}
				}
			}
			signup := s.ints[TableCustomers]["signup_at"]
			for _, at := range signup {
				if at < start || at > end || at%1_000_000 != 0 {
					t.Fatalf("signup_at %d outside [%d, %d] or not whole seconds", at, start, end)
				}
			}
			oCust, oAt := s.ints[TableOrders]["customer_id"], s.ints[TableOrders]["ordered_at"]
			for i, at := range oAt {
				if at > end || at < signup[custs[oCust[i]]] {
					t.Fatalf("order %d at %d: before its customer's signup or after the end %d", i, at, end)
				}
				if i > 0 && at < oAt[i-1] {
					t.Fatalf("order_id does not follow ordered_at at row %d", i)
				}
			}
			// amount = sum of quantity × unit_price over the order's items.
			sums := make([]float64, len(oAt))
			nItems := make([]int, len(oAt))
			for i, oid := range s.ints[TableOrderItems]["order_id"] {
				o := orders[oid]
				sums[o] += float64(s.ints[TableOrderItems]["quantity"][i]) * s.floats[TableOrderItems]["unit_price"][i]
				nItems[o]++
			}
			for i, amt := range s.floats[TableOrders]["amount"] {
				if math.Abs(amt-sums[i]) > 0.005 || nItems[i] < 1 || nItems[i] > 6 {
					t.Fatalf("order row %d: amount %.2f, items sum %.2f, %d items", i, amt, sums[i], nItems[i])
				}
			}
			statuses := map[string]int{}
			for _, st := range s.strs[TableOrders]["status"] {
				statuses[st]++
			}
			if f := float64(statuses["delivered"]) / float64(len(oAt)); f < 0.85 || statuses["cancelled"] == 0 {
				t.Errorf("statuses %v: want mostly delivered, some cancelled", statuses)
			}
			for i, oid := range s.ints[TableReturns]["order_id"] {
				o := orders[oid]
				at := s.ints[TableReturns]["returned_at"][i]
				if at <= oAt[o] || at > end {
					t.Fatalf("return %d at %d: order at %d, end %d", i, at, oAt[o], end)
				}
				if s.ints[TableReturns]["customer_id"][i] != oCust[o] {
					t.Fatalf("return %d: customer differs from its order's", i)
				}
				if st := s.strs[TableOrders]["status"][o]; st != "delivered" {
					t.Fatalf("return %d of a %s order", i, st)
				}
				if r := s.floats[TableReturns]["refund_amount"][i]; r <= 0 || r > s.floats[TableOrders]["amount"][o]+0.005 {
					t.Fatalf("return %d: refund %.2f of an order of %.2f", i, r, s.floats[TableOrders]["amount"][o])
				}
			}
			// Primary keys are NOT NULL in the schemas, other columns nullable.
			for table, sc := range s.schemas {
				pk := s.opts[table].PrimaryKey
				for _, f := range sc.Fields() {
					if isPK := slices.Contains(pk, f.Name); f.Nullable == isPK {
						t.Errorf("%s.%s: nullable %v, primary key %v", table, f.Name, f.Nullable, isPK)
					}
				}
			}
			if n := s.batches[TableOrderItems]; cfg.BatchSize > 0 && int64(n) < int64(len(s.ints[TableOrderItems]["order_id"]))/int64(cfg.BatchSize) {
				t.Errorf("order_items in %d batches of at most %d", n, cfg.BatchSize)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"negative scale", Config{Scale: -1}, "scale"},
		{"NaN scale", Config{Scale: math.NaN()}, "scale"},
		{"short window", Config{Scale: 0.01, Days: 10}, "days"},
		{"negative batch", Config{Scale: 0.01, BatchSize: -5}, "batch size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Generate(context.Background(), newCollectSink(), tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
	if _, err := Generate(context.Background(), nil, Config{}); err == nil {
		t.Error("nil sink: no error")
	}
}

// failSink fails on the named table, or reports a wrong row count.
type failSink struct {
	table string
	lie   bool
}

func (f failSink) Write(ctx context.Context, table string, r array.RecordReader, _ connectors.WriteOptions) (int64, error) {
	var n int64
	for r.Next() {
		n += r.RecordBatch().NumRows()
		if table == f.table && !f.lie {
			return n, errors.New("disk full")
		}
	}
	if table == f.table && f.lie {
		n++
	}
	return n, r.Err()
}

func TestSinkErrorsAndCancel(t *testing.T) {
	for _, tc := range []struct {
		name string
		sink connectors.Sink
		ctx  func() context.Context
		want string
	}{
		{"sink error", failSink{table: TableOrders}, context.Background, "write orders: disk full"},
		{"wrong count", failSink{table: TableReturns, lie: true}, context.Background, "sink wrote"},
		{"cancelled", newCollectSink(), func() context.Context {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx
		}, "context canceled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			_, err := Generate(tc.ctx(), tc.sink, Config{Scale: 0.02, Allocator: mem})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func BenchmarkGenerate(b *testing.B) {
	for _, scale := range []float64{0.1, 1} {
		b.Run(fmt.Sprint("scale=", scale), func(b *testing.B) {
			var rows int64
			for b.Loop() {
				sum, err := Generate(context.Background(), countSink{}, Config{Scale: scale})
				if err != nil {
					b.Fatal(err)
				}
				for _, ts := range sum.Tables {
					rows += ts.Rows
				}
			}
			b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

// countSink counts rows and drops them.
type countSink struct{}

func (countSink) Write(_ context.Context, _ string, r array.RecordReader, _ connectors.WriteOptions) (int64, error) {
	var n int64
	for r.Next() {
		n += r.RecordBatch().NumRows()
	}
	return n, r.Err()
}
