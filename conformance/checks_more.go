package conformance

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferry-ai/ferry/connectors"
)

// SQLHarness is implemented by harnesses of SQL warehouses: it prepares a
// fresh database with native SQL statements (in their own session, closed
// before the connector opens), so the suite can create tables Ferry itself
// would refuse to name (M6). The statements use standard double-quoted
// identifiers.
type SQLHarness interface {
	OpenWithSQL(ctx context.Context, t *testing.T, opts *connectors.Options, statements ...string) *connectors.Conn
}

// events writes a table (id, at) with the given times.
func writeEvents(t *testing.T, c *connectors.Conn, mem memory.Allocator, table string, times []time.Time) {
	t.Helper()
	s := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "at", Type: tsType, Nullable: true},
	}, nil)
	b := array.NewRecordBuilder(mem, s)
	for i, tm := range times {
		b.Field(0).(*array.Int64Builder).Append(int64(i))
		if tm.IsZero() {
			b.Field(1).AppendNull()
		} else {
			b.Field(1).(*array.TimestampBuilder).Append(arrow.Timestamp(tm.UnixMicro()))
		}
	}
	rec := b.NewRecordBatch()
	b.Release()
	write(t, c, table, s, []arrow.RecordBatch{rec}, connectors.WriteOptions{PrimaryKey: []string{"id"}})
}

// testTimeRange: [Since, Until) on the time column returns exactly the rows
// inside, bounds included at the start and excluded at the end (R3).
func testTimeRange(t *testing.T, h Harness, _ Quirks) {
	c, mem := checkedOpen(t, h)
	base := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	times := []time.Time{
		base.Add(-time.Microsecond), base, base.Add(time.Microsecond), base.Add(time.Hour),
		base.Add(24*time.Hour - time.Microsecond), base.Add(24 * time.Hour), base.Add(48 * time.Hour), {},
	}
	writeEvents(t, c, mem, "ev", times)
	for _, tc := range []struct {
		name         string
		since, until time.Time
		want         string
	}{
		{"both", base, base.Add(24 * time.Hour), "1,2,3,4"},
		{"since only", base.Add(24 * time.Hour), time.Time{}, "5,6"},
		{"until only", time.Time{}, base.Add(time.Microsecond), "0,1"},
		{"empty window", base.Add(10 * time.Hour), base.Add(11 * time.Hour), ""},
		{"other zone, same instant", base.In(time.FixedZone("UTC-8", -8*3600)), base.Add(time.Hour).In(time.FixedZone("UTC+5", 5*3600)), "1,2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, cols, _ := readAll(t, c, "ev", connectors.ReadOptions{Columns: []string{"id"}, Since: tc.since, Until: tc.until})
			ids := append([]string(nil), cols[0]...)
			sort.Slice(ids, func(i, j int) bool {
				return len(ids[i]) < len(ids[j]) || (len(ids[i]) == len(ids[j]) && ids[i] < ids[j])
			})
			if got := strings.Join(ids, ","); got != tc.want {
				t.Errorf("ids %q, want %q", got, tc.want)
			}
		})
	}
	// A table without a time column refuses a range.
	sequence(t, c, mem, "plain", 10, "m")
	_, err := c.Read(context.Background(), "plain", connectors.ReadOptions{Since: base})
	if !errors.Is(err, connectors.ErrNotSupported) {
		t.Errorf("range on a table without time column: %v, want ErrNotSupported", err)
	}
}

// failingReader yields good batches, then fails.
type failingReader struct {
	array.RecordReader
	left int
	err  error
}

func (f *failingReader) Next() bool {
	if f.left == 0 {
		f.err = errors.New("source failed mid-stream")
		return false
	}
	f.left--
	return f.RecordReader.Next()
}

func (f *failingReader) Err() error {
	if f.err != nil {
		return f.err
	}
	return f.RecordReader.Err()
}

