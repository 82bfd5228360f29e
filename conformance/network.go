package conformance

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-ai/ferry/connectors"
	"github.com/ferry-ai/ferry/internal/faultproxy"
)

// NetworkHarness is implemented by harnesses whose service is reached over
// TCP. The suite puts its own listeners in front of the service to check
// connect errors (L2), connect deadlines (L3), reconnection after a restart
// (L6) and truncated streams (R7).
type NetworkHarness interface {
	Harness
	// Addr is the service's host:port.
	Addr() string
	// OpenAt opens the database or schema behind c (a connection from
	// Open) by dialling addr instead of Addr, with creds (nil: the
	// harness's own). It returns the error of opening; it does not fail t.
	OpenAt(ctx context.Context, c *connectors.Conn, addr string, creds map[string]string, opts *connectors.Options) (*connectors.Conn, error)
	// BadCredentials returns credentials the service refuses and the
	// secret in them, which no error may contain.
	BadCredentials() (creds map[string]string, secret string)
}

func networkHarness(t *testing.T, h Harness, q Quirks) NetworkHarness {
	t.Helper()
	nh, ok := h.(NetworkHarness)
	if !ok {
		notSupported(t, q, "embedded or local: no network connection to fail")
	}
	return nh
}

// openErr opens through addr and pings; it returns the first error.
func openErr(ctx context.Context, nh NetworkHarness, base *connectors.Conn, addr string, creds map[string]string) error {
	c, err := nh.OpenAt(ctx, base, addr, creds, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Ping(ctx); err != nil {
		return err
	}
	_, err = c.Tables(ctx)
	return err
}

// testConnectErrors: a bad host, a closed port and bad credentials each give
// a distinct error that names what is wrong, and none contains the secret
// (L2).
func testConnectErrors(t *testing.T, h Harness, q Quirks) {
	nh := networkHarness(t, h, q)
	base, _ := checkedOpen(t, h)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, port, err := net.SplitHostPort(nh.Addr())
	if err != nil {
		t.Fatalf("harness address %q: %v", nh.Addr(), err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	_, closedPort, _ := net.SplitHostPort(closed)
	badCreds, secret := nh.BadCredentials()
	cases := []struct {
		name, addr string
		creds      map[string]string
		want       []string // any one of these in the message
	}{
		{"bad host", net.JoinHostPort("no-such-host.invalid", port), nil, []string{"no-such-host.invalid"}},
		{"closed port", closed, nil, []string{closedPort}},
		{"bad credentials", nh.Addr(), badCreds, []string{"auth", "password", "role", "user", "credential", "denied", "forbidden", "signature", "access key", "AccessDenied", "InvalidAccessKeyId"}},
	}
	seen := map[string]string{}
	for _, tc := range cases {
		err := openErr(ctx, nh, base, tc.addr, tc.creds)
		if err == nil {
			t.Errorf("%s: connected, want an error", tc.name)
			continue
		}
		msg := err.Error()
		if secret != "" && strings.Contains(msg, secret) {
			t.Errorf("%s: error contains the secret: %q", tc.name, msg)
		}
		ok := false
		for _, w := range tc.want {
			ok = ok || strings.Contains(strings.ToLower(msg), strings.ToLower(w))
		}
		if !ok {
			t.Errorf("%s: error %q names none of %q", tc.name, msg, tc.want)
		}
		if other, dup := seen[msg]; dup {
			t.Errorf("%s and %s give the same error %q", tc.name, other, msg)
		}
		seen[msg] = tc.name
		t.Logf("%s: %v", tc.name, err)
	}
}

// testConnectDeadline: against a server that accepts and never answers, open
// returns by the context's deadline (L3).
func testConnectDeadline(t *testing.T, h Harness, q Quirks) {
	nh := networkHarness(t, h, q)
	base, _ := checkedOpen(t, h)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c) // hold it open, say nothing
			mu.Unlock()
		}
	}()
	defer func() {
		l.Close()
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = openErr(ctx, nh, base, l.Addr().String(), nil)
	if err == nil {
		t.Fatal("connected to a silent server")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("open took %v with a 500 ms deadline", d)
	}
	t.Logf("silent server: %v after %v", err, time.Since(start).Round(time.Millisecond))
}

// startProxy puts a fault proxy in front of the service for the test.
func startProxy(t *testing.T, target string) *faultproxy.Proxy {
	t.Helper()
	p, err := faultproxy.Start(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// testReconnect: after the service restarts (every connection dropped, the
// port refusing meanwhile), the same Conn reads again without being reopened
// (L6).
func testReconnect(t *testing.T, h Harness, q Quirks) {
	nh := networkHarness(t, h, q)
	base, mem := checkedOpen(t, h)
	sequence(t, base, mem, "t", 5000, "A")
	p := startProxy(t, nh.Addr())
	ctx := context.Background()
	c, err := nh.OpenAt(ctx, base, p.Addr(), nil, &connectors.Options{Allocator: mem})
	if err != nil {
		t.Fatalf("open through proxy: %v", err)
	}
	defer c.Close()
	if _, cols, _ := readAll(t, c, "t", connectors.ReadOptions{Columns: []string{"id"}}); len(cols[0]) != 5000 {
		t.Fatalf("before restart: %d rows", len(cols[0]))
	}
	addr := p.Addr()
	p.Down()
	time.Sleep(300 * time.Millisecond)
	if err := p.Listen(addr); err != nil {
		t.Fatalf("proxy restart: %v", err)
	}
	// The connector must notice its connections died and make new ones:
	// the first read after the restart succeeds.
	if n, err := countRows(ctx, c, "t"); err != nil || n != 5000 {
		t.Fatalf("first read after the service restarted: %d rows, %v", n, err)
	}
}

func countRows(ctx context.Context, c *connectors.Conn, table string) (int64, error) {
	r, err := c.Read(ctx, table, connectors.ReadOptions{Columns: []string{"id"}})
	if err != nil {
		return 0, err
	}
	defer r.Release()
	var n int64
	for r.Next() {
		n += r.RecordBatch().NumRows()
	}
	return n, r.Err()
}

// testTruncatedStream: a server killed mid-read ends the read with an
// error, never a short success (R7).
func testTruncatedStream(t *testing.T, h Harness, q Quirks) {
	nh := networkHarness(t, h, q)
	base, mem := checkedOpen(t, h)
	const total = 2_000_000
	sequence(t, base, mem, "big", total, "truncate-me")
	p := startProxy(t, nh.Addr())
	ctx := context.Background()
	c, err := nh.OpenAt(ctx, base, p.Addr(), nil, &connectors.Options{Allocator: mem})
	if err != nil {
		t.Fatalf("open through proxy: %v", err)
	}
	defer c.Close()
	r, err := c.Read(ctx, "big", connectors.ReadOptions{BatchSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	if !r.Next() {
		t.Fatalf("no first batch: %v", r.Err())
	}
	rows := r.RecordBatch().NumRows()
	p.Down() // the server dies: open connections reset, new ones refused
	for r.Next() {
		rows += r.RecordBatch().NumRows()
	}
	switch {
	case r.Err() == nil && rows != total:
		t.Fatalf("the server died after the first batch; the read ended without an error after %d of %d rows", rows, total)
	case r.Err() == nil:
		// Not a truncation: the connector had fetched the rest already.
		t.Logf("the server died after the first batch; all %d rows had been fetched", rows)
	default:
		t.Logf("the server died after the first batch: %d rows, then %v", rows, r.Err())
	}
}
