package postgres

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	fdriver "github.com/ferry-ai/ferry/connectors/driver"
)

// queryRead reads through the extended query protocol with every result
// column in binary format: each value arrives in the same encoding as in a
// binary COPY, so the COPY decoder serves both paths. It is the read path for
// Redshift, which has no COPY TO STDOUT. Rows stream from the socket as the
// reader asks for them.
func (c *conn) queryRead(ctx context.Context, req fdriver.ReadRequest) (array.RecordReader, error) {
	sel, schema, q, batch, err := c.plan(ctx, req)
	if err != nil {
		return nil, err
	}
	pconn, err := c.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	rows, err := pconn.Query(ctx, q, pgx.QueryResultFormats{pgx.BinaryFormatCode})
	if err != nil {
		pconn.Release()
		return nil, fmt.Errorf("postgres: read %q: %w", req.Table, err)
	}
	return &queryReader{ctx: ctx, pconn: pconn, rows: rows, schema: schema, cols: sel, batch: batch, mem: memory.DefaultAllocator, refs: 1}, nil
}

type queryReader struct {
	ctx    context.Context
	pconn  *pgxpool.Conn
	rows   pgx.Rows
	schema *arrow.Schema
	cols   []pgColumn
	batch  int
	mem    memory.Allocator
	cur    arrow.RecordBatch
	err    error
	done   bool
	refs   int64
}

func (r *queryReader) Retain() { atomic.AddInt64(&r.refs, 1) }

func (r *queryReader) Release() {
	if atomic.AddInt64(&r.refs, -1) != 0 {
		return
	}
	if r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
	r.close()
}

func (r *queryReader) close() {
	if r.pconn != nil {
		r.rows.Close()
		r.pconn.Release()
		r.pconn = nil
	}
}

func (r *queryReader) Schema() *arrow.Schema          { return r.schema }
func (r *queryReader) Err() error                     { return r.err }
func (r *queryReader) Record() arrow.RecordBatch      { return r.cur }
func (r *queryReader) RecordBatch() arrow.RecordBatch { return r.cur }

func (r *queryReader) Next() bool {
	if r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
	if r.err != nil || r.done {
		return false
	}
	b := array.NewRecordBuilder(r.mem, r.schema)
	defer b.Release()
	n := 0
	for n < r.batch {
		if !r.rows.Next() {
			r.done = true
			if err := r.rows.Err(); err != nil {
				if ctxErr := r.ctx.Err(); ctxErr != nil {
					err = fmt.Errorf("%w (%v)", ctxErr, err)
				}
				r.err = fmt.Errorf("postgres: read: %w", err)
			}
			r.close()
			break
		}
		for i, v := range r.rows.RawValues() {
			if v == nil {
				b.Field(i).AppendNull()
				continue
			}
			if err := decode(b.Field(i), r.cols[i], v); err != nil {
				r.err = fmt.Errorf("postgres: read: column %q: %w", r.cols[i].name, err)
				r.close()
				return false
			}
		}
		n++
	}
	if n == 0 || r.err != nil {
		return false
	}
	r.cur = b.NewRecordBatch()
	return true
}
