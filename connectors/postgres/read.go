package postgres

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"

	fdriver "github.com/ferry-ai/ferry/connectors/driver"
)

const defaultBatchRows = 65536

// Microseconds and days between the Unix epoch and PostgreSQL's (2000-01-01).
const (
	pgEpochMicros = 946684800000000
	pgEpochDays   = 10957
)

// Read implements driver.Conn: one binary COPY of the projected, filtered
// table, decoded batch by batch as the caller asks for it.
func (c *conn) Read(ctx context.Context, req fdriver.ReadRequest) (array.RecordReader, error) {
	sel, schema, q, batch, err := c.plan(ctx, req)
	if err != nil {
		return nil, err
	}
	return c.readFrom(ctx, req, sel, schema, "COPY ("+q+") TO STDOUT (FORMAT binary)", batch)
}

// plan resolves the projected columns, the reader's schema, the SELECT and
// the batch size of a read.
func (c *conn) plan(ctx context.Context, req fdriver.ReadRequest) ([]pgColumn, *arrow.Schema, string, int, error) {
	all, _, err := c.columns(ctx)
	if err != nil {
		return nil, nil, "", 0, err
	}
	tcols := all[req.Table]
	byName := map[string]pgColumn{}
	for _, pc := range tcols {
		byName[pc.name] = pc
	}
	var sel []pgColumn
	if len(req.Columns) == 0 {
		sel = tcols
	} else {
		for _, n := range req.Columns {
			sel = append(sel, byName[n])
		}
	}
	q := c.selectQuery(req, sel, byName)
	fields := make([]arrow.Field, len(sel))
	for i, pc := range sel {
		fields[i] = arrow.Field{Name: pc.name, Type: pc.arrow, Nullable: !pc.notNull}
	}
	batch := req.BatchSize
	if batch <= 0 {
		batch = defaultBatchRows
	}
	return sel, arrow.NewSchema(fields, nil), q, batch, nil
}

