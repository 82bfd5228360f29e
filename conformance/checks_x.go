package conformance

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/arrow/util"

	"github.com/ferry-ai/ferry/connectors"
	"github.com/ferry-ai/ferry/internal/link"
	"github.com/ferry-ai/ferry/writeback"
)

// Reopener is implemented by harnesses that can open another connection to
// the database or schema behind a connection from Open, which may be closed
// by then (T9).
type Reopener interface {
	Reopen(ctx context.Context, t *testing.T, c *connectors.Conn, opts *connectors.Options) *connectors.Conn
}

var seqSchema = arrow.NewSchema([]arrow.Field{
	{Name: "id", Type: arrow.PrimitiveTypes.Int64},
	{Name: "marker", Type: arrow.BinaryTypes.String},
	{Name: "v", Type: arrow.PrimitiveTypes.Float64},
}, nil)

// testMemoryBudget: a read with a memory budget gets batches that fit it,
// and a budget too small for one row is refused before the read starts (X3).
func testMemoryBudget(t *testing.T, h Harness, _ Quirks) {
	c, mem := checkedOpen(t, h)
	const rows = 200_000
	sequence(t, c, mem, "t", rows, "budget-marker")
	const budget = 256 << 10
	r, err := c.Read(context.Background(), "t", connectors.ReadOptions{MemoryBudget: budget})
	if err != nil {
		t.Fatal(err)
	}
	var n, batches, biggest int64
	for r.Next() {
		rec := r.RecordBatch()
		n += rec.NumRows()
		batches++
		biggest = max(biggest, util.TotalRecordSize(rec))
	}
	err = r.Err()
	r.Release()
	if err != nil {
		t.Fatalf("read under a %d-byte budget: %v", budget, err)
	}
	if n != rows || biggest > budget || batches < 2 {
		t.Fatalf("read %d rows in %d batches, biggest %d bytes; want %d rows in batches of at most %d bytes", n, batches, biggest, rows, budget)
	}
	_, err = c.Read(context.Background(), "t", connectors.ReadOptions{MemoryBudget: 8})
	if !errors.Is(err, connectors.ErrInvalidArgument) {
		t.Fatalf("8-byte budget: %v, want ErrInvalidArgument before the read", err)
	}
	t.Logf("%d rows in %d batches, biggest %d KiB under a %d KiB budget", n, batches, biggest>>10, budget>>10)
}

// testCancelledWrite: cancelling a write whose input never ends returns
// within 2 s and leaves the previous table intact, with no debris (K5).
func testCancelledWrite(t *testing.T, h Harness, _ Quirks) {
	c, mem := checkedOpen(t, h)
	sequence(t, c, mem, "t", 3000, "old")
	ctx, cancel := context.WithCancel(context.Background())
	endless := &genReader{schema: seqSchema, mem: mem, total: 1 << 40, batch: 4096, marker: "new", refs: 1}
	done := make(chan error, 1)
	go func() {
		_, err := c.Write(ctx, "t", endless, connectors.WriteOptions{})
		done <- err
	}()
	time.Sleep(300 * time.Millisecond)
	cancel()
	start := time.Now()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a cancelled write returned no error")
		}
		t.Logf("cancelled write returned after %v: %v", time.Since(start).Round(time.Millisecond), err)
	case <-time.After(2 * time.Second):
		t.Fatal("write did not return within 2 s of its context being cancelled")
	}
	endless.Release()
	_, cols, _ := readAll(t, c, "t", connectors.ReadOptions{Columns: []string{"marker"}})
	if len(cols[0]) != 3000 || cols[0][0] != "old" {
		t.Fatalf("after a cancelled write the table has %d rows (first %q); want the old 3000", len(cols[0]), first(cols[0]))
	}
	assertTables(t, c, "t")
}

