//go:build duckdb_arrow

package memdb

import (
	"bufio"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	duckdb "github.com/duckdb/duckdb-go/v2"
)

// procIO reads this process's I/O counters (all threads) from /proc/self/io.
func procIO(t *testing.T) map[string]int64 {
	t.Helper()
	f, err := os.Open("/proc/self/io")
	if err != nil {
		t.Skipf("no /proc/self/io: %v", err)
	}
	defer f.Close()
	out := map[string]int64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ": ")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			t.Fatalf("/proc/self/io: %q", sc.Text())
		}
		out[k] = n
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func assertEmptyDirs(t *testing.T, when string, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		entries, err := os.ReadDir(d)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			t.Errorf("%s: %s contains %s", when, d, e.Name())
		}
	}
}

// TestNoStorage runs queries that need far more memory than the limit and
// checks that they fail with DuckDB's out-of-memory error instead of
// spilling, and that the job wrote nothing: TMPDIR, HOME and the working
// directory stay empty and /proc/self/io write_bytes hardly moves.
//
// The write bound is 64 KiB, not 0, because write_bytes counts the whole
// process at page granularity, so the test binary's own output would count
// if its stdout were a file; DuckDB spills in 256 KiB blocks, so even one
// spilled block exceeds it.
func TestNoStorage(t *testing.T) {
	tmp, home, wd := t.TempDir(), t.TempDir(), t.TempDir()
	t.Setenv("TMPDIR", tmp)
	t.Setenv("HOME", home)
	t.Chdir(wd) // DuckDB's default in-memory spill directory is ./.tmp
	assertEmptyDirs(t, "before", tmp, home, wd)
	ctx := context.Background()
	before := procIO(t)

	db, err := Open(ctx, Options{MemoryLimitBytes: 64 << 20, Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	// Some job data, 200k rows.
	schema := arrow.NewSchema([]arrow.Field{{Name: "k", Type: arrow.PrimitiveTypes.Int64}, {Name: "s", Type: arrow.BinaryTypes.String}}, nil)
	bld := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	for i := 0; i < 200_000; i++ {
		bld.Field(0).(*array.Int64Builder).Append(int64(i))
		bld.Field(1).(*array.StringBuilder).Append("customer " + strconv.Itoa(i))
	}
	rec := bld.NewRecordBatch()
	bld.Release()
	if err := db.Register(ctx, "data", schema, []arrow.RecordBatch{rec}); err != nil {
		t.Fatal(err)
	}
	rec.Release()

	// A query within the limit works (a streaming count over 100M rows).
	if _, got := rows(t, db, `SELECT count(*) FROM range(100000000)`); len(got) != 1 || got[0][0] != int64(100_000_000) {
		t.Fatalf("streaming count: %v", got)
	}
	for _, query := range []string{
		// hash aggregate with 10M groups
		`SELECT count(*) FROM (SELECT range, count(*) FROM range(10000000) GROUP BY range)`,
		// full sort of 10M rows (window ORDER BY cannot be optimized away)
		`SELECT max(rn) FROM (SELECT row_number() OVER (ORDER BY random()) AS rn FROM range(10000000))`,
		// hash join whose build side is 10M rows
		`SELECT count(*) FROM range(10000000) a JOIN (SELECT range * 2 AS r FROM range(10000000)) b ON a.range = b.r`,
		// a big table of job data
		`SELECT count(*) FROM (SELECT d.k, d.s, r.range FROM data d, range(50) r ORDER BY d.s DESC, r.range)`,
	} {
		rr, err := db.Query(ctx, query)
		if err == nil {
			rr.Release()
			t.Errorf("%s: succeeded under a 64 MiB limit; it must have spilled", query)
			continue
		}
		var de *duckdb.Error
		if !errors.As(err, &de) || de.Type != duckdb.ErrorTypeOutOfMemory {
			t.Errorf("%s: want an out-of-memory error, got %v", query, err)
		}
	}
	// Registering more data than the limit fails the same way.
	if err := db.Exec(ctx, `CREATE TABLE big AS SELECT range, range::VARCHAR AS s FROM range(20000000)`); err == nil {
		t.Error("a 20M-row table fit in 64 MiB: it must have spilled")
	} else if !strings.Contains(err.Error(), "Out of Memory") {
		t.Errorf("want an out-of-memory error, got %v", err)
	}
	// The database is still usable after the failures.
	if _, got := rows(t, db, `SELECT count(*) FROM data`); len(got) != 1 || got[0][0] != int64(200_000) {
		t.Errorf("after OOM: %v", got)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	after := procIO(t)
	const bound = 64 << 10
	if d := after["write_bytes"] - before["write_bytes"]; d > bound {
		t.Errorf("write_bytes grew by %d bytes (> %d) during the job", d, bound)
	}
	t.Logf("write_bytes +%d, wchar +%d", after["write_bytes"]-before["write_bytes"], after["wchar"]-before["wchar"])
	assertEmptyDirs(t, "after", tmp, home, wd)
}

// TestLockedConfiguration checks that SQL can neither undo the settings nor
// touch files or extensions.
func TestLockedConfiguration(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, 256<<20)
	dir := t.TempDir()
	x := filepath.Join(dir, "x")
	for _, tc := range []struct{ sql, why string }{
		{`SET temp_directory = '` + x + `'`, "locked"},
		{`RESET temp_directory`, "locked"},
		{`SET enable_external_access = true`, "locked"},
		{`SET lock_configuration = false`, "locked"},
		{`SET memory_limit = '100GB'`, "locked"},
		{`SET max_temp_directory_size = '10GB'`, "locked"},
		{`SET autoload_known_extensions = true`, "locked"},
		{`SET autoinstall_known_extensions = true`, "locked"},
		{`PRAGMA memory_limit = '100GB'`, "locked"},
		{`COPY (SELECT 1) TO '` + x + `.csv'`, "disabled by configuration"},
		{`COPY (SELECT 1 AS a) TO '` + x + `.parquet' (FORMAT parquet)`, "disabled by configuration"},
		{`SELECT * FROM read_csv('/etc/passwd')`, "disabled by configuration"},
		{`SELECT * FROM read_text('/etc/hostname')`, "disabled by configuration"},
		{`SELECT * FROM glob('/etc/*')`, "disabled by configuration"},
		{`SELECT * FROM '/etc/passwd'`, "does not exist"}, // no replacement scan of files
		{`ATTACH '` + x + `.db'`, "disabled by configuration"},
		{`EXPORT DATABASE '` + x + `'`, "disabled by configuration"},
		{`INSTALL httpfs`, "disabled by configuration"},
		{`LOAD httpfs`, "disabled"},
	} {
		err := db.Exec(ctx, tc.sql)
		if err == nil {
			t.Errorf("%s: succeeded, want an error", tc.sql)
			continue
		}
		if !strings.Contains(err.Error(), tc.why) {
			t.Errorf("%s: error %q does not say %q", tc.sql, err, tc.why)
		}
	}
	if rr, err := db.Query(ctx, `SELECT * FROM read_csv('/etc/passwd')`); err == nil {
		rr.Release()
		t.Error("Query read /etc/passwd")
	}
	assertEmptyDirs(t, "after the attempts", dir)
	for name, want := range map[string]string{
		"temp_directory":          "",
		"enable_external_access":  "false",
		"lock_configuration":      "true",
		"max_temp_directory_size": "0 bytes",
	} {
		if _, got := rows(t, db, `SELECT CAST(current_setting(?) AS VARCHAR)`, name); len(got) != 1 || got[0][0] != want {
			t.Errorf("after the attempts, %s = %v, want %q", name, got, want)
		}
	}
}
