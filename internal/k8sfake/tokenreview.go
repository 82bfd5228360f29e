// Package k8sfake is a fake of the Kubernetes TokenReview API
// (authentication.k8s.io/v1), used because no kube-apiserver can run here.
// It is not a simulation of a client library: it speaks the real wire
// protocol, so a real client (Vault's kubernetes auth method) talks to it
// exactly as to a cluster:
//
//   - HTTPS only, with a certificate from its own test CA (CACertPEM, given
//     to the client as its Kubernetes CA);
//   - POST /apis/authentication.k8s.io/v1/tokenreviews with a JSON
//     TokenReview (spec.token, spec.audiences), answered 201 Created with the
//     same object, apiVersion authentication.k8s.io/v1 and kind TokenReview,
//     plus its status: authenticated, user {username
//     "system:serviceaccount:<namespace>:<name>", uid, groups, extra},
//     audiences and error;
//   - the caller authenticated by its Authorization bearer token (401
//     Unauthorized for a token it did not issue, 403 Forbidden for an
//     anonymous caller or a service account not allowed to create
//     tokenreviews, as RBAC's system:auth-delegator would), and every
//     error a metav1.Status object, as the API server sends.
//
// It issues service-account tokens shaped like the real ones: RS256 JWTs
// signed with its own key (kid derived from the public key as Kubernetes
// does), with the claims of a projected token (iss, sub, aud, exp, iat,
// nbf, jti and the nested "kubernetes.io" claim) or of a legacy
// secret-based token (the flat kubernetes.io/serviceaccount/* claims). A
// review accepts only a token it issued and has not revoked, still valid,
// whose audiences meet the requested ones; anything else is answered
// authenticated=false with an error, as the API server does.
package k8sfake

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"mime"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// ReviewPath is the TokenReview API's collection path.
const ReviewPath = "/apis/authentication.k8s.io/v1/tokenreviews"

// DefaultAudience is the API server's own audience (--api-audiences) and
// the issuer of projected tokens, as in a default cluster.
const DefaultAudience = "https://kubernetes.default.svc.cluster.local"

// LegacyIssuer is the iss claim of legacy secret-based tokens.
const LegacyIssuer = "kubernetes/serviceaccount"

// ServiceAccount is a Kubernetes service account.
type ServiceAccount struct {
	Namespace, Name, UID string
}

// NewServiceAccount returns a service account with a fresh UID.
func NewServiceAccount(namespace, name string) ServiceAccount {
	return ServiceAccount{Namespace: namespace, Name: name, UID: newUID()}
}

// Username is the account's user name in the API server.
func (sa ServiceAccount) Username() string {
	return "system:serviceaccount:" + sa.Namespace + ":" + sa.Name
}

// TokenOptions shape an issued token.
type TokenOptions struct {
	// Audiences is the aud claim (default: DefaultAudience).
	Audiences []string
	// TTL is the token's lifetime (default 1h); a negative TTL issues an
	// already expired token.
	TTL time.Duration
	// Legacy issues a secret-based token: flat claims, iss LegacyIssuer,
	// no aud and no exp.
	Legacy bool
}

// Review is one request the TokenReview API answered. It holds no token.
type Review struct {
	// Code is the HTTP status answered.
	Code int
	// Reviewer is the user the bearer token authenticated ("" if none).
	Reviewer string
	// Audiences is spec.audiences as requested.
	Audiences []string
	// Authenticated, Username, UID and Error are the status answered.
	Authenticated bool
	Username      string
	UID           string
	Error         string
}

// Server is the fake TokenReview API on an HTTPS loopback port.
type Server struct {
	srv    *http.Server
	ln     net.Listener
	url    string
	caPEM  string
	key    *rsa.PrivateKey
	kid    string
	pubPEM string

	mu        sync.Mutex
	tokens    map[string]*issued // every token issued, by its text
	reviewers map[string]bool    // usernames allowed to create tokenreviews
	reviews   []Review
}

