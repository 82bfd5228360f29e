//go:build duckdb_arrow

package duckdb

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	duckdb "github.com/duckdb/duckdb-go/v2"

	fdriver "github.com/ferry-ai/ferry/connectors/driver"
)

// Read implements driver.Conn. It opens a read transaction on a dedicated
// connection and pages through the table by rowid, so DuckDB materializes at
// most one page at a time and every page comes from the same snapshot.
func (c *conn) Read(ctx context.Context, req fdriver.ReadRequest) (array.RecordReader, error) {
	dc, ar, err := c.rawConn(ctx)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (array.RecordReader, error) {
		dc.Close()
		return nil, err
	}
	if _, err := exec(ctx, dc, "BEGIN TRANSACTION"); err != nil {
		return fail(fmt.Errorf("duckdb: begin read: %w", err))
	}
	cols := "*"
	if len(req.Columns) > 0 {
		q := make([]string, len(req.Columns))
		for i, col := range req.Columns {
			q[i] = quoteIdent(col)
		}
		cols = strings.Join(q, ", ")
	}
	from := c.qualified(req.Table)
	// The time range is pushed down as a predicate with bound parameters.
	var where []string
	var args []any
	if !req.Since.IsZero() {
		args = append(args, req.Since.UTC())
		where = append(where, fmt.Sprintf("%s >= $%d", quoteIdent(req.TimeColumn), len(args)))
	}
	if !req.Until.IsZero() {
		args = append(args, req.Until.UTC())
		where = append(where, fmt.Sprintf("%s < $%d", quoteIdent(req.TimeColumn), len(args)))
	}

	// The rowid range of the snapshot.
	var maxRowID int64 = -1
	mr, err := ar.QueryContext(ctx, "SELECT coalesce(max(rowid), -1) FROM "+from)
	if err != nil {
		return fail(fmt.Errorf("duckdb: rowid range: %w", err))
	}
	if mr.Next() {
		if a, ok := mr.RecordBatch().Column(0).(*array.Int64); ok && a.Len() == 1 {
			maxRowID = a.Value(0)
		}
	}
	mr.Release()

	// The schema, even for an empty table.
	sr, err := ar.QueryContext(ctx, "SELECT "+cols+" FROM "+from+" LIMIT 0")
	if err != nil {
		return fail(fmt.Errorf("duckdb: read schema: %w", err))
	}
	schema := sr.Schema()
	sr.Release()

	r := &pagedReader{
		ctx: ctx, dc: dc, ar: ar, schema: schema,
		query:     "SELECT " + cols + " FROM " + from + " WHERE " + strings.Join(append(where, fmt.Sprintf("rowid >= $%d AND rowid < $%d", len(args)+1, len(args)+2)), " AND "),
		args:      args,
		next:      0,
		maxRowID:  maxRowID,
		pageRows:  c.pageRows,
		remaining: req.Limit,
		limited:   req.Limit > 0,
		batchSize: int64(req.BatchSize),
		refs:      1,
	}
	return r, nil
}

// pagedReader is an array.RecordReader over rowid pages of one table.
type pagedReader struct {
	ctx       context.Context
	dc        driver.Conn
	ar        *duckdb.Arrow
	schema    *arrow.Schema
	query     string
	args      []any // bound before the rowid bounds
	next      int64 // first rowid of the next page
	maxRowID  int64
	pageRows  int64
	remaining int64 // rows still allowed by the limit; 0 means no limit
	limited   bool
	batchSize int64

	page   array.RecordReader // current page
	cur    arrow.RecordBatch  // current batch from the page
	offset int64              // slicing offset within cur when batchSize is smaller
	out    arrow.RecordBatch  // batch handed to the caller

	refs   int64
	err    error
	closed sync.Once
}

func (r *pagedReader) Retain() { atomic.AddInt64(&r.refs, 1) }

func (r *pagedReader) Release() {
	if atomic.AddInt64(&r.refs, -1) == 0 {
		r.close()
	}
}

func (r *pagedReader) close() {
	r.closed.Do(func() {
		if r.out != nil {
			r.out.Release()
			r.out = nil
		}
		if r.cur != nil {
			r.cur.Release()
			r.cur = nil
		}
		if r.page != nil {
			r.page.Release()
			r.page = nil
		}
		// Read-only transaction: rollback and commit are the same; closing the
		// connection ends it either way.
		_, _ = exec(context.Background(), r.dc, "ROLLBACK")
		_ = r.dc.Close()
	})
}

func (r *pagedReader) Schema() *arrow.Schema { return r.schema }

func (r *pagedReader) Err() error { return r.err }

// Record is the deprecated name of RecordBatch.
func (r *pagedReader) Record() arrow.RecordBatch { return r.out }

func (r *pagedReader) RecordBatch() arrow.RecordBatch { return r.out }

func (r *pagedReader) Next() bool {
	if r.out != nil {
		r.out.Release()
		r.out = nil
	}
	if r.err != nil {
		return false
	}
	if err := r.ctx.Err(); err != nil {
		r.err = err
		return false
	}
	if r.limited && r.remaining <= 0 {
		return false
	}
	for {
		if r.cur != nil && r.offset < r.cur.NumRows() {
			n := r.cur.NumRows() - r.offset
			if r.batchSize > 0 && n > r.batchSize {
				n = r.batchSize
			}
			if r.limited && n > r.remaining {
				n = r.remaining
			}
			if r.offset == 0 && n == r.cur.NumRows() {
				r.out = r.cur
				r.out.Retain()
			} else {
				r.out = r.cur.NewSlice(r.offset, r.offset+n)
			}
			r.offset += n
			if r.limited {
				r.remaining -= n
			}
			return true
		}
		if r.cur != nil {
			r.cur.Release()
			r.cur = nil
		}
		if r.page != nil && r.page.Next() {
			r.cur = r.page.RecordBatch()
			r.cur.Retain()
			r.offset = 0
			continue
		}
		if r.page != nil {
			if err := r.page.Err(); err != nil {
				r.err = fmt.Errorf("duckdb: read page: %w", err)
				return false
			}
			r.page.Release()
			r.page = nil
		}
		if r.next > r.maxRowID {
			return false
		}
		lo, hi := r.next, r.next+r.pageRows
		r.next = hi
		page, err := r.ar.QueryContext(r.ctx, r.query, append(append([]any{}, r.args...), lo, hi)...)
		if err != nil {
			if ctxErr := r.ctx.Err(); ctxErr != nil {
				err = errors.Join(ctxErr, err)
			}
			r.err = fmt.Errorf("duckdb: read rows %d..%d: %w", lo, hi, err)
			return false
		}
		r.page = page
	}
}
