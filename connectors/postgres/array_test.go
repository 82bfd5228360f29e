package postgres_test

import (
	"context"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferry-ai/ferry/connectors"
)

// TestArrays: one-dimensional arrays made by PostgreSQL's own SQL read as
// Arrow lists with their element type; arrays of types Ferry reads as text
// stay text; a multi-dimensional value is an error naming the column.
func TestArrays(t *testing.T) {
	ctx := context.Background()
	schema := newSchema(ctx, t)
	ac := adminConn(ctx, t)
	defer ac.Close(ctx)
	for _, s := range []string{
		`CREATE TABLE ` + schema + `.arr (id int PRIMARY KEY, i int4[], s text[], n numeric(10,2)[], ts timestamptz[], u uuid[], m int8[])`,
		`INSERT INTO ` + schema + `.arr VALUES
			(1, '{1,NULL,-3}', '{"a","",NULL,"x,y"}', '{1.50,-2.25}', '{"2024-03-10 10:00:00+00"}', '{"00000000-0000-0000-0000-000000000001"}', '{7}'),
			(2, '{}', NULL, '{}', NULL, NULL, '[0:1]={8,9}'),
			(3, NULL, '{"é🚢"}', NULL, '{NULL}', '{}', NULL)`,
		`CREATE TABLE ` + schema + `.multi (id int, m int4[])`,
		`INSERT INTO ` + schema + `.multi VALUES (1, '{{1,2},{3,4}}')`,
	} {
		if _, err := ac.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	c := openSchema(ctx, t, schema, &connectors.Options{Allocator: mem})
	defer c.Close()
	tb, err := c.Table(ctx, "arr")
	if err != nil {
		t.Fatal(err)
	}
	wantTypes := map[string]string{
		"i":  "list<item: int32, nullable>",
		"s":  "list<item: utf8, nullable>",
		"n":  "list<item: decimal(10, 2), nullable>",
		"ts": "list<item: timestamp[us, tz=UTC], nullable>",
		"u":  "utf8",
		"m":  "list<item: int64, nullable>",
	}
	for _, f := range tb.Schema.Fields() {
		if w, ok := wantTypes[f.Name]; ok && f.Type.String() != w {
			t.Errorf("column %s: %s, want %s", f.Name, f.Type, w)
		}
	}
	r, err := c.Read(ctx, "arr", connectors.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for r.Next() {
		rec := r.RecordBatch()
		for i := 0; i < int(rec.NumRows()); i++ {
			var row []string
			for j := 0; j < int(rec.NumCols()); j++ {
				row = append(row, rec.Column(j).ValueStr(i))
			}
			got = append(got, strings.Join(row, " | "))
		}
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	r.Release()
	want := []string{
		`1 | [1,null,-3] | ["a","",null,"x,y"] | ["1.5","-2.25"] | ["2024-03-10T10:00:00Z"] | {00000000-0000-0000-0000-000000000001} | [7]`,
		`2 | [] | (null) | [] | (null) | (null) | [8,9]`,
		`3 | (null) | ["é🚢"] | (null) | [null] | {} | (null)`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("arrays read as\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	r, err = c.Read(ctx, "multi", connectors.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for r.Next() {
	}
	if err := r.Err(); err == nil || !strings.Contains(err.Error(), `"m"`) || !strings.Contains(err.Error(), "2-dimensional") {
		t.Errorf("multi-dimensional array: %v, want an error naming column \"m\"", err)
	}
	r.Release()
}
