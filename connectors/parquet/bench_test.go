package parquet_test

import (
	"context"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferry-ai/ferry/connectors"
)

const benchRows = 5_000_000

// benchRead writes a benchRows-row table once and reads it b.N times,
// reporting rows/s and MB/s of Arrow data produced.
func benchRead(b *testing.B, c *connectors.Conn) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	r := newSeq(mem, benchRows, "bench-marker", 0)
	r.batch = 65536
	if _, err := c.Write(context.Background(), "bench", r, connectors.WriteOptions{}); err != nil {
		b.Fatal(err)
	}
	r.Release()
	b.ResetTimer()
	var rows, bytes int64
	for i := 0; i < b.N; i++ {
		rr, err := c.Read(context.Background(), "bench", connectors.ReadOptions{})
		if err != nil {
			b.Fatal(err)
		}
		for rr.Next() {
			rec := rr.RecordBatch()
			rows += rec.NumRows()
			for _, col := range rec.Columns() {
				for _, buf := range col.Data().Buffers() {
					if buf != nil {
						bytes += int64(buf.Len())
					}
				}
			}
		}
		if err := rr.Err(); err != nil {
			b.Fatal(err)
		}
		rr.Release()
	}
	s := b.Elapsed().Seconds()
	b.ReportMetric(float64(rows)/s, "rows/s")
	b.ReportMetric(float64(bytes)/s/1e6, "MB/s")
	mem.AssertSize(b, 0)
}

func BenchmarkReadFile(b *testing.B) {
	c, err := newMux().Open(context.Background(), "file://"+b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	benchRead(b, c)
}

func BenchmarkReadS3(b *testing.B) {
	srv := startS3(b)
	c, err := newMux().Open(context.Background(), srv.url("bench"), &connectors.Options{Credentials: creds(testSecret)})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	benchRead(b, c)
}

func BenchmarkWriteFile(b *testing.B) {
	c, err := newMux().Open(context.Background(), "file://"+b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	const rows = 1_000_000
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := newSeq(mem, rows, "bench-marker", 0)
		r.batch = 65536
		if _, err := c.Write(context.Background(), "bench", r, connectors.WriteOptions{}); err != nil {
			b.Fatal(err)
		}
		r.Release()
	}
	b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	mem.AssertSize(b, 0)
}
