package agent

import (
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health/grpc_health_v1"
)

// countingListener counts the connections made to it.
func countingListener(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var n atomic.Int64
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Close()
		}
	}()
	return l.Addr().String(), &n
}

// TestEgressAllowlist: the agent's gRPC clients reach the configured
// endpoints and nothing else: a connection to any other address is refused
// in the dialer, before a packet leaves, with an error naming it.
func TestEgressAllowlist(t *testing.T) {
	allowed, allowedHits := countingListener(t)
	other, otherHits := countingListener(t)
	e := newEgress(allowed, "engine.example:8815")
	for _, tc := range []struct {
		target  string
		hits    *atomic.Int64
		refused bool
	}{
		{allowed, allowedHits, false},
		{other, otherHits, true},
		{"localhost:" + strings.Split(allowed, ":")[1], allowedHits, true}, // same socket, another name: not configured
	} {
		before := tc.hits.Load()
		cc, err := e.client(tc.target, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err = grpc_health_v1.NewHealthClient(cc).Check(ctx, &grpc_health_v1.HealthCheckRequest{}, grpc.WaitForReady(false))
		cancel()
		cc.Close()
		if err == nil {
			t.Fatalf("%s: the call succeeded against a listener that hangs up", tc.target)
		}
		hits := tc.hits.Load() - before
		switch {
		case tc.refused && (hits != 0 || !strings.Contains(err.Error(), "egress to "+tc.target+" refused")):
			t.Errorf("%s: %d connections made, error %v; want none and the egress refusal", tc.target, hits, err)
		case !tc.refused && hits == 0:
			t.Errorf("%s: the allowed endpoint was never dialled (%v)", tc.target, err)
		}
	}
}

// TestAgentEgressIsItsConfig: an agent's allowlist is exactly its control
// plane and engine endpoints.
func TestAgentEgressIsItsConfig(t *testing.T) {
	e := newEgress("cp.example:7443", "engine.example:8815", "cp.example:7443", "")
	if got := strings.Join(e.allowed, ","); got != "cp.example:7443,engine.example:8815" {
		t.Fatalf("allowlist %q", got)
	}
	if _, err := e.dial(context.Background(), "169.254.169.254:80"); err == nil || !strings.Contains(err.Error(), "169.254.169.254:80") {
		t.Fatalf("metadata endpoint: %v", err)
	}
}
