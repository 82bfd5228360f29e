//go:build duckdb_arrow

package demodata_test

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferry-ai/ferry/connectors"
	"github.com/ferry-ai/ferry/connectors/duckdb"
	"github.com/ferry-ai/ferry/internal/demodata"
	"github.com/ferry-ai/ferry/internal/graph"
)

func TestDuckDB(t *testing.T) {
	ctx := context.Background()
	mux := connectors.NewMux()
	mux.Register(duckdb.Scheme, duckdb.Opener{})
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	conn, err := mux.Open(ctx, "duckdb://"+filepath.Join(t.TempDir(), "demo.db"), &connectors.Options{Allocator: mem})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sum, err := demodata.Generate(ctx, conn, demodata.Config{Scale: 0.05, Allocator: mem})
	if err != nil {
		t.Fatal(err)
	}
	tables, err := conn.Tables(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fk := func(col, ref string) graph.ForeignKey {
		return graph.ForeignKey{Columns: []string{col}, RefTable: ref, RefColumns: []string{col}}
	}
	for _, tc := range []struct {
		table string
		pk    string
		fks   []graph.ForeignKey
		time  string
	}{
		{"customers", "customer_id", nil, "signup_at"},
		{"products", "product_id", nil, ""},
		{"orders", "order_id", []graph.ForeignKey{fk("customer_id", "customers")}, "ordered_at"},
		{"order_items", "order_item_id", []graph.ForeignKey{fk("order_id", "orders"), fk("product_id", "products")}, ""},
		{"returns", "return_id", []graph.ForeignKey{fk("order_id", "orders"), fk("customer_id", "customers")}, "returned_at"},
	} {
		t.Run(tc.table, func(t *testing.T) {
			tab, err := connectors.FindTable(tables, tc.table)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(tab.PrimaryKey, []string{tc.pk}) {
				t.Errorf("primary key %v, want [%s]", tab.PrimaryKey, tc.pk)
			}
			got := slices.Clone(tab.ForeignKeys)
			key := func(f graph.ForeignKey) string { return f.Columns[0] + ">" + f.RefTable }
			slices.SortFunc(got, func(a, b graph.ForeignKey) int { return strings.Compare(key(a), key(b)) })
			want := slices.Clone(tc.fks)
			slices.SortFunc(want, func(a, b graph.ForeignKey) int { return strings.Compare(key(a), key(b)) })
			if len(got) != len(want) {
				t.Fatalf("foreign keys %v, want %v", got, want)
			}
			for i := range got {
				if key(got[i]) != key(want[i]) || !slices.Equal(got[i].RefColumns, want[i].RefColumns) {
					t.Errorf("foreign key %v, want %v", got[i], want[i])
				}
			}
			if tab.TimeColumn != tc.time {
				t.Errorf("time column %q, want %q", tab.TimeColumn, tc.time)
			}
			var rows int64 = -1
			for _, ts := range sum.Tables {
				if ts.Name == tc.table {
					rows = ts.Rows
				}
			}
			if rows <= 0 {
				t.Errorf("summary reports %d rows", rows)
			}
			r, err := conn.Read(ctx, tc.table, connectors.ReadOptions{Columns: []string{tc.pk}})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Release()
			var n int64
			for r.Next() {
				n += r.RecordBatch().NumRows()
			}
			if err := r.Err(); err != nil {
				t.Fatal(err)
			}
			if n != rows {
				t.Errorf("read %d rows, summary says %d", n, rows)
			}
		})
	}
}
