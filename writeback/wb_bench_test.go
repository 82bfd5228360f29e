//go:build duckdb_arrow

package writeback_test

import (
	"context"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferry-ai/ferry/writeback"
)

func BenchmarkWriteDuckDB(b *testing.B) {
	c := open(b, memory.DefaultAllocator)
	for i := 0; i < b.N; i++ {
		r := predictions(memory.DefaultAllocator, 1_000_000, 0)
		start := time.Now()
		if _, err := writeback.Write(context.Background(), c, "preds", r, writeback.Meta{JobID: "j", ModelID: "m", CreatedAt: time.Unix(1, 0)}, memory.DefaultAllocator); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(1e6/time.Since(start).Seconds(), "rows/s")
		r.Release()
	}
}
