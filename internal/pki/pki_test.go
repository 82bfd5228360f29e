package pki

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func devCA(t *testing.T) (*CA, string) {
	t.Helper()
	dir := t.TempDir()
	if err := DevCerts(dir, "agent-x", time.Hour); err != nil {
		t.Fatal(err)
	}
	ca, err := LoadCA(filepath.Join(dir, CAFile), filepath.Join(dir, CAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	return ca, dir
}

func csrFor(t *testing.T, key any) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "whoever", Organization: []string{"evil"}}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// TestSignAgent: the certificate names exactly the identity asked for (not
// the request's subject), allows client authentication only and chains to
// the CA; weak keys, a tampered request and bad identities are refused.
func TestSignAgent(t *testing.T) {
	ca, _ := devCA(t)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	id := AgentIdentity{AgentID: "agent-7", Tenant: "acme"}
	tampered := csrFor(t, p256)
	tampered[len(tampered)-5] ^= 0xff
	cases := []struct {
		name string
		csr  []byte
		id   AgentIdentity
		want string // "" for success
	}{
		{"P-256", csrFor(t, p256), id, ""},
		{"Ed25519", csrFor(t, ed), id, ""},
		{"P-224 refused", csrFor(t, p224), id, "curve"},
		{"RSA 1024 refused", csrFor(t, rsa1024), id, "2048"},
		{"tampered request", tampered, id, "refused"},
		{"garbage", []byte("not a csr"), id, "parse"},
		{"bad agent id", csrFor(t, p256), AgentIdentity{AgentID: "a/b", Tenant: "acme"}, "agent id"},
		{"empty tenant", csrFor(t, p256), AgentIdentity{AgentID: "a"}, "tenant"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cert, err := ca.SignAgent(tc.csr, tc.id, time.Hour)
			if tc.want != "" {
				if err == nil || !errors.Is(err, ErrBadCSR) || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("error %v, want ErrBadCSR mentioning %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := IdentityOf(cert)
			if err != nil || got != tc.id {
				t.Fatalf("identity %+v (%v), want %+v", got, err, tc.id)
			}
			if cert.Subject.CommonName != "agent-7" || len(cert.Subject.Organization) != 1 || cert.Subject.Organization[0] != "acme" {
				t.Fatalf("subject %v: the request's subject leaked in", cert.Subject)
			}
			pool := x509.NewCertPool()
			pool.AddCert(ca.Certificate())
			if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
				t.Fatalf("does not verify as a client certificate: %v", err)
			}
			if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
				t.Fatal("an agent certificate verifies as a server certificate")
			}
			if life := cert.NotAfter.Sub(cert.NotBefore); life > time.Hour+2*time.Minute {
				t.Fatalf("lifetime %v, asked for 1h", life)
			}
		})
	}
}

// TestRevocations: a list signed by the CA revokes its serials; a list not
// signed by it, and an older list, are refused; before any list and after
// the list expires every peer is refused (fail closed).
func TestRevocations(t *testing.T) {
	ca, _ := devCA(t)
	other, _ := devCA(t)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	good, err := ca.SignAgent(csrFor(t, key), AgentIdentity{AgentID: "good", Tenant: "t"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	bad, err := ca.SignAgent(csrFor(t, key), AgentIdentity{AgentID: "bad", Tenant: "t"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	r := NewRevocations(ca.Certificate())
	if err := r.Check(good); err == nil {
		t.Fatal("a peer accepted before any revocation list was loaded")
	}
	list := func(c *CA, number int64, validity time.Duration, serials ...*big.Int) []byte {
		var rc []RevokedCert
		for _, s := range serials {
			rc = append(rc, RevokedCert{Serial: s, RevokedAt: time.Now()})
		}
		der, err := c.RevocationList(rc, number, validity)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	if err := r.Update(list(ca, 2, time.Hour, bad.SerialNumber)); err != nil {
		t.Fatal(err)
	}
	if err := r.Check(good); err != nil {
		t.Fatalf("good certificate: %v", err)
	}
	if err := r.Check(bad); !errors.Is(err, ErrRevoked) {
		t.Fatalf("revoked certificate: %v", err)
	}
	if err := r.Update(list(other, 3, time.Hour)); err == nil {
		t.Fatal("a list signed by another CA was accepted")
	}
	if err := r.Update(list(ca, 1, time.Hour)); err == nil {
		t.Fatal("an older list (a replay that would un-revoke) was accepted")
	}
	if err := r.Check(bad); !errors.Is(err, ErrRevoked) {
		t.Fatal("a refused list changed the set")
	}
	if err := r.Update([]byte("garbage")); err == nil {
		t.Fatal("garbage accepted as a revocation list")
	}
	if err := r.Update(list(ca, 4, time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	if err := r.Check(good); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("after the list expired: %v", err)
	}
	// The hook reads the verified leaf of a handshake.
	r.Set([]*big.Int{bad.SerialNumber})
	if err := r.VerifyConnection(tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{bad}}}); !errors.Is(err, ErrRevoked) {
		t.Fatalf("VerifyConnection of a revoked peer: %v", err)
	}
	if err := r.VerifyConnection(tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{good}}}); err != nil {
		t.Fatalf("VerifyConnection of a good peer: %v", err)
	}
}

// TestIdentityInstall: an identity refuses a certificate that is not for
// its key, keeps the key 0600, and new handshakes present the newest
// certificate.
func TestIdentityInstall(t *testing.T) {
	ca, _ := devCA(t)
	dir := filepath.Join(t.TempDir(), "state")
	id, err := NewIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	k1, csr1, err := NewKeyAndCSR("a")
	if err != nil {
		t.Fatal(err)
	}
	k2, csr2, _ := NewKeyAndCSR("a")
	c1, _ := ca.SignAgent(csr1, AgentIdentity{AgentID: "a", Tenant: "t"}, time.Hour)
	c2, _ := ca.SignAgent(csr2, AgentIdentity{AgentID: "a", Tenant: "t"}, time.Hour)
	if err := id.Install(k2, c1.Raw); err == nil {
		t.Fatal("installed a certificate for another key")
	}
	if err := id.Install(k1, c1.Raw); err != nil {
		t.Fatal(err)
	}
	cfg := id.ClientConfig(nil)
	got, _ := cfg.GetClientCertificate(nil)
	if got.Leaf.SerialNumber.Cmp(c1.SerialNumber) != 0 {
		t.Fatal("not the installed certificate")
	}
	if err := id.Install(k2, c2.Raw); err != nil {
		t.Fatal(err)
	}
	got, _ = cfg.GetClientCertificate(nil) // the same config, a later handshake
	if got.Leaf.SerialNumber.Cmp(c2.SerialNumber) != 0 {
		t.Fatal("a later handshake still presents the old certificate")
	}
	loaded, err := LoadIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.Leaf().SerialNumber.Cmp(c2.SerialNumber) != 0 {
		t.Fatal("the state directory holds the old certificate")
	}
	if want := c2.NotBefore.Add(c2.NotAfter.Sub(c2.NotBefore) * 2 / 3); !loaded.RenewAt().Equal(want) {
		t.Fatalf("renew at %v, want two thirds into the life (%v)", loaded.RenewAt(), want)
	}
}