// testFailedWriteKeepsOld: a write whose input fails halfway returns an error
// and leaves the previous table intact (W4/K5).
func testFailedWriteKeepsOld(t *testing.T, h Harness, _ Quirks) {
	c, mem := checkedOpen(t, h)
	sequence(t, c, mem, "t", 3000, "A")
	s := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "marker", Type: arrow.BinaryTypes.String},
		{Name: "v", Type: arrow.PrimitiveTypes.Float64},
	}, nil)
	gen := &genReader{schema: s, mem: mem, total: 100000, batch: 1000, marker: "B", refs: 1}
	fr := &failingReader{RecordReader: gen, left: 5}
	_, err := c.Write(context.Background(), "t", fr, connectors.WriteOptions{})
	gen.Release()
	if err == nil {
		t.Fatal("a write whose input failed returned no error")
	}
	_, cols, _ := readAll(t, c, "t", connectors.ReadOptions{Columns: []string{"marker"}})
	if len(cols[0]) != 3000 || cols[0][0] != "A" || cols[0][2999] != "A" {
		t.Fatalf("after a failed write the table has %d rows (first %q); want the old 3000 rows of A", len(cols[0]), first(cols[0]))
	}
	// The next write succeeds and replaces it whole.
	sequence(t, c, mem, "t", 10, "C")
	if _, cols, _ := readAll(t, c, "t", connectors.ReadOptions{}); len(cols[0]) != 10 {
		t.Fatalf("write after a failed one: %d rows, want 10", len(cols[0]))
	}
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// testAllNull: an all-null column round-trips (T14).
func testAllNull(t *testing.T, h Harness, _ Quirks) {
	c, mem := checkedOpen(t, h)
	s := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}, {Name: "n", Type: arrow.PrimitiveTypes.Float64, Nullable: true}, {Name: "s", Type: arrow.BinaryTypes.String, Nullable: true}}, nil)
	b := array.NewRecordBuilder(mem, s)
	for i := 0; i < 5; i++ {
		b.Field(0).(*array.Int64Builder).Append(int64(i))
		b.Field(1).AppendNull()
		b.Field(2).AppendNull()
	}
	rec := b.NewRecordBatch()
	b.Release()
	write(t, c, "nulls", s, []arrow.RecordBatch{rec}, connectors.WriteOptions{})
	_, cols, _ := readAll(t, c, "nulls", connectors.ReadOptions{})
	if fmt.Sprint(cols[1]) != "[<null> <null> <null> <null> <null>]" || fmt.Sprint(cols[2]) != "[<null> <null> <null> <null> <null>]" {
		t.Fatalf("all-null columns read back as %v %v", cols[1], cols[2])
	}
}

// testWideTable: 1,000 columns round-trip (T16).
func testWideTable(t *testing.T, h Harness, _ Quirks) {
	c, mem := checkedOpen(t, h)
	fields := make([]arrow.Field, 1000)
	for i := range fields {
		fields[i] = arrow.Field{Name: fmt.Sprintf("c%04d", i), Type: arrow.PrimitiveTypes.Int32}
	}
	s := arrow.NewSchema(fields, nil)
	b := array.NewRecordBuilder(mem, s)
	for r := 0; r < 3; r++ {
		for i := range fields {
			b.Field(i).(*array.Int32Builder).Append(int32(r*1000 + i))
		}
	}
	rec := b.NewRecordBatch()
	b.Release()
	write(t, c, "wide", s, []arrow.RecordBatch{rec}, connectors.WriteOptions{})
	rs, cols, _ := readAll(t, c, "wide", connectors.ReadOptions{})
	if rs.NumFields() != 1000 || cols[999][2] != "2999" || cols[0][1] != "1000" {
		t.Fatalf("wide table read back with %d fields", rs.NumFields())
	}
}

// testDictionary: dictionary-encoded input is written as its values (T17).
func testDictionary(t *testing.T, h Harness, _ Quirks) {
	c, mem := checkedOpen(t, h)
	dt := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}
	s := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}, {Name: "city", Type: dt, Nullable: true}}, nil)
	b := array.NewRecordBuilder(mem, s)
	db := b.Field(1).(*array.BinaryDictionaryBuilder)
	for i, v := range []string{"Oslo", "Lima", "Oslo", "", "Lima"} {
		b.Field(0).(*array.Int64Builder).Append(int64(i))
		if v == "" {
			db.AppendNull()
		} else if err := db.AppendString(v); err != nil {
			t.Fatal(err)
		}
	}
	rec := b.NewRecordBatch()
	b.Release()
	write(t, c, "dict", s, []arrow.RecordBatch{rec}, connectors.WriteOptions{})
	_, cols, _ := readAll(t, c, "dict", connectors.ReadOptions{Columns: []string{"city"}})
	got := append([]string(nil), cols[0]...)
	sort.Strings(got)
	if fmt.Sprint(got) != "[<null> Lima Lima Oslo Oslo]" {
		t.Fatalf("dictionary column read back as %v", cols[0])
	}
}

