package conformance

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferry-ai/ferry/connectors"
	"github.com/ferry-ai/ferry/internal/graph"
)

func checkedOpen(t *testing.T, h Harness) (*connectors.Conn, *memory.CheckedAllocator) {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	ctx := context.Background()
	c := h.Open(ctx, t, &connectors.Options{Allocator: mem})
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		mem.AssertSize(t, 0)
	})
	return c, mem
}

// write writes recs as table and releases them.
func write(t *testing.T, c *connectors.Conn, table string, schema *arrow.Schema, recs []arrow.RecordBatch, opts connectors.WriteOptions) int64 {
	t.Helper()
	r, err := array.NewRecordReader(schema, recs)
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs {
		rec.Release()
	}
	defer r.Release()
	n, err := c.Write(context.Background(), table, r, opts)
	if err != nil {
		t.Fatalf("write %q: %v", table, err)
	}
	return n
}

// readAll reads a table and returns its values as strings per column, and the
// reader's schema.
func readAll(t *testing.T, c *connectors.Conn, table string, opts connectors.ReadOptions) (*arrow.Schema, [][]string, int) {
	t.Helper()
	r, err := c.Read(context.Background(), table, opts)
	if err != nil {
		t.Fatalf("read %q: %v", table, err)
	}
	defer r.Release()
	cols := make([][]string, r.Schema().NumFields())
	batches := 0
	for r.Next() {
		rec := r.RecordBatch()
		batches++
		for i := range cols {
			cols[i] = append(cols[i], valueStrings(rec.Column(i))...)
		}
	}
	if err := r.Err(); err != nil {
		t.Fatalf("read %q: %v", table, err)
	}
	return r.Schema(), cols, batches
}

// valueStrings renders values comparably across type variants: timestamps
// as their instant in UTC, nulls as "<null>".
func valueStrings(a arrow.Array) []string {
	out := make([]string, a.Len())
	for i := range out {
		switch {
		case a.IsNull(i):
			out[i] = "<null>"
		default:
			if ts, ok := a.(*array.Timestamp); ok {
				unit := ts.DataType().(*arrow.TimestampType).Unit
				out[i] = ts.Value(i).ToTime(unit).UTC().Format(time.RFC3339Nano)
				continue
			}
			out[i] = strings.Clone(a.ValueStr(i))
		}
	}
	return out
}

func testOpenClose(t *testing.T, h Harness, _ Quirks) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	c := h.Open(context.Background(), t, &connectors.Options{Allocator: mem})
	if err := c.Ping(context.Background()); err != nil {
		t.Fatalf("ping: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if _, err := c.Tables(context.Background()); !errors.Is(err, connectors.ErrClosed) {
		t.Fatalf("tables after close: got %v, want ErrClosed", err)
	}
}

var tsType = &arrow.TimestampType{Unit: arrow.Microsecond}

func parentChild(mem memory.Allocator) (ps *arrow.Schema, p arrow.RecordBatch, cs *arrow.Schema, c arrow.RecordBatch) {
	ps = arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "signup_at", Type: tsType, Nullable: true},
		{Name: "name", Type: arrow.BinaryTypes.String, Nullable: true},
	}, nil)
	pb := array.NewRecordBuilder(mem, ps)
	defer pb.Release()
	pb.Field(0).(*array.Int64Builder).AppendValues([]int64{1, 2, 3}, nil)
	pb.Field(1).(*array.TimestampBuilder).AppendValues([]arrow.Timestamp{1, 2, 3}, []bool{true, true, false})
	pb.Field(2).(*array.StringBuilder).AppendValues([]string{"a", "b", ""}, nil)
	p = pb.NewRecordBatch()

	cs = arrow.NewSchema([]arrow.Field{
		{Name: "child_id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "parent_id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "amount", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "happened_at", Type: tsType},
	}, nil)
	cb := array.NewRecordBuilder(mem, cs)
	defer cb.Release()
	cb.Field(0).(*array.Int64Builder).AppendValues([]int64{10, 11, 12, 13}, nil)
	cb.Field(1).(*array.Int64Builder).AppendValues([]int64{1, 1, 2, 3}, nil)
	cb.Field(2).(*array.Float64Builder).AppendValues([]float64{1.5, 2, 0, 4}, []bool{true, true, false, true})
	cb.Field(3).(*array.TimestampBuilder).AppendValues([]arrow.Timestamp{100, 200, 300, 400}, nil)
	c = cb.NewRecordBatch()
	return
}

