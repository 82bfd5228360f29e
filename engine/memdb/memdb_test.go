//go:build duckdb_arrow

package memdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	duckdb "github.com/duckdb/duckdb-go/v2"
)

// openDB opens a DB closed at the end of the test.
func openDB(t testing.TB, memoryLimit int64) *DB {
	t.Helper()
	db, err := Open(context.Background(), Options{MemoryLimitBytes: memoryLimit, Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	})
	return db
}

// direct runs a one-value query on the connection itself, bypassing Query
// (whose own result table would be visible to the query), and returns the
// value as text.
func direct(t testing.TB, db *DB, query string) string {
	t.Helper()
	db.mu.Lock()
	defer db.mu.Unlock()
	got, err := db.selectStrings(context.Background(), "SELECT CAST(("+query+") AS VARCHAR)")
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return got[0]
}

// rows runs a query and returns its result row by row as Go values (nil for
// NULL), and its schema.
func rows(t testing.TB, db *DB, query string, args ...any) (*arrow.Schema, [][]any) {
	t.Helper()
	rr, err := db.Query(context.Background(), query, args...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rr.Release()
	var out [][]any
	for rr.Next() {
		rec := rr.RecordBatch()
		for i := 0; i < int(rec.NumRows()); i++ {
			row := make([]any, rec.NumCols())
			for j, col := range rec.Columns() {
				row[j] = value(t, col, i)
			}
			out = append(out, row)
		}
	}
	if err := rr.Err(); err != nil {
		t.Fatal(err)
	}
	return rr.Schema(), out
}

func value(t testing.TB, col arrow.Array, i int) any {
	t.Helper()
	if col.IsNull(i) {
		return nil
	}
	switch c := col.(type) {
	case *array.Int64:
		return c.Value(i)
	case *array.Int32:
		return int64(c.Value(i))
	case *array.Float64:
		return c.Value(i)
	case *array.String:
		return strings.Clone(c.Value(i)) // Value aliases the Arrow buffer
	case *array.LargeString:
		return strings.Clone(c.Value(i))
	case *array.Boolean:
		return c.Value(i)
	case *array.Date32:
		return c.Value(i)
	case *array.Timestamp:
		return c.Value(i)
	default:
		t.Fatalf("unexpected result column type %s", col.DataType())
		return nil
	}
}

// batch builds a record batch from columns of Go values (nil is NULL).
func batch(t testing.TB, mem memory.Allocator, schema *arrow.Schema, cols ...[]any) arrow.RecordBatch {
	t.Helper()
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	for j, vals := range cols {
		fb := b.Field(j)
		for _, v := range vals {
			if v == nil {
				fb.AppendNull()
				continue
			}
			switch fb := fb.(type) {
			case *array.Int64Builder:
				fb.Append(v.(int64))
			case *array.Float64Builder:
				fb.Append(v.(float64))
			case *array.StringBuilder:
				fb.Append(v.(string))
			case *array.BooleanBuilder:
				fb.Append(v.(bool))
			case *array.Date32Builder:
				fb.Append(v.(arrow.Date32))
			case *array.TimestampBuilder:
				fb.Append(v.(arrow.Timestamp))
			default:
				t.Fatalf("unsupported builder %T", fb)
			}
		}
	}
	return b.NewRecordBatch()
}

func ts(s string) arrow.Timestamp {
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return arrow.Timestamp(tm.UnixMicro())
}

func date(s string) arrow.Date32 {
	tm, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return arrow.Date32FromTime(tm)
}

func releaseAll(recs []arrow.RecordBatch) {
	for _, r := range recs {
		r.Release()
	}
}

var (
	customersSchema = arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "name", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "vip", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
		{Name: "signup", Type: arrow.FixedWidthTypes.Date32, Nullable: true},
		{Name: "created", Type: &arrow.TimestampType{Unit: arrow.Microsecond}, Nullable: true},
		{Name: "seen", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, Nullable: true},
		{Name: "score", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	}, nil)
	ordersSchema = arrow.NewSchema([]arrow.Field{
		{Name: "order_id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "customer_id", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "amount", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "placed", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "America/New_York"}, Nullable: true},
	}, nil)
)

// TestRoundTrip registers two tables of mixed types in several batches and
// checks a join + group by, that the tables can be scanned repeatedly, and
// that memdb keeps no reference to the caller's batches.
func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	db := openDB(t, 256<<20)

	customers := []arrow.RecordBatch{
		batch(t, mem, customersSchema,
			[]any{int64(1), int64(2)},
			[]any{"Zoë 東京 🚀", ""},
			[]any{true, false},
			[]any{date("2024-01-02"), nil},
			[]any{ts("2024-01-02T03:04:05.123456Z"), nil},
			[]any{ts("2024-05-06T07:08:09.654321Z"), nil},
			[]any{1.5, nil}),
		batch(t, mem, customersSchema, []any{}, []any{}, []any{}, []any{}, []any{}, []any{}, []any{}),
		batch(t, mem, customersSchema,
			[]any{int64(3), int64(4)},
			[]any{nil, `O'Brien "q"`},
			[]any{nil, true},
			[]any{date("1969-12-31"), date("2000-02-29")},
			[]any{ts("1969-12-31T23:59:59.999999Z"), ts("2000-02-29T12:00:00Z")},
			[]any{nil, ts("1970-01-01T00:00:00Z")},
			[]any{-2.25, math.MaxFloat64}),
	}
	orders := []arrow.RecordBatch{
		batch(t, mem, ordersSchema,
			[]any{int64(10), int64(11)},
			[]any{int64(1), int64(1)},
			[]any{10.5, 20.25},
			[]any{ts("2024-06-01T10:00:00Z"), ts("2024-06-02T10:00:00Z")}),
		batch(t, mem, ordersSchema,
			[]any{int64(12), int64(13), int64(14)},
			[]any{int64(1), nil, int64(99)},
			[]any{nil, 100.0, 7.0},
			[]any{nil, ts("2024-06-03T10:00:00Z"), ts("2024-06-04T10:00:00Z")}),
		batch(t, mem, ordersSchema,
			[]any{int64(15)},
			[]any{int64(3)},
			[]any{5.0},
			[]any{ts("2023-12-31T23:00:00Z")}),
	}
	if err := db.Register(ctx, "customers", customersSchema, customers); err != nil {
		t.Fatal(err)
	}
	if err := db.Register(ctx, "orders", ordersSchema, orders); err != nil {
		t.Fatal(err)
	}
	// memdb copied the data: the caller's batches can go now, and then no
	// memory of the allocator may be left.
	releaseAll(customers)
	releaseAll(orders)
	mem.AssertSize(t, 0)

	schema, got := rows(t, db, `
		SELECT c.id, c.name, c.vip, c.signup, c.created, c.seen, c.score,
		       count(o.order_id) AS n, sum(o.amount) AS total, max(o.placed) AS last_placed
		FROM customers c LEFT JOIN orders o ON o.customer_id = c.id
		GROUP BY ALL
		ORDER BY c.id;`)
	want := [][]any{
		{int64(1), "Zoë 東京 🚀", true, date("2024-01-02"), ts("2024-01-02T03:04:05.123456Z"), ts("2024-05-06T07:08:09.654321Z"), 1.5, int64(3), 30.75, ts("2024-06-02T10:00:00Z")},
		{int64(2), "", false, nil, nil, nil, nil, int64(0), nil, nil},
		{int64(3), nil, nil, date("1969-12-31"), ts("1969-12-31T23:59:59.999999Z"), nil, -2.25, int64(1), 5.0, ts("2023-12-31T23:00:00Z")},
		{int64(4), `O'Brien "q"`, true, date("2000-02-29"), ts("2000-02-29T12:00:00Z"), ts("1970-01-01T00:00:00Z"), math.MaxFloat64, int64(0), nil, nil},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("join + group by:\n got %v\nwant %v", got, want)
	}
	wantTypes := []string{"int64", "utf8", "bool", "date32", "timestamp[us]", "timestamp[us, tz=*]", "float64", "int64", "float64", "timestamp[us, tz=*]"}
	for i, f := range schema.Fields() {
		typ := f.Type.String()
		if tt, ok := f.Type.(*arrow.TimestampType); ok && tt.TimeZone != "" {
			typ = "timestamp[us, tz=*]" // DuckDB reports TIMESTAMPTZ in its session time zone
		}
		if typ != wantTypes[i] {
			t.Errorf("result column %q has type %s, want %s", f.Name, f.Type, wantTypes[i])
		}
	}

	// Tables, not one-shot Arrow views: every scan sees all rows.
	for i := 0; i < 3; i++ {
		if _, got := rows(t, db, `SELECT count(*), count(customer_id), count(DISTINCT placed) FROM orders`); fmt.Sprint(got) != "[[6 5 5]]" {
			t.Fatalf("scan %d of orders: got %v", i, got)
		}
	}
	// Placeholders, positional and named.
	if _, got := rows(t, db, `SELECT name FROM customers WHERE id = ? OR name = ?`, 1, ""); fmt.Sprint(got) != "[[Zoë 東京 🚀] []]" {
		t.Errorf("positional args: got %q", got)
	}
	if _, got := rows(t, db, `SELECT count(*) FROM orders WHERE amount > $min`, sql.Named("min", 10.0)); fmt.Sprint(got) != "[[3]]" {
		t.Errorf("named args: got %v", got)
	}
	if err := db.Exec(ctx, `INSERT INTO orders VALUES (?, ?, ?, NULL)`, 16, 2, 1.25); err != nil {
		t.Fatal(err)
	}
	if _, got := rows(t, db, `SELECT n FROM (SELECT customer_id, count(*) n FROM orders GROUP BY 1) WHERE customer_id = 2`); fmt.Sprint(got) != "[[1]]" {
		t.Errorf("after Exec insert: got %v", got)
	}
}

