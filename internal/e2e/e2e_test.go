//go:build duckdb_arrow

package e2e

import (
	"context"
	"crypto/tls"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/flight"
	_ "github.com/duckdb/duckdb-go/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/ferry-ai/ferry/controlplane/agentapi"
	"github.com/ferry-ai/ferry/internal/devstack"
	"github.com/ferry-ai/ferry/internal/pki"
)

func openDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("duckdb", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// eligibleCustomers counts the customers the demo query scores: signed up by
// the latest order time T and with an order in (T-90d, T].
func eligibleCustomers(t *testing.T, db *sql.DB) int {
	t.Helper()
	var n int
	err := db.QueryRow(`
		WITH t AS (SELECT max(ordered_at) AS t FROM orders)
		SELECT count(*) FROM customers c, t
		WHERE c.signup_at <= t.t
		  AND EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.customer_id
		              AND o.ordered_at > t.t - INTERVAL 90 DAY AND o.ordered_at <= t.t)`).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// procWriteBytes reads write_bytes of a process from /proc/PID/io.
func procWriteBytes(t *testing.T, pid int) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		t.Fatalf("read /proc/%d/io: %v", pid, err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "write_bytes:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("/proc/%d/io has no write_bytes", pid)
	return 0
}

func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	var names []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			names = append(names, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// TestEndToEnd runs the demo query through the three real processes and
// checks the prediction table, the metrics, 0-day retention (invariant 2)
// and that a re-run replaces rather than duplicates (invariant 5).
func TestEndToEnd(t *testing.T) {
	db := copyDB(t)
	want := func() int {
		d := openDB(t, db)
		defer d.Close()
		return eligibleCustomers(t, d)
	}()
	s := startStack(t, db)

	before := procWriteBytes(t, s.Engine.Pid())
	d := runJob(t, s.Client, demoQuery, "churn_predictions")
	after := procWriteBytes(t, s.Engine.Pid())

	t.Run("Metrics", func(t *testing.T) {
		m := d.Model
		if m == nil || m.Test == nil || m.BaselineRecentCount == nil || m.BaselineLabelRate == nil {
			t.Fatalf("no metrics reported: %+v", m)
		}
		t.Logf("test AUROC %.4f AP %.4f; recent-count baseline AUROC %.4f AP %.4f; label-rate baseline AUROC %.4f AP %.4f",
			m.Test.AUROC, m.Test.AveragePrecision, m.BaselineRecentCount.AUROC, m.BaselineRecentCount.AveragePrecision,
			m.BaselineLabelRate.AUROC, m.BaselineLabelRate.AveragePrecision)
		if m.Test.AUROC < m.BaselineRecentCount.AUROC+0.02 || m.Test.AUROC < m.BaselineLabelRate.AUROC+0.1 {
			t.Errorf("model AUROC %.4f does not beat the baselines (recent count %.4f, label rate %.4f)",
				m.Test.AUROC, m.BaselineRecentCount.AUROC, m.BaselineLabelRate.AUROC)
		}
		if m.Test.AveragePrecision <= m.BaselineLabelRate.AveragePrecision {
			t.Errorf("model AP %.4f not above the label rate %.4f", m.Test.AveragePrecision, m.BaselineLabelRate.AveragePrecision)
		}
		if int(m.PredictionRows) != want {
			t.Errorf("engine scored %d entities, want %d eligible customers", m.PredictionRows, want)
		}
		// The test split's ROC curve, through agent and control plane:
		// 3 to 101 points from (0,0) to (1,1), rates never falling, the
		// trapezoid area the reported test AUROC; no residual histogram.
		roc := m.ROC
		if len(roc) < 3 || len(roc) > 101 || len(m.Residuals) != 0 {
			t.Fatalf("%d ROC points (want 3..101), %d residual bins (want none)", len(roc), len(m.Residuals))
		}
		if first, last := roc[0], roc[len(roc)-1]; first.FalsePositiveRate != 0 || first.TruePositiveRate != 0 || last.FalsePositiveRate != 1 || last.TruePositiveRate != 1 {
			t.Errorf("the ROC curve runs from %+v to %+v, want (0,0) to (1,1)", first, last)
		}
		area := 0.0
		for i := 1; i < len(roc); i++ {
			p, q := roc[i-1], roc[i]
			if q.FalsePositiveRate < p.FalsePositiveRate || q.TruePositiveRate < p.TruePositiveRate || q.Threshold > p.Threshold {
				t.Errorf("ROC point %d %+v after %+v: a rate falls or the threshold rises", i, q, p)
			}
			area += (q.FalsePositiveRate - p.FalsePositiveRate) * (q.TruePositiveRate + p.TruePositiveRate) / 2
		}
		if math.Abs(area-m.Test.AUROC) > 0.01 {
			t.Errorf("the ROC curve's area %.4f is not the test AUROC %.4f", area, m.Test.AUROC)
		}
		t.Logf("ROC curve: %d points over %d test rows, area %.4f (test AUROC %.4f)", len(roc), m.TestRows, area, m.Test.AUROC)
	})

	t.Run("TableStats", func(t *testing.T) {
		// Each column's statistics against DuckDB's on the same data (the
		// base warehouse this test's copy was made from); the orders'
		// amount is numeric and not a key, so its range is reported.
		ranges := checkTableStats(t, baseDB, d)
		if r, ok := ranges["orders.amount"]; !ok {
			t.Errorf("no range reported for orders.amount; ranges: %v", ranges)
		} else {
			t.Logf("orders.amount ranges over [%v, %v]; %d column ranges reported", r[0], r[1], len(ranges))
		}
	})

	t.Run("AgentMemory", func(t *testing.T) {
		// The agent streams: its peak memory is its window and its
		// warehouse driver's, not the tables it sent.
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.Agent.Pid()))
		if err != nil {
			t.Skipf("no /proc: %v", err)
		}
		var hwm, anon, file int64
		for _, line := range strings.Split(string(st), "\n") {
			for name, dst := range map[string]*int64{"VmHWM:": &hwm, "RssAnon:": &anon, "RssFile:": &file} {
				if v, ok := strings.CutPrefix(line, name); ok {
					fmt.Sscanf(strings.TrimSpace(v), "%d", dst)
				}
			}
		}
		t.Logf("ferry-agent after the job: peak RSS %d MB; now %d MB its own (RssAnon), %d MB mapped files", hwm>>10, anon>>10, file>>10)
		if hwm>>10 > 150 {
			t.Errorf("ferry-agent peak RSS %d MB: over 150 MB for a %.1f-scale warehouse", hwm>>10, testScale)
		}
	})

	t.Run("Retention", func(t *testing.T) {
		p := d.Purge
		if p == nil {
			t.Fatal("no purge report")
		}
		if p.BytesReceived <= 0 || p.BytesPurged < p.BytesReceived {
			t.Errorf("purge: received %d, purged %d; want purged >= received > 0", p.BytesReceived, p.BytesPurged)
		}
		if p.FilesWritten != 0 || p.StorageWriteBytes != 0 {
			t.Errorf("engine reported files written %d, storage write bytes %d; want 0", p.FilesWritten, p.StorageWriteBytes)
		}
		if after != before {
			// What else the kernel counted, and the files the engine has
			// open, to tell where the bytes went.
			io, _ := os.ReadFile(fmt.Sprintf("/proc/%d/io", s.Engine.Pid()))
			fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", s.Engine.Pid()))
			var open []string
			for _, fd := range fds {
				if dst, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", s.Engine.Pid(), fd.Name())); err == nil {
					open = append(open, dst)
				}
			}
			t.Errorf("engine process write_bytes grew by %d during the job\n/proc/PID/io:\n%s\nopen files: %v", after-before, io, open)
		}
		for _, dir := range []string{s.EngineWork, s.EngineTmp} {
			if e := dirEntries(t, dir); len(e) > 0 {
				t.Errorf("engine wrote into %s: %v", dir, e)
			}
		}
	})

	t.Run("MTLS", func(t *testing.T) { checkMTLS(t, s) })
	t.Run("BadInput", func(t *testing.T) { checkBadInput(t, s, db) })
	t.Run("CLI", func(t *testing.T) { checkCLI(t, s, d.Job.ID) })

	// A re-run of the same query replaces the table with the same entities and
	// scores (deterministic training), never appending.
	d2 := runJob(t, s.Client, demoQuery, "churn_predictions")
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	out := openDB(t, db)
	var rows, distinct int
	if err := out.QueryRow(`SELECT count(*), count(DISTINCT customer_id) FROM churn_predictions`).Scan(&rows, &distinct); err != nil {
		t.Fatal(err)
	}
	if rows != want || distinct != want {
		t.Fatalf("prediction table has %d rows (%d distinct customers), want %d eligible customers", rows, distinct, want)
	}
	var jobID, modelID string
	var nulls int
	if err := out.QueryRow(`SELECT min(job_id), min(model_id), count(*) FILTER (WHERE score IS NULL OR score < 0 OR score > 1) FROM churn_predictions`).Scan(&jobID, &modelID, &nulls); err != nil {
		t.Fatal(err)
	}
	if jobID != d2.Job.ID || modelID != d2.Model.ModelID || nulls != 0 {
		t.Fatalf("table carries job %q model %q (want %q, %q); %d bad scores", jobID, modelID, d2.Job.ID, d2.Model.ModelID, nulls)
	}
	if d.Model.Test.AUROC != d2.Model.Test.AUROC {
		t.Errorf("re-run AUROC %.6f differs from %.6f: training is not deterministic", d2.Model.Test.AUROC, d.Model.Test.AUROC)
	}
}

