package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"
)

// CAKeyFile is the CA's private key DevCerts writes beside CAFile. Only the
// control plane, which signs agents' certificates, reads it.
const CAKeyFile = "ca-key.pem"

// AgentIdentity is what an agent certificate asserts: the agent's ID and
// its tenant. Both are in the certificate's common name and organization,
// and in a URI SAN ferry://tenant/<tenant>/agent/<id>.
type AgentIdentity struct {
	AgentID string
	Tenant  string
}

var identRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// Validate checks that both parts are 1–63 characters of letters, digits,
// '.', '_' and '-', starting with a letter or digit.
func (id AgentIdentity) Validate() error {
	if !identRE.MatchString(id.AgentID) {
		return fmt.Errorf("agent id %q: want 1-63 letters, digits, '.', '_' or '-'", id.AgentID)
	}
	if !identRE.MatchString(id.Tenant) {
		return fmt.Errorf("tenant %q: want 1-63 letters, digits, '.', '_' or '-'", id.Tenant)
	}
	return nil
}

// DefaultTenant is the tenant of the development certificates' agent and of
// an agent whose certificate names no tenant.
const DefaultTenant = "default"

// URI returns the identity's URI SAN.
func (id AgentIdentity) URI() *url.URL {
	return &url.URL{Scheme: "ferry", Host: "tenant", Path: "/" + id.Tenant + "/agent/" + id.AgentID}
}

// IdentityOf reads the agent identity from a certificate Ferry's CA issued.
func IdentityOf(cert *x509.Certificate) (AgentIdentity, error) {
	for _, u := range cert.URIs {
		if u.Scheme != "ferry" || u.Host != "tenant" {
			continue
		}
		parts := strings.Split(strings.TrimPrefix(u.Path, "/"), "/")
		if len(parts) != 3 || parts[1] != "agent" {
			continue
		}
		id := AgentIdentity{Tenant: parts[0], AgentID: parts[2]}
		if id.Validate() == nil && id.AgentID == cert.Subject.CommonName {
			return id, nil
		}
	}
	return AgentIdentity{}, fmt.Errorf("certificate %q (serial %x) names no agent identity", cert.Subject.CommonName, cert.SerialNumber)
}

// CA is Ferry's certificate authority, held by the control plane: it signs
// agents' certificate requests and the revocation list.
type CA struct {
	cert *x509.Certificate
	key  crypto.Signer
	pem  []byte
}

// LoadCA reads the CA certificate and its private key (PEM).
func LoadCA(certFile, keyFile string) (*CA, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("ca: %s and %s: %w", certFile, keyFile, err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("ca: %s: %w", certFile, err)
	}
	if !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("ca: %s is not a CA certificate (basic constraints or cert-sign usage missing)", certFile)
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("ca: %s: key cannot sign", keyFile)
	}
	block, _ := pem.Decode(certPEM)
	return &CA{cert: cert, key: signer, pem: pem.EncodeToMemory(block)}, nil
}

// Certificate returns the CA certificate.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// CertificatePEM returns the CA certificate as PEM, the bundle agents
// verify the control plane and the engine with.
func (ca *CA) CertificatePEM() []byte { return ca.pem }

// Errors of SignAgent.
var (
	ErrBadCSR = errors.New("certificate request refused")
)

// SignAgent issues a client certificate for id to the key of a certificate
// request (DER). The request's own subject and extensions are ignored: the
// certificate names exactly id, allows client authentication only, and is
// valid from a minute ago for validity. Only ECDSA P-256/P-384, Ed25519 and
// RSA keys of at least 2048 bits are accepted.
func (ca *CA) SignAgent(csrDER []byte, id AgentIdentity, validity time.Duration) (*x509.Certificate, error) {
	if err := id.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadCSR, err)
	}
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, fmt.Errorf("%w: parse: %w", ErrBadCSR, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: signature does not match its key: %w", ErrBadCSR, err)
	}
	switch k := csr.PublicKey.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return nil, fmt.Errorf("%w: ECDSA curve %s (want P-256 or P-384)", ErrBadCSR, k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("%w: RSA key of %d bits (want at least 2048)", ErrBadCSR, k.N.BitLen())
		}
	default:
		return nil, fmt.Errorf("%w: key type %T", ErrBadCSR, csr.PublicKey)
	}
	if validity <= 0 {
		return nil, fmt.Errorf("%w: validity %v", ErrBadCSR, validity)
	}
	now := time.Now()
	notAfter := now.Add(validity)
	if notAfter.After(ca.cert.NotAfter) {
		notAfter = ca.cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: id.AgentID, Organization: []string{id.Tenant}},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		URIs:         []*url.URL{id.URI()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, csr.PublicKey, ca.key)
	if err != nil {
		return nil, fmt.Errorf("ca: sign %s: %w", id.AgentID, err)
	}
	return x509.ParseCertificate(der)
}

// RevokedCert is one entry of a revocation list.
type RevokedCert struct {
	Serial    *big.Int
	RevokedAt time.Time
}

// RevocationList signs a CRL (DER) listing revoked, numbered number (it
// must grow with every list), valid until now+validity.
func (ca *CA) RevocationList(revoked []RevokedCert, number int64, validity time.Duration) ([]byte, error) {
	now := time.Now()
	tmpl := &x509.RevocationList{
		Number:     big.NewInt(number),
		ThisUpdate: now.Add(-time.Minute),
		NextUpdate: now.Add(validity),
	}
	for _, r := range revoked {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{SerialNumber: r.Serial, RevocationTime: r.RevokedAt})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.cert, ca.key)
	if err != nil {
		return nil, fmt.Errorf("ca: revocation list: %w", err)
	}
	return der, nil
}
