package telemetry

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ferry-ai/ferry/internal/syncbuf"
)

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, rec.Body.String()
}

// TestReadyz: every check passes → 200 with each check "ok"; a failing
// check → 503 naming it (and only it), without the error's text, which is
// logged instead; a check that hangs → 503 "timed out" within the timeout.
func TestReadyz(t *testing.T) {
	var logs syncbuf.Buffer
	r := New(&Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil)), CheckTimeout: 200 * time.Millisecond})
	h := r.Handler()
	code, body := get(t, h, PathReadyz)
	if code != http.StatusOK || !strings.Contains(body, `"ready"`) {
		t.Fatalf("no checks: %d %s", code, body)
	}

	r.AddCheck("metadata_db", func(context.Context) error { return nil })
	code, body = get(t, h, PathReadyz)
	var res Readiness
	if err := json.Unmarshal([]byte(body), &res); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	if code != http.StatusOK || res.Status != "ready" || res.Checks["metadata_db"] != "ok" || len(res.Failed) != 0 {
		t.Fatalf("passing check: %d %+v", code, res)
	}

	const secretish = "dial tcp 10.1.2.3:5432: password authentication failed"
	r.AddCheck("agent_listener", func(context.Context) error { return errors.New(secretish) })
	r.AddCheck("flight_listener", func(ctx context.Context) error { time.Sleep(5 * time.Second); return nil })
	start := time.Now()
	code, body = get(t, h, PathReadyz)
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("readyz took %s with a 200ms check timeout", took)
	}
	res = Readiness{}
	if err := json.Unmarshal([]byte(body), &res); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	if code != http.StatusServiceUnavailable || res.Status != "not ready" {
		t.Fatalf("failing check: %d %s", code, body)
	}
	if strings.Join(res.Failed, ",") != "agent_listener,flight_listener" {
		t.Errorf("failed = %v, want agent_listener and flight_listener", res.Failed)
	}
	if res.Checks["agent_listener"] != "failed" || res.Checks["flight_listener"] != "timed out" || res.Checks["metadata_db"] != "ok" {
		t.Errorf("checks = %v", res.Checks)
	}
	if strings.Contains(body, "10.1.2.3") || strings.Contains(body, "password") {
		t.Errorf("readyz body carries the error's text: %s", body)
	}
	if !strings.Contains(logs.String(), "10.1.2.3") || !strings.Contains(logs.String(), `"check":"agent_listener"`) {
		t.Errorf("the failed check's error was not logged: %s", logs.String())
	}
}

// TestHealthzAndMethods: /healthz is 200 without checks; the endpoints
// answer GET and HEAD only; other paths are 404.
func TestHealthzAndMethods(t *testing.T) {
	r := New(nil)
	r.AddCheck("never", func(context.Context) error { return errors.New("down") })
	h := r.Handler()
	if code, body := get(t, h, PathHealthz); code != http.StatusOK || !strings.Contains(body, `"ok"`) {
		t.Errorf("healthz with a failing readiness check: %d %s", code, body)
	}
	for _, p := range []string{PathHealthz, PathReadyz, PathMetrics} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, p, nil))
		if rec.Code != http.StatusMethodNotAllowed {
			t.Errorf("POST %s: %d", p, rec.Code)
		}
	}
	if code, _ := get(t, h, "/debug/pprof/"); code != http.StatusNotFound {
		t.Errorf("unknown path: %d", code)
	}
}