// checkMTLS: a plain TCP client, a TLS 1.2 client, a client without a
// certificate and one with a certificate from another CA are each refused by
// the engine and by the control plane's agent port (invariant 4).
func checkMTLS(t *testing.T, s *devstack.Stack) {
	other := filepath.Join(t.TempDir(), "other-ca")
	if err := pki.DevCerts(other, devstack.AgentID, time.Hour); err != nil {
		t.Fatal(err)
	}
	good, err := pki.DevFiles(s.Certs, "agent").ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	roots := good.RootCAs
	foreign, err := pki.DevFiles(other, "agent").ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	foreign.RootCAs = roots // trusts the server; only its own cert is foreign

	for _, target := range []struct{ name, addr string }{{"engine", s.EngineAddr}, {"controlplane-agent-port", s.AgentAddr}} {
		t.Run(target.name+"/PlainTCP", func(t *testing.T) {
			c, err := net.DialTimeout("tcp", target.addr, 2*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			// An HTTP/2 preface, as a plaintext gRPC client would send.
			_, _ = c.Write([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))
			_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
			buf := make([]byte, 64)
			n, _ := io.ReadAtLeast(c, buf, 1)
			// A TLS server answers plaintext with nothing, or a TLS alert
			// record (0x15), never an HTTP/2 frame.
			if n > 0 && buf[0] != 0x15 {
				t.Fatalf("plain TCP got an answer %q", buf[:n])
			}
		})
		t.Run(target.name+"/TLS12", func(t *testing.T) {
			cfg := good.Clone()
			cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
			c, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", target.addr, cfg)
			if err == nil {
				c.Close()
				t.Fatal("TLS 1.2 handshake succeeded")
			}
		})
		for _, tc := range []struct {
			name string
			cfg  *tls.Config
		}{
			{"NoClientCert", &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: roots}},
			{"OtherCA", foreign},
		} {
			t.Run(target.name+"/"+tc.name, func(t *testing.T) {
				if err := grpcCall(target.name, target.addr, tc.cfg); err == nil {
					t.Fatal("call succeeded")
				} else {
					t.Logf("refused: %v", err)
				}
			})
		}
		t.Run(target.name+"/GoodCertAccepted", func(t *testing.T) {
			// The control check: the same call with the right certificate
			// reaches the service, so the refusals above are about the
			// certificates and not a broken call.
			err := grpcCall(target.name, target.addr, good)
			if err != nil && strings.Contains(err.Error(), "certificate") {
				t.Fatalf("good certificate refused: %v", err)
			}
		})
	}
}

