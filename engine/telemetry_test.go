package engine

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferry-ai/ferry/agent"
	"github.com/ferry-ai/ferry/internal/link"
	"github.com/ferry-ai/ferry/internal/pki"
	"github.com/ferry-ai/ferry/internal/syntable"
)

// TestMetricsListener: with MetricsAddr the engine serves /metrics,
// /healthz and /readyz over HTTPS without a client certificate; after a
// table is uploaded and the job purged, the metrics count its rows,
// batches and bytes, the purge by reason and a refused Flight action by
// method and code — and no label carries the job ID or the table name.
// Without MetricsAddr nothing listens.
func TestMetricsListener(t *testing.T) {
	var certs string
	srv, dial := testEngine(t, func(c *Config) {
		c.MetricsAddr = "127.0.0.1:0"
		certs = strings.TrimSuffix(c.TLS.CA, "/ca.pem")
	})
	if srv.MetricsAddr() == nil {
		t.Fatal("no metrics listener")
	}
	pool, err := pki.LoadCAPool(pki.DevFiles(certs, "engine").CA)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool}}}
	base := "https://" + srv.MetricsAddr().String()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := hc.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/healthz"); code != http.StatusOK {
		t.Errorf("healthz: %d %s", code, body)
	}
	code, body := get("/readyz")
	var ready struct{ Checks map[string]string }
	if err := json.Unmarshal([]byte(body), &ready); err != nil || code != http.StatusOK || ready.Checks["flight_listener"] != "ok" {
		t.Errorf("readyz: %d %s", code, body)
	}

	const job = "j-metrics0123456789"
	c := dial(srv.Addr().String())
	ctx := context.Background()
	startJob(t, c, job)
	r := syntable.New(memory.DefaultAllocator, 50_000, 10_000)
	ack, err := agent.StreamTable(ctx, c, job, "events", r, agent.StreamOptions{})
	r.Release()
	if err != nil {
		t.Fatal(err)
	}
	purgeBody, _ := json.Marshal(link.JobRef{JobID: job, Reason: link.PurgeFailed})
	stream, err := c.DoAction(ctx, &flight.Action{Type: link.ActionPurge, Body: purgeBody})
	if err == nil {
		_, err = stream.Recv()
	}
	if err != nil {
		t.Fatal(err)
	}
	if stream, err := c.DoAction(ctx, &flight.Action{Type: "ferry.job.nope"}); err == nil {
		_, _ = stream.Recv()
	}

	code, metrics := get("/metrics")
	if code != http.StatusOK {
		t.Fatalf("metrics: %d", code)
	}
	for _, want := range []string{
		"ferry_engine_rows_received_total 50000\n",
		"ferry_engine_batches_received_total 5",
		"ferry_engine_bytes_received_total " + strconv.FormatFloat(float64(ack.Bytes), 'g', -1, 64),
		`ferry_engine_purges_total{reason="failed"} 1`,
		"ferry_engine_jobs_active 0",
		`ferry_engine_rpc_errors_total{code="Unimplemented",method="/arrow.flight.protocol.FlightService/DoAction"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(metrics, job) || strings.Contains(metrics, "events") {
		t.Errorf("metrics carry the job ID or the table name")
	}

	off, _ := testEngine(t)
	if off.MetricsAddr() != nil {
		t.Errorf("metrics listener without MetricsAddr: %v", off.MetricsAddr())
	}
}