// readFrom is the rest of Read once the query is planned.
func (c *conn) readFrom(ctx context.Context, req fdriver.ReadRequest, sel []pgColumn, schema *arrow.Schema, q string, batch int) (array.RecordReader, error) {
	pconn, err := c.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	// One snapshot, taken after any replace in progress commits: lock the
	// table first (a REPEATABLE READ transaction's snapshot starts at its
	// first query, not at LOCK), so a reader queued behind a swap sees the
	// new table with its rows, never the new table with an older snapshot.
	for _, stmt := range []string{"BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", "LOCK TABLE " + c.qualified(req.Table) + " IN ACCESS SHARE MODE"} {
		if _, err := pconn.Exec(ctx, stmt); err != nil {
			pconn.Conn().Close(context.Background())
			pconn.Release()
			return nil, fmt.Errorf("postgres: read %q: %w", req.Table, err)
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	r := &copyReader{
		ctx: ctx, cancel: cancel, schema: schema, cols: sel, pr: pr,
		in: bufio.NewReaderSize(pr, 1<<20), batch: batch, mem: memory.DefaultAllocator, refs: 1, done: make(chan struct{}),
	}
	go func() {
		defer close(r.done)
		// PostgreSQL sends one CopyData message per row: buffer them so the
		// pipe hands over large chunks, not rows.
		bw := bufio.NewWriterSize(pw, 1<<20)
		_, err := pconn.Conn().PgConn().CopyTo(cctx, bw, q)
		if err == nil {
			err = bw.Flush()
		}
		if err != nil {
			pw.CloseWithError(err)
			// A COPY interrupted by cancel leaves the connection unusable.
			pconn.Conn().Close(context.Background())
			pconn.Release()
			return
		}
		if _, err := pconn.Exec(cctx, "COMMIT"); err != nil {
			pw.CloseWithError(err)
			pconn.Conn().Close(context.Background())
			pconn.Release()
			return
		}
		pw.Close()
		pconn.Release()
	}()
	return r, nil
}

// selectQuery renders the SELECT of a read. Names are quoted; the time
// bounds are rendered from time.Time values (never user text) as typed
// literals.
func (c *conn) selectQuery(req fdriver.ReadRequest, sel []pgColumn, byName map[string]pgColumn) string {
	exprs := make([]string, len(sel))
	for i, pc := range sel {
		exprs[i] = quoteIdent(pc.name)
		if pc.cast != "" {
			exprs[i] += "::" + pc.cast
		}
	}
	var where []string
	if req.TimeColumn != "" {
		tc := byName[req.TimeColumn]
		typ := "timestamp"
		if tc.typname == "timestamptz" {
			typ = "timestamptz"
		}
		if !req.Since.IsZero() {
			where = append(where, fmt.Sprintf("%s >= %s", quoteIdent(tc.name), timeLiteral(req.Since, typ)))
		}
		if !req.Until.IsZero() {
			where = append(where, fmt.Sprintf("%s < %s", quoteIdent(tc.name), timeLiteral(req.Until, typ)))
		}
	}
	q := "SELECT " + strings.Join(exprs, ", ") + " FROM " + c.qualified(req.Table)
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	if len(req.OrderBy) > 0 {
		keys := make([]string, len(req.OrderBy))
		for i, k := range req.OrderBy {
			keys[i] = quoteIdent(k) + " ASC NULLS LAST"
		}
		q += " ORDER BY " + strings.Join(keys, ", ")
	}
	if req.Limit > 0 {
		q += " LIMIT " + strconv.FormatInt(req.Limit, 10)
	}
	if req.Offset > 0 {
		q += " OFFSET " + strconv.FormatInt(req.Offset, 10)
	}
	return q
}

// OrderedReads implements driver.OrderedReader: reads render OrderBy and
// Offset as ORDER BY … OFFSET.
func (c *conn) OrderedReads() bool { return true }

// copyReader decodes a binary COPY stream into record batches.
type copyReader struct {
	ctx     context.Context
	cancel  context.CancelFunc
	schema  *arrow.Schema
	cols    []pgColumn
	pr      *io.PipeReader
	in      *bufio.Reader
	batch   int
	mem     memory.Allocator
	started bool
	eof     bool
	cur     arrow.RecordBatch
	err     error
	refs    int64
	once    sync.Once
	done    chan struct{}
	scratch []byte
}

func (r *copyReader) Retain() { atomic.AddInt64(&r.refs, 1) }

func (r *copyReader) Release() {
	if atomic.AddInt64(&r.refs, -1) != 0 {
		return
	}
	r.once.Do(func() {
		if r.cur != nil {
			r.cur.Release()
			r.cur = nil
		}
		r.cancel()
		r.pr.CloseWithError(errors.New("reader released"))
		<-r.done
	})
}

func (r *copyReader) Schema() *arrow.Schema          { return r.schema }
func (r *copyReader) Err() error                     { return r.err }
func (r *copyReader) Record() arrow.RecordBatch      { return r.cur }
func (r *copyReader) RecordBatch() arrow.RecordBatch { return r.cur }

var copySignature = []byte("PGCOPY\n\xff\r\n\x00")

func (r *copyReader) fail(err error) bool {
	if ctxErr := r.ctx.Err(); ctxErr != nil {
		err = fmt.Errorf("%w (%v)", ctxErr, err)
	}
	r.err = fmt.Errorf("postgres: read: %w", err)
	return false
}

func (r *copyReader) Next() bool {
	if r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
	if r.err != nil || r.eof {
		return false
	}
	if err := r.ctx.Err(); err != nil {
		return r.fail(err)
	}
	if !r.started {
		r.started = true
		hdr := make([]byte, 19)
		if _, err := io.ReadFull(r.in, hdr); err != nil {
			return r.fail(unexpected(err))
		}
		if !bytes.Equal(hdr[:11], copySignature) {
			return r.fail(errors.New("not a binary COPY stream"))
		}
		if ext := binary.BigEndian.Uint32(hdr[15:19]); ext > 0 {
			if _, err := r.in.Discard(int(ext)); err != nil {
				return r.fail(unexpected(err))
			}
		}
	}
	b := array.NewRecordBuilder(r.mem, r.schema)
	defer b.Release()
	rows := 0
	var two [2]byte
	for rows < r.batch {
		if _, err := io.ReadFull(r.in, two[:]); err != nil {
			return r.fail(unexpected(err))
		}
		n := int16(binary.BigEndian.Uint16(two[:]))
		if n == -1 {
			r.eof = true
			break
		}
		if int(n) != len(r.cols) {
			return r.fail(fmt.Errorf("row has %d fields, want %d", n, len(r.cols)))
		}
		for i := range r.cols {
			var four [4]byte
			if _, err := io.ReadFull(r.in, four[:]); err != nil {
				return r.fail(unexpected(err))
			}
			l := int32(binary.BigEndian.Uint32(four[:]))
			fb := b.Field(i)
			if l == -1 {
				fb.AppendNull()
				continue
			}
			if cap(r.scratch) < int(l) {
				r.scratch = make([]byte, l)
			}
			v := r.scratch[:l]
			if _, err := io.ReadFull(r.in, v); err != nil {
				return r.fail(unexpected(err))
			}
			if err := decode(fb, r.cols[i], v); err != nil {
				return r.fail(fmt.Errorf("column %q: %w", r.cols[i].name, err))
			}
		}
		rows++
	}
	if rows == 0 {
		return false
	}
	r.cur = b.NewRecordBatch()
	return true
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF // the stream ended without its trailer
	}
	return err
}

// decode appends one binary COPY value.
func decode(b array.Builder, pc pgColumn, v []byte) error {
	need := func(n int) error {
		if len(v) != n {
			return fmt.Errorf("%s value of %d bytes, want %d", pc.typname, len(v), n)
		}
		return nil
	}
	if pc.cast != "" { // read as text
		b.(*array.StringBuilder).BinaryBuilder.Append(v)
		return nil
	}
	if elem, ok := strings.CutPrefix(pc.typname, "_"); ok {
		return decodeArray(b.(*array.ListBuilder), pgColumn{name: pc.name, typname: elem, typmod: pc.typmod, arrow: pc.arrow.(*arrow.ListType).Elem()}, v)
	}
	switch pc.typname {
	case "int2":
		if err := need(2); err != nil {
			return err
		}
		b.(*array.Int16Builder).Append(int16(binary.BigEndian.Uint16(v)))
	case "int4":
		if err := need(4); err != nil {
			return err
		}
		b.(*array.Int32Builder).Append(int32(binary.BigEndian.Uint32(v)))
	case "int8":
		if err := need(8); err != nil {
			return err
		}
		b.(*array.Int64Builder).Append(int64(binary.BigEndian.Uint64(v)))
	case "float4":
		if err := need(4); err != nil {
			return err
		}
		b.(*array.Float32Builder).Append(math.Float32frombits(binary.BigEndian.Uint32(v)))
	case "float8":
		if err := need(8); err != nil {
			return err
		}
		b.(*array.Float64Builder).Append(math.Float64frombits(binary.BigEndian.Uint64(v)))
	case "bool":
		if err := need(1); err != nil {
			return err
		}
		b.(*array.BooleanBuilder).Append(v[0] != 0)
	case "text", "varchar", "bpchar", "name", "char":
		b.(*array.StringBuilder).BinaryBuilder.Append(v)
	case "bytea":
		b.(*array.BinaryBuilder).Append(v)
	case "date":
		if err := need(4); err != nil {
			return err
		}
		b.(*array.Date32Builder).Append(arrow.Date32(int32(binary.BigEndian.Uint32(v)) + pgEpochDays))
	case "timestamp", "timestamptz":
		if err := need(8); err != nil {
			return err
		}
		b.(*array.TimestampBuilder).Append(arrow.Timestamp(int64(binary.BigEndian.Uint64(v)) + pgEpochMicros))
	case "time":
		if err := need(8); err != nil {
			return err
		}
		b.(*array.Time64Builder).Append(arrow.Time64(int64(binary.BigEndian.Uint64(v))))
	case "interval":
		if err := need(16); err != nil {
			return err
		}
		b.(*array.MonthDayNanoIntervalBuilder).Append(arrow.MonthDayNanoInterval{
			Nanoseconds: int64(binary.BigEndian.Uint64(v)) * 1000,
			Days:        int32(binary.BigEndian.Uint32(v[8:])),
			Months:      int32(binary.BigEndian.Uint32(v[12:])),
		})
	case "numeric":
		n, err := decodeNumeric(v, pc.arrow.(*arrow.Decimal128Type).Scale)
		if err != nil {
			return err
		}
		b.(*array.Decimal128Builder).Append(n)
	default:
		return fmt.Errorf("no binary decoder for type %s", pc.typname)
	}
	return nil
}

// decodeArray appends one binary array value as a list: header (dimensions,
// has-nulls flag, element type), then length and lower bound per dimension,
// then each element as length (-1 for NULL) and bytes. Only one-dimensional
// arrays (and empty ones) map to a list.
func decodeArray(b *array.ListBuilder, elem pgColumn, v []byte) error {
	if len(v) < 12 {
		return fmt.Errorf("%s[] value of %d bytes is shorter than an array header", elem.typname, len(v))
	}
	ndim := int32(binary.BigEndian.Uint32(v))
	v = v[12:]
	b.Append(true)
	switch {
	case ndim == 0:
		return nil
	case ndim != 1:
		return fmt.Errorf("column %q holds a %d-dimensional array; only one-dimensional arrays map to an Arrow list", elem.name, ndim)
	case len(v) < 8:
		return fmt.Errorf("%s[] value: truncated dimension header", elem.typname)
	}
	n := int(int32(binary.BigEndian.Uint32(v)))
	v = v[8:]
	vb := b.ValueBuilder()
	for i := 0; i < n; i++ {
		if len(v) < 4 {
			return fmt.Errorf("%s[] value: truncated at element %d of %d", elem.typname, i, n)
		}
		size := int(int32(binary.BigEndian.Uint32(v)))
		v = v[4:]
		if size < 0 {
			vb.AppendNull()
			continue
		}
		if size > len(v) {
			return fmt.Errorf("%s[] value: element %d of %d bytes overruns the value", elem.typname, i, size)
		}
		if err := decode(vb, elem, v[:size]); err != nil {
			return err
		}
		v = v[size:]
	}
	return nil
}

// decodeNumeric converts PostgreSQL's binary numeric (base-10000 digits) to a
// decimal128 at the given scale, exactly.
func decodeNumeric(v []byte, scale int32) (decimal128.Num, error) {
	if len(v) < 8 {
		return decimal128.Num{}, fmt.Errorf("numeric value of %d bytes", len(v))
	}
	ndigits := int(binary.BigEndian.Uint16(v[0:]))
	weight := int(int16(binary.BigEndian.Uint16(v[2:])))
	sign := binary.BigEndian.Uint16(v[4:])
	if len(v) != 8+2*ndigits {
		return decimal128.Num{}, fmt.Errorf("numeric value of %d bytes for %d digits", len(v), ndigits)
	}
	if sign == 0xC000 {
		return decimal128.Num{}, errors.New("numeric NaN has no decimal form")
	}
	// The digits, read as one integer, count units of 10000^(weight-ndigits+1).
	exp := 4*(weight-ndigits+1) + int(scale)
	if ndigits <= 9 && exp >= -4 && exp <= 2 {
		// Fits decimal128 at every step (at most 36 digits, then a small shift).
		acc := decimal128.Num{}
		ten4 := decimal128.FromU64(10000)
		for i := 0; i < ndigits; i++ {
			acc = acc.Mul(ten4).Add(decimal128.FromU64(uint64(binary.BigEndian.Uint16(v[8+2*i:]))))
		}
		switch {
		case exp > 0:
			acc = acc.IncreaseScaleBy(int32(exp))
		case exp < 0:
			acc = acc.ReduceScaleBy(int32(-exp), false)
		}
		if sign == 0x4000 {
			acc = acc.Negate()
		}
		return acc, nil
	}
	acc := new(big.Int)
	ten4 := big.NewInt(10000)
	for i := 0; i < ndigits; i++ {
		acc.Mul(acc, ten4).Add(acc, big.NewInt(int64(binary.BigEndian.Uint16(v[8+2*i:]))))
	}
	p := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(abs(exp))), nil)
	if exp >= 0 {
		acc.Mul(acc, p)
	} else {
		acc.Quo(acc, p) // the dropped digits are zeros: dscale <= scale
	}
	if sign == 0x4000 {
		acc.Neg(acc)
	}
	if acc.BitLen() > 127 {
		return decimal128.Num{}, errors.New("numeric value does not fit 38 digits")
	}
	return decimal128.FromBigInt(acc), nil
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
