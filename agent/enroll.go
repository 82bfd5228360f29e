package agent

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"
	"google.golang.org/grpc"

	"github.com/ferry-ai/ferry/controlplane/agentapi"
	"github.com/ferry-ai/ferry/controlplane/api"
	"github.com/ferry-ai/ferry/internal/pki"
)

// EnrollmentConfig makes the agent get its certificate from Ferry's CA
// instead of files: it enrolls once with a one-time token, keeps its key
// and certificate in StateDir, and renews the certificate before it
// expires, without a restart.
type EnrollmentConfig struct {
	// API is the host:port of the control plane's HTTPS API, where the
	// agent enrolls.
	API string `yaml:"api"`
	// TokenFile holds the one-time enrollment token; it is read only when
	// StateDir holds no certificate yet.
	TokenFile string `yaml:"token_file"`
	// StateDir keeps the agent's key (0600) and certificate.
	StateDir string `yaml:"state_dir"`
}

// setupIdentity loads the enrolled identity from the state directory, or
// enrolls with the token when there is none.
func (a *Agent) setupIdentity(ctx context.Context) error {
	e := a.cfg.Enrollment
	id, err := pki.LoadIdentity(e.StateDir)
	switch {
	case err == nil:
		a.log.Info("agent identity loaded", "state_dir", e.StateDir, "serial", id.Leaf().SerialNumber.Text(16),
			"not_after", id.Leaf().NotAfter.UTC().Format(time.RFC3339))
	case errors.Is(err, fs.ErrNotExist):
		if id, err = a.enroll(ctx); err != nil {
			return err
		}
	default:
		return err
	}
	if cn := id.Leaf().Subject.CommonName; cn != a.cfg.AgentID {
		return fmt.Errorf("agent identity in %s is for agent %q, the config says %q", e.StateDir, cn, a.cfg.AgentID)
	}
	a.identity.Store(id)
	return nil
}

// enroll generates a key, sends a certificate request with the one-time
// token and keeps the certificate it gets. The key never leaves the agent.
func (a *Agent) enroll(ctx context.Context) (*pki.Identity, error) {
	e := a.cfg.Enrollment
	raw, err := os.ReadFile(e.TokenFile)
	if err != nil {
		return nil, fmt.Errorf("enroll: not enrolled yet and the token is unreadable: %w", err)
	}
	token := strings.TrimSpace(string(raw))
	if token == "" {
		return nil, fmt.Errorf("enroll: token file %s is empty", e.TokenFile)
	}
	key, csr, err := pki.NewKeyAndCSR(a.cfg.AgentID)
	if err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	body, _ := json.Marshal(api.EnrollRequest{Token: token, CSR: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}))})
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext:       func(ctx context.Context, _, addr string) (net.Conn, error) { return a.egress.dial(ctx, addr) },
		TLSClientConfig:   &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: a.roots},
		ForceAttemptHTTP2: true,
	}}
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+e.API+api.PathEnroll, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("enroll at %s: %w", e.API, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("enroll at %s: %w", e.API, err)
	}
	if resp.StatusCode != http.StatusOK {
		var apiErr api.Error
		_ = json.Unmarshal(data, &apiErr)
		return nil, fmt.Errorf("enroll at %s: %s: %s", e.API, resp.Status, apiErr.Error)
	}
	var out api.EnrollResponse
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("enroll at %s: answer: %w", e.API, err)
	}
	block, _ := pem.Decode([]byte(out.Certificate))
	if block == nil {
		return nil, fmt.Errorf("enroll at %s: the answer holds no certificate", e.API)
	}
	if err := verifyIssued(block.Bytes, a.roots); err != nil {
		return nil, fmt.Errorf("enroll at %s: %w", e.API, err)
	}
	id, err := pki.NewIdentity(e.StateDir)
	if err != nil {
		return nil, err
	}
	if err := id.Install(key, block.Bytes); err != nil {
		return nil, err
	}
	a.log.Info("agent enrolled", "tenant", out.Tenant, "serial", id.Leaf().SerialNumber.Text(16),
		"not_after", out.NotAfter.Format(time.RFC3339), "state_dir", e.StateDir)
	return id, nil
}

// verifyIssued checks that a certificate chains to the agent's CA bundle and
// allows client authentication.
func verifyIssued(der []byte, roots *x509.CertPool) error {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return fmt.Errorf("issued certificate: %w", err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return fmt.Errorf("issued certificate does not verify against the CA bundle: %w", err)
	}
	return nil
}

// renewLoop renews the certificate after two thirds of its lifetime, until
// ctx ends, retrying with backoff. New connections present the new
// certificate at once; the agent does not restart.
func (a *Agent) renewLoop(ctx context.Context) {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval, b.MaxElapsedTime = time.Second, time.Minute, 0
	for {
		id := a.identity.Load()
		wait := time.Until(id.RenewAt())
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		if err := a.renew(ctx, id); err != nil {
			if ctx.Err() != nil {
				return
			}
			retry := b.NextBackOff()
			level := "warn"
			if time.Now().After(id.Leaf().NotAfter) {
				level = "error: the certificate has expired; enroll again with a new token"
			}
			a.log.Warn("certificate renewal failed", "error", err.Error(), "retry_in", retry.String(), "severity", level)
			select {
			case <-ctx.Done():
				return
			case <-time.After(retry):
			}
			continue
		}
		b.Reset()
	}
}

// renew asks the control plane for a certificate for a new key.
func (a *Agent) renew(ctx context.Context, id *pki.Identity) error {
	key, csr, err := pki.NewKeyAndCSR(a.cfg.AgentID)
	if err != nil {
		return err
	}
	conn, err := a.egress.client(a.cfg.ControlPlane, grpc.WithTransportCredentials(a.tls))
	if err != nil {
		return fmt.Errorf("dial control plane %s: %w", a.cfg.ControlPlane, err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := agentapi.NewAgentServiceClient(conn).Renew(ctx, &agentapi.RenewRequest{CsrDer: csr})
	if err != nil {
		return fmt.Errorf("renew: %w", err)
	}
	if err := verifyIssued(resp.CertificateDer, a.roots); err != nil {
		return fmt.Errorf("renew: %w", err)
	}
	old := id.Leaf().SerialNumber.Text(16)
	if err := id.Install(key, resp.CertificateDer); err != nil {
		return fmt.Errorf("renew: %w", err)
	}
	a.log.Info("certificate renewed", "old_serial", old, "serial", id.Leaf().SerialNumber.Text(16),
		"not_after", id.Leaf().NotAfter.UTC().Format(time.RFC3339))
	return nil
}