// grpcCall makes one real RPC of the service at addr with a client TLS
// configuration and returns its error.
func grpcCall(service, addr string, cfg *tls.Config) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		return err
	}
	defer conn.Close()
	if service == "engine" {
		c := flight.NewFlightServiceClient(conn)
		stream, err := c.DoAction(ctx, &flight.Action{Type: "ferry.job.purge", Body: []byte(`{"job_id":"none"}`)})
		if err != nil {
			return err
		}
		_, err = stream.Recv()
		if err != nil && strings.Contains(err.Error(), "unknown job") {
			return nil // reached the service
		}
		return err
	}
	stream, err := agentapi.NewAgentServiceClient(conn).Connect(ctx)
	if err != nil {
		return err
	}
	// A hello with a mismatched id: the service answers with an error of its
	// own if the transport let us in.
	if err := stream.Send(&agentapi.AgentMessage{Msg: &agentapi.AgentMessage_Hello{Hello: &agentapi.Hello{ProtocolVersion: 1, AgentId: "probe"}}}); err != nil {
		return err
	}
	_, err = stream.Recv()
	if err != nil && (strings.Contains(err.Error(), "PermissionDenied") || strings.Contains(err.Error(), "agent_id")) {
		return nil // reached the service
	}
	return err
}

// checkCLI: the operator mints a viewer token with `ferry tokens create`;
// with it `ferry jobs list` and `ferry jobs logs` work and `ferry jobs
// submit` is refused for the role; `ferry tokens revoke` ends it.
func checkCLI(t *testing.T, s *devstack.Stack, jobID string) {
	base := []string{"FERRY_API=" + s.APIURL, "FERRY_CA=" + filepath.Join(s.Certs, pki.CAFile)}
	operator := append(base, "FERRY_TOKEN_FILE="+filepath.Join(s.Opts.Dir, "api-token"))
	code, secret, stderr := ferry(t, operator, "tokens", "create", "--name", "e2e-viewer", "--role", "viewer", "--ttl", "1h")
	secret = strings.TrimSpace(secret)
	if code != 0 || !strings.HasPrefix(secret, "ferry_") {
		t.Fatalf("tokens create: exit %d, %q %s", code, secret, stderr)
	}
	// The catalog through the CLI: a connection (a password refused), a
	// saved query run as a job.
	if code, out, stderr := ferry(t, operator, "connections", "create", "--name", "demo", "--kind", "duckdb", "--set", "path=/var/lib/ferry/demo.db"); code != 0 || !strings.Contains(out, `"kind": "duckdb"`) {
		t.Errorf("connections create: exit %d %s %s", code, out, stderr)
	}
	if code, _, stderr := ferry(t, operator, "connections", "create", "--name", "leak", "--kind", "postgres", "--set", "password=hunter2hunter2"); code == 0 || !strings.Contains(stderr, "credential") || strings.Contains(stderr, "hunter2hunter2") {
		t.Errorf("a password setting: exit %d %s", code, stderr)
	}
	if code, out, _ := ferry(t, operator, "connections", "list"); code != 0 || !strings.Contains(out, "demo") {
		t.Errorf("connections list: exit %d %s", code, out)
	}
	// The graph queries are planned against, keys and all.
	if code, out, stderr := ferry(t, operator, "graphs", "show"); code != 0 || !strings.Contains(out, "customers  primary key (customer_id)") ||
		!strings.Contains(out, "foreign key (customer_id) -> customers") || !strings.Contains(out, "graph reported by agent "+devstack.AgentID) {
		t.Errorf("graphs show: exit %d\n%s%s", code, out, stderr)
	}
	if code, out, _ := ferry(t, operator, "graphs", "show", "--json"); code != 0 || !strings.Contains(out, `"primary_key"`) {
		t.Errorf("graphs show --json: exit %d %s", code, out)
	}
	code, out, stderr := ferry(t, operator, "queries", "create", "--name", "churn", "--pql", demoQuery, "--output", "churn_saved")
	var saved struct{ ID string }
	if code != 0 || json.Unmarshal([]byte(out), &saved) != nil || saved.ID == "" {
		t.Fatalf("queries create: exit %d %s %s", code, out, stderr)
	}
	if code, out, stderr := ferry(t, operator, "queries", "run", saved.ID); code != 0 || !strings.Contains(out, "submitted") {
		t.Errorf("queries run: exit %d %s %s", code, out, stderr)
	} else {
		id := strings.Fields(out)[1]
		if code, out, stderr := ferry(t, operator, "jobs", "logs", "--follow", id); code != 0 || !strings.Contains(out, "succeeded") {
			t.Errorf("the saved query's job: exit %d %s %s", code, out, stderr)
		}
	}
	file := filepath.Join(t.TempDir(), "viewer-token")
	if err := os.WriteFile(file, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	viewer := append(base, "FERRY_TOKEN_FILE="+file)
	if code, out, stderr := ferry(t, viewer, "jobs", "list"); code != 0 || !strings.Contains(out, jobID) {
		t.Errorf("jobs list as a viewer: exit %d %s %s", code, out, stderr)
	}
	if code, out, stderr := ferry(t, viewer, "jobs", "logs", jobID); code != 0 || !strings.Contains(out, "succeeded") || !strings.Contains(out, "training") {
		t.Errorf("jobs logs: exit %d %s %s", code, out, stderr)
	}
	if code, _, stderr := ferry(t, viewer, "jobs", "submit", "--query", demoQuery, "--output", "p"); code == 0 || !strings.Contains(stderr, "editor") {
		t.Errorf("jobs submit as a viewer: exit %d %s", code, stderr)
	}
	if code, _, stderr := ferry(t, viewer, "jobs", "cancel", jobID); code == 0 || !strings.Contains(stderr, "editor") {
		t.Errorf("jobs cancel as a viewer: exit %d %s", code, stderr)
	}
	code, out, _ = ferry(t, viewer, "tokens", "list")
	var id string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[1] == "e2e-viewer" {
			id = f[0]
		}
	}
	if code != 0 || id == "" {
		t.Fatalf("tokens list: exit %d %s", code, out)
	}
	if code, out, stderr := ferry(t, viewer, "tokens", "revoke", id); code != 0 {
		t.Fatalf("tokens revoke: exit %d %s %s", code, out, stderr)
	}
	if code, _, stderr := ferry(t, viewer, "jobs", "list"); code == 0 || !strings.Contains(stderr, "revoked") {
		t.Errorf("a revoked token still lists jobs: exit %d %s", code, stderr)
	}
}

