package parquet

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/metadata"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/apache/arrow-go/v18/parquet/schema"

	"github.com/ferry-ai/ferry/connectors/driver"
)

// openedPart is one Parquet file opened for reading.
type openedPart struct {
	key    string
	pr     *file.Reader
	fr     *pqarrow.FileReader
	schema *arrow.Schema
}

// Close closes the file (file.Reader closes the underlying reader).
func (p *openedPart) Close() error { return p.pr.Close() }

// readBufferSize is the size of each buffered read (and each ranged GET on
// S3) of a column chunk: reads never hold a whole column chunk.
const readBufferSize = 4 << 20

// openPart opens one part and reads its footer. Internal decompression
// buffers use Go's allocator (they are pooled by the Parquet reader and
// released by finalizers); Arrow output uses the connection's allocator.
func (c *conn) openPart(ctx context.Context, p Part, batchSize int) (*openedPart, error) {
	f, err := c.st.Open(ctx, p.Path, p.Size)
	if err != nil {
		return nil, fmt.Errorf("open part %s: %w", p.Path, err)
	}
	props := parquet.NewReaderProperties(memory.DefaultAllocator)
	props.BufferedStreamEnabled = true
	props.BufferSize = readBufferSize
	pr, err := file.NewParquetReader(f, file.WithReadProps(props))
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("part %s: %w", p.Path, err)
	}
	fr, err := pqarrow.NewFileReader(pr, pqarrow.ArrowReadProperties{BatchSize: int64(batchSize)}, c.mem)
	if err != nil {
		pr.Close()
		return nil, fmt.Errorf("part %s: %w", p.Path, err)
	}
	s, err := fr.Schema()
	if err != nil {
		pr.Close()
		return nil, fmt.Errorf("part %s: schema: %w", p.Path, err)
	}
	return &openedPart{key: p.Path, pr: pr, fr: fr, schema: s}, nil
}

// Read implements driver.Conn. It streams part by part and row group by row
// group; with a time range it skips row groups by their min/max statistics
// on the time column and then filters rows exactly.
func (c *conn) Read(ctx context.Context, req driver.ReadRequest) (array.RecordReader, error) {
	batch := req.BatchSize
	if batch <= 0 {
		batch = defaultBatchSize
	}
	src, first, err := c.snapshot(ctx, req.Table, batch)
	if err != nil {
		return nil, err
	}
	r := &reader{ctx: ctx, c: c, table: req.Table, parts: src.parts, batch: batch, remaining: -1, timeCol: req.TimeColumn,
		since: req.Since, until: req.Until}
	if req.Limit > 0 {
		r.remaining = req.Limit
	}
	r.refs.Store(1)
	names := req.Columns
	if names == nil {
		for _, f := range first.schema.Fields() {
			r.outCols = append(r.outCols, f.Name)
		}
	} else {
		r.outCols = append(r.outCols, names...)
	}
	fields := make([]arrow.Field, len(r.outCols))
	for i, n := range r.outCols {
		idx := first.schema.FieldIndices(n)
		if len(idx) == 0 {
			first.Close()
			return nil, fmt.Errorf("parquet: part %s has no column %q", first.key, n)
		}
		fields[i] = first.schema.Field(idx[0])
	}
	r.schema = arrow.NewSchema(fields, nil)
	r.readCols = append([]string(nil), r.outCols...)
	if r.timeCol != "" && (!req.Since.IsZero() || !req.Until.IsZero()) {
		r.filter = true
		found := false
		for _, n := range r.readCols {
			found = found || n == r.timeCol
		}
		if !found {
			r.readCols = append(r.readCols, r.timeCol)
		}
	}
	r.pending = first
	r.managed = src.manifest != nil
	return r, nil
}

// maxRestarts bounds how often a read restarts from a fresh manifest when a
// concurrent replace deleted the parts of the version it started on.
const maxRestarts = 5

