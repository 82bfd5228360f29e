//go:build duckdb_arrow

package memdb

import (
	"context"
	"strconv"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// BenchmarkRegisterAndAggregate registers 1M rows (int64 key, float64 value,
// utf8 label, in 16 batches) and runs a GROUP BY over them, per iteration;
// rows/s counts registered rows.
func BenchmarkRegisterAndAggregate(b *testing.B) {
	const rows, perBatch, groups = 1 << 20, 1 << 16, 1000
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "key", Type: arrow.PrimitiveTypes.Int64},
		{Name: "value", Type: arrow.PrimitiveTypes.Float64},
		{Name: "label", Type: arrow.BinaryTypes.String},
	}, nil)
	var batches []arrow.RecordBatch
	bld := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	for i := 0; i < rows; i++ {
		bld.Field(0).(*array.Int64Builder).Append(int64(i % groups))
		bld.Field(1).(*array.Float64Builder).Append(float64(i) * 0.5)
		bld.Field(2).(*array.StringBuilder).Append("label-" + strconv.Itoa(i%97))
		if (i+1)%perBatch == 0 {
			batches = append(batches, bld.NewRecordBatch())
		}
	}
	bld.Release()
	defer releaseAll(batches)

	db := openDB(b, 2<<30)
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		if err := db.Register(ctx, "facts", schema, batches); err != nil {
			b.Fatal(err)
		}
		rr, err := db.Query(ctx, `SELECT key, count(*) AS n, sum(value) AS total, min(label) AS first FROM facts GROUP BY key`)
		if err != nil {
			b.Fatal(err)
		}
		var n int64
		for rr.Next() {
			n += rr.RecordBatch().NumRows()
		}
		rr.Release()
		if n != groups {
			b.Fatalf("got %d groups", n)
		}
		if err := db.Exec(ctx, `DROP TABLE facts`); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}
