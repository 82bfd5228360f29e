package parquet_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferry-ai/ferry/connectors"
	"github.com/ferry-ai/ferry/connectors/parquet"
)

var seqSchema = arrow.NewSchema([]arrow.Field{
	{Name: "id", Type: arrow.PrimitiveTypes.Int64},
	{Name: "marker", Type: arrow.BinaryTypes.String},
}, nil)

// seqReader yields n rows (id, marker) in batches, then fails with failErr
// when it is set.
type seqReader struct {
	mem       memory.Allocator
	n, done   int64
	batch     int64
	marker    string
	failAfter int64 // fail once this many rows were produced (0: never)
	cur       arrow.RecordBatch
	err       error
	refs      atomic.Int64
}

func newSeq(mem memory.Allocator, n int64, marker string, failAfter int64) *seqReader {
	r := &seqReader{mem: mem, n: n, batch: 10_000, marker: marker, failAfter: failAfter}
	r.refs.Store(1)
	return r
}

func (r *seqReader) Schema() *arrow.Schema          { return seqSchema }
func (r *seqReader) Err() error                     { return r.err }
func (r *seqReader) RecordBatch() arrow.RecordBatch { return r.cur }
func (r *seqReader) Record() arrow.RecordBatch      { return r.cur }
func (r *seqReader) Retain()                        { r.refs.Add(1) }
func (r *seqReader) Release() {
	if r.refs.Add(-1) == 0 && r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
}

func (r *seqReader) Next() bool {
	if r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
	if r.failAfter > 0 && r.done >= r.failAfter {
		r.err = errors.New("source died mid-stream")
		return false
	}
	if r.done >= r.n {
		return false
	}
	k := min(r.batch, r.n-r.done)
	b := array.NewRecordBuilder(r.mem, seqSchema)
	defer b.Release()
	for i := int64(0); i < k; i++ {
		b.Field(0).(*array.Int64Builder).Append(r.done + i)
		b.Field(1).(*array.StringBuilder).Append(r.marker)
	}
	r.done += k
	r.cur = b.NewRecordBatch()
	return true
}

// markers reads table t and counts rows per marker.
func markers(t *testing.T, c *connectors.Conn, table string) (map[string]int, error) {
	t.Helper()
	r, err := c.Read(context.Background(), table, connectors.ReadOptions{Columns: []string{"marker"}})
	if err != nil {
		return nil, err
	}
	defer r.Release()
	out := map[string]int{}
	for r.Next() {
		col := r.RecordBatch().Column(0).(*array.String)
		for i := 0; i < col.Len(); i++ {
			out[col.Value(i)]++
		}
	}
	return out, r.Err()
}

func files(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

// openFile opens a file:// dataset with a tiny part size so writes roll
// over several parts.
func openFile(t *testing.T, root string, mem memory.Allocator) *connectors.Conn {
	t.Helper()
	c, err := newMux().Open(context.Background(), "file://"+root+"?stale_write_after=1h", &connectors.Options{Allocator: mem})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestFailedWriteLeavesOldTableAndNoDebris(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	root := t.TempDir()
	c := openFile(t, root, mem)
	defer c.Close()
	for _, tc := range []struct {
		name      string
		failAfter int64
	}{
		{"fails after first batch", 10_000},
		{"fails after many batches", 150_000},
		{"fails before any row", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok := newSeq(mem, 30_000, "old", 0)
			if _, err := c.Write(context.Background(), "t", ok, connectors.WriteOptions{}); err != nil {
				t.Fatal(err)
			}
			ok.Release()
			before := files(t, filepath.Join(root, "t"))
			bad := newSeq(mem, 500_000, "new", tc.failAfter)
			if tc.failAfter == 0 {
				bad.failAfter, bad.n = 1, 0 // Next fails at once
				bad.done = 1
			}
			_, err := c.Write(context.Background(), "t", bad, connectors.WriteOptions{})
			bad.Release()
			if err == nil {
				t.Fatal("failed input stream gave no error")
			}
			got, err := markers(t, c, "t")
			if err != nil || fmt.Sprint(got) != "map[old:30000]" {
				t.Fatalf("after failed write: %v, %v; want the old 30000 rows", got, err)
			}
			if after := files(t, filepath.Join(root, "t")); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Errorf("failed write left debris: before %v, after %v", before, after)
			}
		})
	}
}

