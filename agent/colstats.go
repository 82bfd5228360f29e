package agent

import (
	"encoding/binary"
	"math"
	"math/big"
	"math/bits"
	"math/rand/v2"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal"

	"github.com/ferry-ai/ferry/controlplane/agentapi"
	"github.com/ferry-ai/ferry/internal/graph"
)

// Column statistics are computed on the stream path, one batch at a time,
// as the agent sends a table to the engine: the null count of every column,
// the smallest and largest value of each numeric column that is not a key,
// and an estimate of the distinct non-null values of every column. They
// reach the control plane as aggregates in TableStats; no batch is kept.
//
// Min and max are kept only for numeric columns (integers, floats,
// decimals) that are not part of the table's primary key or a foreign key:
// the extremes of a text, binary, time or key column would be one row's
// value (a name, an e-mail, an identifier), which the control plane must
// never see. NaN and ±Inf are left out of a float column's range.
//
// The distinct estimate is a HyperLogLog sketch of 2^hllPrecision one-byte
// registers per column (16 KiB, whatever the rows), with the small-range
// (linear counting) correction; its relative standard error is
// 1.04/sqrt(2^14) ≈ 0.8%. Values are hashed as 64-bit words (a number,
// or the bytes of a text or binary value) through MurmurHash3's finaliser
// with a random key per table read, so a sketch says nothing about a value
// that a later job could check. The estimate is capped at the column's
// non-null count.
//
// Cost: about 35 ns a row for six columns, 1.3 GB/s of Arrow data on one
// core (BenchmarkColumnStats, whose comment compares the stream with and
// without them).

// hllPrecision is the number of hash bits that pick a register.
const hllPrecision = 14

// hllRegisters is the number of registers of a sketch.
const hllRegisters = 1 << hllPrecision

// hll is a HyperLogLog sketch.
type hll [hllRegisters]uint8

// add records one 64-bit hash.
func (h *hll) add(x uint64) {
	i := x >> (64 - hllPrecision)
	// The rank of the remaining bits: the position of their first 1. The
	// guard bit bounds it at 64-hllPrecision+1.
	r := uint8(bits.LeadingZeros64(x<<hllPrecision|1<<(hllPrecision-1))) + 1
	if r > h[i] {
		h[i] = r
	}
}

// estimate returns the estimated number of distinct hashes added: the raw
// HyperLogLog estimate, or linear counting while it is at most 2.5 times
// the registers and a register is still empty. With 64-bit hashes no
// large-range correction is needed.
func (h *hll) estimate() float64 {
	const m = float64(hllRegisters)
	sum, zeros := 0.0, 0
	for _, r := range h {
		sum += math.Ldexp(1, -int(r))
		if r == 0 {
			zeros++
		}
	}
	e := 0.7213 / (1 + 1.079/m) * m * m / sum
	if e <= 2.5*m && zeros > 0 {
		e = m * math.Log(m/float64(zeros))
	}
	return e
}

