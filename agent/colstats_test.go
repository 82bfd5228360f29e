package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"testing"
	"time"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/arrow/util"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/ferry-ai/ferry/engine"
	"github.com/ferry-ai/ferry/internal/graph"
	"github.com/ferry-ai/ferry/internal/link"
	"github.com/ferry-ai/ferry/internal/pki"
	"github.com/ferry-ai/ferry/internal/syntable"
)

// null stands for a null value in the cases of TestColumnStats.
const null = "<null>"

// TestColumnStats: exact null counts and ranges of a column of each Arrow
// type, read in three batches; no range for text, binary, boolean, time and
// key columns, nor for a column with no value; distinct estimates exact for
// a handful of values (within one, for a register collision).
func TestColumnStats(t *testing.T) {
	dec := func(p, s int32) arrow.DataType { return &arrow.Decimal128Type{Precision: p, Scale: s} }
	for _, tc := range []struct {
		name     string
		typ      arrow.DataType
		key      string // "pk", "fk" or ""
		values   []string
		nulls    int64
		hasRange bool
		min, max float64
		distinct int64
	}{
		{"int8", arrow.PrimitiveTypes.Int8, "", []string{"-5", null, "7", "3", null, "-128", "127", "3"}, 2, true, -128, 127, 5},
		{"int16", arrow.PrimitiveTypes.Int16, "", []string{"300", "-32768", null, "32767", "0"}, 1, true, -32768, 32767, 4},
		{"int32", arrow.PrimitiveTypes.Int32, "", []string{"1", "2", "3", "2147483647", null, "-2147483648", "1"}, 1, true, math.MinInt32, math.MaxInt32, 5},
		{"int64", arrow.PrimitiveTypes.Int64, "", []string{"42", null, null, "-9007199254740993", "9007199254740993", "42"}, 2, true, -9007199254740993, 9007199254740993, 3},
		{"uint8", arrow.PrimitiveTypes.Uint8, "", []string{"255", "0", "17", null}, 1, true, 0, 255, 3},
		{"uint16", arrow.PrimitiveTypes.Uint16, "", []string{"65535", "1", null, "1"}, 1, true, 1, 65535, 2},
		{"uint32", arrow.PrimitiveTypes.Uint32, "", []string{"4294967295", "7", "8"}, 0, true, 7, 4294967295, 3},
		{"uint64", arrow.PrimitiveTypes.Uint64, "", []string{"18446744073709551615", null, "2", "3"}, 1, true, 2, 18446744073709551615, 3},
		{"float32", arrow.PrimitiveTypes.Float32, "", []string{"1.5", "-2.25", null, "0", "-0", "NaN", "+Inf", "1.5"}, 1, true, -2.25, 1.5, 5},
		{"float64", arrow.PrimitiveTypes.Float64, "", []string{"-Inf", "3.125", null, "-1e300", "1e300", "NaN", "3.125"}, 1, true, -1e300, 1e300, 5},
		{"float64 inf and nan only", arrow.PrimitiveTypes.Float64, "", []string{"-Inf", "NaN", "+Inf"}, 0, false, 0, 0, 3},
		{"float16", arrow.FixedWidthTypes.Float16, "", []string{"0.5", null, "-4", "2"}, 1, true, -4, 2, 3},
		{"decimal128", dec(10, 2), "", []string{"12.34", "-0.50", null, "99.99", "12.34"}, 1, true, -0.5, 99.99, 3},
		{"decimal256", &arrow.Decimal256Type{Precision: 40, Scale: 3}, "", []string{"1.125", "-7.5", "1.125", null}, 1, true, -7.5, 1.125, 2},
		{"decimal64", &arrow.Decimal64Type{Precision: 12, Scale: 1}, "", []string{"5.5", "-1.0", null}, 1, true, -1, 5.5, 2},
		{"string", arrow.BinaryTypes.String, "", []string{"b", "a", null, "b", "zz", ""}, 1, false, 0, 0, 4},
		{"large string", arrow.BinaryTypes.LargeString, "", []string{"x", "y", "x"}, 0, false, 0, 0, 2},
		{"binary", arrow.BinaryTypes.Binary, "", []string{"AAE=", "AQI=", null, "AAE="}, 1, false, 0, 0, 2},
		{"bool", arrow.FixedWidthTypes.Boolean, "", []string{"true", "false", null, "true"}, 1, false, 0, 0, 2},
		{"timestamp", &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, "", []string{"2024-01-01T00:00:00Z", null, "2025-06-30T12:00:00Z"}, 1, false, 0, 0, 2},
		{"date32", arrow.FixedWidthTypes.Date32, "", []string{"2024-01-01", "2024-01-02", "2024-01-01"}, 0, false, 0, 0, 2},
		{"primary key", arrow.PrimitiveTypes.Int64, "pk", []string{"1", "2", "3", "4", "5", "6"}, 0, false, 0, 0, 6},
		{"foreign key", arrow.PrimitiveTypes.Int32, "fk", []string{"10", "10", null, "11"}, 1, false, 0, 0, 2},
		{"all null", arrow.PrimitiveTypes.Float64, "", []string{null, null, null, null}, 4, false, 0, 0, 0},
		{"no rows", arrow.PrimitiveTypes.Float64, "", nil, 0, false, 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			tbl := graph.Table{Name: "t", Columns: []graph.Column{{Name: "id", Type: "int64"}, {Name: "c", Type: tc.typ.String(), Nullable: true}}, PrimaryKey: []string{"id"}}
			switch tc.key {
			case "pk":
				tbl.PrimaryKey = []string{"id", "c"}
			case "fk":
				tbl.ForeignKeys = []graph.ForeignKey{{Columns: []string{"c"}, RefTable: "u", RefColumns: []string{"c"}}}
			}
			schema := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}, {Name: "c", Type: tc.typ, Nullable: true}}, nil)
			recs := chunks(t, mem, schema, tc.values, 3)
			r, err := array.NewRecordReader(schema, recs)
			if err != nil {
				t.Fatal(err)
			}
			for _, rec := range recs {
				rec.Release()
			}
			sr, cs := withColumnStats(r, tbl)
			cs.key = 0x5eed // deterministic
			rows := 0
			for sr.Next() {
				rows += int(sr.RecordBatch().NumRows())
			}
			r.Release()
			if rows != len(tc.values) {
				t.Fatalf("the reader passed %d rows on, want %d", rows, len(tc.values))
			}
			got := cs.result()
			if len(got) != 2 || got[0].Name != "id" || got[1].Name != "c" {
				t.Fatalf("stats of columns %v, want id, c", got)
			}
			c := got[1]
			if c.Nulls != tc.nulls {
				t.Errorf("nulls %d, want %d", c.Nulls, tc.nulls)
			}
			wantFrac := 0.0
			if len(tc.values) > 0 {
				wantFrac = float64(tc.nulls) / float64(len(tc.values))
			}
			if c.NullFraction != wantFrac {
				t.Errorf("null fraction %v, want %v", c.NullFraction, wantFrac)
			}
			if c.HasRange != tc.hasRange || c.Min != tc.min || c.Max != tc.max {
				t.Errorf("range %v [%v, %v], want %v [%v, %v]", c.HasRange, c.Min, c.Max, tc.hasRange, tc.min, tc.max)
			}
			if d := c.DistinctEstimate - tc.distinct; d < -1 || d > 0 {
				t.Errorf("distinct estimate %d, want %d", c.DistinctEstimate, tc.distinct)
			}
			if id := got[0]; id.HasRange || id.Nulls != 0 || (len(tc.values) > 0 && id.DistinctEstimate != int64(len(tc.values))) {
				t.Errorf("primary key column: %v", id)
			}
		})
	}
}

