// Package syntable generates synthetic Arrow tables on demand, one batch at
// a time, for tests and benchmarks of the data paths: a table of any size
// costs the memory of one batch, so a test can tell a streaming path (flat
// memory) from one that buffers (memory growing with the table).
//
// The mixed-type schema has an int64 id (0, 1, 2, … in order, so a reader
// can check every row arrived exactly once), an int64 customer, a string
// status, a float64 amount with nulls, a bool flag and a UTC timestamp.
package syntable

import (
	"fmt"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Schema is the schema of every generated table.
var Schema = arrow.NewSchema([]arrow.Field{
	{Name: "id", Type: arrow.PrimitiveTypes.Int64},
	{Name: "customer", Type: arrow.PrimitiveTypes.Int64},
	{Name: "status", Type: arrow.BinaryTypes.String},
	{Name: "amount", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	{Name: "flag", Type: arrow.FixedWidthTypes.Boolean},
	{Name: "at", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}},
}, nil)

var statuses = []string{"placed", "paid", "shipped", "delivered", "returned", "cancelled", "refunded"}

// Reader generates rows [0, rows) in batches of batchRows. It implements
// array.RecordReader; each batch is released when the next is made, as with
// any RecordReader (a caller that keeps one retains it).
type Reader struct {
	mem       memory.Allocator
	rows      int64
	batchRows int64
	next      int64
	cur       arrow.RecordBatch
	refs      atomic.Int64
}

// New returns a reader of a table of rows rows in batches of batchRows,
// allocated from mem (nil: the default allocator).
func New(mem memory.Allocator, rows int64, batchRows int) *Reader {
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	if batchRows < 1 {
		batchRows = 1
	}
	r := &Reader{mem: mem, rows: rows, batchRows: int64(batchRows)}
	r.refs.Store(1)
	return r
}

// BytesPerRow is the approximate Arrow size of one row.
const BytesPerRow = 8 + 8 + 4 + 7 + 8 + 1 + 8

// Schema returns Schema.
func (r *Reader) Schema() *arrow.Schema { return Schema }

// Next makes the next batch; false at the end of the table.
func (r *Reader) Next() bool {
	if r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
	if r.next >= r.rows {
		return false
	}
	n := min(r.batchRows, r.rows-r.next)
	r.cur = Batch(r.mem, r.next, n)
	r.next += n
	return true
}

// RecordBatch returns the current batch.
func (r *Reader) RecordBatch() arrow.RecordBatch { return r.cur }

// Record returns the current batch (the older name of RecordBatch).
func (r *Reader) Record() arrow.RecordBatch { return r.cur }

// Err is always nil: generation does not fail.
func (r *Reader) Err() error { return nil }

// Retain adds a reference.
func (r *Reader) Retain() { r.refs.Add(1) }

// Release drops a reference; the last releases the current batch.
func (r *Reader) Release() {
	if r.refs.Add(-1) == 0 && r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
}

// Batch makes rows [first, first+n) of the table.
func Batch(mem memory.Allocator, first, n int64) arrow.RecordBatch {
	b := array.NewRecordBuilder(mem, Schema)
	defer b.Release()
	for _, f := range b.Fields() {
		f.Reserve(int(n))
	}
	id := b.Field(0).(*array.Int64Builder)
	cust := b.Field(1).(*array.Int64Builder)
	st := b.Field(2).(*array.StringBuilder)
	amt := b.Field(3).(*array.Float64Builder)
	flag := b.Field(4).(*array.BooleanBuilder)
	at := b.Field(5).(*array.TimestampBuilder)
	for i := first; i < first+n; i++ {
		id.UnsafeAppend(i)
		cust.UnsafeAppend(i*7919%100_003 + 1)
		st.Append(statuses[i%int64(len(statuses))])
		if i%11 == 0 {
			amt.UnsafeAppendBoolToBitmap(false)
		} else {
			amt.UnsafeAppend(float64(i%10_000) / 100)
		}
		flag.UnsafeAppend(i%3 == 0)
		at.UnsafeAppend(arrow.Timestamp(1_700_000_000_000_000 + i*1_000_000))
	}
	return b.NewRecordBatch()
}

// CheckIDs checks that the id column of recs holds 0, 1, …, rows-1 each
// exactly once, in any batch order, and names the first fault.
func CheckIDs(recs []arrow.RecordBatch, rows int64) error {
	seen := make([]bool, rows)
	var n int64
	for bi, rec := range recs {
		ids, ok := rec.Column(0).(*array.Int64)
		if !ok {
			return fmt.Errorf("batch %d: id column is %s, want int64", bi, rec.Column(0).DataType())
		}
		for i, v := range ids.Int64Values() {
			switch {
			case v < 0 || v >= rows:
				return fmt.Errorf("batch %d row %d: id %d outside [0, %d)", bi, i, v, rows)
			case seen[v]:
				return fmt.Errorf("batch %d row %d: id %d arrived twice", bi, i, v)
			}
			seen[v] = true
			n++
		}
	}
	if n != rows {
		for v, ok := range seen {
			if !ok {
				return fmt.Errorf("%d of %d rows arrived; id %d is missing", n, rows, v)
			}
		}
	}
	return nil
}

// Repeat returns a reader of rows rows made by sending recs again and
// again (the last batch sliced to fit), so a benchmark of a data path
// measures the path, not the making of data. The batches must share Schema.
func Repeat(recs []arrow.RecordBatch, rows int64) array.RecordReader {
	return &repeatReader{recs: recs, rows: rows}
}

type repeatReader struct {
	recs []arrow.RecordBatch
	rows int64
	sent int64
	i    int
	cur  arrow.RecordBatch
}

func (r *repeatReader) Schema() *arrow.Schema { return Schema }
func (r *repeatReader) Next() bool {
	if r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
	if r.sent >= r.rows || len(r.recs) == 0 {
		return false
	}
	rec := r.recs[r.i%len(r.recs)]
	r.i++
	n := min(rec.NumRows(), r.rows-r.sent)
	r.cur = rec.NewSlice(0, n)
	r.sent += n
	return true
}
func (r *repeatReader) RecordBatch() arrow.RecordBatch { return r.cur }
func (r *repeatReader) Record() arrow.RecordBatch      { return r.cur }
func (r *repeatReader) Err() error                     { return nil }
func (r *repeatReader) Retain()                        {}
func (r *repeatReader) Release() {
	if r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
}