func testMetadata(t *testing.T, h Harness, q Quirks) {
	c, mem := checkedOpen(t, h)
	ps, p, cs, ch := parentChild(mem)
	write(t, c, "parent", ps, []arrow.RecordBatch{p}, connectors.WriteOptions{PrimaryKey: []string{"id"}})
	write(t, c, "child", cs, []arrow.RecordBatch{ch}, connectors.WriteOptions{
		PrimaryKey:  []string{"child_id"},
		ForeignKeys: []graph.ForeignKey{{Columns: []string{"parent_id"}, RefTable: "parent", RefColumns: []string{"id"}}},
	})
	tables, err := c.Tables(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	child, err := connectors.FindTable(tables, "child")
	if err != nil {
		t.Fatal(err)
	}
	if got := child.Schema.NumFields(); got != 4 {
		t.Fatalf("child has %d fields, want 4", got)
	}
	if f := child.Schema.Field(0); f.Nullable {
		t.Errorf("child_id is nullable; want NOT NULL kept")
	}
	if f := child.Schema.Field(2); !f.Nullable {
		t.Errorf("amount is not nullable; want nullable")
	}
	if child.TimeColumn != "happened_at" {
		t.Errorf("time column = %q, want happened_at", child.TimeColumn)
	}
	if !q.SupportsConstraints {
		return
	}
	if fmt.Sprint(child.PrimaryKey) != "[child_id]" {
		t.Errorf("primary key = %v, want [child_id]", child.PrimaryKey)
	}
	if len(child.ForeignKeys) != 1 || child.ForeignKeys[0].RefTable != "parent" ||
		fmt.Sprint(child.ForeignKeys[0].Columns) != "[parent_id]" || fmt.Sprint(child.ForeignKeys[0].RefColumns) != "[id]" {
		t.Errorf("foreign keys = %+v, want parent_id -> parent(id)", child.ForeignKeys)
	}
}

func testMissingNames(t *testing.T, h Harness, _ Quirks) {
	c, mem := checkedOpen(t, h)
	ps, p, _, ch := parentChild(mem)
	ch.Release()
	write(t, c, "parent", ps, []arrow.RecordBatch{p}, connectors.WriteOptions{})
	_, err := c.Read(context.Background(), "parnet", connectors.ReadOptions{})
	if !errors.Is(err, connectors.ErrNotFound) {
		t.Fatalf("missing table: got %v, want ErrNotFound", err)
	}
	if want := `did you mean "parent"`; !contains(err.Error(), want) {
		t.Errorf("missing table error %q does not say %s", err, want)
	}
	_, err = c.Read(context.Background(), "parent", connectors.ReadOptions{Columns: []string{"nmae"}})
	if !errors.Is(err, connectors.ErrNotFound) || !contains(err.Error(), `"name"`) {
		t.Fatalf("missing column: got %v, want ErrNotFound naming \"name\"", err)
	}
}

func contains(s, sub string) bool {
	return len(sub) == 0 || (len(s) >= len(sub) && (func() bool {
		for i := 0; i+len(sub) <= len(s); i++ {
			if s[i:i+len(sub)] == sub {
				return true
			}
		}
		return false
	})())
}

// typesRecord holds every type the skeleton maps, with a null in each column
// and the extremes of each.
func typesRecord(mem memory.Allocator) (*arrow.Schema, arrow.RecordBatch) {
	dec := &arrow.Decimal128Type{Precision: 38, Scale: 4}
	s := arrow.NewSchema([]arrow.Field{
		{Name: "k", Type: arrow.PrimitiveTypes.Int64},
		{Name: "i8", Type: arrow.PrimitiveTypes.Int8, Nullable: true},
		{Name: "i16", Type: arrow.PrimitiveTypes.Int16, Nullable: true},
		{Name: "i32", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
		{Name: "i64", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "u64", Type: arrow.PrimitiveTypes.Uint64, Nullable: true},
		{Name: "f32", Type: arrow.PrimitiveTypes.Float32, Nullable: true},
		{Name: "f64", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "b", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
		{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "bin", Type: arrow.BinaryTypes.Binary, Nullable: true},
		{Name: "d", Type: arrow.FixedWidthTypes.Date32, Nullable: true},
		{Name: "ts", Type: tsType, Nullable: true},
		{Name: "tstz", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, Nullable: true},
		{Name: "dec", Type: dec, Nullable: true},
	}, nil)
	b := array.NewRecordBuilder(mem, s)
	defer b.Release()
	valid := []bool{true, true, true, false}
	b.Field(0).(*array.Int64Builder).AppendValues([]int64{1, 2, 3, 4}, nil)
	b.Field(1).(*array.Int8Builder).AppendValues([]int8{-128, 127, 0, 0}, valid)
	b.Field(2).(*array.Int16Builder).AppendValues([]int16{-32768, 32767, 0, 0}, valid)
	b.Field(3).(*array.Int32Builder).AppendValues([]int32{-2147483648, 2147483647, 0, 0}, valid)
	b.Field(4).(*array.Int64Builder).AppendValues([]int64{-9223372036854775808, 9223372036854775807, 0, 0}, valid)
	b.Field(5).(*array.Uint64Builder).AppendValues([]uint64{0, 18446744073709551615, 1, 0}, valid)
	b.Field(6).(*array.Float32Builder).AppendValues([]float32{-3.4e38, 3.4e38, 1.5e-45, 0}, valid)
	b.Field(7).(*array.Float64Builder).AppendValues([]float64{-1.7e308, 1.7e308, 5e-324, 0}, valid)
	b.Field(8).(*array.BooleanBuilder).AppendValues([]bool{true, false, true, false}, valid)
	b.Field(9).(*array.StringBuilder).AppendValues([]string{"", "héllo 🚢 世界", "O'Brien \"quoted\"; DROP TABLE x", ""}, valid)
	b.Field(10).(*array.BinaryBuilder).AppendValues([][]byte{{}, {0, 1, 255}, []byte("x"), nil}, valid)
	b.Field(11).(*array.Date32Builder).AppendValues([]arrow.Date32{arrow.Date32FromTime(time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)), arrow.Date32FromTime(time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)), 0, 0}, valid)
	b.Field(12).(*array.TimestampBuilder).AppendValues([]arrow.Timestamp{
		arrow.Timestamp(time.Date(1677, 9, 22, 0, 0, 0, 0, time.UTC).UnixMicro()),
		arrow.Timestamp(time.Date(2262, 4, 11, 0, 0, 0, 123456000, time.UTC).UnixMicro()), 0, 0}, valid)
	b.Field(13).(*array.TimestampBuilder).AppendValues([]arrow.Timestamp{
		arrow.Timestamp(time.Date(2024, 3, 10, 10, 30, 0, 0, time.UTC).UnixMicro()),
		arrow.Timestamp(time.Date(1970, 1, 1, 0, 0, 0, 1000, time.UTC).UnixMicro()), 0, 0}, valid)
	max38, _ := decimal128.FromString("9999999999999999999999999999999999.9999", 38, 4)
	min38, _ := decimal128.FromString("-9999999999999999999999999999999999.9999", 38, 4)
	b.Field(14).(*array.Decimal128Builder).AppendValues([]decimal128.Num{min38, max38, decimal128.FromI64(0), decimal128.FromI64(0)}, valid)
	return s, b.NewRecordBatch()
}

func testRoundTrip(t *testing.T, h Harness, _ Quirks) {
	c, mem := checkedOpen(t, h)
	s, rec := typesRecord(mem)
	want := make([][]string, rec.NumCols())
	for i := range want {
		want[i] = valueStrings(rec.Column(i))
	}
	if n := write(t, c, "types", s, []arrow.RecordBatch{rec}, connectors.WriteOptions{PrimaryKey: []string{"k"}}); n != 4 {
		t.Fatalf("wrote %d rows, want 4", n)
	}
	_, got, _ := readAll(t, c, "types", connectors.ReadOptions{})
	for i, f := range s.Fields() {
		if fmt.Sprint(got[i]) != fmt.Sprint(want[i]) {
			t.Errorf("column %s (%s): got %q, want %q", f.Name, f.Type, got[i], want[i])
		}
	}
}

func testZeroRows(t *testing.T, h Harness, _ Quirks) {
	c, mem := checkedOpen(t, h)
	s, rec := typesRecord(mem)
	empty := rec.NewSlice(0, 0)
	rec.Release()
	write(t, c, "empty", s, []arrow.RecordBatch{empty}, connectors.WriteOptions{})
	rs, cols, _ := readAll(t, c, "empty", connectors.ReadOptions{})
	if rs.NumFields() != s.NumFields() {
		t.Fatalf("zero-row table read back with %d fields, want %d", rs.NumFields(), s.NumFields())
	}
	if len(cols[0]) != 0 {
		t.Fatalf("zero-row table read back %d rows", len(cols[0]))
	}
}

// sequence writes n rows (id, grp, v) in batches, built lazily.
func sequence(t *testing.T, c *connectors.Conn, mem memory.Allocator, table string, n int64, marker string) {
	t.Helper()
	s := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "marker", Type: arrow.BinaryTypes.String},
		{Name: "v", Type: arrow.PrimitiveTypes.Float64},
	}, nil)
	r := &genReader{schema: s, mem: mem, total: n, batch: 65536, marker: marker, refs: 1}
	defer r.Release()
	got, err := c.Write(context.Background(), table, r, connectors.WriteOptions{})
	if err != nil {
		t.Fatalf("write %s: %v", table, err)
	}
	if got != n {
		t.Fatalf("write %s: %d rows, want %d", table, got, n)
	}
}