// chunks builds the values (as text; null for a null) of column 1 of
// schema, with column 0 the row number, in n batches.
func chunks(t *testing.T, mem memory.Allocator, schema *arrow.Schema, values []string, n int) []arrow.RecordBatch {
	t.Helper()
	var recs []arrow.RecordBatch
	for k := range n {
		lo, hi := k*len(values)/n, (k+1)*len(values)/n
		b := array.NewRecordBuilder(mem, schema)
		for i := lo; i < hi; i++ {
			b.Field(0).(*array.Int64Builder).Append(int64(i + 1))
			if values[i] == null {
				b.Field(1).AppendNull()
			} else if err := b.Field(1).AppendValueFromString(values[i]); err != nil {
				t.Fatalf("value %q: %v", values[i], err)
			}
		}
		recs = append(recs, b.NewRecordBatch())
		b.Release()
	}
	return recs
}

// TestColumnStatsOrder: the statistics follow the table's columns, with the
// reader's other columns after them; null fractions are of the table's rows.
func TestColumnStatsOrder(t *testing.T) {
	schema := arrow.NewSchema([]arrow.Field{{Name: "b", Type: arrow.PrimitiveTypes.Int64, Nullable: true}, {Name: "extra", Type: arrow.PrimitiveTypes.Int64}, {Name: "a", Type: arrow.PrimitiveTypes.Int64}}, nil)
	tbl := graph.Table{Name: "t", Columns: []graph.Column{{Name: "a"}, {Name: "b"}, {Name: "gone"}}}
	cs := newColStats(schema, tbl)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	b.Field(0).(*array.Int64Builder).AppendValues([]int64{1, 0, 0, 4}, []bool{true, false, false, true})
	b.Field(1).(*array.Int64Builder).AppendValues([]int64{1, 2, 3, 4}, nil)
	b.Field(2).(*array.Int64Builder).AppendValues([]int64{5, 6, 7, 8}, nil)
	rec := b.NewRecordBatch()
	defer rec.Release()
	cs.observe(rec)
	got := cs.result()
	var names []string
	for _, c := range got {
		names = append(names, c.Name)
	}
	if fmt.Sprint(names) != "[a b extra]" {
		t.Fatalf("order %v, want [a b extra]", names)
	}
	if got[1].NullFraction != 0.5 || got[1].Min != 1 || got[1].Max != 4 || got[0].Min != 5 || got[0].Max != 8 {
		t.Errorf("stats %v", got)
	}
}

