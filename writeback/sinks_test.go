//go:build duckdb_arrow

package writeback_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/jackc/pgx/v5"

	"github.com/ferry-ai/ferry/connectors"
	"github.com/ferry-ai/ferry/connectors/all"
	"github.com/ferry-ai/ferry/writeback"
)

// TestEverySink writes predictions through writeback into PostgreSQL and
// Parquet as well as DuckDB: the same rows come back, a re-run of the job
// leaves them unchanged, and the identifier columns hold plain values.
func TestEverySink(t *testing.T) {
	ctx := context.Background()
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "ferry_wb_" + hex.EncodeToString(b[:])
	admin, err := pgx.Connect(ctx, "host=127.0.0.1 port=5432 dbname=test user=postgres sslmode=disable")
	if err != nil {
		t.Fatalf("PostgreSQL is not reachable (run make services): %v", err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	defer admin.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE") //nolint:errcheck
	sinks := []struct {
		name, url string
		creds     map[string]string
	}{
		{"duckdb", "duckdb://" + t.TempDir() + "/wb.db", nil},
		{"postgres", "postgres://127.0.0.1:5432/test?sslmode=disable&schema=" + schema, map[string]string{"user": "postgres"}},
		{"parquet", "file://" + t.TempDir(), nil},
	}
	meta := writeback.Meta{JobID: "j-7", ModelID: "m-42", CreatedAt: time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC)}
	for _, s := range sinks {
		t.Run(s.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			c, err := all.Mux().Open(ctx, s.url, &connectors.Options{Allocator: mem, Credentials: s.creds})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			var first string
			for run := 0; run < 2; run++ {
				r := predictions(mem, 5000, 0)
				n, err := writeback.Write(ctx, c, "preds", r, meta, mem)
				r.Release()
				if err != nil || n != 5000 {
					t.Fatalf("run %d: wrote %d rows: %v", run, n, err)
				}
				rows, text := dump(t, c, "preds")
				if rows != 5000 {
					t.Fatalf("run %d: %d rows, want 5000", run, rows)
				}
				if run == 0 {
					first = text
				} else if !sameRows(text, first) {
					t.Fatal("re-running the job changed the rows")
				}
			}
			if line := strings.SplitN(first, "\n", 2)[0]; !strings.Contains(line, "|m-42|j-7|") {
				t.Fatalf("row %q lacks the model and job ids", line)
			}
		})
	}
}

// sameRows compares two dumps as sets of lines (order may differ).
func sameRows(a, b string) bool {
	count := map[string]int{}
	for _, l := range strings.Split(a, "\n") {
		count[l]++
	}
	for _, l := range strings.Split(b, "\n") {
		count[l]--
	}
	for _, v := range count {
		if v != 0 {
			return false
		}
	}
	return true
}
