package demodata

import (
	"context"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// fillFunc appends up to max rows to the builder's fields and returns how
// many it appended; 0 means the table is exhausted.
type fillFunc func(b *array.RecordBuilder, max int) int

// lazyReader is an array.RecordReader that builds each batch when Next is
// called, so a table is never materialised as a whole.
type lazyReader struct {
	refs   atomic.Int64
	ctx    context.Context
	schema *arrow.Schema
	b      *array.RecordBuilder
	fill   fillFunc
	batch  int
	cur    arrow.RecordBatch
	err    error
	done   bool
	rows   int64
}

var _ array.RecordReader = (*lazyReader)(nil)

func newLazyReader(ctx context.Context, mem memory.Allocator, schema *arrow.Schema, batch int, fill fillFunc) *lazyReader {
	r := &lazyReader{ctx: ctx, schema: schema, b: array.NewRecordBuilder(mem, schema), fill: fill, batch: batch}
	r.refs.Store(1)
	return r
}

// Retain increases the reference count.
func (r *lazyReader) Retain() { r.refs.Add(1) }

// Release decreases the reference count and frees the builder and the current
// batch when it reaches zero.
func (r *lazyReader) Release() {
	if r.refs.Add(-1) == 0 {
		if r.cur != nil {
			r.cur.Release()
			r.cur = nil
		}
		if r.b != nil {
			r.b.Release()
			r.b = nil
		}
	}
}

// Schema returns the table's schema.
func (r *lazyReader) Schema() *arrow.Schema { return r.schema }

// Next builds the next batch.
func (r *lazyReader) Next() bool {
	if r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
	if r.done || r.b == nil {
		return false
	}
	if err := r.ctx.Err(); err != nil {
		r.err, r.done = err, true
		return false
	}
	n := r.fill(r.b, r.batch)
	if n == 0 {
		r.done = true
		return false
	}
	r.rows += int64(n)
	r.cur = r.b.NewRecordBatch()
	return true
}

// RecordBatch returns the current batch, valid until the next call to Next.
func (r *lazyReader) RecordBatch() arrow.RecordBatch { return r.cur }

// Record returns the current batch.
//
// Deprecated: use RecordBatch.
func (r *lazyReader) Record() arrow.RecordBatch { return r.cur }

// Err returns the error that stopped the stream, if any.
func (r *lazyReader) Err() error { return r.err }
