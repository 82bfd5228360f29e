// Package writeback turns an engine's predictions stream into a warehouse
// table, atomically and idempotently.
//
// The table's columns are the entity key (the source primary key's name and
// type), anchor_time, score, predicted_class, then model_id, job_id and
// created_at added here. created_at is the job's creation time, not the
// write time, so running the same job again writes identical rows. The table
// is replaced as a whole through the connector's atomic Write: a reader sees
// the previous table or the new one, never a partial or empty one.
package writeback

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferry-ai/ferry/connectors"
)

// Columns added to every prediction table.
const (
	ColModelID   = "model_id"
	ColJobID     = "job_id"
	ColCreatedAt = "created_at"
)

// Meta identifies the job that made the predictions.
type Meta struct {
	JobID     string
	ModelID   string
	CreatedAt time.Time
}

// Sink is what writeback needs of a connector.
type Sink interface {
	Write(ctx context.Context, table string, r array.RecordReader, opts connectors.WriteOptions) (int64, error)
}

// Write replaces table with the predictions of r (not released) plus the
// job's identifiers, and returns the rows written.
func Write(ctx context.Context, sink Sink, table string, r array.RecordReader, meta Meta, mem memory.Allocator) (int64, error) {
	if meta.JobID == "" || meta.ModelID == "" || meta.CreatedAt.IsZero() {
		return 0, errors.New("writeback: job id, model id and created_at are required")
	}
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	in := r.Schema()
	if in.NumFields() < 1 {
		return 0, errors.New("writeback: predictions stream has no columns")
	}
	for _, name := range []string{ColModelID, ColJobID, ColCreatedAt} {
		if in.HasField(name) {
			return 0, fmt.Errorf("writeback: predictions already have a %q column", name)
		}
	}
	// The identifier columns hold one value per batch: run-end encoded, so
	// they cost O(1) per batch; the warehouse stores them as plain columns.
	fields := append(in.Fields(),
		arrow.Field{Name: ColModelID, Type: arrow.RunEndEncodedOf(arrow.PrimitiveTypes.Int32, arrow.BinaryTypes.String)},
		arrow.Field{Name: ColJobID, Type: arrow.RunEndEncodedOf(arrow.PrimitiveTypes.Int32, arrow.BinaryTypes.String)},
		arrow.Field{Name: ColCreatedAt, Type: arrow.RunEndEncodedOf(arrow.PrimitiveTypes.Int32, createdAtType)},
	)
	d := &decorated{in: r, schema: arrow.NewSchema(fields, nil), meta: meta, mem: mem, refs: 1}
	defer d.Release()
	// No primary key is declared: building its index would halve the write
	// rate, and duplicates cannot arise — the table is replaced whole, and the
	// engine emits one row per entity (checked end to end).
	n, err := sink.Write(ctx, table, d, connectors.WriteOptions{})
	if err != nil {
		return n, fmt.Errorf("writeback %q: %w", table, err)
	}
	return n, nil
}

// decorated appends the constant identifier columns to each batch.
type decorated struct {
	in     array.RecordReader
	schema *arrow.Schema
	meta   Meta
	mem    memory.Allocator
	cur    arrow.RecordBatch
	refs   int64
}

func (d *decorated) Retain() { atomic.AddInt64(&d.refs, 1) }
func (d *decorated) Release() {
	if atomic.AddInt64(&d.refs, -1) == 0 && d.cur != nil {
		d.cur.Release()
		d.cur = nil
	}
}
func (d *decorated) Schema() *arrow.Schema          { return d.schema }
func (d *decorated) Err() error                     { return d.in.Err() }
func (d *decorated) Record() arrow.RecordBatch      { return d.cur }
func (d *decorated) RecordBatch() arrow.RecordBatch { return d.cur }

func (d *decorated) Next() bool {
	if d.cur != nil {
		d.cur.Release()
		d.cur = nil
	}
	if !d.in.Next() {
		return false
	}
	rec := d.in.RecordBatch()
	n := int(rec.NumRows())
	cols := make([]arrow.Array, 0, d.schema.NumFields())
	cols = append(cols, rec.Columns()...)
	cols = append(cols, constString(d.mem, d.meta.ModelID, n), constString(d.mem, d.meta.JobID, n), constTime(d.mem, d.meta.CreatedAt, n))
	d.cur = array.NewRecordBatch(d.schema, cols, int64(n))
	for _, c := range cols[rec.NumCols():] {
		c.Release()
	}
	return true
}

var createdAtType = &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}

// constant returns n copies of one value as a run-end encoded array with a
// single run.
func constant(mem memory.Allocator, n int, values arrow.Array) arrow.Array {
	defer values.Release()
	ends := array.NewInt32Builder(mem)
	defer ends.Release()
	ends.Append(int32(n))
	e := ends.NewArray()
	defer e.Release()
	return array.NewRunEndEncodedArray(e, values, n, 0)
}

func constString(mem memory.Allocator, v string, n int) arrow.Array {
	b := array.NewStringBuilder(mem)
	defer b.Release()
	b.Append(v)
	return constant(mem, n, b.NewArray())
}

func constTime(mem memory.Allocator, t time.Time, n int) arrow.Array {
	b := array.NewTimestampBuilder(mem, createdAtType)
	defer b.Release()
	b.Append(arrow.Timestamp(t.UTC().UnixMicro()))
	return constant(mem, n, b.NewArray())
}