func TestNextWriteCleansOrphans(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	root := t.TempDir()
	c := openFile(t, root, mem)
	defer c.Close()
	write := func(marker string) {
		r := newSeq(mem, 1000, marker, 0)
		defer r.Release()
		if _, err := c.Write(context.Background(), "t", r, connectors.WriteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	write("a")
	dir := filepath.Join(root, "t")
	// A killed write: parts and a marker two hours old; a killed write with no
	// marker at all; a live write (fresh marker) whose parts must survive.
	old := time.Now().Add(-2 * time.Hour)
	for _, f := range []string{"part-00000-000000000001-aaaaaaaa.parquet", "part-00001-000000000001-aaaaaaaa.parquet", "_ferry_writing_000000000001-aaaaaaaa",
		"part-00000-000000000002-bbbbbbbb.parquet", "part-00000-000000000003-cccccccc.parquet", "_ferry_writing_000000000003-cccccccc"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("junk"), 0o644); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(f, "aaaa") {
			os.Chtimes(filepath.Join(dir, f), old, old)
		}
	}
	write("b")
	write("c")
	got := files(t, dir)
	var parts []string
	for _, f := range got {
		if strings.Contains(f, "aaaa") || strings.Contains(f, "bbbb") {
			t.Errorf("orphan %s survived the next writes", f)
		}
		if strings.HasPrefix(f, "part-") && !strings.Contains(f, "cccc") {
			parts = append(parts, f)
		}
	}
	if !strings.Contains(fmt.Sprint(got), "cccc") {
		t.Errorf("a live write's parts were deleted: %v", got)
	}
	// The current and the previous version are kept; "a" is gone.
	if len(parts) != 2 {
		t.Errorf("parts left %v, want the current and the previous write's", parts)
	}
	if m, err := markers(t, c, "t"); err != nil || fmt.Sprint(m) != "map[c:1000]" {
		t.Fatalf("table = %v, %v", m, err)
	}
}

func TestConcurrentWritersReaderSeesOneWhole(t *testing.T) {
	for _, backend := range []string{"file", "s3"} {
		t.Run(backend, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			var c *connectors.Conn
			if backend == "file" {
				c = openFile(t, t.TempDir(), mem)
			} else {
				c = startS3(t).Open(context.Background(), t, &connectors.Options{Allocator: mem})
			}
			defer c.Close()
			sizes := map[string]int{"X": 40_000, "Y": 70_000}
			first := newSeq(mem, 40_000, "X", 0)
			if _, err := c.Write(context.Background(), "t", first, connectors.WriteOptions{}); err != nil {
				t.Fatal(err)
			}
			first.Release()
			var stop atomic.Bool
			var wg sync.WaitGroup
			var bad []string
			var reads int
			wg.Add(1)
			go func() {
				defer wg.Done()
				for !stop.Load() {
					m, err := markers(t, c, "t")
					reads++
					ok := err == nil && len(m) == 1
					for k, v := range m {
						ok = ok && sizes[k] == v
					}
					if !ok {
						bad = append(bad, fmt.Sprintf("%v %v", m, err))
					}
				}
			}()
			var werr []error
			var mu sync.Mutex
			var ww sync.WaitGroup
			for i := 0; i < 6; i++ {
				for _, mk := range []string{"X", "Y"} {
					ww.Add(1)
					go func() {
						defer ww.Done()
						r := newSeq(mem, int64(sizes[mk]), mk, 0)
						defer r.Release()
						_, err := c.Write(context.Background(), "t", r, connectors.WriteOptions{})
						mu.Lock()
						werr = append(werr, err)
						mu.Unlock()
					}()
				}
				ww.Wait()
			}
			stop.Store(true)
			wg.Wait()
			if len(bad) > 0 {
				t.Fatalf("%d of %d reads saw a mix or failed, e.g. %s", len(bad), reads, bad[0])
			}
			if err := errors.Join(werr...); err != nil {
				t.Errorf("concurrent writes failed: %v", err)
			}
			if m, err := markers(t, c, "t"); err != nil || len(m) != 1 {
				t.Fatalf("final table %v, %v", m, err)
			}
			t.Logf("%d consistent reads", reads)
		})
	}
}

// Example opens a dataset root, writes a table and lists it.
func Example() {
	mux := connectors.NewMux()
	mux.Register(parquet.FileScheme, parquet.FileOpener{})
	root, _ := os.MkdirTemp("", "ferry-example")
	defer os.RemoveAll(root)
	c, err := mux.Open(context.Background(), "file://"+root, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	r := newSeq(memory.DefaultAllocator, 3, "m", 0)
	defer r.Release()
	n, err := c.Write(context.Background(), "events", r, connectors.WriteOptions{PrimaryKey: []string{"id"}})
	fmt.Println(n, err)
	tables, _ := c.Tables(context.Background())
	fmt.Println(tables[0].Name, tables[0].PrimaryKey, tables[0].ColumnNames())
	// Output:
	// 3 <nil>
	// events [id] [id marker]
}
