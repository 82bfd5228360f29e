package agent_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-ai/ferry/internal/syncbuf"

	"github.com/ferry-ai/ferry/agent"
	"github.com/ferry-ai/ferry/connectors/all"
	"github.com/ferry-ai/ferry/controlplane"
	"github.com/ferry-ai/ferry/controlplane/api"
	"github.com/ferry-ai/ferry/controlplane/apiclient"
	"github.com/ferry-ai/ferry/engine"
	"github.com/ferry-ai/ferry/internal/faultproxy"
	"github.com/ferry-ai/ferry/internal/graph"
	"github.com/ferry-ai/ferry/internal/pki"
)

// TestEnrollRotateRevoke runs the agent's certificate life against a real
// control plane (the CA) and a real engine, over real mutual TLS:
//
//   - the agent enrolls once with a one-time token: it generates its key
//     (kept 0600 in its state directory), sends only a certificate request,
//     and gets a certificate naming its agent ID and tenant; the token does
//     not work twice, and a wrong or expired token is refused;
//   - it renews the certificate before it expires without a restart: once
//     the first certificate has expired, a dropped connection is
//     re-established with the new one;
//   - once revoked, its next connection is refused by the control plane at
//     once and by the engine after its next revocation-list refresh.
func TestEnrollRotateRevoke(t *testing.T) {
	certs := t.TempDir()
	if err := pki.DevCerts(certs, "unused", time.Hour); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const token, validity = "admin-token-for-the-test", 3 * time.Second
	cpLogs := &syncbuf.Buffer{}
	cp, err := controlplane.New(ctx, controlplane.Config{
		DataDir: t.TempDir(), APIAddr: "127.0.0.1:0", AgentAddr: "127.0.0.1:0",
		TLS: pki.DevFiles(certs, "controlplane"), CAKey: filepath.Join(certs, pki.CAKeyFile), AgentCertValidity: validity,
		APIToken: token, Planner: controlplane.PlannerFunc(func(string, *graph.Graph) ([]string, error) { return nil, errors.New("no jobs here") }),
		Logger: slog.New(slog.NewJSONHandler(cpLogs, nil)), HeartbeatInterval: 200 * time.Millisecond, ShutdownTimeout: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	cpDone := make(chan struct{})
	go func() { _ = cp.Serve(ctx); cp.Close(); close(cpDone) }()
	defer func() { cancel(); <-cpDone }()
	apiAddr, agentAddr := cp.Addrs()

	eng, err := engine.New(engine.Config{Addr: "127.0.0.1:0", TLS: pki.DevFiles(certs, "engine"), WatchDirs: []string{},
		CRLURL: "https://" + apiAddr.String() + api.PathCRL, CRLRefresh: 100 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	engDone := make(chan struct{})
	go func() { _ = eng.Serve(ctx); close(engDone) }()
	defer func() { cancel(); <-engDone }()

	pool, err := pki.LoadCAPool(filepath.Join(certs, pki.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	admin, err := apiclient.New("https://"+apiAddr.String(), token, pool)
	if err != nil {
		t.Fatal(err)
	}
	enrollment, err := admin.CreateEnrollment(ctx, "agent-7", "", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(enrollment.Token, "fet_") || strings.Contains(cpLogs.String(), enrollment.Token) {
		t.Fatalf("token %q: want the fet_ prefix and never in the logs", enrollment.Token)
	}

	// Bad tokens, at the HTTP level, with a valid request.
	enrollWith := func(tok string) (int, string) {
		_, csr, err := pki.NewKeyAndCSR("x")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := json.Marshal(api.EnrollRequest{Token: tok, CSR: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}))})
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool}}}
		resp, err := c.Post("https://"+apiAddr.String()+api.PathEnroll, "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return resp.StatusCode, b.String()
	}
	short, err := admin.CreateEnrollment(ctx, "agent-8", "", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	for name, tok := range map[string]string{"wrong": "fet_not-a-token", "empty": "", "expired": short.Token} {
		if code, body := enrollWith(tok); code != http.StatusUnauthorized || !strings.Contains(body, "invalid, expired or already used") {
			t.Errorf("%s token: %d %s", name, code, body)
		}
	}

	// The agent enrolls at start.
	state := filepath.Join(t.TempDir(), "state")
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(enrollment.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	warehouse := filepath.Join(t.TempDir(), "wh.db")
	proxy, err := faultproxy.Start(agentAddr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	agentLogs := &syncbuf.Buffer{}
	cfg := agent.Config{
		AgentID: "agent-7", ControlPlane: proxy.Addr(), Engine: eng.Addr().String(), Warehouse: "duckdb://" + warehouse,
		TLS:        pki.Files{CA: filepath.Join(certs, pki.CAFile)},
		Enrollment: &agent.EnrollmentConfig{API: apiAddr.String(), TokenFile: tokenFile, StateDir: state},
		Heartbeat:  200 * time.Millisecond,
	}
	a, err := agent.New(cfg, agent.Options{Connectors: all.Mux(), Logger: slog.New(slog.NewJSONHandler(agentLogs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	agentCtx, stopAgent := context.WithCancel(ctx)
	agentDone := make(chan error, 1)
	go func() { agentDone <- a.Run(agentCtx) }()
	defer func() { stopAgent(); <-agentDone }()

	connectedSince := func() time.Time {
		agents, err := admin.Agents(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, ag := range agents {
			if ag.ID == "agent-7" && ag.Connected {
				return ag.ConnectedAt
			}
		}
		return time.Time{}
	}
	waitFor(t, 10*time.Second, "the enrolled agent connects", func() bool { return !connectedSince().IsZero() })
	first := readCert(t, filepath.Join(state, pki.IdentityFile))
	id, err := pki.IdentityOf(first)
	if err != nil || id != (pki.AgentIdentity{AgentID: "agent-7", Tenant: pki.DefaultTenant}) {
		t.Fatalf("enrolled certificate names %+v (%v), want agent-7 of the operator's tenant", id, err)
	}
	if fi, err := os.Stat(filepath.Join(state, pki.IdentityFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("agent key file: %v, %v; want mode 0600", fi, err)
	}
	if code, body := enrollWith(enrollment.Token); code != http.StatusUnauthorized {
		t.Fatalf("the used token enrolled again: %d %s", code, body)
	}
	idFile, _ := os.ReadFile(filepath.Join(state, pki.IdentityFile))
	keyPEM := idFile[bytes.Index(idFile, []byte("-----BEGIN EC PRIVATE KEY")):]
	keyLine := strings.Split(string(keyPEM), "\n")[1] // 64 base64 characters of the key
	if len(keyLine) < 40 || strings.Contains(cpLogs.String(), keyLine) {
		t.Fatalf("the agent's key (line %q) reached the control plane's logs, or the identity file holds no key", keyLine)
	}

	// Rotation: a new certificate (new serial, new key) before the first
	// expires; after that expiry a fresh connection still works.
	waitFor(t, 2*validity, "the agent renews its certificate", func() bool {
		c := readCertMaybe(filepath.Join(state, pki.IdentityFile))
		return c != nil && c.SerialNumber.Cmp(first.SerialNumber) != 0
	})
	renewed := readCert(t, filepath.Join(state, pki.IdentityFile))
	if pub, ok := renewed.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || pub.Equal(first.PublicKey) {
		t.Fatal("renewal kept the old key")
	}
	if time.Until(first.NotAfter) > 0 {
		time.Sleep(time.Until(first.NotAfter) + 200*time.Millisecond)
	}
	before := connectedSince()
	proxy.Cut() // the session's connection drops; the agent redials
	waitFor(t, 10*time.Second, "the agent reconnects with its renewed certificate", func() bool {
		since := connectedSince()
		return since.After(before)
	})
	if err := handshake(eng.Addr().String(), state, pool); err != nil {
		t.Fatalf("engine refused the renewed certificate: %v", err)
	}
	if !strings.Contains(agentLogs.String(), "certificate renewed") {
		t.Error("the agent did not log its renewal")
	}
	t.Logf("enrolled serial %x, renewed serial %x (valid %s), reconnected after the first expired", first.SerialNumber, renewed.SerialNumber, validity)

	// Revocation.
	rev, err := admin.Revoke(ctx, "agent-7", "laptop stolen")
	if err != nil {
		t.Fatal(err)
	}
	if rev.Certificates < 2 {
		t.Fatalf("revocation covers %d certificates, want the enrolled and the renewed", rev.Certificates)
	}
	waitFor(t, 5*time.Second, "the revoked agent's session ends", func() bool { return connectedSince().IsZero() })
	time.Sleep(time.Second) // the agent retries; each retry must be refused
	if !connectedSince().IsZero() {
		t.Fatal("the revoked agent connected again")
	}
	if !strings.Contains(cpLogs.String(), "revoked agent refused") {
		t.Error("the control plane did not log refusing the revoked agent's reconnection")
	}
	waitFor(t, 5*time.Second, "the engine refuses the revoked agent", func() bool {
		return handshake(eng.Addr().String(), state, pool) != nil
	})
	if _, err := admin.CreateEnrollment(ctx, "agent-7", "", time.Minute); err == nil {
		t.Fatal("a revoked agent ID got a new enrollment token")
	}
}

// handshake completes a TLS handshake and one read with the identity kept
// in state (the server refuses a revoked client after the handshake, when
// it has read the client's certificate).
func handshake(addr, state string, pool *x509.CertPool) error {
	id, err := pki.LoadIdentity(state)
	if err != nil {
		return err
	}
	cfg := id.ClientConfig(pool)
	cfg.NextProtos = []string{"h2"}
	d := &net.Dialer{Timeout: 2 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	// TLS 1.3: the client's certificate is checked after the client's
	// handshake finishes; a refusal arrives as an alert on the first read.
	_, _ = c.Write([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 1)
	if _, err := c.Read(buf); err != nil {
		return fmt.Errorf("read after handshake: %w", err)
	}
	return nil
}

func readCertMaybe(path string) *x509.Certificate {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil
	}
	return c
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	c := readCertMaybe(path)
	if c == nil {
		t.Fatalf("no certificate in %s", path)
	}
	return c
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting until %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