// genReader produces rows on demand so writes of large tables do not hold
// them in memory.
type genReader struct {
	schema *arrow.Schema
	mem    memory.Allocator
	total  int64
	done   int64
	batch  int64
	marker string
	cur    arrow.RecordBatch
	refs   int64
}

func (g *genReader) Retain() { atomic.AddInt64(&g.refs, 1) }
func (g *genReader) Release() {
	if atomic.AddInt64(&g.refs, -1) == 0 && g.cur != nil {
		g.cur.Release()
		g.cur = nil
	}
}
func (g *genReader) Schema() *arrow.Schema          { return g.schema }
func (g *genReader) Err() error                     { return nil }
func (g *genReader) Record() arrow.RecordBatch      { return g.cur }
func (g *genReader) RecordBatch() arrow.RecordBatch { return g.cur }
func (g *genReader) Next() bool {
	if g.cur != nil {
		g.cur.Release()
		g.cur = nil
	}
	if g.done >= g.total {
		return false
	}
	n := min(g.batch, g.total-g.done)
	b := array.NewRecordBuilder(g.mem, g.schema)
	defer b.Release()
	ids := b.Field(0).(*array.Int64Builder)
	ms := b.Field(1).(*array.StringBuilder)
	vs := b.Field(2).(*array.Float64Builder)
	ids.Reserve(int(n))
	vs.Reserve(int(n))
	for i := int64(0); i < n; i++ {
		ids.UnsafeAppend(g.done + i)
		ms.Append(g.marker)
		vs.UnsafeAppend(float64(g.done+i) * 0.5)
	}
	g.done += n
	g.cur = b.NewRecordBatch()
	return true
}

