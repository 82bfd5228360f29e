package agent

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ferry-ai/ferry/connectors"
	"github.com/ferry-ai/ferry/internal/pki"
)

// TestMetricsAddrLoopbackOnly: metrics_addr is accepted on loopback;
// anywhere else (every interface, a LAN address, a host name) it is
// refused naming the setting that allows it, and accepted with that
// setting.
func TestMetricsAddrLoopbackOnly(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:9464", "'[::1]:9464'", "localhost:9464", "127.0.0.2:0"} {
		if _, err := ParseConfig("agent.yaml", []byte(baseConfig+"metrics_addr: "+addr+"\n")); err != nil {
			t.Errorf("metrics_addr %s: %v", addr, err)
		}
	}
	for _, addr := range []string{"0.0.0.0:9464", "':9464'", "10.0.0.5:9464", "agent.internal:9464", "'[::]:9464'"} {
		_, err := ParseConfig("agent.yaml", []byte(baseConfig+"metrics_addr: "+addr+"\n"))
		if err == nil || !strings.Contains(err.Error(), "not a loopback address") || !strings.Contains(err.Error(), "metrics_allow_non_loopback") {
			t.Errorf("metrics_addr %s: error %v, want a refusal naming metrics_allow_non_loopback", addr, err)
		}
		if _, err := ParseConfig("agent.yaml", []byte(baseConfig+"metrics_addr: "+addr+"\nmetrics_allow_non_loopback: true\n")); err != nil {
			t.Errorf("metrics_addr %s with metrics_allow_non_loopback: %v", addr, err)
		}
	}
	if _, err := ParseConfig("agent.yaml", []byte(baseConfig+"metrics_addr: 9464\n")); err == nil {
		t.Error("metrics_addr without a host was accepted")
	}
}

// TestMetricsServedWhileDisconnected: with metrics_addr the running agent
// serves /healthz (200) and /readyz (503 naming control_plane while it
// cannot reach the control plane) and its metrics (connected 0), and stops
// serving when Run returns. Without metrics_addr nothing listens.
func TestMetricsServedWhileDisconnected(t *testing.T) {
	certs := t.TempDir()
	if err := pki.DevCerts(certs, "agent-m", time.Hour); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := Config{AgentID: "agent-m", ControlPlane: "127.0.0.1:1", Engine: "127.0.0.1:1", Warehouse: "nowhere://x",
		TLS: pki.DevFiles(certs, "agent"), MetricsAddr: addr}
	a, err := New(cfg, Options{Connectors: connectors.NewMux(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	get := func(path string) (int, string) {
		t.Helper()
		var last error
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			resp, err := http.Get("http://" + addr + path)
			if err != nil {
				last = err
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return resp.StatusCode, string(b)
		}
		t.Fatalf("GET %s: %v", path, last)
		return 0, ""
	}
	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Errorf("healthz: %d", code)
	}
	code, body := get("/readyz")
	var ready struct{ Failed []string }
	if err := json.Unmarshal([]byte(body), &ready); err != nil || code != http.StatusServiceUnavailable || strings.Join(ready.Failed, ",") != "control_plane" {
		t.Errorf("readyz while disconnected: %d %s", code, body)
	}
	if code, body := get("/metrics"); code != http.StatusOK || !strings.Contains(body, "ferry_agent_connected 0") || !strings.Contains(body, "ferry_agent_rows_read_total 0") {
		t.Errorf("metrics: %d %s", code, body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Error("the metrics listener is still open after Run returned")
	}
}
