//go:build duckdb_arrow

package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferry-ai/ferry/connectors"
	"github.com/ferry-ai/ferry/connectors/duckdb"
	"github.com/ferry-ai/ferry/internal/devstack"
)

const (
	canaryPrefix = "zqCANARYq"
	canaryFloat  = 7391846.8125 // exact in binary, so its IEEE bytes are searchable
	canaryInt    = 7391846
)

// TestCanaryNoRowDataInControlPlane seeds unique marker strings into every
// text column and marker numbers into every numeric non-key column, runs a
// job, and proves no marker reaches the control plane's metadata database,
// any log line of the three processes, or what their /metrics, /healthz and
// /readyz serve (invariant 1). The metrics show the job (checkJobMetrics),
// and every log line about the job names it (checkJobLogLines).
func TestCanaryNoRowDataInControlPlane(t *testing.T) {
	db := filepath.Join(t.TempDir(), "canary.db")
	markers := seedCanaries(t, baseDB, db)
	if len(markers) < 5 {
		t.Fatalf("only %d text markers seeded; the check would prove little", len(markers))
	}
	s := startStack(t, db)
	d := runJob(t, s.Client, demoQuery, "canary_predictions")
	if d.Purge == nil || d.Model == nil {
		t.Fatal("job reported no metadata; the canary check would prove little")
	}
	scraped := scrapeAll(t, s)
	checkJobMetrics(t, scraped, d.Job.ID)
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	checkJobLogLines(t, s, d.Job.ID)

	needles := [][]byte{[]byte(canaryPrefix), []byte(strconv.Itoa(canaryInt))}
	var fb [8]byte
	binary.BigEndian.PutUint64(fb[:], math.Float64bits(canaryFloat)) // SQLite stores REAL big-endian
	needles = append(needles, slices.Clone(fb[:]))
	binary.LittleEndian.PutUint64(fb[:], math.Float64bits(canaryFloat))
	needles = append(needles, slices.Clone(fb[:]))
	binary.BigEndian.PutUint64(fb[:], uint64(canaryInt))
	needles = append(needles, slices.Clone(fb[:]))

	var files []string
	_ = filepath.WalkDir(s.DataDir, func(p string, e os.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	files = append(files, s.ControlPlane.LogPath, s.Engine.LogPath, s.Agent.LogPath)
	sawDB := false
	contents := map[string][]byte{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if filepath.Base(f) == "ferry.db" && len(data) > 0 {
			sawDB = true
		}
		contents[f] = data
	}
	for name, data := range scraped {
		contents[name] = data
	}
	for f, data := range contents {
		for _, n := range needles {
			if i := bytes.Index(data, n); i >= 0 {
				lo, hi := max(0, i-80), min(len(data), i+80)
				t.Errorf("marker %q found in %s: …%q…", n, f, data[lo:hi])
			}
		}
	}
	if !sawDB {
		t.Fatalf("metadata database not found under %s; files: %v", s.DataDir, files)
	}
	// The check can fail: the metadata does hold the table names it is
	// allowed to hold, found by the same search.
	data, _ := os.ReadFile(filepath.Join(s.DataDir, "ferry.db"))
	wal, _ := os.ReadFile(filepath.Join(s.DataDir, "ferry.db-wal"))
	if !bytes.Contains(append(data, wal...), []byte("order_items")) {
		t.Fatal("the search does not find even the table names in the metadata DB; it cannot be trusted")
	}
}

// scrapeAll returns what /metrics, /healthz and /readyz of the three
// processes serve, by "process path".
func scrapeAll(t *testing.T, s *devstack.Stack) map[string][]byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out := map[string][]byte{}
	for _, name := range []string{"ferry-controlplane", "ferry-engine", "ferry-agent"} {
		for _, path := range []string{"/metrics", "/healthz", "/readyz"} {
			code, body, err := s.Scrape(ctx, name, path)
			if err != nil {
				t.Fatal(err)
			}
			if code != http.StatusOK {
				t.Errorf("%s %s: %d %s", name, path, code, body)
			}
			out[name+" "+path] = body
		}
	}
	return out
}

// checkJobMetrics checks that the scraped metrics show a job that
// succeeded: the control plane counts it in jobs{state="succeeded"} with
// the agent connected, the engine received its rows and purged it, the
// agent read and sent rows and counted it; and that no metric carries the
// job's ID.
func checkJobMetrics(t *testing.T, scraped map[string][]byte, jobID string) {
	t.Helper()
	for _, c := range []struct {
		process, series string
		min             float64
	}{
		{"ferry-controlplane", `ferry_controlplane_jobs{state="succeeded"}`, 1},
		{"ferry-controlplane", `ferry_controlplane_agents_connected`, 1},
		{"ferry-controlplane", `ferry_controlplane_job_transitions_total{from="writing",to="succeeded"}`, 1},
		{"ferry-controlplane", `ferry_controlplane_stage_duration_seconds_count{stage="training"}`, 1},
		{"ferry-engine", `ferry_engine_rows_received_total`, 1},
		{"ferry-engine", `ferry_engine_bytes_received_total`, 1},
		{"ferry-engine", `ferry_engine_purges_total{reason="completed"}`, 1},
		{"ferry-engine", `ferry_engine_stage_duration_seconds_count{stage="train"}`, 1},
		{"ferry-agent", `ferry_agent_rows_read_total`, 1},
		{"ferry-agent", `ferry_agent_bytes_sent_total`, 1},
		{"ferry-agent", `ferry_agent_jobs_total{outcome="succeeded"}`, 1},
		{"ferry-agent", `ferry_agent_connected`, 1},
	} {
		v, ok := metricValue(string(scraped[c.process+" /metrics"]), c.series)
		if !ok || v < c.min {
			t.Errorf("%s: %s = %v (found %v), want at least %v", c.process, c.series, v, ok, c.min)
		}
	}
	for name, body := range scraped {
		if bytes.Contains(body, []byte(jobID)) {
			t.Errorf("%s carries the job ID %s", name, jobID)
		}
	}
}

// metricValue returns the value of one series (name and labels exactly as
// Prometheus's text format writes them) in a scrape.
func metricValue(body, series string) (float64, bool) {
	for _, line := range strings.Split(body, "\n") {
		rest, ok := strings.CutPrefix(line, series+" ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		return v, err == nil
	}
	return 0, false
}

// checkJobLogLines checks that every log line of the three processes about
// a job — its message starts with "job", or it has a table or stage field
// — carries job_id (the one key for it everywhere), and that each process
// logged lines with this job's ID.
func checkJobLogLines(t *testing.T, s *devstack.Stack, jobID string) {
	t.Helper()
	for _, p := range []*devstack.Proc{s.ControlPlane, s.Engine, s.Agent} {
		data, err := os.ReadFile(p.LogPath)
		if err != nil {
			t.Fatal(err)
		}
		ofJob := 0
		for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			var rec map[string]any
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				continue // not a log record (a panic, a library's own line)
			}
			msg, _ := rec["msg"].(string)
			_, hasTable := rec["table"]
			_, hasStage := rec["stage"]
			_, oldKey := rec["job"]
			id, hasID := rec["job_id"]
			switch {
			case oldKey:
				t.Errorf("%s: a line keyed job, not job_id: %s", p.Name, line)
			case (strings.HasPrefix(msg, "job") || hasTable || hasStage) && !hasID:
				t.Errorf("%s: a line about a job without job_id: %s", p.Name, line)
			}
			if id == jobID {
				ofJob++
			}
		}
		if ofJob < 2 {
			t.Errorf("%s logged %d lines with job_id %s; the check would prove little", p.Name, ofJob, jobID)
		}
	}
}

