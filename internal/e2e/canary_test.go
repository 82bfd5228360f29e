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
	"github.com/ferry-ai/ferry/controlplane/api"
	"github.com/ferry-ai/ferry/internal/devstack"
)

const canaryPrefix = "zqCANARYq"

// numMarker is the marker number of one numeric non-key column. The agent
// reports the smallest and largest value of such a column, so a marker is
// never one of them: it lies strictly between the column's smallest and
// largest unseeded value, an unusual number (a float of 16 significant
// digits; an integer of 8 digits), distinct for each column. An integer
// column whose range is too narrow to hold such a number is widened by one
// value put in its row 1 (an extreme, not a marker: it is reported).
type numMarker struct {
	table, column string
	float         bool
	f             float64
	i             int64
	extreme       *int64
}

// needles are the forms in which the marker could be found: its decimal
// text, and its 8-byte integer and IEEE 754 forms in both byte orders.
func (m numMarker) needles() [][]byte {
	out := [][]byte{[]byte(strconv.FormatInt(m.i, 10))}
	bits := math.Float64bits(float64(m.i))
	if m.float {
		// As encoding/json and slog write it, and in exponent form.
		out = [][]byte{[]byte(strconv.FormatFloat(m.f, 'f', -1, 64))}
		if g := strconv.FormatFloat(m.f, 'g', -1, 64); g != string(out[0]) {
			out = append(out, []byte(g))
		}
		bits = math.Float64bits(m.f)
	}
	for _, u := range []uint64{bits, uint64(m.i)} {
		if u == 0 {
			continue
		}
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], u) // SQLite stores REAL and INTEGER big-endian
		out = append(out, slices.Clone(b[:]))
		binary.LittleEndian.PutUint64(b[:], u)
		out = append(out, slices.Clone(b[:]))
	}
	return out
}

func (m numMarker) String() string {
	if m.float {
		return fmt.Sprintf("%s.%s=%v", m.table, m.column, m.f)
	}
	return fmt.Sprintf("%s.%s=%d", m.table, m.column, m.i)
}