type issued struct {
	sa      ServiceAccount
	aud     []string // nil: a legacy token
	exp     time.Time
	revoked bool
	jti     string
	pod     ServiceAccount // the pod a projected token is bound to (name, uid)
}

// Start runs a Server until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// New starts a Server on 127.0.0.1 with a new CA, serving certificate and
// token-signing key.
func New() (*Server, error) {
	caPEM, cert, err := newTLS()
	if err != nil {
		return nil, err
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(der) // Kubernetes' kid: the hash of the public key
	s := &Server{
		caPEM:     caPEM,
		key:       key,
		kid:       base64.RawURLEncoding.EncodeToString(sum[:]),
		pubPEM:    string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})),
		tokens:    map[string]*issued{},
		reviewers: map[string]bool{},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s.ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	s.url = "https://" + ln.Addr().String()
	s.srv = &http.Server{Handler: http.HandlerFunc(s.serve), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: log.New(io.Discard, "", 0)} // TLS handshakes refused by clients without the CA
	go func() { _ = s.srv.Serve(s.ln) }()
	return s, nil
}

// Close stops the server.
func (s *Server) Close() { _ = s.srv.Close() }

// URL is the API server's address (https://127.0.0.1:port), what a client
// is given as its Kubernetes host.
func (s *Server) URL() string { return s.url }

// CACertPEM is the CA that signed the server's certificate.
func (s *Server) CACertPEM() string { return s.caPEM }

// PublicKeyPEM is the public key that verifies the tokens it issues (what
// a cluster publishes as its service-account issuer's key).
func (s *Server) PublicKeyPEM() string { return s.pubPEM }

// AllowTokenReview lets sa create tokenreviews (the RBAC binding to
// system:auth-delegator a token reviewer needs).
func (s *Server) AllowTokenReview(sa ServiceAccount) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reviewers[sa.Username()] = true
}

// Revoke invalidates a token it issued (as deleting its pod or secret
// does).
func (s *Server) Revoke(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.tokens[token]; t != nil {
		t.revoked = true
	}
}

// Reviews returns the requests answered so far, oldest first.
func (s *Server) Reviews() []Review {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.reviews)
}

// Issue signs a service-account token for sa and remembers it as valid.
func (s *Server) Issue(sa ServiceAccount, o TokenOptions) (string, error) {
	now := time.Now()
	ttl := o.TTL
	if ttl == 0 {
		ttl = time.Hour
	}
	it := &issued{sa: sa, exp: now.Add(ttl), jti: newUID(),
		pod: ServiceAccount{Namespace: sa.Namespace, Name: sa.Name + "-7d9f8b6c5-x2k4q", UID: newUID()}}
	var claims map[string]any
	if o.Legacy {
		it.exp = time.Time{}
		claims = map[string]any{
			"iss":                                    LegacyIssuer,
			"sub":                                    sa.Username(),
			"kubernetes.io/serviceaccount/namespace": sa.Namespace,
			"kubernetes.io/serviceaccount/secret.name":          sa.Name + "-token-" + it.jti[:5],
			"kubernetes.io/serviceaccount/service-account.name": sa.Name,
			"kubernetes.io/serviceaccount/service-account.uid":  sa.UID,
		}
	} else {
		it.aud = o.Audiences
		if len(it.aud) == 0 {
			it.aud = []string{DefaultAudience}
		}
		claims = map[string]any{
			"iss": DefaultAudience,
			"sub": sa.Username(),
			"aud": it.aud,
			"exp": it.exp.Unix(),
			"iat": now.Unix(),
			"nbf": now.Unix(),
			"jti": it.jti,
			"kubernetes.io": map[string]any{
				"namespace":      sa.Namespace,
				"pod":            map[string]any{"name": it.pod.Name, "uid": it.pod.UID},
				"serviceaccount": map[string]any{"name": sa.Name, "uid": sa.UID},
			},
		}
	}
	tok, err := s.sign(claims)
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[tok] = it
	return tok, nil
}

