package agent_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/ferry-ai/ferry/agent"
	"github.com/ferry-ai/ferry/engine"
	"github.com/ferry-ai/ferry/internal/graph"
	"github.com/ferry-ai/ferry/internal/link"
	"github.com/ferry-ai/ferry/internal/pki"
	"github.com/ferry-ai/ferry/internal/syntable"
)

// engineChildEnv makes the test binary run as an engine process (so the
// agent's heap can be measured apart from the engine's, which grows with
// the table it holds).
const engineChildEnv = "FERRY_TEST_ENGINE_CERTS"

func TestMain(m *testing.M) {
	if dir := os.Getenv(engineChildEnv); dir != "" {
		os.Exit(runEngineChild(dir))
	}
	os.Exit(m.Run())
}

func runEngineChild(certs string) int {
	srv, err := engine.New(engine.Config{Addr: "127.0.0.1:0", TLS: pki.DevFiles(certs, "engine"), QuotaBytes: 2 << 30,
		WatchDirs: []string{}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(srv.Addr().String())
	ctx, cancel := context.WithCancel(context.Background())
	go func() { // the parent closes stdin to stop the child
		_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
		cancel()
	}()
	if err := srv.Serve(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// TestBackpressureBoundsAgentHeap streams a table and one ten times larger
// to an engine in another process and compares the agent's peak heap: the
// agent reads the next batch only when the engine has acknowledged enough
// of the earlier ones, so its heap is set by the window, not the table.
func TestBackpressureBoundsAgentHeap(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 4 million rows")
	}
	certs := t.TempDir()
	if err := pki.DevCerts(certs, "agent-bp", time.Hour); err != nil {
		t.Fatal(err)
	}
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), engineChildEnv+"="+certs)
	child.Stderr = os.Stderr
	stdin, _ := child.StdinPipe()
	stdout, _ := child.StdoutPipe()
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); _ = child.Wait() }()
	addr, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("engine child: %v", err)
	}
	tlsCfg, err := pki.DevFiles(certs, "agent").ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	eng, err := flight.NewClientWithMiddleware(strings.TrimSpace(addr), nil, nil, grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)))
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	ctx := context.Background()

	// A lower GC target keeps the sampled heap close to what is live, so
	// the comparison measures retention, not collector lag on a busy
	// machine.
	defer debug.SetGCPercent(debug.SetGCPercent(25))
	const batchRows = 16384
	opts := agent.StreamOptions{WindowBatches: 4}
	window := int64(opts.WindowBatches) * batchRows * syntable.BytesPerRow
	upload := func(job string, rows int64) (peak uint64) {
		t.Helper()
		action(t, eng, link.ActionStartJob, link.JobSpec{JobID: job, Tables: []graph.Table{{Name: "events"}}})
		defer action(t, eng, link.ActionPurge, link.JobRef{JobID: job})
		runtime.GC()
		base := heapObjects()
		var max atomic.Uint64
		stop := make(chan struct{})
		sampled := make(chan struct{})
		go func() {
			defer close(sampled)
			tick := time.NewTicker(time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					if h := heapObjects(); h > max.Load() {
						max.Store(h)
					}
				}
			}
		}()
		r := syntable.New(memory.DefaultAllocator, rows, batchRows)
		ack, err := agent.StreamTable(ctx, eng, job, "events", r, opts)
		r.Release()
		close(stop)
		<-sampled
		if err != nil {
			t.Fatalf("%s: %v", job, err)
		}
		if ack.Rows != rows {
			t.Fatalf("%s: engine kept %d rows of %d", job, ack.Rows, rows)
		}
		growth := uint64(0)
		if m := max.Load(); m > base {
			growth = m - base
		}
		t.Logf("%d rows (%.0f MB of Arrow data): agent heap peak %.1f MB above its start", rows, float64(rows*syntable.BytesPerRow)/1e6, float64(growth)/1e6)
		return growth
	}
	small := upload("bp-small", 400_000)
	large := upload("bp-large", 4_000_000)
	// Flat: the large table may cost a little more (GC timing), never ten
	// times; and both stay within a few windows.
	if limit := small*2 + 8<<20; large > limit {
		t.Errorf("agent heap peak %d bytes for the 10x table, %d for the small one: memory grows with the table", large, small)
	}
	if limit := uint64(4*window + 16<<20); large > limit {
		t.Errorf("agent heap peak %d bytes, over %d (4 windows of %d + 16 MiB)", large, limit, window)
	}
}

func heapObjects() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func action(t *testing.T, eng flight.Client, typ string, body any) {
	t.Helper()
	raw, _ := json.Marshal(body)
	stream, err := eng.DoAction(context.Background(), &flight.Action{Type: typ, Body: raw})
	if err != nil {
		t.Fatalf("%s: %v", typ, err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatalf("%s: %v", typ, err)
	}
}