// testUnmappable: a type the connector cannot store is refused with an
// error naming the column (T18).
func testUnmappable(t *testing.T, h Harness, q Quirks) {
	if q.UnmappableType == nil {
		notSupported(t, q, "connector declares no unmappable type")
	}
	c, mem := checkedOpen(t, h)
	s := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}, {Name: "odd_col", Type: q.UnmappableType, Nullable: true}}, nil)
	b := array.NewRecordBuilder(mem, s)
	b.Field(0).(*array.Int64Builder).Append(1)
	b.Field(1).AppendNull()
	rec := b.NewRecordBatch()
	b.Release()
	r, _ := array.NewRecordReader(s, []arrow.RecordBatch{rec})
	rec.Release()
	defer r.Release()
	_, err := c.Write(context.Background(), "odd", r, connectors.WriteOptions{})
	if err == nil {
		t.Fatalf("type %s was accepted", q.UnmappableType)
	}
	if !strings.Contains(err.Error(), "odd_col") {
		t.Errorf("error %q does not name the column", err)
	}
}

// testConcurrentReaders: many readers of one table at once (L4).
func testConcurrentReaders(t *testing.T, h Harness, _ Quirks) {
	c, mem := checkedOpen(t, h)
	sequence(t, c, mem, "t", 20000, "m")
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := c.Read(context.Background(), "t", connectors.ReadOptions{})
			if err != nil {
				errs <- err
				return
			}
			defer r.Release()
			var n int64
			for r.Next() {
				n += r.RecordBatch().NumRows()
			}
			if r.Err() != nil || n != 20000 {
				errs <- fmt.Errorf("read %d rows, err %v", n, r.Err())
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// testConcurrentWriters: two jobs writing two tables do not interfere (W9);
// two writing one table leave one whole version (W10).
func testConcurrentWriters(t *testing.T, h Harness, _ Quirks) {
	c, mem := checkedOpen(t, h)
	writeAsync := func(table string, n int64, marker string) <-chan error {
		done := make(chan error, 1)
		go func() {
			s := arrow.NewSchema([]arrow.Field{
				{Name: "id", Type: arrow.PrimitiveTypes.Int64},
				{Name: "marker", Type: arrow.BinaryTypes.String},
				{Name: "v", Type: arrow.PrimitiveTypes.Float64},
			}, nil)
			r := &genReader{schema: s, mem: mem, total: n, batch: 4096, marker: marker, refs: 1}
			defer r.Release()
			_, err := c.Write(context.Background(), table, r, connectors.WriteOptions{})
			done <- err
		}()
		return done
	}
	a, b := writeAsync("one", 20000, "A"), writeAsync("two", 30000, "B")
	if err := errors.Join(<-a, <-b); err != nil {
		t.Fatalf("writes to two tables interfered: %v", err)
	}
	for table, want := range map[string]int{"one": 20000, "two": 30000} {
		if _, cols, _ := readAll(t, c, table, connectors.ReadOptions{}); len(cols[0]) != want {
			t.Errorf("%s has %d rows, want %d", table, len(cols[0]), want)
		}
	}
	x, y := writeAsync("same", 20000, "X"), writeAsync("same", 30000, "Y")
	ex, ey := <-x, <-y
	if ex != nil && ey != nil {
		t.Fatalf("both concurrent writes failed: %v; %v", ex, ey)
	}
	_, cols, _ := readAll(t, c, "same", connectors.ReadOptions{Columns: []string{"marker"}})
	markers := map[string]int{}
	for _, m := range cols[0] {
		markers[m]++
	}
	if !(len(markers) == 1 && (markers["X"] == 20000 || markers["Y"] == 30000)) {
		t.Fatalf("concurrent writes to one table left a mix: %v", markers)
	}
}

// testGoroutinesAfterClose: no goroutine outlives a connection (L7).
func testGoroutinesAfterClose(t *testing.T, h Harness, _ Quirks) {
	runtime.GC()
	before := runtime.NumGoroutine()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	c := h.Open(context.Background(), t, &connectors.Options{Allocator: mem})
	sequence(t, c, mem, "t", 5000, "m")
	if _, cols, _ := readAll(t, c, "t", connectors.ReadOptions{}); len(cols[0]) != 5000 {
		t.Fatalf("read %d rows", len(cols[0]))
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	mem.AssertSize(t, 0)
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if after := runtime.NumGoroutine(); after > before {
		buf := make([]byte, 1<<16)
		n := runtime.Stack(buf, true)
		t.Fatalf("goroutines %d before open, %d after close:\n%s", before, after, buf[:n])
	}
}

// testOddNames: tables and columns with quotes, spaces, unicode, reserved
// words and mixed case, created natively, are listed and read back exactly
// (M6).
func testOddNames(t *testing.T, h Harness, q Quirks) {
	sh, ok := h.(SQLHarness)
	if !ok {
		notSupported(t, q, "not a SQL warehouse: names come from Ferry's own writes, which ValidateName restricts")
	}
	const table = `Odd "Table"; DROP TABLE x -- ü`
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	c := sh.OpenWithSQL(context.Background(), t, &connectors.Options{Allocator: mem},
		`CREATE TABLE "Odd ""Table""; DROP TABLE x -- ü" ("select" INTEGER, "a b" TEXT, "MixedCase" TEXT, "q""uote" TEXT, "名前" TEXT)`,
		`INSERT INTO "Odd ""Table""; DROP TABLE x -- ü" VALUES (1, 'x', 'y', 'z', 'w')`)
	defer func() {
		c.Close()
		mem.AssertSize(t, 0)
	}()
	tbl, err := c.Table(context.Background(), table)
	if err != nil {
		t.Fatalf("odd table not listed exactly: %v", err)
	}
	want := []string{"select", "a b", "MixedCase", `q"uote`, "名前"}
	if got := tbl.ColumnNames(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("columns %q, want %q", got, want)
	}
	_, cols, _ := readAll(t, c, table, connectors.ReadOptions{Columns: []string{`q"uote`, "select", "名前"}})
	if fmt.Sprint(cols) != "[[z] [1] [w]]" {
		t.Fatalf("read back %v", cols)
	}
}

// testColumns returns a check that time of day and intervals (T10, T11),
// lists (T12) or structs (T13), whichever columns are named, round-trip with
// nulls.
func testColumns(names ...string) func(t *testing.T, h Harness, q Quirks) {
	return func(t *testing.T, h Harness, q Quirks) { testTimeNestedInterval(t, h, names) }
}

func testTimeNestedInterval(t *testing.T, h Harness, keep []string) {
	c, mem := checkedOpen(t, h)
	listT := arrow.ListOf(arrow.PrimitiveTypes.Int64)
	structT := arrow.StructOf(arrow.Field{Name: "a", Type: arrow.PrimitiveTypes.Int64, Nullable: true}, arrow.Field{Name: "b", Type: arrow.BinaryTypes.String, Nullable: true})
	s := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "tod", Type: arrow.FixedWidthTypes.Time64us, Nullable: true},
		{Name: "iv", Type: arrow.FixedWidthTypes.MonthDayNanoInterval, Nullable: true},
		{Name: "xs", Type: listT, Nullable: true},
		{Name: "st", Type: structT, Nullable: true},
		{Name: "strs", Type: arrow.ListOf(arrow.BinaryTypes.String), Nullable: true},
	}, nil)
	b := array.NewRecordBuilder(mem, s)
	b.Field(0).(*array.Int64Builder).AppendValues([]int64{1, 2, 3}, nil)
	b.Field(1).(*array.Time64Builder).AppendValues([]arrow.Time64{0, arrow.Time64((23*3600+59*60+59)*1e6 + 999999), 0}, []bool{true, true, false})
	b.Field(2).(*array.MonthDayNanoIntervalBuilder).AppendValues([]arrow.MonthDayNanoInterval{{Months: 14, Days: 3, Nanoseconds: 5000}, {Months: -1, Days: 0, Nanoseconds: 0}, {}}, []bool{true, true, false})
	lb := b.Field(3).(*array.ListBuilder)
	lv := lb.ValueBuilder().(*array.Int64Builder)
	lb.Append(true)
	lv.AppendValues([]int64{1, -2, 3}, nil)
	lb.Append(true) // empty list
	lb.AppendNull()
	sb := b.Field(4).(*array.StructBuilder)
	sb.Append(true)
	sb.FieldBuilder(0).(*array.Int64Builder).Append(7)
	sb.FieldBuilder(1).(*array.StringBuilder).Append("seven")
	sb.Append(true)
	sb.FieldBuilder(0).(*array.Int64Builder).AppendNull()
	sb.FieldBuilder(1).(*array.StringBuilder).Append("")
	sb.AppendNull()
	sb.FieldBuilder(0).(*array.Int64Builder).AppendNull()
	sb.FieldBuilder(1).(*array.StringBuilder).AppendNull()
	lsb := b.Field(5).(*array.ListBuilder)
	lsv := lsb.ValueBuilder().(*array.StringBuilder)
	lsb.Append(true)
	lsv.AppendValues([]string{"a", "", "héllo 🚢", "O'Brien, \"x\" {y}"}, nil)
	lsv.AppendNull()
	lsb.AppendNull()
	lsb.Append(true)
	lsv.Append("NULL")
	full := b.NewRecordBatch()
	b.Release()
	// Keep the key and the columns this check covers.
	fields := []arrow.Field{s.Field(0)}
	cols := []arrow.Array{full.Column(0)}
	for _, name := range keep {
		i := s.FieldIndices(name)[0]
		fields = append(fields, s.Field(i))
		cols = append(cols, full.Column(i))
	}
	s = arrow.NewSchema(fields, nil)
	rec := array.NewRecordBatch(s, cols, full.NumRows())
	full.Release()
	want := make([][]string, rec.NumCols())
	for i := range want {
		want[i] = valueStrings(rec.Column(i))
	}
	write(t, c, "nested", s, []arrow.RecordBatch{rec}, connectors.WriteOptions{PrimaryKey: []string{"id"}})
	_, got, _ := readAll(t, c, "nested", connectors.ReadOptions{})
	for i, f := range s.Fields() {
		if fmt.Sprint(got[i]) != fmt.Sprint(want[i]) {
			t.Errorf("column %s (%s): got %q, want %q", f.Name, f.Type, got[i], want[i])
		}
	}
}

