// Command bench prints Ferry's data-path throughput beside the limit of each
// path (run by `make bench`):
//
//   - DuckDB → Arrow through the connector, beside DuckDB's own Arrow export
//     of the same table (the limit);
//   - agent → engine over Arrow Flight with mutual TLS 1.3 (DoPut of a
//     10M-row mixed-type table, with each compression), beside a raw TLS
//     1.3 copy of the same number of bytes on loopback (the limit), each
//     side in its own process, with the agent's peak RSS;
//   - the engine's time split into feature engineering, training and scoring
//     on the demo warehouse.
//
// Each row has rows/s, MB/s, the peak Go heap and the peak RSS of the phase.
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/arrow/util"
	duckdbdrv "github.com/duckdb/duckdb-go/v2"

	"github.com/ferry-ai/ferry/agent"
	"github.com/ferry-ai/ferry/connectors"
	"github.com/ferry-ai/ferry/connectors/all"
	"github.com/ferry-ai/ferry/internal/link"
	"github.com/ferry-ai/ferry/writeback"
)

func main() {
	if ok, err := runChild(os.Args[1:]); ok {
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench child:", err)
			os.Exit(1)
		}
		return
	}
	rows := flag.Int64("rows", 5_000_000, "rows of the throughput table")
	linkRows := flag.Int64("link-rows", 10_000_000, "rows of the mixed-type table sent agent -> engine")
	only := flag.String("only", "", `run one part only: "link" (agent -> engine) or "engine" (features, training, a job)`)
	linkComps := flag.String("link-compression", "none,lz4,zstd", "the body compressions the link part measures, comma-separated")
	scale := flag.Float64("scale", 1, "demo warehouse scale of the engine rows (also run at ten times it)")
	binDir := flag.String("bin", "bin", "directory of the ferry binaries (make build), for the engine's end-to-end job")
	flag.Parse()
	var err error
	switch *only {
	case "":
		err = run(context.Background(), *rows, *linkRows, *scale, *binDir)
	case "link":
		dir, derr := os.MkdirTemp("", "ferry-bench-")
		if derr != nil {
			err = derr
			break
		}
		printHeader()
		err = linkBench(dir, *linkRows, strings.Split(*linkComps, ","))
		os.RemoveAll(dir)
	case "engine":
		dir, derr := os.MkdirTemp("", "ferry-bench-")
		if derr != nil {
			err = derr
			break
		}
		err = engineBench(context.Background(), dir, *binDir, []float64{*scale, 10 * *scale})
		os.RemoveAll(dir)
	default:
		err = fmt.Errorf("-only %q: want link or engine", *only)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type result struct {
	name          string
	rows, bytes   int64
	secs          float64
	heapMB, rssMB float64
	limit         string
	ratio         float64
}

func (r result) print() {
	ratio := ""
	if r.limit != "" {
		ratio = fmt.Sprintf("%.2f of %s", r.ratio, r.limit)
	}
	rps := "-"
	if r.rows > 0 {
		rps = fmt.Sprintf("%.2fM", float64(r.rows)/r.secs/1e6)
	}
	mb := func(v float64) string { // 0: not measured for this row
		if v == 0 {
			return "-"
		}
		return fmt.Sprintf("%.1f", v)
	}
	fmt.Printf("| %-38s | %9s | %9.1f | %8s | %8s | %-30s |\n", r.name, rps, float64(r.bytes)/r.secs/1e6, mb(r.heapMB), mb(r.rssMB), ratio)
}

// peak samples the Go heap while fn runs and reads the process's peak RSS
// (reset before fn through /proc/self/clear_refs).
func peak(fn func() error) (heapMB, rssMB float64, err error) {
	runtime.GC()
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	var maxHeap atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > maxHeap.Load() {
				maxHeap.Store(ms.HeapAlloc)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	err = fn()
	close(stop)
	wg.Wait()
	return float64(maxHeap.Load()) / 1e6, vmHWM() / 1e6, err
}

func vmHWM() float64 { return procStatus("VmHWM:") }

// procStatus reads a kB field of /proc/self/status, in bytes.
func procStatus(field string) float64 {
	data, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			var kb float64
			fmt.Sscanf(strings.TrimSpace(v), "%f", &kb)
			return kb * 1024
		}
	}
	return 0
}

