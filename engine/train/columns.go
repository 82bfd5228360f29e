package train

import (
	"fmt"
	"math"
	"sort"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// column is one column of a table across its record batches.
type column struct {
	name   string
	typ    arrow.DataType
	chunks []arrow.Array
	starts []int // global row index of each chunk's first row
	n      int
}

func tableColumn(recs []arrow.RecordBatch, name string) (*column, error) {
	c := &column{name: name}
	for _, r := range recs {
		idx := r.Schema().FieldIndices(name)
		if len(idx) == 0 {
			return nil, fmt.Errorf("column %q missing from an uploaded batch", name)
		}
		a := r.Column(idx[0])
		if c.typ == nil {
			c.typ = a.DataType()
		} else if !arrow.TypeEqual(c.typ, a.DataType()) {
			return nil, fmt.Errorf("column %q changes type between batches (%s, %s)", name, c.typ, a.DataType())
		}
		c.chunks = append(c.chunks, a)
		c.starts = append(c.starts, c.n)
		c.n += a.Len()
	}
	return c, nil
}

// each calls fn for every row with the chunk and the index inside it.
func (c *column) each(fn func(row int, a arrow.Array, i int)) {
	for k, a := range c.chunks {
		base := c.starts[k]
		for i := 0; i < a.Len(); i++ {
			fn(base+i, a, i)
		}
	}
}

// at returns the chunk holding global row and the row's index in it.
func (c *column) at(row int) (arrow.Array, int) {
	k := sort.Search(len(c.starts), func(i int) bool { return c.starts[i] > row }) - 1
	return c.chunks[k], row - c.starts[k]
}

// appendKey appends row i of key array a to b, a builder of the same type.
func appendKey(b array.Builder, a arrow.Array, i int) error {
	if a.IsNull(i) {
		b.AppendNull()
		return nil
	}
	switch b := b.(type) {
	case *array.Int8Builder:
		b.Append(a.(*array.Int8).Value(i))
	case *array.Int16Builder:
		b.Append(a.(*array.Int16).Value(i))
	case *array.Int32Builder:
		b.Append(a.(*array.Int32).Value(i))
	case *array.Int64Builder:
		b.Append(a.(*array.Int64).Value(i))
	case *array.Uint8Builder:
		b.Append(a.(*array.Uint8).Value(i))
	case *array.Uint16Builder:
		b.Append(a.(*array.Uint16).Value(i))
	case *array.Uint32Builder:
		b.Append(a.(*array.Uint32).Value(i))
	case *array.Uint64Builder:
		b.Append(a.(*array.Uint64).Value(i))
	case *array.StringBuilder:
		b.Append(a.(*array.String).Value(i))
	case *array.LargeStringBuilder:
		b.Append(a.(*array.LargeString).Value(i))
	case *array.StringViewBuilder:
		b.Append(a.(*array.StringView).Value(i))
	default:
		return fmt.Errorf("key type %s is not supported", a.DataType())
	}
	return nil
}

// keyKind tells how keys compare: as integers or as strings.
type keyKind int

const (
	keyInt keyKind = iota + 1
	keyString
)

func kindOf(t arrow.DataType) (keyKind, bool) {
	switch t.ID() {
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64, arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64:
		return keyInt, true
	case arrow.STRING, arrow.LARGE_STRING, arrow.STRING_VIEW:
		return keyString, true
	}
	return 0, false
}

// intKey reads an integer key; ok is false for null.
func intKey(a arrow.Array, i int) (int64, bool) {
	if a.IsNull(i) {
		return 0, false
	}
	switch a := a.(type) {
	case *array.Int8:
		return int64(a.Value(i)), true
	case *array.Int16:
		return int64(a.Value(i)), true
	case *array.Int32:
		return int64(a.Value(i)), true
	case *array.Int64:
		return a.Value(i), true
	case *array.Uint8:
		return int64(a.Value(i)), true
	case *array.Uint16:
		return int64(a.Value(i)), true
	case *array.Uint32:
		return int64(a.Value(i)), true
	case *array.Uint64:
		v := a.Value(i)
		if v > math.MaxInt64 {
			return 0, false
		}
		return int64(v), true
	}
	return 0, false
}

func strKey(a arrow.Array, i int) (string, bool) {
	if a.IsNull(i) {
		return "", false
	}
	switch a := a.(type) {
	case *array.String:
		return a.Value(i), true
	case *array.LargeString:
		return a.Value(i), true
	case *array.StringView:
		return a.Value(i), true
	}
	return "", false
}

// isTime reports whether a type can be a time column.
func isTime(t arrow.DataType) bool {
	switch t.ID() {
	case arrow.TIMESTAMP, arrow.DATE32, arrow.DATE64:
		return true
	}
	return false
}

// micros reads a time value as microseconds since the epoch (UTC).
func micros(a arrow.Array, i int) (int64, bool) {
	if a.IsNull(i) {
		return 0, false
	}
	switch a := a.(type) {
	case *array.Timestamp:
		v := int64(a.Value(i))
		switch a.DataType().(*arrow.TimestampType).Unit {
		case arrow.Second:
			return v * 1e6, true
		case arrow.Millisecond:
			return v * 1e3, true
		case arrow.Microsecond:
			return v, true
		default:
			return v / 1e3, true
		}
	case *array.Date32:
		return int64(a.Value(i)) * 86400e6, true
	case *array.Date64:
		return int64(a.Value(i)) * 1e3, true
	}
	return 0, false
}

// isNumeric reports whether a column feeds numeric features.
func isNumeric(t arrow.DataType) bool {
	switch t.ID() {
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64, arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64,
		arrow.FLOAT16, arrow.FLOAT32, arrow.FLOAT64, arrow.BOOL, arrow.DECIMAL128, arrow.DECIMAL256:
		return true
	}
	return false
}

// numeric reads a numeric value (bool as 0/1); ok is false for null.
func numeric(a arrow.Array, i int) (float64, bool) {
	if a.IsNull(i) {
		return 0, false
	}
	switch a := a.(type) {
	case *array.Float64:
		v := a.Value(i)
		return v, !math.IsNaN(v) && !math.IsInf(v, 0)
	case *array.Float32:
		v := float64(a.Value(i))
		return v, !math.IsNaN(v) && !math.IsInf(v, 0)
	case *array.Float16:
		return float64(a.Value(i).Float32()), true
	case *array.Boolean:
		if a.Value(i) {
			return 1, true
		}
		return 0, true
	case *array.Decimal128:
		dt := a.DataType().(*arrow.Decimal128Type)
		return a.Value(i).ToFloat64(dt.Scale), true
	case *array.Decimal256:
		dt := a.DataType().(*arrow.Decimal256Type)
		return a.Value(i).ToFloat64(dt.Scale), true
	}
	if v, ok := intKey(a, i); ok {
		return float64(v), true
	}
	return 0, false
}