// mix is MurmurHash3's 64-bit finaliser: a bijection whose output bits
// each depend on every input bit.
func mix(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// columnAcc accumulates the statistics of one column.
type columnAcc struct {
	name     string
	ranged   bool // a numeric non-key column: min and max are kept
	nulls    int64
	hasRange bool
	min, max float64
	sketch   hll
}

// extend widens the range to [lo, hi].
func (c *columnAcc) extend(lo, hi float64) {
	if !c.hasRange {
		c.min, c.max, c.hasRange = lo, hi, true
		return
	}
	c.min, c.max = min(c.min, lo), max(c.max, hi)
}

// hashBytes is a keyed 64-bit hash of b: each 8-byte word (the last one
// zero-padded) is folded in with a multiply and a rotation, a bijection of
// the word for a given state, and the length and state go through mix at
// the end.
func hashBytes(key uint64, b []byte) uint64 {
	const p1, p2 = 0x9e3779b97f4a7c15, 0xc2b2ae3d27d4eb4f
	h := key ^ uint64(len(b))*p1
	for len(b) >= 8 {
		h = bits.RotateLeft64((h^binary.LittleEndian.Uint64(b))*p2, 31)
		b = b[8:]
	}
	if len(b) > 0 {
		var w [8]byte
		copy(w[:], b)
		h = bits.RotateLeft64((h^binary.LittleEndian.Uint64(w[:]))*p2, 31)
	}
	return mix(h)
}

// hashString is hashBytes of the bytes of v, without a copy.
func hashString(key uint64, v string) uint64 {
	return hashBytes(key, unsafe.Slice(unsafe.StringData(v), len(v)))
}

// colStats accumulates the column statistics of one table read.
type colStats struct {
	key   uint64
	rows  int64
	cols  []*columnAcc // by field of the reader's schema
	order []int        // indices of cols in the order of the table's columns
}

// newColStats prepares the statistics of a read of t with the given
// schema. Key columns are those of t's primary key and foreign keys.
func newColStats(schema *arrow.Schema, t graph.Table) *colStats {
	keys := map[string]bool{}
	for _, k := range t.PrimaryKey {
		keys[k] = true
	}
	for _, fk := range t.ForeignKeys {
		for _, k := range fk.Columns {
			keys[k] = true
		}
	}
	s := &colStats{key: rand.Uint64()}
	byName := map[string]int{}
	for i, f := range schema.Fields() {
		s.cols = append(s.cols, &columnAcc{name: f.Name, ranged: numeric(f.Type) && !keys[f.Name]})
		byName[f.Name] = i
	}
	// The order of t's columns, then any the reader has that t does not.
	used := make([]bool, len(s.cols))
	for _, c := range t.Columns {
		if i, ok := byName[c.Name]; ok && !used[i] {
			s.order, used[i] = append(s.order, i), true
		}
	}
	for i := range s.cols {
		if !used[i] {
			s.order = append(s.order, i)
		}
	}
	return s
}

// numeric reports whether min and max are kept for a column of type t.
func numeric(t arrow.DataType) bool {
	switch t.ID() {
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64,
		arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64,
		arrow.FLOAT16, arrow.FLOAT32, arrow.FLOAT64,
		arrow.DECIMAL32, arrow.DECIMAL64, arrow.DECIMAL128, arrow.DECIMAL256:
		return true
	}
	return false
}

// observe adds one batch. It keeps nothing of the batch.
func (s *colStats) observe(rec arrow.RecordBatch) {
	s.rows += rec.NumRows()
	for i, c := range s.cols {
		if i < int(rec.NumCols()) {
			s.observeColumn(c, rec.Column(i))
		}
	}
}

// result returns the statistics so far, in the order of the table's
// columns.
func (s *colStats) result() []*agentapi.ColumnStats {
	out := make([]*agentapi.ColumnStats, 0, len(s.order))
	for _, i := range s.order {
		c := s.cols[i]
		cs := &agentapi.ColumnStats{Name: c.name, Nulls: c.nulls}
		if s.rows > 0 {
			cs.NullFraction = float64(c.nulls) / float64(s.rows)
		}
		if c.ranged && c.hasRange {
			cs.HasRange, cs.Min, cs.Max = true, c.min, c.max
		}
		if nonNull := s.rows - c.nulls; nonNull > 0 {
			cs.DistinctEstimate = min(int64(math.Round(c.sketch.estimate())), nonNull)
		}
		out = append(out, cs)
	}
	return out
}

type integer interface {
	~int8 | ~int16 | ~int32 | ~int64 | ~uint8 | ~uint16 | ~uint32 | ~uint64
}

type float interface{ ~float32 | ~float64 }

type stringValues interface {
	arrow.Array
	Value(int) string
}

type bytesValues interface {
	arrow.Array
	Value(int) []byte
}

func (s *colStats) observeColumn(c *columnAcc, a arrow.Array) {
	c.nulls += int64(a.NullN())
	if a.NullN() == a.Len() {
		return
	}
	switch a := a.(type) {
	case *array.Int8:
		observeInts(s, c, a, a.Int8Values())
	case *array.Int16:
		observeInts(s, c, a, a.Int16Values())
	case *array.Int32:
		observeInts(s, c, a, a.Int32Values())
	case *array.Int64:
		observeInts(s, c, a, a.Int64Values())
	case *array.Uint8:
		observeInts(s, c, a, a.Uint8Values())
	case *array.Uint16:
		observeInts(s, c, a, a.Uint16Values())
	case *array.Uint32:
		observeInts(s, c, a, a.Uint32Values())
	case *array.Uint64:
		observeInts(s, c, a, a.Uint64Values())
	case *array.Float32:
		observeFloats(s, c, a, a.Float32Values())
	case *array.Float64:
		observeFloats(s, c, a, a.Float64Values())
	case *array.Timestamp:
		observeInts(s, c, a, a.TimestampValues())
	case *array.Date32:
		observeInts(s, c, a, a.Date32Values())
	case *array.Date64:
		observeInts(s, c, a, a.Date64Values())
	case *array.Time32:
		observeInts(s, c, a, a.Time32Values())
	case *array.Time64:
		observeInts(s, c, a, a.Time64Values())
	case *array.Duration:
		observeInts(s, c, a, a.DurationValues())
	case *array.Decimal32:
		observeDecimals(s, c, a, a.Values(), a.DataType().(arrow.DecimalType).GetScale())
	case *array.Decimal64:
		observeDecimals(s, c, a, a.Values(), a.DataType().(arrow.DecimalType).GetScale())
	case *array.Decimal128:
		observeDecimals(s, c, a, a.Values(), a.DataType().(arrow.DecimalType).GetScale())
	case *array.Decimal256:
		observeDecimals(s, c, a, a.Values(), a.DataType().(arrow.DecimalType).GetScale())
	case *array.Float16:
		r := floatRange{lo: math.Inf(1), hi: math.Inf(-1)}
		for i, v := range a.Values() {
			if a.IsValid(i) {
				r.add(s, c, float64(v.Float32()))
			}
		}
		r.done(c)
	case *array.Boolean:
		// Two values at most: add each once per batch.
		trues := 0
		for i := range a.Len() {
			if a.IsValid(i) && a.Value(i) {
				trues++
			}
		}
		if trues > 0 {
			c.sketch.add(mix(1 ^ s.key))
		}
		if trues < a.Len()-a.NullN() {
			c.sketch.add(mix(0 ^ s.key))
		}
	case stringValues: // String, LargeString, StringView
		for i := range a.Len() {
			if a.IsValid(i) {
				c.sketch.add(hashString(s.key, a.Value(i)))
			}
		}
	case bytesValues: // Binary, LargeBinary, BinaryView, FixedSizeBinary
		for i := range a.Len() {
			if a.IsValid(i) {
				c.sketch.add(hashBytes(s.key, a.Value(i)))
			}
		}
	default: // nested, dictionary, interval, extension types: their text
		for i := range a.Len() {
			if a.IsValid(i) {
				c.sketch.add(hashString(s.key, a.ValueStr(i)))
			}
		}
	}
}

// observeInts adds the values of an integer, time or date array.
func observeInts[T integer](s *colStats, c *columnAcc, a arrow.Array, vals []T) {
	nulls := a.NullN() > 0
	var lo, hi T
	seen := false
	for i, v := range vals {
		if nulls && a.IsNull(i) {
			continue
		}
		c.sketch.add(mix(uint64(v) ^ s.key))
		switch {
		case !seen:
			lo, hi, seen = v, v, true
		case v < lo:
			lo = v
		case v > hi:
			hi = v
		}
	}
	if seen && c.ranged {
		c.extend(float64(lo), float64(hi))
	}
}

// observeFloats adds the values of a float array.
func observeFloats[T float](s *colStats, c *columnAcc, a arrow.Array, vals []T) {
	nulls := a.NullN() > 0
	r := floatRange{lo: math.Inf(1), hi: math.Inf(-1)}
	for i, v := range vals {
		if nulls && a.IsNull(i) {
			continue
		}
		r.add(s, c, float64(v))
	}
	r.done(c)
}

// floatRange is the range of the finite values of one batch of a float
// column.
type floatRange struct{ lo, hi float64 }

// add adds one non-null value to the sketch and the range: -0 counts as 0
// and every NaN as one value; NaN and ±Inf are not in the range.
func (r *floatRange) add(s *colStats, c *columnAcc, f float64) {
	switch {
	case f == 0:
		f = 0
	case math.IsNaN(f):
		f = math.NaN()
	}
	c.sketch.add(mix(math.Float64bits(f) ^ s.key))
	if f < r.lo && !math.IsInf(f, -1) {
		r.lo = f
	}
	if f > r.hi && !math.IsInf(f, 1) {
		r.hi = f
	}
}

// done widens the column's range by the batch's, if it has one.
func (r *floatRange) done(c *columnAcc) {
	if c.ranged && r.lo <= r.hi {
		c.extend(r.lo, r.hi)
	}
}

// observeDecimals adds the values of a decimal array; the range is kept
// as the float64 nearest to the smallest and largest value.
func observeDecimals[T interface {
	decimal.DecimalTypes
	Cmp(T) int
	ToBigFloat(int32) *big.Float
}](s *colStats, c *columnAcc, a arrow.Array, vals []T, scale int32) {
	nulls := a.NullN() > 0
	var lo, hi T
	seen := false
	for i, v := range vals {
		if nulls && a.IsNull(i) {
			continue
		}
		c.sketch.add(hashBytes(s.key, unsafe.Slice((*byte)(unsafe.Pointer(&v)), unsafe.Sizeof(v))))
		switch {
		case !seen:
			lo, hi, seen = v, v, true
		case v.Cmp(lo) < 0:
			lo = v
		case v.Cmp(hi) > 0:
			hi = v
		}
	}
	if seen && c.ranged {
		flo, _ := lo.ToBigFloat(scale).Float64()
		fhi, _ := hi.ToBigFloat(scale).Float64()
		c.extend(flo, fhi)
	}
}

// statsReader passes the batches of a reader through, adding each to the
// statistics of its columns.
type statsReader struct {
	array.RecordReader
	stats *colStats
}

// withColumnStats wraps r so that the batches it yields are added to the
// column statistics of t, returned by the second result once r is read.
func withColumnStats(r array.RecordReader, t graph.Table) (array.RecordReader, *colStats) {
	s := newColStats(r.Schema(), t)
	return &statsReader{RecordReader: r, stats: s}, s
}

func (r *statsReader) Next() bool {
	if !r.RecordReader.Next() {
		return false
	}
	r.stats.observe(r.RecordReader.RecordBatch())
	return true
}