func run(ctx context.Context, nrows, linkRows int64, scale float64, binDir string) error {
	dir, err := os.MkdirTemp("", "ferry-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	dbPath := filepath.Join(dir, "bench.db")
	fmt.Printf("Ferry data-path benchmark: %d rows, %d CPUs, %s\n\n", nrows, runtime.NumCPU(), runtime.Version())
	if err := makeTable(dbPath, nrows); err != nil {
		return err
	}
	printHeader()

	// 1. DuckDB's own Arrow export, the limit of a DuckDB read, and 2. the
	// connector's paged, snapshot-consistent read: each a quarter second at
	// 5M rows, so they alternate three times and the best of each counts.
	mux := all.Mux()
	var raw, conn result
	for round := 0; round < 3; round++ {
		r, err := duckdbExport(ctx, dbPath)
		if err != nil {
			return err
		}
		if round == 0 || r.secs < raw.secs {
			raw = r
		}
		cr, err := connectorRead(ctx, mux, "DuckDB connector read", "duckdb://"+dbPath, nil)
		if err != nil {
			return err
		}
		if round == 0 || cr.secs < conn.secs {
			conn = cr
		}
	}
	raw.print()
	conn.limit = "DuckDB export"
	conn.ratio = (float64(conn.rows) / conn.secs) / (float64(raw.rows) / raw.secs)
	conn.print()

	// 3. Agent -> engine over Flight, beside a raw TLS 1.3 copy.
	if err := linkBench(dir, linkRows, []string{agent.CompressionNone, agent.CompressionLZ4, agent.CompressionZSTD}); err != nil {
		return fmt.Errorf("link: %w", err)
	}

	// PostgreSQL and Parquet (disk, S3) reads and writes.
	if err := pgBench(ctx, mux, nrows); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	if err := parquetBench(ctx, dir, dbPath, mux); err != nil {
		return fmt.Errorf("parquet: %w", err)
	}

	// 4. Writeback into DuckDB beside DuckDB's native bulk load of the same
	// Arrow rows (CREATE TABLE AS SELECT from a registered Arrow stream).
	if err := writebackBench(ctx, dir, mux, nrows); err != nil {
		return err
	}

	// 5. The engine at the demo's scale and ten times it.
	return engineBench(ctx, dir, binDir, []float64{scale, 10 * scale})
}

// predictionBatches makes n prediction rows in batches of 64Ki.
func predictionBatches(n int64) (*arrow.Schema, []arrow.RecordBatch) {
	s := arrow.NewSchema([]arrow.Field{
		{Name: "customer_id", Type: arrow.PrimitiveTypes.Int64},
		{Name: link.ColAnchorTime, Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}},
		{Name: link.ColScore, Type: arrow.PrimitiveTypes.Float64},
		{Name: link.ColPredictedClass, Type: arrow.FixedWidthTypes.Boolean},
	}, nil)
	var out []arrow.RecordBatch
	for done := int64(0); done < n; {
		k := min(n-done, 65536)
		b := array.NewRecordBuilder(memory.DefaultAllocator, s)
		for i := int64(0); i < k; i++ {
			b.Field(0).(*array.Int64Builder).Append(done + i)
			b.Field(1).(*array.TimestampBuilder).Append(1_700_000_000_000_000)
			b.Field(2).(*array.Float64Builder).Append(float64((done+i)%1000) / 1000)
			b.Field(3).(*array.BooleanBuilder).Append((done+i)%3 == 0)
		}
		out = append(out, b.NewRecordBatch())
		b.Release()
		done += k
	}
	return s, out
}

// withIDs appends model_id, job_id and created_at as plain columns.
func withIDs(s *arrow.Schema, recs []arrow.RecordBatch) (*arrow.Schema, []arrow.RecordBatch) {
	ts := &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}
	full := arrow.NewSchema(append(s.Fields(),
		arrow.Field{Name: writeback.ColModelID, Type: arrow.BinaryTypes.String},
		arrow.Field{Name: writeback.ColJobID, Type: arrow.BinaryTypes.String},
		arrow.Field{Name: writeback.ColCreatedAt, Type: ts}), nil)
	var out []arrow.RecordBatch
	for _, r := range recs {
		n := int(r.NumRows())
		sb := array.NewStringBuilder(memory.DefaultAllocator)
		jb := array.NewStringBuilder(memory.DefaultAllocator)
		tb := array.NewTimestampBuilder(memory.DefaultAllocator, ts)
		for i := 0; i < n; i++ {
			sb.Append("m-bench")
			jb.Append("j-bench")
			tb.Append(1_700_000_000_000_000)
		}
		cols := append(append([]arrow.Array{}, r.Columns()...), sb.NewArray(), jb.NewArray(), tb.NewArray())
		out = append(out, array.NewRecordBatch(full, cols, int64(n)))
		for _, c := range cols[r.NumCols():] {
			c.Release()
		}
		sb.Release()
		jb.Release()
		tb.Release()
	}
	return full, out
}