// TestHLLAccuracy: the distinct estimate is within 2% of the truth at 10k,
// 100k and 1M distinct values, for integers in order, random integers and
// text, each value seen twice, for a few hash keys.
func TestHLLAccuracy(t *testing.T) {
	if testing.Short() {
		t.Skip("1M-value sketches")
	}
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		for _, kind := range []string{"sequential", "random", "text"} {
			for _, key := range []uint64{1, 0x9e3779b97f4a7c15, 0xdeadbeefcafe} {
				t.Run(fmt.Sprintf("%d/%s/key=%x", n, kind, key), func(t *testing.T) {
					var typ arrow.DataType = arrow.PrimitiveTypes.Int64
					if kind == "text" {
						typ = arrow.BinaryTypes.String
					}
					schema := arrow.NewSchema([]arrow.Field{{Name: "v", Type: typ}}, nil)
					cs := newColStats(schema, graph.Table{Name: "t"})
					cs.key = key
					rng := rand.New(rand.NewPCG(key, uint64(n)))
					values := make([]int64, n)
					for i := range values {
						values[i] = int64(i)
						if kind == "random" {
							values[i] = int64(rng.Uint64()>>1) | 1<<40 // distinct with near certainty
						}
					}
					// Every value twice, in batches of 16384.
					all := append(values, values...)
					rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
					for start := 0; start < len(all); start += 16384 {
						part := all[start:min(start+16384, len(all))]
						var a arrow.Array
						if kind == "text" {
							sb := array.NewStringBuilder(memory.DefaultAllocator)
							for _, v := range part {
								sb.Append(fmt.Sprintf("customer-%d@example.com", v))
							}
							a = sb.NewArray()
							sb.Release()
						} else {
							ib := array.NewInt64Builder(memory.DefaultAllocator)
							ib.AppendValues(part, nil)
							a = ib.NewArray()
							ib.Release()
						}
						rec := array.NewRecordBatch(schema, []arrow.Array{a}, int64(len(part)))
						a.Release()
						cs.observe(rec)
						rec.Release()
					}
					got := cs.result()[0].DistinctEstimate
					rel := float64(got-int64(n)) / float64(n)
					t.Logf("estimate %d of %d distinct (%+.2f%%)", got, n, 100*rel)
					if math.Abs(rel) > 0.02 {
						t.Errorf("estimate %d is %+.2f%% off %d distinct", got, 100*rel, n)
					}
				})
			}
		}
	}
}

// TestColumnStatsBoundedMemory: the statistics of a table cost a fixed
// sketch per column whatever its rows: adding a batch allocates nothing,
// and no batch is kept (the checked allocator ends at zero).
func TestColumnStatsBoundedMemory(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	r := syntable.New(mem, 1<<20, 16384)
	sr, cs := withColumnStats(r, graph.Table{Name: "events", PrimaryKey: []string{"id"}})
	per := int(unsafe.Sizeof(columnAcc{}))
	if per > hllRegisters+256 {
		t.Errorf("a column's statistics take %d bytes", per)
	}
	batches := 0
	for sr.Next() {
		batches++
		if batches == 2 {
			rec := sr.RecordBatch()
			if allocs := testing.AllocsPerRun(20, func() { cs.observe(rec) }); allocs != 0 {
				t.Errorf("adding a batch of %d rows allocates %v times", rec.NumRows(), allocs)
			}
		}
	}
	r.Release()
	got := cs.result()
	if len(got) != len(syntable.Schema.Fields()) || batches != 64 {
		t.Fatalf("%d columns, %d batches", len(got), batches)
	}
	for _, c := range got {
		if c.DistinctEstimate > cs.rows-c.Nulls {
			t.Errorf("%s: %d distinct of %d values", c.Name, c.DistinctEstimate, cs.rows-c.Nulls)
		}
		if c.Name == "amount" && (!c.HasRange || c.Nulls == 0) {
			t.Errorf("amount: %v", c)
		}
		if c.Name == "id" && c.HasRange {
			t.Errorf("the key id has a range: %v", c)
		}
	}
}

