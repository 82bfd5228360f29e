//go:build duckdb_arrow

package e2e

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// TestReadFormatsRangeAndCopy drives `ferry read` and `ferry copy` on the
// demo warehouse: every output format parses back to the same row count,
// the time range matches SQL, and a copy reproduces the table with its key.
func TestReadFormatsRangeAndCopy(t *testing.T) {
	db := copyDB(t)
	wh := "duckdb://" + db
	var want int
	func() {
		d := openDB(t, db)
		defer d.Close()
		if err := d.QueryRow(`SELECT count(*) FROM orders WHERE ordered_at >= TIMESTAMP '2025-06-01' AND ordered_at < TIMESTAMP '2025-07-01'`).Scan(&want); err != nil {
			t.Fatal(err)
		}
	}()
	if want == 0 {
		t.Fatal("no orders in June 2025: the range check would prove nothing")
	}
	rangeArgs := []string{"read", wh, "orders", "--since", "2025-06-01", "--until", "2025-07-01T00:00:00Z"}

	code, out, stderr := ferry(t, nil, append(rangeArgs, "--format", "csv")...)
	if code != 0 || strings.Count(out, "\n")-1 != want {
		t.Fatalf("csv: exit %d, %d rows, want %d (%s)", code, strings.Count(out, "\n")-1, want, stderr)
	}
	code, out, _ = ferry(t, nil, append(rangeArgs, "--format", "jsonl")...)
	if code != 0 || strings.Count(out, "\n") != want {
		t.Fatalf("jsonl: exit %d, %d rows, want %d", code, strings.Count(out, "\n"), want)
	}
	code, out, _ = ferry(t, nil, append(rangeArgs, "--format", "arrow")...)
	if code != 0 {
		t.Fatalf("arrow: exit %d", code)
	}
	ir, err := ipc.NewReader(bytes.NewReader([]byte(out)))
	if err != nil {
		t.Fatalf("arrow output is not an IPC stream: %v", err)
	}
	n := 0
	for ir.Next() {
		n += int(ir.RecordBatch().NumRows())
	}
	ir.Release()
	if n != want {
		t.Fatalf("arrow: %d rows, want %d", n, want)
	}
	code, out, _ = ferry(t, nil, append(rangeArgs, "--format", "parquet")...)
	if code != 0 {
		t.Fatalf("parquet: exit %d", code)
	}
	pf, err := file.NewParquetReader(bytes.NewReader([]byte(out)))
	if err != nil {
		t.Fatalf("parquet output does not parse: %v", err)
	}
	if int(pf.NumRows()) != want {
		t.Fatalf("parquet: %d rows, want %d", pf.NumRows(), want)
	}
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := fr.ReadTable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if tbl.NumCols() != 6 {
		t.Errorf("parquet has %d columns, want 6", tbl.NumCols())
	}
	tbl.Release()
	pf.Close()

	// Copy into another warehouse and into the same one under a new name.
	dst := "duckdb://" + filepath.Join(t.TempDir(), "copy.db")
	code, out, stderr = ferry(t, nil, "copy", wh, "orders", dst, "--progress", "never")
	if code != 0 || !strings.HasPrefix(out, "copied ") {
		t.Fatalf("copy: exit %d: %s %s", code, out, stderr)
	}
	code, out, _ = ferry(t, nil, "tables", dst)
	if code != 0 || !strings.Contains(out, "orders") || !strings.Contains(out, "order_id") {
		t.Fatalf("copied table not listed with its key:\n%s", out)
	}
	code, orig, _ := ferry(t, nil, "read", wh, "orders", "--columns", "order_id,amount")
	code2, copied, _ := ferry(t, nil, "read", dst, "orders", "--columns", "order_id,amount")
	if code != 0 || code2 != 0 || len(orig) < 1000 || orig != copied {
		t.Fatal("the copy differs from the source")
	}
	code, out, stderr = ferry(t, nil, "copy", wh, "returns", wh, "returns_backup", "--progress", "always")
	if code != 0 {
		t.Fatalf("copy within one warehouse: exit %d %s", code, stderr)
	}
	// The progress line is redrawn in place (rows, MB, rate) and cleared at
	// the end; the summary goes to stdout.
	if !strings.Contains(stderr, "\r\033[K  ") || !strings.Contains(stderr, " rows") || !strings.Contains(stderr, "MB") || !strings.HasSuffix(stderr, "\r\033[K") {
		t.Errorf("progress line on stderr: %q", stderr)
	}
	if !strings.HasPrefix(out, "copied ") || !strings.Contains(out, "rows/s") {
		t.Errorf("summary line: %q", out)
	}

	open := filepath.Join(t.TempDir(), "open.yaml")
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(open, []byte("password: hunter2-SECRET\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("password: [hunter2-SECRET\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"tables", "--credentials", open, wh}, "chmod 600"},
		{[]string{"tables", "--credentials", bad, wh}, "not a YAML map"},
		{[]string{"read", wh, "orders", "--since", "yesterday"}, "--since"},
		{[]string{"read", wh, "orders", "--since", "2025-02-01", "--until", "2025-01-01"}, "empty"},
		{[]string{"read", wh, "products", "--since", "2025-01-01"}, "time column"},
		{[]string{"copy", wh, "orders"}, "usage"},
		{[]string{"copy", wh, "orders", dst, `x"; DROP TABLE orders; --`}, "destination table"},
		{[]string{"copy", wh, "ordres", dst}, `did you mean "orders"`},
		{[]string{"copy", wh, "orders", wh}, "same table"},
	} {
		code, _, stderr := ferry(t, nil, tc.args...)
		if strings.Contains(stderr, "hunter2") {
			t.Errorf("ferry %v leaks the credential: %q", tc.args, stderr)
		}
		if code != 2 || strings.Count(strings.TrimRight(stderr, "\n"), "\n") != 0 || !strings.Contains(stderr, tc.want) {
			t.Errorf("ferry %v: exit %d, stderr %q; want exit 2 and one line mentioning %q", tc.args, code, stderr, tc.want)
		}
	}
}