func testProjection(t *testing.T, h Harness, _ Quirks) {
	c, mem := checkedOpen(t, h)
	sequence(t, c, mem, "seq", 1000, "m")
	s, cols, _ := readAll(t, c, "seq", connectors.ReadOptions{Columns: []string{"v", "id"}})
	if s.NumFields() != 2 || s.Field(0).Name != "v" || s.Field(1).Name != "id" {
		t.Fatalf("projection schema = %v, want [v id]", s)
	}
	if len(cols[0]) != 1000 || cols[1][999] != "999" {
		t.Fatalf("projection read %d rows, last id %v", len(cols[0]), cols[1][len(cols[1])-1])
	}
}

func testLimit(t *testing.T, h Harness, _ Quirks) {
	c, mem := checkedOpen(t, h)
	sequence(t, c, mem, "seq", 10000, "m")
	for _, limit := range []int64{1, 2047, 2048, 5000, 20000} {
		_, cols, _ := readAll(t, c, "seq", connectors.ReadOptions{Limit: limit})
		if want := min(limit, 10000); int64(len(cols[0])) != want {
			t.Errorf("limit %d: read %d rows, want %d", limit, len(cols[0]), want)
		}
	}
	if _, err := c.Read(context.Background(), "seq", connectors.ReadOptions{Limit: -1}); err == nil {
		t.Error("negative limit accepted")
	}
}