// TestCanaryNoRowDataInControlPlane seeds unique marker strings into every
// text column and marker numbers into every numeric non-key column, runs a
// job, and proves no marker reaches the control plane's metadata database,
// the job's detail in the API, any log line of the three processes, or
// what their /metrics, /healthz and /readyz serve (invariant 1). The
// metrics show the job (checkJobMetrics), and every log line about the job
// names it (checkJobLogLines). The agent reports the range of each numeric
// non-key column: the range reported is the seeded data's, and each marker
// number lies strictly inside it, so it is never reported.
func TestCanaryNoRowDataInControlPlane(t *testing.T) {
	db := filepath.Join(t.TempDir(), "canary.db")
	markers, nums := seedCanaries(t, baseDB, db)
	if len(markers) < 5 || len(nums) < 3 {
		t.Fatalf("only %d text markers and %d marker numbers seeded; the check would prove little", len(markers), len(nums))
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

	// The ranges reported are the seeded data's (DuckDB's min and max),
	// and every marker number lies strictly inside its column's.
	ranges := checkTableStats(t, db, d)
	for _, m := range nums {
		r, ok := ranges[m.table+"."+m.column]
		v := m.f
		if !m.float {
			v = float64(m.i)
		}
		if ok && !(r[0] < v && v < r[1]) {
			t.Errorf("marker %v is not strictly inside the range [%v, %v] reported", m, r[0], r[1])
		}
		if !ok && slices.ContainsFunc(d.TableStats, func(ts api.TableStats) bool { return ts.Table == m.table }) {
			t.Errorf("no range reported for %s.%s, which the job read", m.table, m.column)
		}
	}

	t.Logf("marker numbers %v; ranges reported %v", nums, ranges)
	needles := [][]byte{[]byte(canaryPrefix)}
	for _, m := range nums {
		needles = append(needles, m.needles()...)
	}

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
	detail, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	contents["GET /v1/jobs/"+d.Job.ID] = detail
	for f, data := range contents {
		for _, n := range needles {
			if i := bytes.Index(data, n); i >= 0 {
				lo, hi := max(0, i-80), min(len(data), i+80)
				t.Errorf("marker %q found in %s: …%q…", n, f, data[lo:hi])
			}
		}
	}
	// The check can fail: the reported ranges are found by the same
	// search in the job's detail.
	for name, r := range ranges {
		if !bytes.Contains(detail, []byte(strconv.FormatFloat(r[1], 'f', -1, 64))) {
			t.Errorf("the maximum of %s, %v, is not found in the job's detail: the search cannot be trusted", name, r[1])
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
// each numeric non-key column with that column's marker number (see
// numMarker). It returns the text markers and the marker numbers.
func seedCanaries(t *testing.T, src, dst string) ([]string, []numMarker) {
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
	var (
		markers []string
		nums    []numMarker
	)
	for _, name := range []string{"customers", "products", "orders", "order_items", "returns"} {
		tbl, err := connectors.FindTable(tables, name)
		if err != nil {
			t.Fatal(err)
		}
		keys := map[string]bool{tbl.TimeColumn: true}
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
		var src []arrow.RecordBatch
		for r.Next() {
			rec := r.RecordBatch()
			rec.Retain()
			src = append(src, rec)
		}
		if err := r.Err(); err != nil {
			t.Fatal(err)
		}
		schema := r.Schema()
		r.Release()
		// A marker number for each numeric non-key column, inside the range
		// of the values left unseeded.
		colMarkers := make([]*numMarker, schema.NumFields())
		for j, f := range schema.Fields() {
			if keys[f.Name] {
				continue
			}
			if m, ok := pickMarker(name, f.Name, src, j, len(nums)); ok {
				nums = append(nums, m)
				colMarkers[j] = &m
			}
		}
		var recs []arrow.RecordBatch
		row := 0
		for _, rec := range src {
			cols := make([]arrow.Array, rec.NumCols())
			for j := range cols {
				f := rec.Schema().Field(j)
				cols[j] = canaryColumn(name, f, rec.Column(j), keys[f.Name], row, &markers, colMarkers[j])
			}
			recs = append(recs, array.NewRecordBatch(rec.Schema(), cols, rec.NumRows()))
			for _, c := range cols {
				c.Release()
			}
			row += int(rec.NumRows())
			rec.Release()
		}
		rr, _ := array.NewRecordReader(schema, recs)
		for _, rec := range recs {
			rec.Release()
		}
		if _, err := out.Write(ctx, name, rr, connectors.WriteOptions{PrimaryKey: tbl.PrimaryKey, ForeignKeys: tbl.ForeignKeys}); err != nil {
			t.Fatalf("write canary %s: %v", name, err)
		}
		rr.Release()
	}
	return markers, nums
}

// canarySeeded says whether row (of a table) holds a marker.
func canarySeeded(row int) bool { return row%10 == 0 }

// pickMarker chooses the marker number of column j of a table (the k-th
// marker number) from the range of its values in the rows that keep
// theirs; false for a column that is not numeric or has no such value.
func pickMarker(table, column string, recs []arrow.RecordBatch, j, k int) (numMarker, bool) {
	m := numMarker{table: table, column: column}
	lo, hi := math.Inf(1), math.Inf(-1)
	row := 0
	for _, rec := range recs {
		a := rec.Column(j)
		for i := range a.Len() {
			if canarySeeded(row+i) || a.IsNull(i) {
				continue
			}
			var v float64
			switch a := a.(type) {
			case *array.Float64:
				v, m.float = a.Value(i), true
			case *array.Int32:
				v = float64(a.Value(i))
			case *array.Int64:
				v = float64(a.Value(i))
			default:
				return m, false
			}
			if row+i == 1 {
				continue // row 1 may hold the widening extreme
			}
			lo, hi = min(lo, v), max(hi, v)
		}
		row += int(a.Len())
	}
	if lo > hi {
		return m, false
	}
	if m.float {
		// 16 significant digits, a different fraction of the range for
		// each column.
		m.f = lo + (hi-lo)*(0.3819660112501051+0.0173205080756888*float64(k))
		if !(lo < m.f && m.f < hi) || len(strconv.FormatFloat(m.f, 'f', -1, 64)) < 12 {
			return m, false
		}
		return m, true
	}
	m.i = int64(lo) + 48_271_939 + 1_000_003*int64(k)
	if float64(m.i) >= hi {
		e := m.i + 51_234_567 // above every value: the column's maximum
		m.extreme = &e
	}
	return m, true
}

func canaryColumn(table string, f arrow.Field, a arrow.Array, key bool, row0 int, markers *[]string, m *numMarker) arrow.Array {
	mem := memory.DefaultAllocator
	n := a.Len()
	seed := func(i int) bool { return !key && canarySeeded(row0+i) }
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
	}
	if m == nil {
		a.Retain()
		return a
	}
	switch a := a.(type) {
	case *array.Float64:
		b := array.NewFloat64Builder(mem)
		defer b.Release()
		seedNumbers(n, func(i int) (float64, bool) { return m.f, seed(i) }, a.IsNull, a.Value, b.Append, b.AppendNull)
		return b.NewArray()
	case *array.Int32:
		b := array.NewInt32Builder(mem)
		defer b.Release()
		seedNumbers(n, intPick[int32](m, row0, seed), a.IsNull, a.Value, b.Append, b.AppendNull)
		return b.NewArray()
	case *array.Int64:
		b := array.NewInt64Builder(mem)
		defer b.Release()
		seedNumbers(n, intPick[int64](m, row0, seed), a.IsNull, a.Value, b.Append, b.AppendNull)
		return b.NewArray()
	}
	a.Retain()
	return a
}

// intPick puts an integer column's marker where seed says and its widening
// extreme, if any, in row 1.
func intPick[T int32 | int64](m *numMarker, row0 int, seed func(int) bool) func(int) (T, bool) {
	return func(i int) (T, bool) {
		if m.extreme != nil && row0+i == 1 {
			return T(*m.extreme), true
		}
		return T(m.i), seed(i)
	}
}

// seedNumbers copies n values, putting pick's value where it says so.
func seedNumbers[T any](n int, pick func(int) (T, bool), isNull func(int) bool, value func(int) T, appendV func(T), appendNull func()) {
	for i := 0; i < n; i++ {
		if v, ok := pick(i); ok {
			appendV(v)
		} else if isNull(i) {
			appendNull()
		} else {
			appendV(value(i))
		}
	}
}