// checkBadInput: malformed queries, unknown names and hostile table names get
// exit code 2 and one clear line, and harm nothing (invariant 6).
func checkBadInput(t *testing.T, s *devstack.Stack, db string) {
	env := []string{"FERRY_API=" + s.APIURL, "FERRY_TOKEN_FILE=" + filepath.Join(s.Opts.Dir, "api-token"), "FERRY_CA=" + filepath.Join(s.Certs, pki.CAFile)}
	wh := "duckdb://" + db
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"MalformedQuery", []string{"jobs", "submit", "--query", "PREDICT COUNT(orders.*, 0, 30, days) > 0 FOR EACH", "--output", "p"}, "column"},
		{"GarbageQuery", []string{"jobs", "submit", "--query", "SELECT * FROM customers; DROP TABLE customers", "--output", "p"}, "PREDICT"},
		{"UnknownTable", []string{"jobs", "submit", "--query", "PREDICT COUNT(ordrs.*, 0, 30, days) > 0 FOR EACH customers.customer_id", "--output", "p"}, `"orders"`},
		{"UnknownColumn", []string{"jobs", "submit", "--query", "PREDICT COUNT(orders.*, 0, 30, days) > 0 FOR EACH customers.customer_idd", "--output", "p"}, `"customer_id"`},
		{"HostileOutputTable", []string{"jobs", "submit", "--query", demoQuery, "--output", `p"; DROP TABLE customers; --`}, "output"},
		{"UnicodeQuoteOutputTable", []string{"jobs", "submit", "--query", demoQuery, "--output", "prédictions’"}, "output"},
		{"HostileReadTable", []string{"read", wh, `customers"; DROP TABLE customers; --`}, "not found"},
		{"UnknownReadColumn", []string{"read", wh, "customers", "--columns", "signup_att"}, `did you mean "signup_at"`},
		{"UnicodeReadTable", []string{"read", wh, "客户"}, "not found"},
		{"BadURL", []string{"tables", "duckdb://host/x.db"}, "host"},
		{"UnknownScheme", []string{"tables", "mysql:///x"}, "no driver"},
		{"UnknownCommand", []string{"frobnicate"}, "unknown command"},
		{"MissingArgs", []string{"read", wh}, "usage"},
		{"BadLimit", []string{"read", wh, "customers", "--limit", "-3"}, "limit"},
		{"BadFormat", []string{"read", wh, "customers", "--format", "xml"}, "format"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := ferry(t, env, tc.args...)
			lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
			if code != 2 || len(lines) != 1 {
				t.Fatalf("exit %d, stderr %q; want exit 2 and one line", code, stderr)
			}
			if !strings.Contains(strings.ToLower(stderr), strings.ToLower(tc.want)) {
				t.Errorf("error %q does not mention %q", stderr, tc.want)
			}
			if strings.Contains(stderr, "panic") || strings.Contains(stderr, "goroutine") {
				t.Errorf("stack trace on bad input: %s", stderr)
			}
		})
	}
	// Nothing was harmed: every table is still there with its rows.
	code, out, stderr := ferry(t, env, "tables", wh)
	if code != 0 {
		t.Fatalf("tables after bad input: exit %d %s", code, stderr)
	}
	for _, name := range []string{"customers", "products", "orders", "order_items", "returns"} {
		if !strings.Contains(out, name) {
			t.Errorf("table %s missing after bad input:\n%s", name, out)
		}
	}
	code, out, _ = ferry(t, env, "read", wh, "customers", "--columns", "customer_id", "--format", "csv")
	if n := strings.Count(out, "\n") - 1; code != 0 || n < 100 {
		t.Errorf("customers has %d rows after bad input (exit %d)", n, code)
	}
	jobs, err := s.Client.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(jobs, func(i, j int) bool { return jobs[i].ID < jobs[j].ID })
	if len(jobs) != 1 {
		t.Errorf("bad submissions created jobs: %d jobs, want the 1 good one", len(jobs))
	}
}