// snapshot resolves a table and opens its first part. A concurrent replace
// may delete the parts of the version just resolved; the manifest is then
// read again (a few times) before giving up.
func (c *conn) snapshot(ctx context.Context, table string, batch int) (*tableSource, *openedPart, error) {
	for attempt := 0; ; attempt++ {
		src, err := resolve(ctx, c.st, table)
		if err != nil {
			return nil, nil, fmt.Errorf("parquet: %w", err)
		}
		if len(src.parts) == 0 {
			return nil, nil, fmt.Errorf("parquet: table %q has no parts", table)
		}
		first, err := c.openPart(ctx, src.parts[0], batch)
		if err == nil {
			return src, first, nil
		}
		if !errors.Is(err, fs.ErrNotExist) || src.manifest == nil || attempt >= maxRestarts {
			return nil, nil, fmt.Errorf("parquet: %w", err)
		}
	}
}

// restart begins the read again on the current manifest; only allowed
// before any batch was returned, so the caller never sees two versions.
func (r *reader) restart() error {
	r.closePart()
	if r.pending != nil {
		r.pending.Close()
		r.pending = nil
	}
	src, first, err := r.c.snapshot(r.ctx, r.table, r.batch)
	if err != nil {
		return err
	}
	r.parts, r.pending, r.nextPart = src.parts, first, 0
	return nil
}

// reader streams a table's parts as one RecordReader.
type reader struct {
	ctx       context.Context
	c         *conn
	table     string
	managed   bool // the table has a manifest
	emitted   bool // a batch was returned
	restarts  int
	parts     []Part
	nextPart  int
	batch     int
	remaining int64 // -1: no limit
	schema    *arrow.Schema
	outCols   []string
	readCols  []string
	filter    bool
	timeCol   string
	since     time.Time
	until     time.Time

	pending *openedPart // opened by Read, not yet started
	cur     *openedPart
	rr      pqarrow.RecordReader
	rec     arrow.RecordBatch
	err     error
	refs    atomic.Int64
}

func (r *reader) Schema() *arrow.Schema          { return r.schema }
func (r *reader) Err() error                     { return r.err }
func (r *reader) RecordBatch() arrow.RecordBatch { return r.rec }

// Record returns the current batch.
//
// Deprecated: use RecordBatch.
func (r *reader) Record() arrow.RecordBatch { return r.rec }

func (r *reader) Retain() { r.refs.Add(1) }

func (r *reader) Release() {
	if r.refs.Add(-1) == 0 {
		r.releaseRec()
		r.closePart()
		if r.pending != nil {
			r.pending.Close()
			r.pending = nil
		}
	}
}

func (r *reader) releaseRec() {
	if r.rec != nil {
		r.rec.Release()
		r.rec = nil
	}
}

func (r *reader) closePart() {
	if r.rr != nil {
		r.rr.Release()
		r.rr = nil
	}
	if r.cur != nil {
		r.cur.Close()
		r.cur = nil
	}
}

func (r *reader) fail(err error) bool {
	r.err = err
	r.closePart()
	return false
}

// retryable reports whether err means a concurrent replace removed the
// parts under the read and the read can still start over.
func (r *reader) retryable(err error) bool {
	return r.managed && !r.emitted && r.restarts < maxRestarts && errors.Is(err, fs.ErrNotExist)
}

func (r *reader) Next() bool {
	r.releaseRec()
	if r.err != nil || r.remaining == 0 {
		r.closePart()
		return false
	}
	for {
		if err := r.ctx.Err(); err != nil {
			return r.fail(err)
		}
		if r.rr == nil {
			ok, err := r.startPart()
			if err != nil && r.retryable(err) {
				r.restarts++
				if err = r.restart(); err == nil {
					continue
				}
			}
			if err != nil {
				return r.fail(err)
			}
			if !ok {
				return false
			}
			continue
		}
		if !r.rr.Next() {
			if err := r.rr.Err(); err != nil {
				if cerr := r.ctx.Err(); cerr != nil {
					err = fmt.Errorf("%w (%v)", cerr, err)
				} else if r.retryable(err) {
					r.restarts++
					if err = r.restart(); err == nil {
						continue
					}
				}
				if errors.Is(err, fs.ErrNotExist) && r.managed {
					err = fmt.Errorf("table %q was replaced more than once during the read and its old parts are gone: %w", r.table, err)
				}
				return r.fail(fmt.Errorf("parquet: read %s: %w", r.cur.key, err))
			}
			r.closePart()
			continue
		}
		out, err := r.shape(r.rr.RecordBatch())
		if err != nil {
			return r.fail(err)
		}
		if out == nil {
			continue
		}
		if r.remaining >= 0 {
			if out.NumRows() > r.remaining {
				s := out.NewSlice(0, r.remaining)
				out.Release()
				out = s
			}
			r.remaining -= out.NumRows()
		}
		r.rec = out
		r.emitted = true
		return true
	}
}

