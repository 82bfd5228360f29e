//go:build duckdb_arrow

package writeback_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferry-ai/ferry/connectors"
	"github.com/ferry-ai/ferry/connectors/duckdb"
	"github.com/ferry-ai/ferry/internal/link"
	"github.com/ferry-ai/ferry/writeback"
)

func open(t testing.TB, mem memory.Allocator) *connectors.Conn {
	t.Helper()
	mux := connectors.NewMux()
	mux.Register(duckdb.Scheme, duckdb.Opener{})
	c, err := mux.Open(context.Background(), "duckdb://"+filepath.Join(t.TempDir(), "wb.db"), &connectors.Options{Allocator: mem})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// predictions makes n rows shaped like the engine's output.
func predictions(mem memory.Allocator, n int, scoreShift float64) array.RecordReader {
	s := arrow.NewSchema([]arrow.Field{
		{Name: "customer_id", Type: arrow.PrimitiveTypes.Int64},
		{Name: link.ColAnchorTime, Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}},
		{Name: link.ColScore, Type: arrow.PrimitiveTypes.Float64},
		{Name: link.ColPredictedClass, Type: arrow.FixedWidthTypes.Boolean},
	}, nil)
	b := array.NewRecordBuilder(mem, s)
	defer b.Release()
	anchor := arrow.Timestamp(time.Date(2025, 12, 1, 0, 0, 0, 0, time.UTC).UnixMicro())
	for i := 0; i < n; i++ {
		b.Field(0).(*array.Int64Builder).Append(int64(i))
		b.Field(1).(*array.TimestampBuilder).Append(anchor)
		b.Field(2).(*array.Float64Builder).Append(float64(i%100)/100 + scoreShift)
		b.Field(3).(*array.BooleanBuilder).Append(i%3 == 0)
	}
	rec := b.NewRecordBatch()
	r, _ := array.NewRecordReader(s, []arrow.RecordBatch{rec})
	rec.Release()
	return r
}

func dump(t *testing.T, c *connectors.Conn, table string) (rows int, text string) {
	t.Helper()
	r, err := c.Read(context.Background(), table, connectors.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	var b strings.Builder
	for r.Next() {
		rec := r.RecordBatch()
		rows += int(rec.NumRows())
		for i := 0; i < int(rec.NumRows()); i++ {
			for j := 0; j < int(rec.NumCols()); j++ {
				b.WriteString(rec.Column(j).ValueStr(i))
				b.WriteByte('|')
			}
			b.WriteByte('\n')
		}
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	return rows, b.String()
}

func TestWriteIsIdempotentAndCarriesIDs(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	c := open(t, mem)
	meta := writeback.Meta{JobID: "j-1", ModelID: "m-abc", CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)}
	for i := 0; i < 2; i++ {
		r := predictions(mem, 1000, 0)
		n, err := writeback.Write(context.Background(), c, "preds", r, meta, mem)
		r.Release()
		if err != nil || n != 1000 {
			t.Fatalf("write %d: n=%d err=%v", i, n, err)
		}
	}
	rows, text := dump(t, c, "preds")
	if rows != 1000 {
		t.Fatalf("after two runs of one job: %d rows, want 1000", rows)
	}
	r := predictions(mem, 1000, 0)
	_, _ = writeback.Write(context.Background(), c, "preds", r, meta, mem)
	r.Release()
	if _, again := dump(t, c, "preds"); again != text {
		t.Fatal("re-running the same job changed the rows")
	}
	first := strings.SplitN(text, "\n", 2)[0]
	if !strings.Contains(first, "|m-abc|j-1|2026-01-02") {
		t.Fatalf("row %q lacks model id, job id, created_at", first)
	}
	tbl, err := c.Table(context.Background(), "preds")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range tbl.Schema.Fields() {
		names = append(names, f.Name)
	}
	if got, want := strings.Join(names, ","), "customer_id,anchor_time,score,predicted_class,model_id,job_id,created_at"; got != want {
		t.Fatalf("columns %s, want %s", got, want)
	}
}

// TestReaderNeverSeesPartialTable polls the prediction table while jobs of
// different sizes rewrite it.
func TestReaderNeverSeesPartialTable(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	c := open(t, mem)
	sizes := map[string]int{"j-small": 3000, "j-large": 50000}
	write := func(job string) {
		r := predictions(mem, sizes[job], 0)
		defer r.Release()
		if _, err := writeback.Write(context.Background(), c, "preds", r, writeback.Meta{JobID: job, ModelID: "m", CreatedAt: time.Unix(1, 0)}, mem); err != nil {
			t.Error(err)
		}
	}
	write("j-small")
	var stop atomic.Bool
	var bad []string
	var reads int
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			r, err := c.Read(context.Background(), "preds", connectors.ReadOptions{Columns: []string{writeback.ColJobID}})
			if err != nil {
				bad = append(bad, err.Error())
				return
			}
			n := 0
			jobs := map[string]bool{}
			for r.Next() {
				col := r.RecordBatch().Column(0).(*array.String)
				n += col.Len()
				for i := 0; i < col.Len(); i += 1000 {
					jobs[strings.Clone(col.Value(i))] = true
				}
			}
			r.Release()
			ok := len(jobs) == 1
			for j := range jobs {
				ok = ok && sizes[j] == n
			}
			if !ok {
				bad = append(bad, fmt.Sprintf("%d rows of jobs %v", n, jobs))
			}
			reads++
		}
	}()
	for i := 0; i < 10; i++ {
		write([]string{"j-large", "j-small"}[i%2])
	}
	stop.Store(true)
	wg.Wait()
	if len(bad) > 0 {
		t.Fatalf("reader saw %d partial tables, first: %s", len(bad), bad[0])
	}
	if reads < 3 {
		t.Fatalf("only %d reads overlapped the writes", reads)
	}
}

func TestRefusesBadInput(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	c := open(t, mem)
	r := predictions(mem, 10, 0)
	defer r.Release()
	if _, err := writeback.Write(context.Background(), c, "p", r, writeback.Meta{}, mem); err == nil {
		t.Error("missing job metadata accepted")
	}
	if _, err := writeback.Write(context.Background(), c, `p"; DROP TABLE x; --`, r, writeback.Meta{JobID: "j", ModelID: "m", CreatedAt: time.Unix(1, 0)}, mem); err == nil {
		t.Error("hostile table name accepted")
	}
}
