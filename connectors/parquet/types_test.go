package parquet_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferry-ai/ferry/connectors"
)

// TestRefusedTypes: types Parquet cannot hold are refused, naming the column.
func TestRefusedTypes(t *testing.T) {
	for _, dt := range []arrow.DataType{arrow.FixedWidthTypes.Duration_us, arrow.FixedWidthTypes.MonthDayNanoInterval,
		&arrow.Decimal128Type{Precision: 10, Scale: -2}} {
		t.Run(dt.String(), func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			c, err := newMux().Open(context.Background(), "file://"+t.TempDir(), &connectors.Options{Allocator: mem})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			s := arrow.NewSchema([]arrow.Field{{Name: "odd_col", Type: dt, Nullable: true}}, nil)
			r, _ := array.NewRecordReader(s, nil)
			defer r.Release()
			_, err = c.Write(context.Background(), "t", r, connectors.WriteOptions{})
			if err == nil || !strings.Contains(err.Error(), `"odd_col"`) {
				t.Fatalf("write of %s: %v, want an error naming the column", dt, err)
			}
		})
	}
}

// TestTypesRoundTrip writes one column per type (with a null) and checks
// the type and values read back, as documented in README.md.
func TestTypesRoundTrip(t *testing.T) {
	la := &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "America/Los_Angeles"}
	for _, tc := range []struct {
		name string
		typ  arrow.DataType
		want arrow.DataType // nil: same type
		fill func(b array.Builder)
		vals string // "": the values written
	}{
		{"u8", arrow.PrimitiveTypes.Uint8, nil, func(b array.Builder) { b.(*array.Uint8Builder).Append(255) }, ""},
		{"u16", arrow.PrimitiveTypes.Uint16, nil, func(b array.Builder) { b.(*array.Uint16Builder).Append(65535) }, ""},
		{"u32", arrow.PrimitiveTypes.Uint32, nil, func(b array.Builder) { b.(*array.Uint32Builder).Append(4294967295) }, ""},
		{"time64us", arrow.FixedWidthTypes.Time64us, nil, func(b array.Builder) { b.(*array.Time64Builder).Append(86399999999) }, ""},
		{"time32ms", arrow.FixedWidthTypes.Time32ms, nil, func(b array.Builder) { b.(*array.Time32Builder).Append(86399999) }, ""},
		{"ts_ns", arrow.FixedWidthTypes.Timestamp_ns, nil, func(b array.Builder) { b.(*array.TimestampBuilder).Append(-9223372036854775807) }, ""},
		{"ts_s", arrow.FixedWidthTypes.Timestamp_s, &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"},
			func(b array.Builder) { b.(*array.TimestampBuilder).Append(253402300799) }, "[253402300799000 (null)]"},
		{"ts_la", la, nil, func(b array.Builder) { b.(*array.TimestampBuilder).Append(1710066600000000) }, ""},
		{"date64", arrow.FixedWidthTypes.Date64, arrow.FixedWidthTypes.Date32, func(b array.Builder) { b.(*array.Date64Builder).Append(86400000) }, "[1970-01-02 (null)]"},
		{"large_string", arrow.BinaryTypes.LargeString, nil, func(b array.Builder) { b.(*array.LargeStringBuilder).Append("x\x00y") }, ""},
		{"list", arrow.ListOf(arrow.PrimitiveTypes.Int32), nil, func(b array.Builder) {
			lb := b.(*array.ListBuilder)
			lb.Append(true)
			lb.ValueBuilder().(*array.Int32Builder).AppendValues([]int32{1, 2}, nil)
		}, ""},
		{"struct", arrow.StructOf(arrow.Field{Name: "a", Type: arrow.PrimitiveTypes.Int64, Nullable: true}), nil, func(b array.Builder) {
			sb := b.(*array.StructBuilder)
			sb.Append(true)
			sb.FieldBuilder(0).(*array.Int64Builder).Append(7)
		}, ""},
		{"fixed", &arrow.FixedSizeBinaryType{ByteWidth: 3}, nil, func(b array.Builder) { b.(*array.FixedSizeBinaryBuilder).Append([]byte("abc")) }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			c, err := newMux().Open(context.Background(), "file://"+t.TempDir(), &connectors.Options{Allocator: mem})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			s := arrow.NewSchema([]arrow.Field{{Name: "v", Type: tc.typ, Nullable: true}}, nil)
			b := array.NewRecordBuilder(mem, s)
			tc.fill(b.Field(0))
			b.Field(0).AppendNull()
			rec := b.NewRecordBatch()
			b.Release()
			want := fmt.Sprint(rec.Column(0))
			if tc.vals != "" {
				want = tc.vals
			}
			r, _ := array.NewRecordReader(s, []arrow.RecordBatch{rec})
			rec.Release()
			_, err = c.Write(context.Background(), "t", r, connectors.WriteOptions{})
			r.Release()
			if err != nil {
				t.Fatal(err)
			}
			rr, err := c.Read(context.Background(), "t", connectors.ReadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer rr.Release()
			if !rr.Next() {
				t.Fatalf("no batch: %v", rr.Err())
			}
			col := rr.RecordBatch().Column(0)
			wantType := tc.want
			if wantType == nil {
				wantType = tc.typ
			}
			if !arrow.TypeEqual(col.DataType(), wantType) {
				t.Errorf("type %s read back as %s", tc.typ, col.DataType())
			}
			if got := fmt.Sprint(col); got != want {
				t.Errorf("values %s, want %s", got, want)
			}
		})
	}
}