// TestQueryForms checks the statement forms Query accepts, empty results, and
// that result order survives.
func TestQueryForms(t *testing.T) {
	db := openDB(t, 256<<20)
	ctx := context.Background()
	if err := db.Exec(ctx, `CREATE TABLE t AS SELECT range AS i, range % 3 AS g FROM range(10)`); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ query, want string }{
		{"SELECT 42 AS answer", "[[42]]"},
		{"  SELECT 42 ;; \n", "[[42]]"},
		{"SELECT 42 -- trailing comment", "[[42]]"},
		{"VALUES (1), (2)", "[[1] [2]]"},
		{"FROM t SELECT count(*)", "[[10]]"},
		{"WITH x AS (SELECT g, count(*) n FROM t GROUP BY g) SELECT n FROM x ORDER BY g", "[[4] [3] [3]]"},
		{"SELECT i FROM t ORDER BY i DESC LIMIT 3", "[[9] [8] [7]]"},
		{"SELECT i FROM t WHERE i < 0", "[]"},
		{"SELECT column_name FROM (DESCRIBE t)", "[[i] [g]]"},
		{"DESCRIBE SELECT 1 AS x", "[[x INTEGER YES <nil> <nil> <nil>]]"},
	} {
		rr, err := db.Query(ctx, tc.query)
		if err != nil {
			t.Errorf("%q: %v", tc.query, err)
			continue
		}
		var got [][]any
		for rr.Next() {
			rec := rr.RecordBatch()
			for i := 0; i < int(rec.NumRows()); i++ {
				var row []any
				for _, c := range rec.Columns() {
					if c.IsNull(i) {
						row = append(row, nil)
					} else {
						row = append(row, strings.Clone(c.ValueStr(i)))
					}
				}
				got = append(got, row)
			}
		}
		if err := rr.Err(); err != nil {
			t.Errorf("%q: %v", tc.query, err)
		}
		if rr.Schema().NumFields() == 0 {
			t.Errorf("%q: result has no schema", tc.query)
		}
		rr.Release()
		if fmt.Sprint(got) != tc.want {
			t.Errorf("%q: got %v, want %s", tc.query, got, tc.want)
		}
	}
	for _, bad := range []string{"", " ; ", "SELECT 1; SELECT 2", "EXPLAIN SELECT 1"} {
		if rr, err := db.Query(ctx, bad); err == nil {
			rr.Release()
			t.Errorf("Query(%q) succeeded, want an error", bad)
		}
	}

	// A large ordered result arrives complete and in order.
	const n = 1_000_000
	_, got := rows(t, db, `SELECT (range * 7919) % ? AS v FROM range(?) ORDER BY v DESC`, n, n)
	if len(got) != n {
		t.Fatalf("got %d rows, want %d", len(got), n)
	}
	for i, r := range got {
		if r[0].(int64) != int64(n-1-i) {
			t.Fatalf("row %d is %v, want %d", i, r[0], n-1-i)
		}
	}
	// Internal result tables are gone.
	if got := direct(t, db, `SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE '__memdb_%' OR temporary`); got != "0" {
		t.Errorf("leftover internal tables: %v", got)
	}
}

