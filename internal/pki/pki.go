// Package pki makes and loads the certificates and TLS configurations Ferry's
// components use: TLS 1.3 only, mutual authentication on every listener that
// parties other than end users dial.
//
// The certificate authority (CA) is held by the control plane. Agents enroll
// with a one-time token: they generate their key, send a certificate request
// and get a short-lived client certificate naming their agent ID and tenant
// (CA.SignAgent, Identity), which they renew before it expires. Revoked
// certificates are refused by every listener (Revocations). DevCerts makes a
// development CA and certificates for a single machine.
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
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// File names written by DevCerts into its directory.
const (
	CAFile = "ca.pem"
)

// Identities DevCerts makes a certificate and key for, as <name>.pem and
// <name>-key.pem.
var devIdentities = []struct {
	name   string
	server bool
	client bool
}{
	{"engine", true, false},
	{"controlplane", true, false},
	{"agent", false, true},
	{"user", false, true},
}

// DevCerts writes a development CA and one certificate per component into dir
// (created 0700; keys 0600). Server certificates are valid for localhost,
// 127.0.0.1 and ::1. The agent certificate's common name is agentID.
func DevCerts(dir, agentID string, validity time.Duration) error {
	if validity <= 0 {
		validity = 30 * 24 * time.Hour
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("dev certs: %w", err)
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("dev certs: CA key: %w", err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "Ferry development CA", Organization: []string{"Ferry (development only)"}},
		NotBefore:             now.Add(-5 * time.Minute),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("dev certs: CA: %w", err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	if err := writePEM(filepath.Join(dir, CAFile), "CERTIFICATE", caDER, 0o644); err != nil {
		return err
	}
	caKeyDER, err := x509.MarshalECPrivateKey(caKey)
	if err != nil {
		return fmt.Errorf("dev certs: CA key: %w", err)
	}
	if err := writePEM(filepath.Join(dir, CAKeyFile), "EC PRIVATE KEY", caKeyDER, 0o600); err != nil {
		return err
	}
	for _, id := range devIdentities {
		cn := id.name
		if id.name == "agent" && agentID != "" {
			cn = agentID
		}
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return fmt.Errorf("dev certs: %s key: %w", id.name, err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: serial(),
			Subject:      pkix.Name{CommonName: cn, Organization: []string{"Ferry (development only)"}},
			NotBefore:    now.Add(-5 * time.Minute),
			NotAfter:     now.Add(validity),
			KeyUsage:     x509.KeyUsageDigitalSignature,
		}
		if id.server {
			tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
			tmpl.DNSNames = []string{"localhost"}
			tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
		}
		if id.client {
			tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
		}
		if ident := (AgentIdentity{AgentID: cn, Tenant: DefaultTenant}); id.name == "agent" && ident.Validate() == nil {
			tmpl.URIs = []*url.URL{ident.URI()}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			return fmt.Errorf("dev certs: %s: %w", id.name, err)
		}
		keyDER, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			return fmt.Errorf("dev certs: %s key: %w", id.name, err)
		}
		if err := writePEM(filepath.Join(dir, id.name+".pem"), "CERTIFICATE", der, 0o644); err != nil {
			return err
		}
		if err := writePEM(filepath.Join(dir, id.name+"-key.pem"), "EC PRIVATE KEY", keyDER, 0o600); err != nil {
			return err
		}
	}
	return nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return n
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	data := pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
	if err := os.WriteFile(path, data, mode); err != nil {
		return fmt.Errorf("dev certs: write %s: %w", path, err)
	}
	return nil
}

// Files names a certificate, its key and the CA bundle that verifies peers.
type Files struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	CA   string `yaml:"ca"`
}

// DevFiles returns the Files DevCerts wrote in dir for identity name
// ("engine", "controlplane", "agent", "user").
func DevFiles(dir, name string) Files {
	return Files{
		Cert: filepath.Join(dir, name+".pem"),
		Key:  filepath.Join(dir, name+"-key.pem"),
		CA:   filepath.Join(dir, CAFile),
	}
}

func (f Files) load() (tls.Certificate, *x509.CertPool, error) {
	if f.Cert == "" || f.Key == "" || f.CA == "" {
		return tls.Certificate{}, nil, errors.New("tls: cert, key and ca must all be set")
	}
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("tls: load key pair %s: %w", f.Cert, err)
	}
	pool, err := LoadCAPool(f.CA)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	return cert, pool, nil
}

// LoadCAPool reads a PEM bundle of CA certificates.
func LoadCAPool(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tls: read CA bundle: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("tls: CA bundle %s holds no PEM certificate", path)
	}
	return pool, nil
}

// ServerConfig returns a TLS 1.3 server configuration that requires and
// verifies a client certificate signed by the CA in f.
func (f Files) ServerConfig() (*tls.Config, error) {
	cert, pool, err := f.load()
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}, nil
}

// ServerConfigNoClientCert returns a TLS 1.3 server configuration for a
// listener whose clients authenticate another way (the user API's bearer
// tokens); it is used only for end-user endpoints.
func (f Files) ServerConfigNoClientCert() (*tls.Config, error) {
	cert, _, err := f.load()
	if err != nil {
		return nil, err
	}
	return &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}}, nil
}

// ClientConfig returns a TLS 1.3 client configuration presenting the
// certificate in f and verifying servers against its CA.
func (f Files) ClientConfig() (*tls.Config, error) {
	cert, pool, err := f.load()
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
	}, nil
}

// PeerCommonName returns the common name of the verified peer certificate of
// a TLS connection state, or "" when there is none.
func PeerCommonName(cs tls.ConnectionState) string {
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return ""
	}
	return cs.VerifiedChains[0][0].Subject.CommonName
}