func assertTables(t *testing.T, c *connectors.Conn, want ...string) {
	t.Helper()
	ts, err := c.Tables(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tb := range ts {
		names = append(names, tb.Name)
	}
	sort.Strings(names)
	sort.Strings(want)
	if fmt.Sprint(names) != fmt.Sprint(want) {
		t.Fatalf("tables %v, want %v (staging debris?)", names, want)
	}
}

// testSnapshotRead: a read that has begun sees the table as it was when it
// began, even when the table is replaced mid-read (R9).
func testSnapshotRead(t *testing.T, h Harness, _ Quirks) {
	c, mem := checkedOpen(t, h)
	const rows = 300_000
	sequence(t, c, mem, "t", rows, "old")
	r, err := c.Read(context.Background(), "t", connectors.ReadOptions{Columns: []string{"marker"}, BatchSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	if !r.Next() {
		t.Fatalf("no first batch: %v", r.Err())
	}
	counts := map[string]int64{}
	tally := func() {
		col := r.RecordBatch().Column(0)
		for i := 0; i < col.Len(); i++ {
			counts[col.ValueStr(i)]++
		}
	}
	tally()
	// Replace the table while the read is open. A warehouse that locks the
	// table for the reader makes the writer wait; give it a moment either way.
	wrote := make(chan error, 1)
	go func() {
		g := &genReader{schema: seqSchema, mem: mem, total: rows / 2, batch: 8192, marker: "new", refs: 1}
		defer g.Release()
		_, err := c.Write(context.Background(), "t", g, connectors.WriteOptions{})
		wrote <- err
	}()
	select {
	case err := <-wrote:
		if err != nil {
			t.Fatalf("replace during a read: %v", err)
		}
		wrote <- nil
	case <-time.After(2 * time.Second):
	}
	for r.Next() {
		tally()
	}
	if err := r.Err(); err != nil {
		t.Fatalf("read across a replace: %v", err)
	}
	if err := <-wrote; err != nil {
		t.Fatalf("replace during a read: %v", err)
	}
	if counts["old"] != rows || len(counts) != 1 {
		t.Fatalf("a read begun before a replace saw %v, want %d rows of old only", counts, rows)
	}
	_, cols, _ := readAll(t, c, "t", connectors.ReadOptions{Columns: []string{"marker"}})
	if len(cols[0]) != rows/2 || cols[0][0] != "new" {
		t.Fatalf("after the replace: %d rows (first %q), want %d of new", len(cols[0]), first(cols[0]), rows/2)
	}
}

// withTimeZone runs the rest of the test with the process time zone set to
// name: TZ and time.Local, as a process started under TZ=name would have.
func withTimeZone(t *testing.T, name string) {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Skipf("time zone %s: %v", name, err)
	}
	old := time.Local
	t.Setenv("TZ", name)
	time.Local = loc
	t.Cleanup(func() { time.Local = old })
}

// testTimeZones: timestamps with a zone keep their instant and timestamps
// without one keep their wall clock, written under one process time zone and
// read under another (T9).
func testTimeZones(t *testing.T, h Harness, q Quirks) {
	ro, ok := h.(Reopener)
	if !ok {
		notSupported(t, q, "harness cannot reopen a database")
	}
	instants := []time.Time{
		time.Date(2024, 3, 10, 9, 59, 59, 0, time.UTC),   // just before a US DST switch
		time.Date(2024, 3, 10, 10, 0, 0, 0, time.UTC),    // the switch
		time.Date(2024, 11, 3, 8, 30, 0, 0, time.UTC),    // inside the repeated hour in Los Angeles
		time.Date(1969, 12, 31, 23, 59, 59, 0, time.UTC), // before the epoch
		time.Date(2000, 1, 1, 0, 0, 0, 123456000, time.UTC),
	}
	s := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "tstz", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, Nullable: true},
		{Name: "tsny", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "America/New_York"}, Nullable: true},
		{Name: "wall", Type: tsType, Nullable: true},
	}, nil)
	build := func(mem memory.Allocator) arrow.RecordBatch {
		b := array.NewRecordBuilder(mem, s)
		defer b.Release()
		for i, in := range instants {
			b.Field(0).(*array.Int64Builder).Append(int64(i))
			for f := 1; f <= 3; f++ {
				b.Field(f).(*array.TimestampBuilder).Append(arrow.Timestamp(in.UnixMicro()))
			}
		}
		b.Field(0).(*array.Int64Builder).Append(int64(len(instants)))
		for f := 1; f <= 3; f++ {
			b.Field(f).AppendNull()
		}
		return b.NewRecordBatch()
	}
	check := func(c *connectors.Conn, under string) {
		t.Helper()
		rs, cols, _ := readAll(t, c, "tz", connectors.ReadOptions{})
		for f := 1; f <= 3; f++ {
			if tt, ok := rs.Field(f).Type.(*arrow.TimestampType); !ok || (f < 3) != (tt.TimeZone != "") {
				t.Errorf("under TZ=%s column %s reads as %s", under, rs.Field(f).Name, rs.Field(f).Type)
			}
		}
		for i := range cols[0] {
			var k int
			fmt.Sscan(cols[0][i], &k)
			for f := 1; f <= 3; f++ {
				want := "<null>"
				if k < len(instants) {
					want = instants[k].Format(time.RFC3339Nano)
				}
				if cols[f][i] != want {
					t.Errorf("under TZ=%s row %d column %s: %s, want %s", under, k, rs.Field(f).Name, cols[f][i], want)
				}
			}
		}
	}
	zones := []string{"UTC", "America/Los_Angeles", "UTC"}
	withTimeZone(t, zones[0])
	c, mem := checkedOpen(t, h)
	rec := build(mem)
	write(t, c, "tz", s, []arrow.RecordBatch{rec}, connectors.WriteOptions{PrimaryKey: []string{"id"}})
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	for _, zone := range zones[1:] {
		withTimeZone(t, zone)
		c2 := ro.Reopen(context.Background(), t, c, &connectors.Options{Allocator: mem})
		check(c2, zone)
		// Write again under this zone for the next zone to read.
		rec := build(mem)
		write(t, c2, "tz", s, []arrow.RecordBatch{rec}, connectors.WriteOptions{PrimaryKey: []string{"id"}})
		if err := c2.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// testPredictionsTable: predictions written through writeback carry the
// documented columns (W5) with the model and job ids (W12), and a job
// replayed after a write that died halfway leaves each prediction exactly
// once (W15).
func testPredictionsTable(t *testing.T, h Harness, _ Quirks) {
	c, mem := checkedOpen(t, h)
	ctx := context.Background()
	const n = 20_000
	meta := writeback.Meta{JobID: "job-7", ModelID: "model-42", CreatedAt: time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC)}
	predSchema := arrow.NewSchema([]arrow.Field{
		{Name: "customer_id", Type: arrow.PrimitiveTypes.Int64},
		{Name: link.ColAnchorTime, Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}},
		{Name: link.ColScore, Type: arrow.PrimitiveTypes.Float64},
		{Name: link.ColPredictedClass, Type: arrow.FixedWidthTypes.Boolean},
	}, nil)
	preds := func() []arrow.RecordBatch {
		var out []arrow.RecordBatch
		anchor := arrow.Timestamp(time.Date(2025, 12, 1, 0, 0, 0, 0, time.UTC).UnixMicro())
		for start := 0; start < n; start += 4000 {
			b := array.NewRecordBuilder(mem, predSchema)
			for i := start; i < start+4000; i++ {
				b.Field(0).(*array.Int64Builder).Append(int64(i))
				b.Field(1).(*array.TimestampBuilder).Append(anchor)
				b.Field(2).(*array.Float64Builder).Append(float64(i%100) / 100)
				b.Field(3).(*array.BooleanBuilder).Append(i%3 == 0)
			}
			out = append(out, b.NewRecordBatch())
			b.Release()
		}
		return out
	}
	run := func(failAfter int) error {
		recs := preds()
		r, err := array.NewRecordReader(predSchema, recs)
		if err != nil {
			t.Fatal(err)
		}
		for _, rec := range recs {
			rec.Release()
		}
		defer r.Release()
		var in array.RecordReader = r
		if failAfter > 0 {
			in = &failingReader{RecordReader: r, left: failAfter}
		}
		_, err = writeback.Write(ctx, c, "predictions", in, meta, mem)
		return err
	}
	// The first attempt dies halfway; the job is replayed twice.
	if err := run(2); err == nil {
		t.Fatal("a write whose input failed returned no error")
	}
	for attempt := 0; attempt < 2; attempt++ {
		if err := run(0); err != nil {
			t.Fatalf("replay %d: %v", attempt, err)
		}
	}
	rs, cols, _ := readAll(t, c, "predictions", connectors.ReadOptions{})
	var names []string
	for _, f := range rs.Fields() {
		names = append(names, f.Name)
	}
	wantNames := []string{"customer_id", link.ColAnchorTime, link.ColScore, link.ColPredictedClass, writeback.ColModelID, writeback.ColJobID, writeback.ColCreatedAt}
	if fmt.Sprint(names) != fmt.Sprint(wantNames) {
		t.Fatalf("predictions columns %v, want %v", names, wantNames)
	}
	for i, want := range []arrow.Type{arrow.INT64, arrow.TIMESTAMP, arrow.FLOAT64, arrow.BOOL} {
		if got := rs.Field(i).Type.ID(); got != want {
			t.Errorf("column %s is %s, want %s", names[i], rs.Field(i).Type, want)
		}
	}
	if ct, ok := rs.Field(6).Type.(*arrow.TimestampType); !ok || ct.TimeZone == "" {
		t.Errorf("created_at is %s, want a timestamp with a time zone", rs.Field(6).Type)
	}
	seen := make(map[string]bool, n)
	for i, id := range cols[0] {
		if seen[id] {
			t.Fatalf("customer %s appears twice after a replayed job", id)
		}
		seen[id] = true
		if cols[4][i] != meta.ModelID || cols[5][i] != meta.JobID || cols[6][i] != meta.CreatedAt.Format(time.RFC3339Nano) {
			t.Fatalf("row %d carries model %q job %q created %q, want %q %q %s", i, cols[4][i], cols[5][i], cols[6][i], meta.ModelID, meta.JobID, meta.CreatedAt.Format(time.RFC3339Nano))
		}
	}
	if len(seen) != n {
		t.Fatalf("%d predictions after the replay, want %d", len(seen), n)
	}
	assertTables(t, c, "predictions")
}

