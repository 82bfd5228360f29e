package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferry-ai/ferry/connectors"
	"github.com/ferry-ai/ferry/connectors/postgres"
)

func dump(t *testing.T, c *connectors.Conn, table string) []string {
	t.Helper()
	r, err := c.Read(context.Background(), table, connectors.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	var out []string
	for r.Next() {
		rec := r.RecordBatch()
		for i := 0; i < int(rec.NumRows()); i++ {
			var row []string
			for j := 0; j < int(rec.NumCols()); j++ {
				col := rec.Column(j)
				switch {
				case col.IsNull(i):
					row = append(row, "NULL")
				case col.DataType().ID() == arrow.TIMESTAMP:
					ts := col.(*array.Timestamp)
					row = append(row, ts.Value(i).ToTime(arrow.Microsecond).UTC().Format(time.RFC3339Nano))
				default:
					row = append(row, strings.Clone(col.ValueStr(i)))
				}
			}
			out = append(out, strings.Join(row, "|"))
		}
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestNativeTypes reads a table made with PostgreSQL's own types through
// the binary COPY path and through Redshift's query path: both give the
// documented Arrow values, and a timestamptz written under two session time
// zones is the same instant.
func TestNativeTypes(t *testing.T) {
	ctx := context.Background()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	stmts := []string{
		`CREATE TABLE ty (id int8 PRIMARY KEY, i2 int2, i4 int4, f4 float4, f8 float8, b bool, n numeric(38,10), nu numeric,
			s varchar(20), by bytea, d date, ts timestamp, tz timestamptz, tm time, iv interval, j jsonb, u uuid, arr int4[])`,
		`SET TIME ZONE 'America/Los_Angeles'`,
		`INSERT INTO ty VALUES (1, -32768, 2147483647, 1.5, -2.25e300, true, -1234567890123456789012345678.0123456789, 3.14159265358979323846264338327950288419716939937510,
			'héllo 🚢', '\x00ff', '0001-01-01', '2262-04-11 23:47:16.854775', '2024-03-10 02:30:00-08', '23:59:59.999999', '1 year 2 mons 3 days 04:05:06.000007', '{"a": [1, 2]}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{1,2,NULL}')`,
		`SET TIME ZONE 'UTC'`,
		`INSERT INTO ty (id, tz) VALUES (2, '2024-03-10 10:30:00+00')`,
	}
	h := harness{}
	c := h.OpenWithSQL(ctx, t, &connectors.Options{Allocator: mem}, stmts...)
	defer c.Close()
	got := dump(t, c, "ty")
	want := []string{
		`1|-32768|2147483647|1.5|-2.25e+300|true|-1234567890123456789012345678.0123456789|3.14159265358979323846264338327950288419716939937510|héllo 🚢|AP8=|0001-01-01|2262-04-11T23:47:16.854775Z|2024-03-10T10:30:00Z|23:59:59.999999|{"months":14,"days":3,"nanoseconds":14706000007000}|{"a": [1, 2]}|a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11|[1,2,null]`,
		`2|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|2024-03-10T10:30:00Z|NULL|NULL|NULL|NULL|NULL`,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("binary COPY path:\n got %q\nwant %q", got, want)
	}

	// The Redshift read path on the same table.
	mux := connectors.NewMux()
	mux.Register(postgres.RedshiftScheme, postgres.RedshiftOpener{})
	tbl, err := c.Table(ctx, "ty")
	if err != nil {
		t.Fatal(err)
	}
	if tbl.TimeColumn != "d" {
		t.Errorf("time column %q, want the first date/timestamp column d", tbl.TimeColumn)
	}
	rs, err := mux.Open(ctx, strings.Replace(lastURL, "postgres://", "redshift://", 1), &connectors.Options{Credentials: testCreds, Allocator: mem})
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	if got2 := dump(t, rs, "ty"); fmt.Sprint(got2) != fmt.Sprint(got) {
		t.Errorf("redshift query path differs from binary COPY:\n got %q\nwant %q", got2, got)
	}
	r, _ := array.NewRecordReader(arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Int64}}, nil), nil)
	defer r.Release()
	if _, err := rs.Write(ctx, "out", r, connectors.WriteOptions{}); !errors.Is(err, connectors.ErrNotSupported) {
		t.Errorf("redshift write: %v, want ErrNotSupported", err)
	}
}