// TestOpenSettings reads back every setting Open establishes.
func TestOpenSettings(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, Options{MemoryLimitBytes: 100_000_000})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	want := map[string]string{
		"temp_directory":               "",
		"max_temp_directory_size":      "0 bytes",
		"memory_limit":                 "95.3 MiB",
		"threads":                      strconv.Itoa(runtime.NumCPU()),
		"enable_external_access":       "false",
		"autoinstall_known_extensions": "false",
		"autoload_known_extensions":    "false",
		"allow_community_extensions":   "false",
		"allow_persistent_secrets":     "false",
		"lock_configuration":           "true",
	}
	for name, w := range want {
		_, got := rows(t, db, `SELECT CAST(current_setting(?) AS VARCHAR)`, name)
		if len(got) != 1 || got[0][0] != w {
			t.Errorf("current_setting(%q) = %v, want %q", name, got, w)
		}
	}
	// The same list is what Open verifies.
	if err := db.checkSettings(ctx, lockedSettings(100_000_000, runtime.NumCPU())); err != nil {
		t.Error(err)
	}
	if err := db.checkSettings(ctx, lockedSettings(200_000_000, runtime.NumCPU())); err == nil {
		t.Error("checkSettings accepted a wrong memory_limit")
	}
	if err := db.checkSettings(ctx, []setting{{name: "temp_directory", want: ".tmp"}}); err == nil {
		t.Error("checkSettings accepted a wrong temp_directory")
	}

	for _, opts := range []Options{{}, {MemoryLimitBytes: -1}, {MemoryLimitBytes: 1 << 30, Threads: -1}} {
		if db, err := Open(ctx, opts); err == nil {
			db.Close()
			t.Errorf("Open(%+v) succeeded, want an error", opts)
		}
	}
}

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0 bytes", 0, true},
		{"64.0 MiB", 64 << 20, true},
		{"1.5 GiB", 3 << 29, true},
		{"2 KB", 2000, true},
		{"64.0", 0, false},
		{"x MiB", 0, false},
		{"1 parsec", 0, false},
	} {
		got, err := parseSize(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// TestRegisterNames registers tables under awkward names.
func TestRegisterNames(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, 256<<20)
	schema := arrow.NewSchema([]arrow.Field{{Name: `v a"l`, Type: arrow.PrimitiveTypes.Int64}}, nil)
	names := []string{`o"rders`, `my table`, `Ünïcode`, `select`, `a.b`, `x'y`, `🚀`, `-- not a comment`, `"`, `t"; DROP TABLE x; --`}
	for i, name := range names {
		rec := batch(t, memory.DefaultAllocator, schema, []any{int64(i), int64(100)})
		err := db.Register(ctx, name, schema, []arrow.RecordBatch{rec})
		rec.Release()
		if err != nil {
			t.Fatalf("register %q: %v", name, err)
		}
	}
	for i, name := range names {
		_, got := rows(t, db, `SELECT count(*), CAST(sum("v a""l") AS BIGINT) FROM `+QuoteIdent(name))
		if want := fmt.Sprintf("[[2 %d]]", i+100); fmt.Sprint(got) != want {
			t.Errorf("%q: got %v, want %s", name, got, want)
		}
	}
	if got := direct(t, db, `SELECT count(*) FROM duckdb_tables()`); got != strconv.Itoa(len(names)) {
		t.Errorf("%s tables, want %d", got, len(names))
	}
	if got := direct(t, db, `SELECT count(*) FROM duckdb_views() WHERE NOT internal`); got != "0" {
		t.Errorf("%s staging views left", got)
	}

	empty := arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.BinaryTypes.String, Nullable: true}}, nil)
	if err := db.Register(ctx, "empty", empty, nil); err != nil {
		t.Fatal(err)
	}
	if _, got := rows(t, db, `SELECT count(*), any_value(typeof(x)) FROM empty`); fmt.Sprint(got) != "[[0 <nil>]]" {
		t.Errorf("empty table: %v", got)
	}

	other := arrow.NewSchema([]arrow.Field{{Name: "w", Type: arrow.PrimitiveTypes.Int64}}, nil)
	rec := batch(t, memory.DefaultAllocator, other, []any{int64(1)})
	defer rec.Release()
	for _, tc := range []struct {
		name   string
		schema *arrow.Schema
		recs   []arrow.RecordBatch
	}{
		{"MY TABLE", other, nil}, // exists, case-insensitively
		{"", other, nil},
		{"__memdb_x", other, nil},
		{"nil schema", nil, nil},
		{"no fields", arrow.NewSchema(nil, nil), nil},
		{"mismatch", schema, []arrow.RecordBatch{rec}},
		{"nil batch", other, []arrow.RecordBatch{nil}},
	} {
		err := db.Register(ctx, tc.name, tc.schema, tc.recs)
		if err == nil {
			t.Errorf("Register(%q) succeeded, want an error", tc.name)
		} else if !strings.HasPrefix(err.Error(), "memdb: register ") {
			t.Errorf("Register(%q): error %q lacks context", tc.name, err)
		}
	}
	// An Arrow type DuckDB cannot scan is reported by column.
	odd := arrow.NewSchema([]arrow.Field{{Name: "ok", Type: arrow.PrimitiveTypes.Int64}, {Name: "half", Type: arrow.FixedWidthTypes.Float16}}, nil)
	if err := db.Register(ctx, "odd", odd, nil); err == nil || !strings.Contains(err.Error(), `column "half" has Arrow type float16`) {
		t.Errorf("float16 column: got %v", err)
	}
}

