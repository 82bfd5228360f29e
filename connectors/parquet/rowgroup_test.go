package parquet_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"

	"github.com/ferry-ai/ferry/connectors"
)

// TestSmallBatchesMakeFewRowGroups: 100,000 rows arriving 1,000 at a time are
// stored in row groups of at least 65,536 rows (the table's last one may be
// smaller), not one tiny row group per batch, which would cost every reader
// a request per column per batch on S3.
func TestSmallBatchesMakeFewRowGroups(t *testing.T) {
	dir := t.TempDir()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	c, err := newMux().Open(context.Background(), "file://"+dir, &connectors.Options{Allocator: mem})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := newSeq(mem, 100_000, "m", 0)
	r.batch = 1000
	if _, err := c.Write(context.Background(), "t", r, connectors.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	r.Release()
	files, err := filepath.Glob(filepath.Join(dir, "t", "*.parquet"))
	if err != nil || len(files) != 1 {
		t.Fatalf("parts %v, %v; want one", files, err)
	}
	pf, err := file.OpenParquetFile(files[0], false)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	var sizes []int64
	for i := 0; i < pf.NumRowGroups(); i++ {
		sizes = append(sizes, pf.RowGroup(i).NumRows())
	}
	if len(sizes) != 2 || sizes[0] < 65536 {
		t.Fatalf("row groups of %v rows; want two, the first of at least 65,536", sizes)
	}
	rr, err := c.Read(context.Background(), "t", connectors.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer rr.Release()
	var n int64
	for rr.Next() {
		n += rr.RecordBatch().NumRows()
	}
	if rr.Err() != nil || n != 100_000 {
		t.Fatalf("read back %d rows: %v", n, rr.Err())
	}
}
