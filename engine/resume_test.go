package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/cenkalti/backoff/v4"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/ferry-ai/ferry/agent"
	"github.com/ferry-ai/ferry/internal/faultproxy"
	"github.com/ferry-ai/ferry/internal/graph"
	"github.com/ferry-ai/ferry/internal/link"
	"github.com/ferry-ai/ferry/internal/pki"
	"github.com/ferry-ai/ferry/internal/syntable"
)

// testEngine starts an engine on loopback with development certificates and
// returns it with a client TLS configuration for the agent identity.
func testEngine(t testing.TB, tweak ...func(*Config)) (*Server, flightClientFactory) {
	t.Helper()
	certs := t.TempDir()
	if err := pki.DevCerts(certs, "agent-resume", time.Hour); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Addr: "127.0.0.1:0", TLS: pki.DevFiles(certs, "engine"), QuotaBytes: 1 << 30,
		WatchDirs: []string{t.TempDir()}, Logger: slog.New(slog.DiscardHandler)}
	for _, f := range tweak {
		f(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = srv.Serve(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	tlsCfg, err := pki.DevFiles(certs, "agent").ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	return srv, func(addr string) flight.Client {
		c, err := flight.NewClientWithMiddleware(addr, nil, nil, grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
}

type flightClientFactory func(addr string) flight.Client

func startJob(t testing.TB, c flight.Client, jobID string) {
	t.Helper()
	body, _ := json.Marshal(link.JobSpec{JobID: jobID, Tables: []graph.Table{{Name: "events"}}})
	stream, err := c.DoAction(context.Background(), &flight.Action{Type: link.ActionStartJob, Body: body})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatalf("start job: %v", err)
	}
}

// TestResumeAfterRandomCuts cuts the agent's connection to the engine at
// random byte offsets (TCP resets mid-message, mid-TLS-record) while a
// table uploads. The upload resumes each time from the last acknowledged
// batch, and the engine ends with exactly the source rows: every id once,
// none twice, none missing.
func TestResumeAfterRandomCuts(t *testing.T) {
	const rows, batchRows = 400_000, 4096
	cases := []struct {
		name        string
		seed        uint64
		compression string
		window      int
		maxCut      int64 // cut within this many client bytes of a connection's start
	}{
		{"seed 1", 1, agent.CompressionNone, 8, 3 << 20},
		{"seed 2, window of one batch", 2, agent.CompressionNone, 1, 3 << 20},
		{"seed 3, zstd", 3, agent.CompressionZSTD, 8, 400 << 10},
		{"seed 4, wide window", 4, agent.CompressionNone, 64, 3 << 20},
	}
	srv, dial := testEngine(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := faultproxy.Start(srv.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			rng := rand.New(rand.NewPCG(tc.seed, 42))
			const cuts = 8
			n := 0
			p.CutAfter(func() int64 {
				n++
				if n > cuts {
					return 0
				}
				// Anywhere from inside the TLS handshake to maxCut in.
				return 200 + rng.Int64N(tc.maxCut)
			})
			c := dial(p.Addr())
			job := fmt.Sprintf("resume-%d", tc.seed)
			startJob(t, c, job)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			r := syntable.New(memory.DefaultAllocator, rows, batchRows)
			defer r.Release()
			ack, err := agent.StreamTable(ctx, c, job, "events", r, agent.StreamOptions{
				Compression: tc.compression, WindowBatches: tc.window,
				NewBackOff: func() backoff.BackOff {
					b := backoff.NewExponentialBackOff()
					b.InitialInterval, b.MaxInterval, b.MaxElapsedTime = 5*time.Millisecond, 50*time.Millisecond, 30*time.Second
					return b
				},
			})
			if err != nil {
				t.Fatalf("upload: %v", err)
			}
			accepted, cut := p.Stats()
			if cut < cuts {
				t.Fatalf("only %d of %d connections were cut: the test did not test resumption", cut, accepted)
			}
			j, err := srv.store.Get(job, "agent-resume")
			if err != nil {
				t.Fatal(err)
			}
			held := j.Tables()["events"]
			if err := syntable.CheckIDs(held, rows); err != nil {
				t.Fatalf("after %d cuts: %v", cut, err)
			}
			if prog := j.Progress("events"); ack.Rows != rows || prog.Rows != rows || !prog.Complete || prog.Batches != (rows+batchRows-1)/batchRows {
				t.Fatalf("ack %+v, engine progress %+v; want %d rows", ack, prog, rows)
			}
			t.Logf("%d connections, %d cut; engine holds %d rows in %d batches, each once", accepted, cut, ack.Rows, ack.Batches)
			if _, err := srv.store.Purge(job, "agent-resume", "completed"); err != nil {
				t.Fatal(err)
			}
		})
	}
}