func writebackBench(ctx context.Context, dir string, mux *connectors.Mux, n int64) error {
	s, recs := predictionBatches(n)
	defer func() {
		for _, r := range recs {
			r.Release()
		}
	}()
	var bytes int64
	for _, r := range recs {
		bytes += util.TotalRecordSize(r)
	}
	native := result{name: "DuckDB native bulk load (limit)", rows: n, bytes: bytes}
	var err error
	native.heapMB, native.rssMB, err = peak(func() error {
		return withDuckDBArrow(ctx, filepath.Join(dir, "native.db"), func(ar *duckdbdrv.Arrow) error {
			// The same rows writeback stores: the predictions with their
			// identifier columns, as plain arrays.
			full, fullRecs := withIDs(s, recs)
			defer func() {
				for _, r := range fullRecs {
					r.Release()
				}
			}()
			rr, _ := array.NewRecordReader(full, fullRecs)
			defer rr.Release()
			start := time.Now()
			release, err := ar.RegisterView(rr, "incoming")
			if err != nil {
				return err
			}
			defer release()
			r, err := ar.QueryContext(ctx, "CREATE TABLE preds AS SELECT * FROM incoming")
			if err != nil {
				return err
			}
			r.Release()
			native.secs = time.Since(start).Seconds()
			return nil
		})
	})
	if err != nil {
		return err
	}
	wb := result{name: "writeback into DuckDB (atomic)", rows: n, bytes: bytes, limit: "native bulk load"}
	wb.heapMB, wb.rssMB, err = peak(func() error {
		c, err := mux.Open(ctx, "duckdb://"+filepath.Join(dir, "wb.db"), nil)
		if err != nil {
			return err
		}
		defer c.Close()
		rr, _ := array.NewRecordReader(s, recs)
		defer rr.Release()
		start := time.Now()
		_, err = writeback.Write(ctx, c, "preds", rr, writeback.Meta{JobID: "j-bench", ModelID: "m-bench", CreatedAt: time.Now()}, memory.DefaultAllocator)
		wb.secs = time.Since(start).Seconds()
		return err
	})
	if err != nil {
		return err
	}
	wb.ratio = (float64(n) / wb.secs) / (float64(n) / native.secs)
	native.print()
	wb.print()
	return nil
}

func drain(r array.RecordReader) (rows, bytes int64, err error) {
	for r.Next() {
		rec := r.RecordBatch()
		rows += rec.NumRows()
		bytes += util.TotalRecordSize(rec)
	}
	return rows, bytes, r.Err()
}

func makeTable(path string, n int64) error {
	db, err := sql.Open("duckdb", path)
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.Exec(fmt.Sprintf(`CREATE TABLE bench AS SELECT
		i AS order_id, i %% 100000 AS customer_id,
		TIMESTAMP '2024-01-01' + to_seconds(i %% 63072000) AS ordered_at,
		(i %% 10007) / 100.0 AS amount, 'status_' || (i %% 7) AS status
		FROM range(%d) t(i)`, n))
	return err
}

// printHeader prints the table's header.
func printHeader() {
	fmt.Println("| path                                   |    rows/s |      MB/s | heap MB  | RSS MB   | ratio to limit                 |")
	fmt.Println("|----------------------------------------|-----------|-----------|----------|----------|--------------------------------|")
}

// duckdbExport times DuckDB's own Arrow export of the bench table.
func duckdbExport(ctx context.Context, dbPath string) (result, error) {
	raw, err := duckdbDirect(ctx, dbPath, "SELECT * FROM bench")
	raw.name = "DuckDB Arrow export (limit)"
	return raw, err
}