func testBatchSize(t *testing.T, h Harness, _ Quirks) {
	c, mem := checkedOpen(t, h)
	sequence(t, c, mem, "seq", 10000, "m")
	r, err := c.Read(context.Background(), "seq", connectors.ReadOptions{BatchSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	var rows int64
	for r.Next() {
		n := r.RecordBatch().NumRows()
		if n > 1000 {
			t.Fatalf("batch of %d rows, requested at most 1000", n)
		}
		rows += n
	}
	if r.Err() != nil || rows != 10000 {
		t.Fatalf("read %d rows, err %v", rows, r.Err())
	}
}

// heapSampler records the peak Go heap while it runs.
type heapSampler struct {
	stop chan struct{}
	done chan uint64
}

func sampleHeap() *heapSampler {
	h := &heapSampler{stop: make(chan struct{}), done: make(chan uint64, 1)}
	go func() {
		var ms runtime.MemStats
		var peak uint64
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
			select {
			case <-h.stop:
				h.done <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return h
}

// Stop returns the peak heap seen.
func (h *heapSampler) Stop() uint64 {
	close(h.stop)
	return <-h.done
}

func heapNow() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// testBoundedMemory writes and then streams a large table and checks that
// the Go heap stays under a bound that does not depend on the row count
// (W6, R6), and that the process's peak RSS while reading all rows is within
// 20% of its peak while reading a tenth of them (X2).
func testBoundedMemory(t *testing.T, h Harness, q Quirks) {
	if q.LargeRows == 0 {
		notSupported(t, q, "LargeRows not set")
	}
	const bound = 64 << 20
	// The GC runs more often throughout, so that the peaks measured are
	// what the connector holds, not the collector's overshoot (up to GOGC%
	// of the live heap, and more on a busy machine where it lags).
	defer debug.SetGCPercent(debug.SetGCPercent(25))
	c, mem := checkedOpen(t, h)
	base := heapNow()
	hs := sampleHeap()
	sequence(t, c, mem, "big", q.LargeRows, "marker-value")
	if peak := hs.Stop(); peak > base+bound {
		t.Fatalf("Go heap grew by %d MiB while writing %d rows; bound is %d MiB", (peak-base)>>20, q.LargeRows, bound>>20)
	} else {
		t.Logf("wrote %d rows; Go heap growth %d KiB", q.LargeRows, (max(peak, base)-base)>>10)
	}
	read := func(limit int64) int64 {
		r, err := c.Read(context.Background(), "big", connectors.ReadOptions{Limit: limit})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Release()
		var rows int64
		for r.Next() {
			rows += r.RecordBatch().NumRows()
		}
		if err := r.Err(); err != nil {
			t.Fatal(err)
		}
		return rows
	}
	base = heapNow()
	hs = sampleHeap()
	rows := read(0)
	peak := hs.Stop()
	if rows != q.LargeRows {
		t.Fatalf("read %d rows, want %d", rows, q.LargeRows)
	}
	if peak > base+bound {
		t.Fatalf("Go heap grew by %d MiB while streaming %d rows; bound is %d MiB", (peak-base)>>20, rows, bound>>20)
	}
	t.Logf("streamed %d rows; Go heap growth %d KiB", rows, (max(peak, base)-base)>>10)

	// X2: peak RSS for a tenth of the rows, then for all of them (GOGC 25,
	// as above, for both reads).
	rss := func(limit int64) int64 {
		debug.FreeOSMemory()
		if err := resetPeakRSS(); err != nil {
			notSupported(t, q, "peak RSS cannot be reset here: "+err.Error())
		}
		read(limit)
		p, err := peakRSS()
		if err != nil {
			notSupported(t, q, "peak RSS unavailable: "+err.Error())
		}
		return p
	}
	tenth, whole := rss(q.LargeRows/10), rss(0)
	if float64(whole) > 1.2*float64(tenth) {
		t.Fatalf("peak RSS %d MiB streaming %d rows vs %d MiB for a tenth of them: grew %.0f%%, bound 20%%", whole>>20, q.LargeRows, tenth>>20, 100*(float64(whole)/float64(tenth)-1))
	}
	t.Logf("peak RSS %d MiB for %d rows, %d MiB for %d rows (%+.1f%%)", tenth>>20, q.LargeRows/10, whole>>20, q.LargeRows, 100*(float64(whole)/float64(tenth)-1))
}

func testHostileNames(t *testing.T, h Harness, _ Quirks) {
	c, mem := checkedOpen(t, h)
	sequence(t, c, mem, "victim", 10, "m")
	for _, name := range []string{`x"; DROP TABLE victim; --`, `victim"`, "a b", "semi;colon", "dot.ted", "", "1abc", "tab\tname"} {
		s := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}}, nil)
		r, _ := array.NewRecordReader(s, nil)
		_, err := c.Write(context.Background(), name, r, connectors.WriteOptions{})
		r.Release()
		if !errors.Is(err, connectors.ErrInvalidName) {
			t.Errorf("write to %q: got %v, want ErrInvalidName", name, err)
		}
		if _, err := c.Read(context.Background(), name, connectors.ReadOptions{}); !errors.Is(err, connectors.ErrNotFound) {
			t.Errorf("read of %q: got %v, want ErrNotFound", name, err)
		}
	}
	// A unicode name is legal and round-trips exactly.
	sequence(t, c, mem, "données_客户", 3, "m")
	if _, cols, _ := readAll(t, c, "données_客户", connectors.ReadOptions{}); len(cols[0]) != 3 {
		t.Errorf("unicode table read %d rows, want 3", len(cols[0]))
	}
	if _, cols, _ := readAll(t, c, "victim", connectors.ReadOptions{}); len(cols[0]) != 10 {
		t.Fatalf("victim table has %d rows after hostile names, want 10", len(cols[0]))
	}
}

func testCancel(t *testing.T, h Harness, _ Quirks) {
	c, mem := checkedOpen(t, h)
	sequence(t, c, mem, "seq", 300000, "m")
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	r, err := c.Read(ctx, "seq", connectors.ReadOptions{BatchSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Next() {
		t.Fatalf("no first batch: %v", r.Err())
	}
	cancel()
	start := time.Now()
	for r.Next() {
	}
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("cancel took %v, want < 2s", elapsed)
	}
	if !errors.Is(r.Err(), context.Canceled) {
		t.Errorf("after cancel: err = %v, want context.Canceled", r.Err())
	}
	r.Release()
	time.Sleep(50 * time.Millisecond)
	if after := runtime.NumGoroutine(); after > before+2 {
		t.Errorf("goroutines %d -> %d after cancel", before, after)
	}
}

// testAtomicReplace rewrites a table repeatedly with two different contents
// while a reader polls it: every read must see one whole version.
func testAtomicReplace(t *testing.T, h Harness, _ Quirks) {
	c, mem := checkedOpen(t, h)
	const small, large = 5000, 20000
	sequence(t, c, mem, "target", small, "A")
	var (
		stop   atomic.Bool
		wg     sync.WaitGroup
		reads  atomic.Int64
		badMu  sync.Mutex
		badObs []string
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			r, err := c.Read(context.Background(), "target", connectors.ReadOptions{Columns: []string{"marker"}})
			if err != nil {
				badMu.Lock()
				badObs = append(badObs, "read error: "+err.Error())
				badMu.Unlock()
				return
			}
			var n int64
			markers := map[string]bool{}
			for r.Next() {
				col := r.RecordBatch().Column(0).(*array.String)
				n += int64(col.Len())
				for i := 0; i < col.Len(); i += 997 {
					markers[strings.Clone(col.Value(i))] = true
				}
			}
			err = r.Err()
			r.Release()
			ok := err == nil && len(markers) == 1 && ((markers["A"] && n == small) || (markers["B"] && n == large))
			if !ok {
				badMu.Lock()
				badObs = append(badObs, fmt.Sprintf("rows=%d markers=%v err=%v", n, markers, err))
				badMu.Unlock()
			}
			reads.Add(1)
		}
	}()
	for i := 0; i < 12; i++ {
		if i%2 == 0 {
			sequence(t, c, mem, "target", large, "B")
		} else {
			sequence(t, c, mem, "target", small, "A")
		}
	}
	stop.Store(true)
	wg.Wait()
	if len(badObs) > 0 {
		t.Fatalf("reader saw %d partial versions, e.g. %s", len(badObs), badObs[0])
	}
	if reads.Load() < 3 {
		t.Fatalf("reader completed only %d reads; the check proves nothing", reads.Load())
	}
	t.Logf("%d consistent reads during 12 replaces", reads.Load())
}

func testIdempotentRewrite(t *testing.T, h Harness, _ Quirks) {
	c, mem := checkedOpen(t, h)
	sequence(t, c, mem, "t", 3000, "A")
	_, first, _ := readAll(t, c, "t", connectors.ReadOptions{})
	sequence(t, c, mem, "t", 3000, "A")
	_, second, _ := readAll(t, c, "t", connectors.ReadOptions{})
	if len(second[0]) != 3000 || fmt.Sprint(first) != fmt.Sprint(second) {
		t.Fatalf("rewrite changed the table: %d rows then %d", len(first[0]), len(second[0]))
	}
}