// startPart opens the next part and its record reader over the row groups
// that may hold rows of the time range. It returns false at the end.
func (r *reader) startPart() (bool, error) {
	for {
		if r.pending != nil {
			r.cur, r.pending = r.pending, nil
			r.nextPart = 1
		} else {
			if r.nextPart >= len(r.parts) {
				return false, nil
			}
			p, err := r.c.openPart(r.ctx, r.parts[r.nextPart], r.batch)
			if err != nil {
				return false, fmt.Errorf("parquet: %w", err)
			}
			r.cur = p
			r.nextPart++
		}
		var leaves []int
		for _, n := range r.readCols {
			idx := r.cur.schema.FieldIndices(n)
			if len(idx) == 0 {
				return false, fmt.Errorf("parquet: part %s has no column %q", r.cur.key, n)
			}
			leaves = appendLeaves(leaves, &r.cur.fr.Manifest.Fields[idx[0]])
		}
		rowGroups, err := r.rowGroups()
		if err != nil {
			return false, err
		}
		if len(rowGroups) == 0 {
			r.closePart()
			continue
		}
		rr, err := r.cur.fr.GetRecordReader(r.ctx, leaves, rowGroups)
		if err != nil {
			return false, fmt.Errorf("parquet: read %s: %w", r.cur.key, err)
		}
		r.rr = rr
		return true, nil
	}
}

func appendLeaves(out []int, f *pqarrow.SchemaField) []int {
	if f.IsLeaf() {
		return append(out, f.ColIndex)
	}
	for i := range f.Children {
		out = appendLeaves(out, &f.Children[i])
	}
	return out
}

// rowGroups lists the current part's row groups, skipping those whose time
// column statistics lie wholly outside the range.
func (r *reader) rowGroups() ([]int, error) {
	md := r.cur.pr.MetaData()
	all := make([]int, md.NumRowGroups())
	for i := range all {
		all[i] = i
	}
	if !r.filter {
		return all, nil
	}
	idx := r.cur.schema.FieldIndices(r.timeCol)
	f := &r.cur.fr.Manifest.Fields[idx[0]]
	if !f.IsLeaf() {
		return all, nil
	}
	col := md.Schema.Column(f.ColIndex)
	var perSec int64
	days := false
	switch lt := col.LogicalType().(type) {
	case *schema.TimestampLogicalType:
		switch lt.TimeUnit() {
		case schema.TimeUnitMillis:
			perSec = 1e3
		case schema.TimeUnitMicros:
			perSec = 1e6
		case schema.TimeUnitNanos:
			perSec = 1e9
		default:
			return all, nil
		}
	case schema.DateLogicalType:
		days = true
	default:
		return all, nil
	}
	lo, hi := bounds(r.since, r.until, perSec, days)
	var out []int
	for _, rg := range all {
		cc, err := md.RowGroup(rg).ColumnChunk(f.ColIndex)
		if err != nil {
			return nil, fmt.Errorf("parquet: %s row group %d: %w", r.cur.key, rg, err)
		}
		keep := true
		if set, _ := cc.StatsSet(); set {
			st, err := cc.Statistics()
			if err == nil && st != nil && st.HasMinMax() {
				var mn, mx int64
				switch s := st.(type) {
				case *metadata.Int64Statistics:
					mn, mx = s.Min(), s.Max()
				case *metadata.Int32Statistics:
					mn, mx = int64(s.Min()), int64(s.Max())
				default:
					mn, mx = math.MinInt64, math.MaxInt64
				}
				keep = mx >= lo && mn < hi
			} else if err == nil && st != nil && st.NullCount() == md.RowGroup(rg).NumRows() {
				keep = false // all null: no row is in any range
			}
		}
		if keep {
			out = append(out, rg)
		}
	}
	return out, nil
}