// BenchmarkColumnStats measures the statistics on the stream path, on the
// six-column syntable batch (two int64, a string, a float64 with nulls, a
// bool, a timestamp) of 16384 rows, 2M rows per iteration:
//
//   - observe: the statistics alone (rows/s and MB/s of Arrow data);
//   - stream, stream+stats: StreamTable to an engine in this process over
//     mutual TLS, without and with the statistics.
//
// On the shared 2-core VM of issue 8 (load average ~10, so ±15%), 2M rows
// of 45 bytes: observe 1.25–1.5 GB/s, 28–33M rows/s, 0.07 s per 2M rows;
// stream 370–495 MB/s (8.3–11.0M rows/s); stream+stats 340–385 MB/s
// (7.5–8.6M rows/s). The engine shares the two cores here, so the link is
// CPU-bound and the statistics cost it about a fifth; against a remote
// engine they are a small part of the send. Memory: 112 KB per table read
// of six columns (a 16 KiB sketch and ~100 bytes per column), none per row
// (TestColumnStatsBoundedMemory).
func BenchmarkColumnStats(b *testing.B) {
	const batchRows, rows = 16384, 2 << 20
	recs := make([]arrow.RecordBatch, 4)
	var size int64
	for i := range recs {
		recs[i] = syntable.Batch(memory.DefaultAllocator, int64(i*batchRows), batchRows)
		size += util.TotalRecordSize(recs[i])
	}
	defer func() {
		for _, r := range recs {
			r.Release()
		}
	}()
	perIter := size / int64(len(recs)) * rows / batchRows
	tbl := graph.Table{Name: "events", PrimaryKey: []string{"id"}}
	report := func(b *testing.B) {
		b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	}
	b.Run("observe", func(b *testing.B) {
		b.SetBytes(perIter)
		b.ReportAllocs()
		for b.Loop() {
			cs := newColStats(syntable.Schema, tbl)
			for i := range rows / batchRows {
				cs.observe(recs[i%len(recs)])
			}
			_ = cs.result()
		}
		report(b)
	})
	eng := benchEngine(b)
	for _, stats := range []bool{false, true} {
		name := "stream"
		if stats {
			name += "+stats"
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(perIter)
			n := 0
			for b.Loop() {
				job := fmt.Sprintf("bench-%s-%d", name, n)
				n++
				benchAction(b, eng, link.ActionStartJob, link.JobSpec{JobID: job, Tables: []graph.Table{tbl}})
				var r array.RecordReader = syntable.Repeat(recs, rows)
				var cs *colStats
				if stats {
					r, cs = withColumnStats(r, tbl)
				}
				if _, err := StreamTable(context.Background(), eng, job, "events", r, StreamOptions{}); err != nil {
					b.Fatal(err)
				}
				if cs != nil {
					_ = cs.result()
				}
				benchAction(b, eng, link.ActionPurge, link.JobRef{JobID: job, Reason: link.PurgeCompleted})
			}
			report(b)
		})
	}
}

// benchEngine starts an engine in this process and returns a client of it
// over mutual TLS.
func benchEngine(b *testing.B) flight.Client {
	certs := b.TempDir()
	if err := pki.DevCerts(certs, "agent-bench", time.Hour); err != nil {
		b.Fatal(err)
	}
	srv, err := engine.New(engine.Config{Addr: "127.0.0.1:0", TLS: pki.DevFiles(certs, "engine"), QuotaBytes: 4 << 30,
		WatchDirs: []string{b.TempDir()}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = srv.Serve(ctx); close(done) }()
	b.Cleanup(func() { cancel(); <-done })
	tlsCfg, err := pki.DevFiles(certs, "agent").ClientConfig()
	if err != nil {
		b.Fatal(err)
	}
	c, err := flight.NewClientWithMiddleware(srv.Addr().String(), nil, nil, grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

func benchAction(b *testing.B, c flight.Client, typ string, body any) {
	raw, _ := json.Marshal(body)
	stream, err := c.DoAction(context.Background(), &flight.Action{Type: typ, Body: raw})
	if err != nil {
		b.Fatalf("%s: %v", typ, err)
	}
	for {
		if _, err := stream.Recv(); err != nil {
			break
		}
	}
}
