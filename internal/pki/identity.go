package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"
)

// IdentityFile is the file (mode 0600) an enrolled agent keeps in its state
// directory: its certificate and then its private key, PEM. One file, so a
// renewal replaces the pair in one atomic rename: a reader, or an agent
// restarting after a crash mid-renewal, never finds a key that does not
// match the certificate.
const IdentityFile = "identity.pem"

// NewKeyAndCSR generates a private key (ECDSA P-256) and a certificate
// request (DER) for it. The key stays with the caller; only the request is
// sent to the CA.
func NewKeyAndCSR(commonName string) (*ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: commonName}}, key)
	if err != nil {
		return nil, nil, fmt.Errorf("certificate request: %w", err)
	}
	return key, csr, nil
}

// Identity is an agent's current key and certificate. Rotation swaps them
// atomically: connections made after Install present the new certificate,
// open ones keep theirs. It is safe for concurrent use.
type Identity struct {
	dir string
	cur atomic.Pointer[tls.Certificate]
}

// LoadIdentity reads the key and certificate kept in dir. It returns an
// error wrapping os.ErrNotExist when the agent has not enrolled yet.
func LoadIdentity(dir string) (*Identity, error) {
	data, err := os.ReadFile(filepath.Join(dir, IdentityFile))
	if err != nil {
		return nil, fmt.Errorf("agent identity in %s: %w", dir, err)
	}
	cert, err := tls.X509KeyPair(data, data)
	clear(data)
	if err != nil {
		return nil, fmt.Errorf("agent identity in %s: %w", filepath.Join(dir, IdentityFile), err)
	}
	id := &Identity{dir: dir}
	id.cur.Store(&cert)
	return id, nil
}

// NewIdentity returns an empty identity kept in dir (created 0700).
func NewIdentity(dir string) (*Identity, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("agent identity: %w", err)
	}
	return &Identity{dir: dir}, nil
}

// Install keeps key and its certificate (DER): it replaces the state
// directory's identity file atomically (0600) and makes them the ones new
// connections present.
func (id *Identity) Install(key *ecdsa.PrivateKey, certDER []byte) error {
	leaf, err := x509.ParseCertificate(certDER)
	if err != nil {
		return fmt.Errorf("agent identity: certificate: %w", err)
	}
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || !pub.Equal(&key.PublicKey) {
		return errors.New("agent identity: the certificate is not for this key")
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return fmt.Errorf("agent identity: %w", err)
	}
	data := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certDER}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})...)
	err = writeAtomic(filepath.Join(id.dir, IdentityFile), data, 0o600)
	clear(data)
	clear(keyDER)
	if err != nil {
		return err
	}
	id.cur.Store(&tls.Certificate{Certificate: [][]byte{certDER}, PrivateKey: key, Leaf: leaf})
	return nil
}

func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return fmt.Errorf("agent identity: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("agent identity: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("agent identity: write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("agent identity: sync %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("agent identity: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("agent identity: %w", err)
	}
	return nil
}

// Leaf returns the current certificate, or nil before enrollment.
func (id *Identity) Leaf() *x509.Certificate {
	c := id.cur.Load()
	if c == nil {
		return nil
	}
	if c.Leaf == nil {
		if leaf, err := x509.ParseCertificate(c.Certificate[0]); err == nil {
			return leaf
		}
	}
	return c.Leaf
}

// RenewAt returns when the current certificate should be renewed: after two
// thirds of its lifetime.
func (id *Identity) RenewAt() time.Time {
	leaf := id.Leaf()
	if leaf == nil {
		return time.Time{}
	}
	life := leaf.NotAfter.Sub(leaf.NotBefore)
	return leaf.NotBefore.Add(life * 2 / 3)
}

// ClientConfig returns a TLS 1.3 client configuration presenting the
// current certificate at every handshake and verifying servers against
// roots.
func (id *Identity) ClientConfig(roots *x509.CertPool) *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: roots, GetClientCertificate: id.GetClientCertificate}
}

// GetClientCertificate returns the current certificate; it is a
// tls.Config.GetClientCertificate hook.
func (id *Identity) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	c := id.cur.Load()
	if c == nil {
		return nil, errors.New("agent identity: not enrolled")
	}
	return c, nil
}
