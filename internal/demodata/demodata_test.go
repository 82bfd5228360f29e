package demodata

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"math"
	"slices"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferry-ai/ferry/connectors"
)

// collectSink is a connectors.Sink that hashes every value it receives and
// keeps the columns the tests inspect, releasing every batch.
type collectSink struct {
	h       hash.Hash
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
		h:       sha256.New(),
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
	fmt.Fprintf(s.h, "table %s %s\n", table, r.Schema())
	var n int64
	var b8 [8]byte
	for r.Next() {
		rec := r.RecordBatch()
		s.batches[table]++
		n += rec.NumRows()
		for i, col := range rec.Columns() {
			name := rec.ColumnName(i)
			if col.NullN() != 0 {
				return n, fmt.Errorf("%s.%s: %d nulls", table, name, col.NullN())
			}
			switch a := col.(type) {
			case *array.Int64:
				for _, v := range a.Int64Values() {
					binary.LittleEndian.PutUint64(b8[:], uint64(v))
					s.h.Write(b8[:])
				}
				s.ints[table][name] = append(s.ints[table][name], a.Int64Values()...)
			case *array.Timestamp:
				for _, v := range a.TimestampValues() {
					binary.LittleEndian.PutUint64(b8[:], uint64(v))
					s.h.Write(b8[:])
					s.ints[table][name] = append(s.ints[table][name], int64(v))
				}
			case *array.Int32:
				for _, v := range a.Int32Values() {
					binary.LittleEndian.PutUint64(b8[:], uint64(v))
					s.h.Write(b8[:])
					s.ints[table][name] = append(s.ints[table][name], int64(v))
				}
			case *array.Float64:
				for _, v := range a.Float64Values() {
					binary.LittleEndian.PutUint64(b8[:], math.Float64bits(v))
					s.h.Write(b8[:])
				}
				s.floats[table][name] = append(s.floats[table][name], a.Float64Values()...)
			case *array.Boolean:
				for j := 0; j < a.Len(); j++ {
					v := int64(0)
					if a.Value(j) {
						v = 1
						s.h.Write([]byte{1})
					} else {
						s.h.Write([]byte{0})
					}
					s.ints[table][name] = append(s.ints[table][name], v)
				}
			case *array.String:
				for j := 0; j < a.Len(); j++ {
					s.h.Write([]byte(a.Value(j)))
					s.h.Write([]byte{0})
					s.strs[table][name] = append(s.strs[table][name], a.Value(j))
				}
			default:
				return n, fmt.Errorf("%s.%s: unexpected type %s", table, name, col.DataType())
			}
		}
	}
	return n, r.Err()
}

func (s *collectSink) sum() string { return fmt.Sprintf("%x", s.h.Sum(nil)) }

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
		{"batch size does not change values", Config{Scale: 0.05, Seed: 7, BatchSize: 1000}, Config{Scale: 0.05, Seed: 7, BatchSize: 1000}, true},
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

func TestRowCounts(t *testing.T) {
	for _, tc := range []struct {
		scale               float64
		minItems, maxItems  int64
		minCustomers, maxCu int
	}{
		{0.05, 35_000, 65_000, 500, 500},
		{0.2, 150_000, 250_000, 2000, 2000},
	} {
		t.Run(fmt.Sprint(tc.scale), func(t *testing.T) {
			s, sum := generate(t, Config{Scale: tc.scale, BatchSize: 10_000})
			want := []string{TableCustomers, TableProducts, TableOrders, TableOrderItems, TableReturns}
			if !slices.Equal(s.order, want) {
				t.Fatalf("write order %v, want %v", s.order, want)
			}
			rows := map[string]int64{}
			for _, ts := range sum.Tables {
				rows[ts.Name] = ts.Rows
			}
			t.Logf("scale %g: %v churners %d/%d", tc.scale, sum.Tables, sum.Churners, sum.Customers)
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
				t.Errorf("churners %.2f of customers, want 0.30-0.40", churn)
			}
			if s.batches[TableOrderItems] < 2 {
				t.Errorf("order_items came in %d batches", s.batches[TableOrderItems])
			}
		})
	}
}
