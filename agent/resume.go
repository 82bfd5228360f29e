package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/ferry-ai/ferry/connectors"
	"github.com/ferry-ai/ferry/internal/graph"
)

// maxResumes bounds the resumes of one read that make no progress between
// them; the backoff between them doubles from resumeBackoff.
const (
	maxResumes    = 5
	resumeBackoff = 250 * time.Millisecond
)

// read opens a read of t. When the credentials are a per-job user from
// Vault (which Vault may replace, and whose revocation may end the
// connections made with them), the warehouse can order its reads and the
// table has a primary key, the read is in key order and resumes after a
// break — a connection ended, credentials revoked — on a new connection
// with the current credentials, from the first row not yet delivered.
// Otherwise a break fails the read, as before.
//
// A resumed read is not one snapshot: rows changed in the warehouse between
// the break and the resume are read as they are after it.
func (w *warehouse) read(ctx context.Context, t graph.Table, opts connectors.ReadOptions) (array.RecordReader, error) {
	c, err := w.Conn(ctx)
	if err != nil {
		return nil, err
	}
	if !w.dynamic || len(t.PrimaryKey) == 0 || !c.CanOrderReads() {
		return c.Read(ctx, t.Name, opts)
	}
	opts.OrderBy = t.PrimaryKey
	r, err := c.Read(ctx, t.Name, opts)
	if err != nil {
		return nil, err
	}
	return &resumingReader{ctx: ctx, w: w, table: t.Name, opts: opts, r: r, schema: r.Schema(), log: w.log, refs: 1}, nil
}

// resumingReader is an array.RecordReader that goes on from the row it
// reached when its warehouse read breaks (see warehouse.read).
type resumingReader struct {
	ctx    context.Context
	w      *warehouse
	table  string
	opts   connectors.ReadOptions
	r      array.RecordReader
	schema *arrow.Schema
	log    *slog.Logger

	rows    int64 // delivered
	resumes int   // since the last progress
	atLast  int64 // rows delivered at the last resume
	err     error
	refs    int64
}

func (r *resumingReader) Retain() { atomic.AddInt64(&r.refs, 1) }

func (r *resumingReader) Release() {
	if atomic.AddInt64(&r.refs, -1) == 0 && r.r != nil {
		r.r.Release()
		r.r = nil
	}
}

func (r *resumingReader) Schema() *arrow.Schema { return r.schema }
func (r *resumingReader) Err() error            { return r.err }

func (r *resumingReader) Record() arrow.RecordBatch { return r.RecordBatch() }

func (r *resumingReader) RecordBatch() arrow.RecordBatch {
	if r.r == nil {
		return nil
	}
	return r.r.RecordBatch()
}

func (r *resumingReader) Next() bool {
	if r.err != nil || r.r == nil {
		return false
	}
	for {
		if r.r.Next() {
			r.rows += r.r.RecordBatch().NumRows()
			return true
		}
		err := r.r.Err()
		if err == nil {
			return false
		}
		if !r.resumable(err) {
			r.err = err
			return false
		}
		if err := r.resume(err); err != nil {
			r.err = err
			return false
		}
	}
}

// resumable reports whether a read error may be a broken connection or
// revoked credentials rather than a refusal a retry would meet again.
func (r *resumingReader) resumable(err error) bool {
	if r.ctx.Err() != nil {
		return false
	}
	for _, permanent := range []error{connectors.ErrInvalidArgument, connectors.ErrNotFound, connectors.ErrNotSupported, connectors.ErrMemoryBudget, connectors.ErrInvalidName} {
		if errors.Is(err, permanent) {
			return false
		}
	}
	return true
}

// resume replaces the broken read with one from the first row not yet
// delivered, on a new connection with the current credentials.
func (r *resumingReader) resume(cause error) error {
	r.r.Release()
	r.r = nil
	if r.rows > r.atLast {
		r.resumes = 0
	}
	r.atLast = r.rows
	for {
		r.resumes++
		if r.resumes > maxResumes {
			return fmt.Errorf("read %q: gave up after %d resumes without progress at row %d: %w", r.table, maxResumes, r.rows, cause)
		}
		r.log.Warn("warehouse read broke; resuming on a new connection", "table", r.table, "rows_read", r.rows, "attempt", r.resumes, "error", cause.Error())
		select {
		case <-r.ctx.Done():
			return fmt.Errorf("read %q: %w (resuming after: %v)", r.table, r.ctx.Err(), cause)
		case <-time.After(resumeBackoff << (r.resumes - 1)):
		}
		c, err := r.w.reconnect(r.ctx)
		if err != nil {
			cause = err
			continue
		}
		opts := r.opts
		opts.Offset = r.rows
		next, err := c.Read(r.ctx, r.table, opts)
		if err != nil {
			cause = err
			continue
		}
		if !next.Schema().Equal(r.schema) {
			next.Release()
			return fmt.Errorf("read %q: the table's columns changed while resuming at row %d", r.table, r.rows)
		}
		r.r = next
		r.w.a.metrics.readResumed()
		r.log.Info("warehouse read resumed", "table", r.table, "from_row", r.rows)
		return nil
	}
}
