package loadtest

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// TestLoadSmall runs the load test at a small size against a control plane
// built from this module: every job succeeds, every agent stays connected,
// no heartbeat is lost, the latencies are measured, and the control plane
// stops cleanly on SIGTERM with every agent connected.
func TestLoadSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs ferry-controlplane")
	}
	const agents, jobs = 50, 10
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var progress strings.Builder
	r, err := Run(ctx, Config{
		Agents:            agents,
		Jobs:              jobs,
		HeartbeatInterval: time.Second,
		Idle:              1500 * time.Millisecond,
		JobTime:           200 * time.Millisecond,
		Dir:               t.TempDir(),
		Progress:          &progress,
	})
	if err != nil {
		t.Fatal(err)
	}
	var table strings.Builder
	if err := r.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s%s", progress.String(), table.String())
	defer func() {
		if t.Failed() {
			if b, err := os.ReadFile(r.LogPath); err == nil {
				t.Logf("control plane log (tail):\n%s", b[max(0, len(b)-8000):])
			}
		}
	}()

	if r.Errors != 0 {
		t.Errorf("%d errors (%s): %q", r.Errors, kinds(r.ErrorKinds), r.FirstErrors)
	}
	if r.Succeeded != jobs || r.NotSucceeded != 0 {
		t.Errorf("%d jobs succeeded, %d did not; want %d and 0", r.Succeeded, r.NotSucceeded, jobs)
	}
	if r.ConnectedAtEnd != agents || r.StaleAgents != 0 {
		t.Errorf("%d of %d agents connected at the end, %d stale; want all connected, none stale", r.ConnectedAtEnd, agents, r.StaleAgents)
	}
	if r.LogErrors != 0 || r.LogWarnings != 0 {
		t.Errorf("control plane logged %d errors and %d warnings: %v", r.LogErrors, r.LogWarnings, r.LogMessages)
	}
	if r.Stop != "SIGTERM" || r.ExitCode != 0 {
		t.Errorf("control plane stopped by %s with exit code %d, want SIGTERM and 0", r.Stop, r.ExitCode)
	}
	// Finite, measured latencies: one sample per agent or job, the
	// percentiles ordered and within the run.
	for _, c := range []struct {
		name string
		d    Dist
		n    int
	}{
		{"connect", r.Welcome, agents},
		{"submit", r.Submit, jobs},
		{"submit to agent", r.SubmitToAgent, jobs},
		{"dispatch", r.Dispatch, jobs},
		{"queue", r.Queue, jobs},
		{"complete", r.Complete, jobs},
		{"heartbeat lag", r.HeartbeatLag, agents},
	} {
		// The control plane writes last-seen times once per heartbeat
		// interval, so an agent whose first heartbeat is not written yet
		// has no heartbeat-lag sample.
		n := c.d.N
		if c.name == "heartbeat lag" && n > 0 && n <= c.n {
			n = c.n
		}
		if n != c.n || c.d.P50 < 0 || c.d.P50 > c.d.P99 || c.d.P99 > c.d.Max || c.d.Max > time.Minute {
			t.Errorf("%s latency %+v: want %d samples, 0 <= p50 <= p99 <= max <= 1m", c.name, c.d, c.n)
		}
	}
	if r.Complete.P50 < 200*time.Millisecond {
		t.Errorf("submit to succeeded p50 %s is shorter than the simulated work (200ms)", r.Complete.P50)
	}
	if r.Total.CPUSeconds <= 0 || r.PeakRSS < r.RSSStart || r.RSSStart <= 0 || r.HeartbeatsSent < agents {
		t.Errorf("control plane CPU %.2f s, RSS at start %d, peak %d, heartbeats %d: want all measured", r.Total.CPUSeconds, r.RSSStart, r.PeakRSS, r.HeartbeatsSent)
	}
	// Every job went to an agent of its own: the scheduler gives a job to
	// an idle agent only.
	if r.AgentsUsed < 1 || r.MaxPerAgent < 1 {
		t.Errorf("jobs ran on %d agents, at most %d on one", r.AgentsUsed, r.MaxPerAgent)
	}
}

func TestDist(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	d := newDist(ds)
	if d.N != 100 || d.P50 != 50*time.Millisecond || d.P99 != 99*time.Millisecond || d.Max != 100*time.Millisecond {
		t.Errorf("newDist(1..100 ms) = %+v, want n=100 p50=50ms p99=99ms max=100ms", d)
	}
	if d := newDist([]time.Duration{7}); d.P50 != 7 || d.P99 != 7 || d.Max != 7 {
		t.Errorf("newDist of one sample = %+v", d)
	}
	if d := newDist(nil); d.N != 0 || d.String() != "no samples" {
		t.Errorf("newDist(nil) = %+v %q", d, d.String())
	}
}

func TestParseGoroutineDump(t *testing.T) {
	dump := `SIGQUIT: quit
PC=0x0 m=0 sigcode=0

goroutine 1 gp=0x1 m=nil [select]:
main.main()
	/src/main.go:10 +0x1

goroutine 7 gp=0x2 m=nil [chan receive]:
google.golang.org/grpc/internal/transport.(*http2Server).keepalive(0x1)
	/x.go:1 +0x1
created by google.golang.org/grpc/internal/transport.NewServerTransport in goroutine 6
	/x.go:2 +0x1

goroutine 8 gp=0x3 m=nil [IO wait]:
some.func()
	/x.go:1 +0x1
created by google.golang.org/grpc/internal/transport.NewServerTransport in goroutine 6
	/x.go:2 +0x1

goroutine 9 gp=0x4 m=nil [select, 2 minutes]:
created by github.com/ferry-ai/ferry/controlplane.(*agentService).Connect in goroutine 8
`
	n, by := parseGoroutineDump([]byte(dump))
	if n != 4 {
		t.Errorf("counted %d goroutines, want 4", n)
	}
	want := []goroutineCount{
		{"google.golang.org/grpc/internal/transport.NewServerTransport", 2},
		{"(main or runtime)", 1},
		{"github.com/ferry-ai/ferry/controlplane.(*agentService).Connect", 1},
	}
	if len(by) != len(want) {
		t.Fatalf("grouped %+v, want %+v", by, want)
	}
	for i := range want {
		if by[i] != want[i] {
			t.Errorf("group %d = %+v, want %+v", i, by[i], want[i])
		}
	}
}

func TestScanLog(t *testing.T) {
	log := `{"time":"t","level":"INFO","msg":"agent connected"}
{"time":"t","level":"WARN","msg":"agent timed out","agent":"a"}
{"time":"t","level":"WARN","msg":"agent timed out","agent":"b"}
{"time":"t","level":"ERROR","msg":"metadata db"}
goroutine 1 [running]:
`
	w, e, by := scanLog([]byte(log))
	if w != 2 || e != 1 || by["WARN agent timed out"] != 2 || by["ERROR metadata db"] != 1 || len(by) != 2 {
		t.Errorf("scanLog = %d warnings, %d errors, %v", w, e, by)
	}
}