// testRunEndEncoded: run-end encoded input (as writeback sends its
// identifier columns) is written as its values (T17).
func testRunEndEncoded(t *testing.T, h Harness, _ Quirks) {
	c, mem := checkedOpen(t, h)
	reeT := arrow.RunEndEncodedOf(arrow.PrimitiveTypes.Int32, arrow.BinaryTypes.String)
	s := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}, {Name: "tag", Type: reeT, Nullable: true}}, nil)
	ids := array.NewInt64Builder(mem)
	ids.AppendValues([]int64{0, 1, 2, 3, 4}, nil)
	idArr := ids.NewArray()
	ids.Release()
	ends := array.NewInt32Builder(mem)
	ends.AppendValues([]int32{3, 5}, nil)
	endArr := ends.NewArray()
	ends.Release()
	vals := array.NewStringBuilder(mem)
	vals.Append("run-a")
	vals.Append("run-b")
	valArr := vals.NewArray()
	vals.Release()
	ree := array.NewRunEndEncodedArray(endArr, valArr, 5, 0)
	endArr.Release()
	valArr.Release()
	rec := array.NewRecordBatch(s, []arrow.Array{idArr, ree}, 5)
	idArr.Release()
	ree.Release()
	write(t, c, "ree", s, []arrow.RecordBatch{rec}, connectors.WriteOptions{})
	_, cols, _ := readAll(t, c, "ree", connectors.ReadOptions{Columns: []string{"tag"}})
	got := append([]string(nil), cols[0]...)
	sort.Strings(got)
	if fmt.Sprint(got) != "[run-a run-a run-a run-b run-b]" {
		t.Fatalf("run-end encoded column read back as %v", cols[0])
	}
}

