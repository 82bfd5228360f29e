package engine

import (
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferry-ai/ferry/internal/syntable"
)

// TestValidateBatch: a well-formed batch passes; a validity bitmap shorter
// than its values and string offsets going backwards are refused with the
// column's name.
func TestValidateBatch(t *testing.T) {
	good := syntable.Batch(memory.DefaultAllocator, 0, 1000)
	defer good.Release()
	if err := validateBatch(good); err != nil {
		t.Fatalf("well-formed batch refused: %v", err)
	}
	schema := arrow.NewSchema([]arrow.Field{{Name: "amount", Type: arrow.PrimitiveTypes.Int64}}, nil)
	short := array.NewData(arrow.PrimitiveTypes.Int64, 100, []*memory.Buffer{memory.NewBufferBytes([]byte{0xff}), memory.NewBufferBytes(make([]byte, 800))}, nil, 3, 0)
	defer short.Release()
	offsets := []int32{0, 8, 3, 10} // within the data, but the second string would end before it starts
	offBytes := arrow.Int32Traits.CastToBytes(offsets)
	badStr := array.NewData(arrow.BinaryTypes.String, 3, []*memory.Buffer{nil, memory.NewBufferBytes(offBytes), memory.NewBufferBytes(make([]byte, 10))}, nil, 0, 0)
	defer badStr.Release()
	for _, tc := range []struct {
		name   string
		schema *arrow.Schema
		data   arrow.ArrayData
		rows   int64
		want   string
	}{
		{"short validity bitmap", schema, short, 100, `column "amount": validity bitmap of 1 bytes for 100 values`},
		{"string offsets going backwards", arrow.NewSchema([]arrow.Field{{Name: "status", Type: arrow.BinaryTypes.String}}, nil), badStr, 3, `column "status"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			col := array.MakeFromData(tc.data)
			defer col.Release()
			rec := array.NewRecordBatch(tc.schema, []arrow.Array{col}, tc.rows)
			defer rec.Release()
			err := validateBatch(rec)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