// peakRSS returns the process's peak resident set size in bytes since the
// last resetPeakRSS (Linux: VmHWM).
func peakRSS() (int64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int64
			if _, err := fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(v), " kB"), &kb); err != nil {
				return 0, fmt.Errorf("VmHWM %q: %w", v, err)
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("no VmHWM in /proc/self/status")
}

// resetPeakRSS resets VmHWM to the current RSS (Linux ≥ 4.0).
func resetPeakRSS() error {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// testFloats: ±0, ±Inf, NaN, subnormals and the extremes of float32 and
// float64 survive a round trip bit for bit (T2).
func testFloats(t *testing.T, h Harness, _ Quirks) {
	c, mem := checkedOpen(t, h)
	f64 := []float64{0, math.Copysign(0, -1), math.Inf(1), math.Inf(-1), math.NaN(), 5e-324, -5e-324, math.MaxFloat64, -math.MaxFloat64, math.SmallestNonzeroFloat64 * 3, 1.0 / 3}
	f32 := []float32{0, float32(math.Copysign(0, -1)), float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), 1e-45, -1e-45, math.MaxFloat32, -math.MaxFloat32, 1.2e-38, 1.0 / 3}
	s := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "f32", Type: arrow.PrimitiveTypes.Float32, Nullable: true},
		{Name: "f64", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	}, nil)
	b := array.NewRecordBuilder(mem, s)
	for i := range f64 {
		b.Field(0).(*array.Int64Builder).Append(int64(i))
		b.Field(1).(*array.Float32Builder).Append(f32[i])
		b.Field(2).(*array.Float64Builder).Append(f64[i])
	}
	b.Field(0).(*array.Int64Builder).Append(int64(len(f64)))
	b.Field(1).AppendNull()
	b.Field(2).AppendNull()
	rec := b.NewRecordBatch()
	b.Release()
	write(t, c, "floats", s, []arrow.RecordBatch{rec}, connectors.WriteOptions{PrimaryKey: []string{"id"}})
	r, err := c.Read(context.Background(), "floats", connectors.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	rows := 0
	for r.Next() {
		rec := r.RecordBatch()
		ids, ok1 := rec.Column(0).(*array.Int64)
		g32, ok2 := rec.Column(1).(*array.Float32)
		g64, ok3 := rec.Column(2).(*array.Float64)
		if !ok1 || !ok2 || !ok3 {
			t.Fatalf("read back as %s", rec.Schema())
		}
		for i := 0; i < int(rec.NumRows()); i++ {
			rows++
			k := int(ids.Value(i))
			if k == len(f64) {
				if g32.IsValid(i) || g64.IsValid(i) {
					t.Errorf("null row read back as %v, %v", g32.Value(i), g64.Value(i))
				}
				continue
			}
			if got, want := math.Float32bits(g32.Value(i)), math.Float32bits(f32[k]); got != want && !(math.IsNaN(float64(f32[k])) && g32.Value(i) != g32.Value(i)) {
				t.Errorf("float32 %v read back as %v (bits %08x, want %08x)", f32[k], g32.Value(i), got, want)
			}
			if got, want := math.Float64bits(g64.Value(i)), math.Float64bits(f64[k]); got != want && !(math.IsNaN(f64[k]) && math.IsNaN(g64.Value(i))) {
				t.Errorf("float64 %v read back as %v (bits %016x, want %016x)", f64[k], g64.Value(i), got, want)
			}
		}
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	if rows != len(f64)+1 {
		t.Fatalf("read %d rows, want %d", rows, len(f64)+1)
	}
}