// testCancelBeforeFirst: a read cancelled before its first batch ends with
// the context's error (K1), and no goroutine outlives cancelled reads (K4).
func testCancelBeforeFirstAndLeaks(t *testing.T, h Harness, _ Quirks) {
	c, mem := checkedOpen(t, h)
	sequence(t, c, mem, "t", 50000, "m")
	runtime.GC()
	before := runtime.NumGoroutine()
	for i := 0; i < 5; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		r, err := c.Read(ctx, "t", connectors.ReadOptions{BatchSize: 1000})
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		cancel()
		for r.Next() {
		}
		if !errors.Is(r.Err(), context.Canceled) {
			t.Errorf("read cancelled before its first batch: err %v, want context.Canceled", r.Err())
		}
		r.Release()
	}
	// The connection still works after the cancellations.
	if _, cols, _ := readAll(t, c, "t", connectors.ReadOptions{Columns: []string{"id"}}); len(cols[0]) != 50000 {
		t.Fatalf("after cancelled reads: %d rows, want 50000", len(cols[0]))
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before+2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if after := runtime.NumGoroutine(); after > before+2 {
		t.Errorf("goroutines %d -> %d after 5 cancelled reads", before, after)
	}
}

// testEmptyResult: a read that matches no row keeps the schema (R8).
func testEmptyResult(t *testing.T, h Harness, _ Quirks) {
	c, mem := checkedOpen(t, h)
	writeEvents(t, c, mem, "ev", []time.Time{time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)})
	s, cols, _ := readAll(t, c, "ev", connectors.ReadOptions{Since: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)})
	if s.NumFields() != 2 || s.Field(0).Name != "id" || s.Field(1).Name != "at" || len(cols[0]) != 0 {
		t.Fatalf("empty result: schema %v, %d rows", s, len(cols[0]))
	}
}