// sign makes a compact JWS (RS256) of claims.
func (s *Server) sign(claims map[string]any) (string, error) {
	h, err := json.Marshal(map[string]string{"alg": "RS256", "kid": s.kid})
	if err != nil {
		return "", err
	}
	c, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	in := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	sum := sha256.Sum256([]byte(in))
	sig, err := rsa.SignPKCS1v15(rand.Reader, s.key, crypto.SHA256, sum[:])
	if err != nil {
		return "", err
	}
	return in + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// authenticate is the API server's token authenticator: the user a token
// stands for, the audiences it is good for among want (DefaultAudience when
// want is empty), or why it is refused.
func (s *Server) authenticate(token string, want []string) (*issued, []string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	it := s.tokens[token]
	switch {
	case it == nil:
		return nil, nil, errors.New("[invalid bearer token, square/go-jose: error in cryptographic primitive, token lookup failed]")
	case it.revoked:
		return nil, nil, errors.New("[invalid bearer token, service account token has been invalidated]")
	case !it.exp.IsZero() && time.Now().After(it.exp):
		return nil, nil, errors.New("[invalid bearer token, service account token has expired]")
	}
	if len(want) == 0 {
		want = []string{DefaultAudience}
	}
	have := it.aud
	if have == nil { // legacy tokens are good for the API server's audiences
		have = []string{DefaultAudience}
	}
	var both []string
	for _, a := range want {
		if slices.Contains(have, a) {
			both = append(both, a)
		}
	}
	if len(both) == 0 {
		return nil, nil, fmt.Errorf("[invalid bearer token, token audiences %q is invalid for the target audiences %q]", have, want)
	}
	return it, both, nil
}

// The TokenReview object (authentication.k8s.io/v1) as JSON.
type tokenReview struct {
	APIVersion string            `json:"apiVersion,omitempty"`
	Kind       string            `json:"kind,omitempty"`
	Metadata   objectMeta        `json:"metadata"`
	Spec       tokenReviewSpec   `json:"spec"`
	Status     tokenReviewStatus `json:"status"`
}

type objectMeta struct {
	CreationTimestamp *string `json:"creationTimestamp"`
}

type tokenReviewSpec struct {
	Token     string   `json:"token,omitempty"`
	Audiences []string `json:"audiences,omitempty"`
}

type tokenReviewStatus struct {
	Authenticated bool     `json:"authenticated,omitempty"`
	User          userInfo `json:"user"`
	Audiences     []string `json:"audiences,omitempty"`
	Error         string   `json:"error,omitempty"`
}

type userInfo struct {
	Username string              `json:"username,omitempty"`
	UID      string              `json:"uid,omitempty"`
	Groups   []string            `json:"groups,omitempty"`
	Extra    map[string][]string `json:"extra,omitempty"`
}

// status is a metav1.Status, the API server's error body.
type status struct {
	Kind       string         `json:"kind"`
	APIVersion string         `json:"apiVersion"`
	Metadata   struct{}       `json:"metadata"`
	Status     string         `json:"status"`
	Message    string         `json:"message"`
	Reason     string         `json:"reason"`
	Details    *statusDetails `json:"details,omitempty"`
	Code       int            `json:"code"`
}

type statusDetails struct {
	Group string `json:"group"`
	Kind  string `json:"kind"`
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != ReviewPath {
		writeStatus(w, http.StatusNotFound, "NotFound", "the server could not find the requested resource", false)
		return
	}
	rev := Review{}
	defer func() {
		s.mu.Lock()
		s.reviews = append(s.reviews, rev)
		s.mu.Unlock()
	}()
	fail := func(code int, reason, msg string, details bool) {
		rev.Code = code
		writeStatus(w, code, reason, msg, details)
	}
	if r.Method != http.MethodPost {
		fail(http.StatusMethodNotAllowed, "MethodNotAllowed", "the server does not allow this method on the requested resource", false)
		return
	}
	// Authentication: the caller's bearer token, good for the API server.
	user := "system:anonymous"
	if h := r.Header.Get("Authorization"); h != "" {
		tok, ok := strings.CutPrefix(h, "Bearer ")
		it, _, err := s.authenticate(strings.TrimSpace(tok), nil)
		if !ok || err != nil {
			fail(http.StatusUnauthorized, "Unauthorized", "Unauthorized", false)
			return
		}
		user = it.sa.Username()
		rev.Reviewer = user
	}
	// Authorization: create on tokenreviews (system:auth-delegator).
	s.mu.Lock()
	allowed := s.reviewers[user]
	s.mu.Unlock()
	if !allowed {
		fail(http.StatusForbidden, "Forbidden", fmt.Sprintf(`tokenreviews.authentication.k8s.io is forbidden: User %q cannot create resource "tokenreviews" in API group "authentication.k8s.io" at the cluster scope`, user), true)
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		fail(http.StatusUnsupportedMediaType, "UnsupportedMediaType", fmt.Sprintf("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got %q)", mt), false)
		return
	}
	var in tokenReview
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&in); err != nil {
		fail(http.StatusBadRequest, "BadRequest", "the object provided is unrecognized: "+err.Error(), false)
		return
	}
	// An object without apiVersion and kind takes them from the URL, as
	// the API server's decoder does; other ones are refused.
	if (in.APIVersion != "" && in.APIVersion != "authentication.k8s.io/v1") || (in.Kind != "" && in.Kind != "TokenReview") {
		fail(http.StatusBadRequest, "BadRequest", fmt.Sprintf("the API version in the data (%s) or kind (%s) does not match the expected authentication.k8s.io/v1 TokenReview", in.APIVersion, in.Kind), false)
		return
	}
	if in.Spec.Token == "" {
		fail(http.StatusBadRequest, "BadRequest", "token is required for TokenReview in authentication", false)
		return
	}
	rev.Audiences = slices.Clone(in.Spec.Audiences)
	out := tokenReview{APIVersion: "authentication.k8s.io/v1", Kind: "TokenReview", Spec: in.Spec}
	it, aud, err := s.authenticate(in.Spec.Token, in.Spec.Audiences)
	if err != nil {
		out.Status.Error = err.Error()
	} else {
		sa := it.sa
		out.Status = tokenReviewStatus{
			Authenticated: true,
			Audiences:     aud,
			User: userInfo{
				Username: sa.Username(),
				UID:      sa.UID,
				Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + sa.Namespace, "system:authenticated"},
			},
		}
		if it.aud != nil {
			out.Status.User.Extra = map[string][]string{
				"authentication.kubernetes.io/credential-id": {"JTI=" + it.jti},
				"authentication.kubernetes.io/pod-name":      {it.pod.Name},
				"authentication.kubernetes.io/pod-uid":       {it.pod.UID},
			}
		}
	}
	rev.Code = http.StatusCreated
	rev.Authenticated = out.Status.Authenticated
	rev.Username, rev.UID, rev.Error = out.Status.User.Username, out.Status.User.UID, out.Status.Error
	writeJSON(w, http.StatusCreated, out)
}

func writeStatus(w http.ResponseWriter, code int, reason, msg string, details bool) {
	st := status{Kind: "Status", APIVersion: "v1", Status: "Failure", Message: msg, Reason: reason, Code: code}
	if details {
		st.Details = &statusDetails{Group: "authentication.k8s.io", Kind: "tokenreviews"}
	}
	writeJSON(w, code, st)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache, private")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// newTLS makes a test CA and a serving certificate it signs for the names
// and loopback addresses an in-cluster client would use.
func newTLS() (caPEM string, cert tls.Certificate, err error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", cert, err
	}
	now := time.Now()
	ca := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "k8sfake-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return "", cert, err
	}
	ca, err = x509.ParseCertificate(caDER)
	if err != nil {
		return "", cert, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", cert, err
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		return "", cert, err
	}
	caPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}))
	return caPEM, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// newUID returns a random RFC 4122 version 4 UUID, as Kubernetes UIDs are.
func newUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
