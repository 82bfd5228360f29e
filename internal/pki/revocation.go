package pki

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"sync"
	"time"
)

// ErrRevoked is returned (wrapped) when a peer presents a revoked
// certificate.
var ErrRevoked = errors.New("certificate revoked")

// Revocations is the set of revoked certificate serials a listener refuses.
// The control plane, which keeps the source of truth, sets it directly; the
// engine follows the CA-signed revocation list the control plane publishes.
// It is safe for concurrent use.
type Revocations struct {
	ca *x509.Certificate

	mu         sync.RWMutex
	serials    map[string]struct{}
	loaded     bool
	number     *big.Int
	nextUpdate time.Time // zero: no expiry (set directly)
}

// NewRevocations returns an empty set for lists signed by ca. Until a list
// is loaded (Update or Set) it refuses every peer: a listener that should
// check revocations fails closed.
func NewRevocations(ca *x509.Certificate) *Revocations {
	return &Revocations{ca: ca, serials: map[string]struct{}{}}
}

// Set replaces the set with serials.
func (r *Revocations) Set(serials []*big.Int) {
	m := make(map[string]struct{}, len(serials))
	for _, s := range serials {
		m[s.Text(16)] = struct{}{}
	}
	r.mu.Lock()
	r.serials, r.loaded, r.nextUpdate = m, true, time.Time{}
	r.mu.Unlock()
}

// Update replaces the set from a revocation list (DER) signed by the CA. A
// list with a lower number than the one held is refused, so a replayed old
// list cannot un-revoke a certificate.
func (r *Revocations) Update(crlDER []byte) error {
	crl, err := x509.ParseRevocationList(crlDER)
	if err != nil {
		return fmt.Errorf("revocation list: %w", err)
	}
	if err := crl.CheckSignatureFrom(r.ca); err != nil {
		return fmt.Errorf("revocation list: not signed by the CA: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.number != nil && crl.Number != nil && crl.Number.Cmp(r.number) < 0 {
		return fmt.Errorf("revocation list number %s is older than the %s held", crl.Number, r.number)
	}
	m := make(map[string]struct{}, len(crl.RevokedCertificateEntries))
	for _, e := range crl.RevokedCertificateEntries {
		m[e.SerialNumber.Text(16)] = struct{}{}
	}
	r.serials, r.loaded, r.number, r.nextUpdate = m, true, crl.Number, crl.NextUpdate
	return nil
}

// Check returns an error wrapping ErrRevoked when cert is revoked, or an
// error when no current list is held.
func (r *Revocations) Check(cert *x509.Certificate) error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	switch {
	case !r.loaded:
		return errors.New("no revocation list loaded yet: refusing clients until one is")
	case !r.nextUpdate.IsZero() && time.Now().After(r.nextUpdate):
		return fmt.Errorf("revocation list expired at %s: refusing clients until a new one is loaded", r.nextUpdate.Format(time.RFC3339))
	}
	if _, ok := r.serials[cert.SerialNumber.Text(16)]; ok {
		return fmt.Errorf("%q (serial %x): %w", cert.Subject.CommonName, cert.SerialNumber, ErrRevoked)
	}
	return nil
}

// VerifyConnection is a tls.Config.VerifyConnection hook: it refuses a
// handshake whose verified client certificate is revoked.
func (r *Revocations) VerifyConnection(cs tls.ConnectionState) error {
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return nil // no client certificate: ClientAuth decides
	}
	return r.Check(cs.VerifiedChains[0][0])
}

// Follow fetches the revocation list from url with client every interval
// until ctx ends, updating r. Failures are logged; r keeps its list until
// the list expires.
func (r *Revocations) Follow(ctx context.Context, client *http.Client, url string, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := r.Fetch(ctx, client, url); err != nil && ctx.Err() == nil {
			log.Warn("revocation list refresh failed", "url", url, "error", err.Error())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Fetch gets the revocation list once from url and updates r.
func (r *Revocations) Fetch(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("revocation list: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("revocation list: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("revocation list: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("revocation list: %s from %s", resp.Status, url)
	}
	return r.Update(body)
}