// TestMetricsServed: /metrics serves the registry's metrics in the text
// format, with the Go and process collectors; a collector that fails is
// left out and the rest are still served.
func TestMetricsServed(t *testing.T) {
	var logs syncbuf.Buffer
	r := New(&Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	c := r.Counter("ferry_test_rows_total", "Rows.")
	c.Add(42)
	r.GaugeFunc("ferry_test_active", "Active.", func() float64 { return 3 })
	r.CounterVec("ferry_test_jobs_total", "Jobs.", Label{Name: "outcome", Values: []string{"succeeded", "failed"}}).Inc("succeeded")
	r.GaugeSet("ferry_test_broken", "Fails.", Label{Name: "state", Values: []string{"a"}}, func(context.Context) (map[string]float64, error) {
		return nil, errors.New("database is locked")
	})
	code, body := get(t, r.Handler(), PathMetrics)
	if code != http.StatusOK {
		t.Fatalf("metrics: %d %s", code, body)
	}
	for _, want := range []string{
		"ferry_test_rows_total 42", "ferry_test_active 3", `ferry_test_jobs_total{outcome="succeeded"} 1`,
		"go_goroutines", "process_cpu_seconds_total",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(body, "ferry_test_broken") {
		t.Errorf("the failing collector was served")
	}
	if !strings.Contains(logs.String(), "database is locked") {
		t.Errorf("the collection error was not logged: %s", logs.String())
	}
}

// TestLabelsBounded: a value outside a label's declared set — a job ID, a
// table name, a method a client made up — is recorded as "other", in
// counters, histograms, gauge sets and RPC errors; a label without a
// declared set keeps at most 64 distinct values. The job ID never appears
// in what /metrics serves.
func TestLabelsBounded(t *testing.T) {
	const jobID = "j-5be0f3a1c2d4e6f7"
	r := New(nil)
	states := Label{Name: "state", Values: []string{"queued", "succeeded"}}
	cv := r.CounterVec("ferry_test_transitions_total", "T.", states, Label{Name: "to", Values: []string{"succeeded"}})
	cv.Inc("queued", "succeeded")
	cv.Inc(jobID, "succeeded")
	cv.Inc("queued", "customers")
	hv := r.HistogramVec("ferry_test_stage_seconds", "S.", nil, Label{Name: "stage", Values: []string{"train"}})
	hv.Observe(1, "train")
	hv.Observe(2, jobID)
	r.GaugeSet("ferry_test_jobs", "J.", states, func(context.Context) (map[string]float64, error) {
		return map[string]float64{"queued": 2, jobID: 1, "SELECT 1": 4}, nil
	})
	open := r.CounterVec("ferry_test_requests_total", "R.", Label{Name: "route"})
	for i := range 100 {
		open.Inc(fmt.Sprintf("/v1/route%d", i))
	}
	rpc := r.RPCErrors("ferry_test_rpc_errors_total", "E.", &testService)
	rpc.Observe("/ferry.test.Svc/Do", status.Error(codes.NotFound, "job "+jobID+" not found"))
	rpc.Observe("/ferry.test.Svc/"+jobID, status.Error(codes.Internal, "x"))
	rpc.Observe("/ferry.test.Svc/Do", nil)

	_, body := get(t, r.Handler(), PathMetrics)
	if strings.Contains(body, jobID) || strings.Contains(body, "customers") || strings.Contains(body, "SELECT") {
		t.Fatalf("an unbounded value became a label:\n%s", grepLines(body, "ferry_test"))
	}
	for _, want := range []string{
		`ferry_test_transitions_total{state="queued",to="succeeded"} 1`,
		`ferry_test_transitions_total{state="other",to="succeeded"} 1`,
		`ferry_test_transitions_total{state="queued",to="other"} 1`,
		`ferry_test_stage_seconds_count{stage="other"} 1`,
		`ferry_test_jobs{state="queued"} 2`,
		`ferry_test_jobs{state="succeeded"} 0`,
		`ferry_test_jobs{state="other"} 5`,
		`ferry_test_requests_total{route="other"} 36`,
		`ferry_test_rpc_errors_total{code="NotFound",method="/ferry.test.Svc/Do"} 1`,
		`ferry_test_rpc_errors_total{code="Internal",method="other"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// Every labelled series of the test's metrics has a value from its
	// declared set.
	fams, err := r.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				if strings.Contains(lp.GetValue(), "j-") {
					t.Errorf("%s has label %s=%q", f.GetName(), lp.GetName(), lp.GetValue())
				}
			}
		}
	}
	n := 0
	for _, f := range fams {
		if f.GetName() == "ferry_test_requests_total" {
			n = len(f.GetMetric())
		}
	}
	if n != 65 {
		t.Errorf("open label: %d series, want 64 values and other", n)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

var testService = grpc.ServiceDesc{
	ServiceName: "ferry.test.Svc",
	Methods:     []grpc.MethodDesc{{MethodName: "Do"}},
	Streams:     []grpc.StreamDesc{{StreamName: "Watch"}},
}

// TestRPCInterceptors: server and client interceptors count failed calls
// by method and code (a context error as Canceled); a client stream counts
// once, not at io.EOF.
func TestRPCInterceptors(t *testing.T) {
	r := New(nil)
	e := r.RPCErrors("ferry_test_rpc_errors_total", "E.", &testService)
	ctx := context.Background()
	unary := e.UnaryServer()
	_, _ = unary(ctx, nil, &grpc.UnaryServerInfo{FullMethod: "/ferry.test.Svc/Do"}, func(context.Context, any) (any, error) {
		return nil, status.Error(codes.PermissionDenied, "no")
	})
	_, _ = unary(ctx, nil, &grpc.UnaryServerInfo{FullMethod: "/ferry.test.Svc/Do"}, func(context.Context, any) (any, error) { return nil, nil })
	stream := e.StreamServer()
	_ = stream(nil, nil, &grpc.StreamServerInfo{FullMethod: "/ferry.test.Svc/Watch"}, func(any, grpc.ServerStream) error {
		return fmt.Errorf("session: %w", context.Canceled)
	})
	client := e.UnaryClient()
	_ = client(ctx, "/ferry.test.Svc/Do", nil, nil, nil, func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error {
		return status.Error(codes.Unavailable, "down")
	})
	sc := e.StreamClient()
	cs, err := sc(ctx, &grpc.StreamDesc{}, nil, "/ferry.test.Svc/Watch", func(context.Context, *grpc.StreamDesc, *grpc.ClientConn, string, ...grpc.CallOption) (grpc.ClientStream, error) {
		return &fakeClientStream{errs: []error{nil, status.Error(codes.Aborted, "gone"), status.Error(codes.Aborted, "gone")}}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		_ = cs.RecvMsg(nil)
	}
	cs2, _ := sc(ctx, &grpc.StreamDesc{}, nil, "/ferry.test.Svc/Watch", func(context.Context, *grpc.StreamDesc, *grpc.ClientConn, string, ...grpc.CallOption) (grpc.ClientStream, error) {
		return &fakeClientStream{errs: []error{io.EOF}}, nil
	})
	_ = cs2.RecvMsg(nil)

	_, body := get(t, r.Handler(), PathMetrics)
	for _, want := range []string{
		`ferry_test_rpc_errors_total{code="PermissionDenied",method="/ferry.test.Svc/Do"} 1`,
		`ferry_test_rpc_errors_total{code="Canceled",method="/ferry.test.Svc/Watch"} 1`,
		`ferry_test_rpc_errors_total{code="Unavailable",method="/ferry.test.Svc/Do"} 1`,
		`ferry_test_rpc_errors_total{code="Aborted",method="/ferry.test.Svc/Watch"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s\n%s", want, grepLines(body, "ferry_test"))
		}
	}
	if strings.Contains(body, `code="OK"`) {
		t.Errorf("a successful call was counted")
	}
}

type fakeClientStream struct {
	grpc.ClientStream
	errs []error
}

func (f *fakeClientStream) RecvMsg(any) error {
	err := f.errs[0]
	f.errs = f.errs[1:]
	return err
}

// TestServeListener: Serve answers on its listener (plain and TLS) and
// returns nil once ctx ends; ListenerCheck passes while it listens and
// fails after.
func TestServeListener(t *testing.T) {
	r := New(nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	check := ListenerCheck(ln.Addr())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeListener(ctx, ln, r.Handler(), nil) }()
	resp, err := http.Get("http://" + ln.Addr().String() + PathHealthz)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(b, []byte("ok")) {
		t.Fatalf("healthz: %d %s", resp.StatusCode, b)
	}
	if err := check(ctx); err != nil {
		t.Errorf("listener check while serving: %v", err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	if err := check(context.Background()); err == nil {
		t.Errorf("listener check passed after the listener closed")
	}

	// TLS: a server certificate, no client certificate asked for.
	srv := httptest.NewUnstartedServer(nil)
	srv.StartTLS()
	cert := srv.TLS.Certificates
	client := srv.Client()
	srv.Close()
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		done <- ServeListener(ctx, ln, r.Handler(), &tls.Config{Certificates: cert, MinVersion: tls.VersionTLS13})
	}()
	resp, err = client.Get("https://" + ln.Addr().String() + PathMetrics)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("metrics over TLS: %d", resp.StatusCode)
	}
	if err := Serve(ctx, "256.0.0.1:1", r.Handler(), nil); err == nil {
		t.Errorf("Serve on a bad address succeeded")
	}
}