// seedCanaries copies the warehouse at src into dst through the connector,
// replacing every 10th value of each text column with a unique marker and of
// each numeric non-key column with a marker number. It returns the text
// markers.
func seedCanaries(t *testing.T, src, dst string) []string {
	t.Helper()
	ctx := context.Background()
	mux := connectors.NewMux()
	mux.Register(duckdb.Scheme, duckdb.Opener{})
	in, err := mux.Open(ctx, "duckdb://"+src, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := mux.Open(ctx, "duckdb://"+dst, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	tables, err := in.Tables(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var markers []string
	for _, name := range []string{"customers", "products", "orders", "order_items", "returns"} {
		tbl, err := connectors.FindTable(tables, name)
		if err != nil {
			t.Fatal(err)
		}
		keys := map[string]bool{}
		for _, k := range tbl.PrimaryKey {
			keys[k] = true
		}
		for _, fk := range tbl.ForeignKeys {
			for _, c := range fk.Columns {
				keys[c] = true
			}
		}
		r, err := in.Read(ctx, name, connectors.ReadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var recs []arrow.RecordBatch
		row := 0
		for r.Next() {
			rec := r.RecordBatch()
			cols := make([]arrow.Array, rec.NumCols())
			for j := range cols {
				f := rec.Schema().Field(j)
				cols[j] = canaryColumn(name, f, rec.Column(j), keys[f.Name] || f.Name == tbl.TimeColumn, row, &markers)
			}
			recs = append(recs, array.NewRecordBatch(rec.Schema(), cols, rec.NumRows()))
			for _, c := range cols {
				c.Release()
			}
			row += int(rec.NumRows())
		}
		if err := r.Err(); err != nil {
			t.Fatal(err)
		}
		schema := r.Schema()
		r.Release()
		rr, _ := array.NewRecordReader(schema, recs)
		for _, rec := range recs {
			rec.Release()
		}
		if _, err := out.Write(ctx, name, rr, connectors.WriteOptions{PrimaryKey: tbl.PrimaryKey, ForeignKeys: tbl.ForeignKeys}); err != nil {
			t.Fatalf("write canary %s: %v", name, err)
		}
		rr.Release()
	}
	return markers
}

func canaryColumn(table string, f arrow.Field, a arrow.Array, key bool, row0 int, markers *[]string) arrow.Array {
	mem := memory.DefaultAllocator
	n := a.Len()
	seed := func(i int) bool { return !key && (row0+i)%10 == 0 }
	switch a := a.(type) {
	case *array.String:
		b := array.NewStringBuilder(mem)
		defer b.Release()
		for i := 0; i < n; i++ {
			switch {
			case seed(i):
				m := fmt.Sprintf("%s%s_%s_%d", canaryPrefix, table, f.Name, row0+i)
				if len(*markers) < 1000 {
					*markers = append(*markers, m)
				}
				b.Append(m)
			case a.IsNull(i):
				b.AppendNull()
			default:
				b.Append(a.Value(i))
			}
		}
		return b.NewArray()
	case *array.Float64:
		b := array.NewFloat64Builder(mem)
		defer b.Release()
		seedNumbers(n, seed, a.IsNull, a.Value, canaryFloat, b.Append, b.AppendNull)
		return b.NewArray()
	case *array.Int32:
		b := array.NewInt32Builder(mem)
		defer b.Release()
		seedNumbers(n, seed, a.IsNull, a.Value, canaryInt, b.Append, b.AppendNull)
		return b.NewArray()
	case *array.Int64:
		b := array.NewInt64Builder(mem)
		defer b.Release()
		seedNumbers(n, seed, a.IsNull, a.Value, canaryInt, b.Append, b.AppendNull)
		return b.NewArray()
	}
	a.Retain()
	return a
}

// seedNumbers copies n values, putting marker where seed says.
func seedNumbers[T any](n int, seed, isNull func(int) bool, value func(int) T, marker T, appendV func(T), appendNull func()) {
	for i := 0; i < n; i++ {
		switch {
		case seed(i):
			appendV(marker)
		case isNull(i):
			appendNull()
		default:
			appendV(value(i))
		}
	}
}