// TestErrorsWithholdRowValues checks that DuckDB errors that quote data do
// not reach the caller with the data, and that others keep their message.
func TestErrorsWithholdRowValues(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, 256<<20)
	const secret = "s3cr3t-Ünïcode-4711"
	schema := arrow.NewSchema([]arrow.Field{{Name: "s", Type: arrow.BinaryTypes.String}}, nil)
	rec := batch(t, memory.DefaultAllocator, schema, []any{secret})
	if err := db.Register(ctx, "t", schema, []arrow.RecordBatch{rec}); err != nil {
		t.Fatal(err)
	}
	rec.Release()
	for _, tc := range []struct {
		query string
		exec  bool
		typ   duckdb.ErrorType
	}{
		{query: `SELECT CAST(s AS INTEGER) FROM t`, typ: duckdb.ErrorTypeConversion},
		{query: `SELECT strptime(s, '%Y') FROM t`, typ: duckdb.ErrorTypeInvalidInput},
		{query: `SELECT error(s) FROM t`},
		{query: `SELECT json_extract(s, '$.a') FROM t`, typ: duckdb.ErrorTypeInvalidInput},
		{query: `CREATE TABLE u (k VARCHAR PRIMARY KEY); INSERT INTO u SELECT s FROM t UNION ALL SELECT s FROM t`, exec: true, typ: duckdb.ErrorTypeConstraint},
	} {
		var err error
		if tc.exec {
			err = db.Exec(ctx, tc.query)
		} else {
			var rr array.RecordReader
			if rr, err = db.Query(ctx, tc.query); err == nil {
				rr.Release()
			}
		}
		if err == nil {
			t.Errorf("%s: succeeded, want an error", tc.query)
			continue
		}
		if strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "4711") {
			t.Errorf("%s: error quotes the row value: %v", tc.query, err)
		}
		var de *duckdb.Error
		if tc.typ != 0 && (!errors.As(err, &de) || de.Type != tc.typ) {
			t.Errorf("%s: error %v is not a DuckDB error of type %d", tc.query, err, tc.typ)
		}
	}
	// Errors about SQL or names keep their message.
	_, err := db.Query(ctx, `SELECT * FROM no_such_table`)
	if err == nil || !strings.Contains(err.Error(), "no_such_table") {
		t.Errorf("catalog error lost its message: %v", err)
	}
	// Text-only errors (duckdb-go's Arrow API) are redacted by their prefix.
	for in, want := range map[string]string{
		"failed to execute the prepared arrow: Conversion Error: Could not convert string 'x' to INT32": "failed to execute the prepared arrow: Conversion Error: " + withheld,
		"failed to execute the prepared arrow: Catalog Error: Table with name y does not exist":         "failed to execute the prepared arrow: Catalog Error: Table with name y does not exist",
		`x: Invalid Input Error: Cannot change configuration option "threads" - locked`:                 `x: Invalid Input Error: Cannot change configuration option "threads" - locked`,
		"duckdb_arrow_scan": "duckdb_arrow_scan",
	} {
		if got := redact(errors.New(in)).Error(); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestResultOutlivesClose reads a Query result after the DB is closed: it
// holds nothing of DuckDB's.
func TestResultOutlivesClose(t *testing.T) {
	db, err := Open(context.Background(), Options{MemoryLimitBytes: 256 << 20, Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	rr, err := db.Query(context.Background(), `SELECT range AS i, 'row ' || range AS s FROM range(100000)`)
	if err != nil {
		t.Fatal(err)
	}
	defer rr.Release()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	var n int64
	for rr.Next() {
		rec := rr.RecordBatch()
		is := rec.Column(0).(*array.Int64)
		ss := rec.Column(1).(*array.String)
		for i := 0; i < is.Len(); i++ {
			if ss.Value(i) != "row "+strconv.FormatInt(is.Value(i), 10) || is.Value(i) != n {
				t.Fatalf("row %d: %d %q", n, is.Value(i), ss.Value(i))
			}
			n++
		}
	}
	if n != 100000 {
		t.Fatalf("read %d rows", n)
	}
}