// testStrings: empty, 1 MiB, emoji, quotes and escapes round-trip; invalid
// UTF-8 in a utf8 column is refused (T5).
func testStrings(t *testing.T, h Harness, _ Quirks) {
	c, mem := checkedOpen(t, h)
	big := strings.Repeat("ferry ⛴ ", 1<<20/10)
	vals := []string{"", big, "🚢🌊 emoji", `back\\slash 'single' "double"`, "tab\there\nnewline", "zero-width\u200bjoiner"}
	s := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}, {Name: "s", Type: arrow.BinaryTypes.String}}, nil)
	b := array.NewRecordBuilder(mem, s)
	for i, v := range vals {
		b.Field(0).(*array.Int64Builder).Append(int64(i))
		b.Field(1).(*array.StringBuilder).Append(v)
	}
	rec := b.NewRecordBatch()
	b.Release()
	write(t, c, "strs", s, []arrow.RecordBatch{rec}, connectors.WriteOptions{PrimaryKey: []string{"id"}})
	_, cols, _ := readAll(t, c, "strs", connectors.ReadOptions{})
	got := map[string]string{}
	for i := range cols[0] {
		got[cols[0][i]] = cols[1][i]
	}
	for i, v := range vals {
		if got[fmt.Sprint(i)] != v {
			t.Errorf("string %d (%d bytes) read back as %d bytes", i, len(v), len(got[fmt.Sprint(i)]))
		}
	}
	// Invalid UTF-8 in a utf8 column: refused, not silently stored.
	b = array.NewRecordBuilder(mem, s)
	b.Field(0).(*array.Int64Builder).Append(1)
	b.Field(1).(*array.StringBuilder).Append("bad \xff\xfe bytes")
	rec = b.NewRecordBatch()
	b.Release()
	r, _ := array.NewRecordReader(s, []arrow.RecordBatch{rec})
	rec.Release()
	defer r.Release()
	if _, err := c.Write(context.Background(), "badutf8", r, connectors.WriteOptions{}); err == nil {
		t.Error("invalid UTF-8 in a utf8 column was accepted")
	}
}