// bounds converts [since, until) to integer bounds [lo, hi) in units of
// perSec per second (or days): v >= since ⇔ v >= ceil(since), and
// v < until ⇔ v < ceil(until). Open bounds become the int64 extremes.
func bounds(since, until time.Time, perSec int64, days bool) (lo, hi int64) {
	lo, hi = math.MinInt64, math.MaxInt64
	if !since.IsZero() {
		lo = ceilUnits(since, perSec, days)
	}
	if !until.IsZero() {
		hi = ceilUnits(until, perSec, days)
	}
	return lo, hi
}

func ceilUnits(t time.Time, perSec int64, days bool) int64 {
	secs, ns := t.Unix(), int64(t.Nanosecond())
	if days {
		d := secs / 86400
		if secs%86400 < 0 {
			d--
		}
		if secs-d*86400 != 0 || ns != 0 {
			d++
		}
		return d
	}
	if secs > math.MaxInt64/perSec-1 {
		return math.MaxInt64
	}
	if secs < math.MinInt64/perSec+1 {
		return math.MinInt64
	}
	unitNs := 1e9 / perSec
	sub := ns / unitNs
	if ns%unitNs != 0 {
		sub++
	}
	return secs*perSec + sub
}

// shape filters a batch by the time range, projects it to the output
// columns, and returns nil when no row is left.
func (r *reader) shape(rec arrow.RecordBatch) (arrow.RecordBatch, error) {
	rs := rec.Schema()
	if r.filter {
		tcol := rec.Column(rs.FieldIndices(r.timeCol)[0])
		mask, kept, err := r.mask(tcol)
		if err != nil {
			return nil, err
		}
		switch {
		case kept == 0:
			if mask != nil {
				mask.Release()
			}
			return nil, nil
		case mask != nil:
			filtered, err := compute.FilterRecordBatch(compute.WithAllocator(r.ctx, r.c.mem), rec, mask, compute.DefaultFilterOptions())
			mask.Release()
			if err != nil {
				return nil, fmt.Errorf("parquet: filter by %q: %w", r.timeCol, err)
			}
			defer filtered.Release()
			rec = filtered
			rs = rec.Schema()
		}
	}
	if rec.NumRows() == 0 && r.filter {
		return nil, nil
	}
	cols := make([]arrow.Array, len(r.outCols))
	for i, n := range r.outCols {
		idx := rs.FieldIndices(n)
		if len(idx) == 0 {
			return nil, fmt.Errorf("parquet: batch lacks column %q", n)
		}
		cols[i] = rec.Column(idx[0])
		if !arrow.TypeEqual(cols[i].DataType(), r.schema.Field(i).Type) {
			return nil, fmt.Errorf("parquet: column %q is %s in one part and %s in another", n, r.schema.Field(i).Type, cols[i].DataType())
		}
	}
	return array.NewRecordBatch(r.schema, cols, rec.NumRows()), nil
}

// mask marks the rows whose time lies in the range; a nil mask with kept ==
// len means every row.
func (r *reader) mask(a arrow.Array) (arrow.Array, int, error) {
	var (
		vals   func(i int) int64
		perSec int64
		days   bool
	)
	switch t := a.(type) {
	case *array.Timestamp:
		unit := t.DataType().(*arrow.TimestampType).Unit
		perSec = int64(time.Second / unit.Multiplier())
		raw := t.TimestampValues()
		vals = func(i int) int64 { return int64(raw[i]) }
	case *array.Date32:
		days = true
		raw := t.Date32Values()
		vals = func(i int) int64 { return int64(raw[i]) }
	case *array.Date64:
		perSec = 1e3
		raw := t.Date64Values()
		vals = func(i int) int64 { return int64(raw[i]) }
	default:
		return nil, 0, fmt.Errorf("parquet: time column %q has type %s", r.timeCol, a.DataType())
	}
	lo, hi := bounds(r.since, r.until, perSec, days)
	n := a.Len()
	keep := make([]bool, n)
	kept := 0
	for i := 0; i < n; i++ {
		if a.IsValid(i) {
			if v := vals(i); v >= lo && v < hi {
				keep[i] = true
				kept++
			}
		}
	}
	if kept == n || kept == 0 {
		return nil, kept, nil
	}
	b := array.NewBooleanBuilder(r.c.mem)
	defer b.Release()
	b.AppendValues(keep, nil)
	return b.NewArray(), kept, nil
}
