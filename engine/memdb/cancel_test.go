//go:build duckdb_arrow

package memdb

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// longQuery would run for hours: a 10^13-row cross join whose filter DuckDB
// cannot prove empty.
const longQuery = `SELECT count(*) FROM range(100000000) a, range(100000) b WHERE a.range + b.range = -1`

// prompt is how long an interrupted query may take to return.
const prompt = 10 * time.Second

func TestCancel(t *testing.T) {
	db := openDB(t, 256<<20)
	for _, tc := range []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		run  func(context.Context) error
		want error
	}{
		{
			name: "query deadline",
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 300*time.Millisecond)
			},
			run:  func(ctx context.Context) error { return queryErr(db.Query(ctx, longQuery)) },
			want: context.DeadlineExceeded,
		},
		{
			name: "query cancel",
			ctx:  cancelSoon,
			run:  func(ctx context.Context) error { return queryErr(db.Query(ctx, longQuery)) },
			want: context.Canceled,
		},
		{
			name: "exec deadline",
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 300*time.Millisecond)
			},
			run:  func(ctx context.Context) error { return db.Exec(ctx, "CREATE TABLE never AS "+longQuery) },
			want: context.DeadlineExceeded,
		},
		{
			name: "already cancelled",
			ctx: func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				return ctx, cancel
			},
			run:  func(ctx context.Context) error { return queryErr(db.Query(ctx, longQuery)) },
			want: context.Canceled,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := tc.ctx()
			defer cancel()
			start := time.Now()
			err := tc.run(ctx)
			if d := time.Since(start); d > prompt {
				t.Errorf("returned after %v", d)
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("got error %v, want %v", err, tc.want)
			}
			// Still usable.
			if _, got := rows(t, db, `SELECT 42`); fmt.Sprint(got) != "[[42]]" {
				t.Errorf("after cancel: %v", got)
			}
		})
	}
	if got := direct(t, db, `SELECT count(*) FROM duckdb_tables()`); got != "0" {
		t.Errorf("interrupted statements left %s tables", got)
	}
}

func cancelSoon() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	return ctx, cancel
}

func queryErr(rr interface{ Release() }, err error) error {
	if err == nil {
		rr.Release()
	}
	return err
}

// TestClose checks that Close interrupts a running query, is idempotent,
// and that every operation afterwards fails with ErrClosed.
func TestClose(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, Options{MemoryLimitBytes: 256 << 20, Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- queryErr(db.Query(ctx, longQuery)) }()
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > prompt {
		t.Errorf("Close took %v", d)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("interrupted query: got %v, want ErrClosed", err)
		}
	case <-time.After(prompt):
		t.Fatal("query still running after Close")
	}

	if err := db.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	schema := arrow.NewSchema([]arrow.Field{{Name: "a", Type: arrow.PrimitiveTypes.Int64}}, nil)
	rec := batch(t, memory.DefaultAllocator, schema, []any{int64(1)})
	defer rec.Release()
	for name, err := range map[string]error{
		"Query":    queryErr(db.Query(ctx, "SELECT 1")),
		"Exec":     db.Exec(ctx, "SELECT 1"),
		"Register": db.Register(ctx, "t", schema, []arrow.RecordBatch{rec}),
	} {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: got %v, want ErrClosed", name, err)
		}
	}
}