// testTimestamps: microsecond and nanosecond timestamps at their extremes,
// without wraparound (T8).
func testTimestamps(t *testing.T, h Harness, q Quirks) {
	c, mem := checkedOpen(t, h)
	ns := &arrow.TimestampType{Unit: arrow.Nanosecond}
	s := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "us", Type: tsType, Nullable: true},
		{Name: "ns", Type: ns, Nullable: true},
	}, nil)
	b := array.NewRecordBuilder(mem, s)
	usVals := []time.Time{time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC), time.Unix(0, 0), time.Date(1969, 12, 31, 23, 59, 59, 999999000, time.UTC)}
	nsVals := []time.Time{time.Date(1677, 9, 22, 0, 0, 0, 1000, time.UTC), time.Date(2262, 4, 11, 23, 47, 16, 854775000, time.UTC), time.Unix(0, 0), time.Date(2024, 2, 29, 12, 0, 0, 123456000, time.UTC)}
	for i := range usVals {
		b.Field(0).(*array.Int64Builder).Append(int64(i))
		b.Field(1).(*array.TimestampBuilder).Append(arrow.Timestamp(usVals[i].UnixMicro()))
		b.Field(2).(*array.TimestampBuilder).Append(arrow.Timestamp(nsVals[i].UnixNano()))
	}
	rec := b.NewRecordBatch()
	b.Release()
	write(t, c, "ts", s, []arrow.RecordBatch{rec}, connectors.WriteOptions{PrimaryKey: []string{"id"}})
	_, cols, _ := readAll(t, c, "ts", connectors.ReadOptions{})
	for i := range cols[0] {
		k := 0
		fmt.Sscan(cols[0][i], &k)
		if want := usVals[k].Format(time.RFC3339Nano); cols[1][i] != want {
			t.Errorf("us row %d: %s, want %s", k, cols[1][i], want)
		}
		// Nanoseconds may be stored at microsecond precision (declared by the
		// values chosen: every one is a whole microsecond).
		if want := nsVals[k].Format(time.RFC3339Nano); cols[2][i] != want {
			t.Errorf("ns row %d: %s, want %s", k, cols[2][i], want)
		}
	}
}

// testCreateAndNoDebris: a write creates a new table (W1); neither a good nor
// a failed write leaves staging objects visible in the catalogue (W13).
func testCreateAndNoDebris(t *testing.T, h Harness, _ Quirks) {
	c, mem := checkedOpen(t, h)
	sequence(t, c, mem, "fresh", 100, "A")
	s := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "marker", Type: arrow.BinaryTypes.String},
		{Name: "v", Type: arrow.PrimitiveTypes.Float64},
	}, nil)
	gen := &genReader{schema: s, mem: mem, total: 10000, batch: 1000, marker: "B", refs: 1}
	fr := &failingReader{RecordReader: gen, left: 3}
	if _, err := c.Write(context.Background(), "fresh", fr, connectors.WriteOptions{}); err == nil {
		t.Error("failed write returned no error")
	}
	gen.Release()
	ts, err := c.Tables(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tb := range ts {
		names = append(names, tb.Name)
	}
	if fmt.Sprint(names) != "[fresh]" {
		t.Fatalf("tables after a good and a failed write: %v, want [fresh]", names)
	}
}

// testCloseDuringRead: closing the connection while a read is in flight ends
// the read with an error or a complete result, never a hang (L5).
func testCloseDuringRead(t *testing.T, h Harness, _ Quirks) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	c := h.Open(context.Background(), t, &connectors.Options{Allocator: mem})
	sequence(t, c, mem, "t", 200000, "m")
	r, err := c.Read(context.Background(), "t", connectors.ReadOptions{BatchSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Next() {
		t.Fatalf("no first batch: %v", r.Err())
	}
	done := make(chan error, 1)
	go func() { done <- c.Close() }()
	finished := make(chan int64, 1)
	go func() {
		var n int64
		for r.Next() {
			n += r.RecordBatch().NumRows()
		}
		finished <- n
	}()
	select {
	case <-finished:
	case <-time.After(10 * time.Second):
		t.Fatal("read did not end within 10 s of Close")
	}
	r.Release()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return within 10 s")
	}
	mem.AssertSize(t, 0)
}
