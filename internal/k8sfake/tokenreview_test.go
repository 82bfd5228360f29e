package k8sfake

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// client trusts the fake's CA only.
func client(t *testing.T, s *Server) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(s.CACertPEM())) {
		t.Fatal("CA PEM has no certificate")
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second}
}

// post sends a request as a client library would and decodes the answer.
func post(t *testing.T, c *http.Client, url, bearer, contentType, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Accept", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("answer is not JSON: %v", err)
	}
	return resp.StatusCode, out
}

func reviewBody(token string, aud ...string) string {
	b, _ := json.Marshal(map[string]any{"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
		"spec": map[string]any{"token": token, "audiences": aud}})
	return string(b)
}

func TestTokenReview(t *testing.T) {
	s := Start(t)
	c := client(t, s)
	url := s.URL() + ReviewPath
	reviewer := NewServiceAccount("vault", "vault-auth")
	s.AllowTokenReview(reviewer)
	rjwt, _ := s.Issue(reviewer, TokenOptions{})
	nobody := NewServiceAccount("ferry", "nobody")
	njwt, _ := s.Issue(nobody, TokenOptions{})
	agent := NewServiceAccount("ferry", "ferry-agent")
	good, _ := s.Issue(agent, TokenOptions{Audiences: []string{"vault", "other"}})
	legacy, _ := s.Issue(agent, TokenOptions{Legacy: true})
	expired, _ := s.Issue(agent, TokenOptions{Audiences: []string{"vault"}, TTL: -time.Minute})
	revoked, _ := s.Issue(agent, TokenOptions{Audiences: []string{"vault"}})
	s.Revoke(revoked)
	foreign, _ := Start(t).Issue(agent, TokenOptions{Audiences: []string{"vault"}})

	cases := []struct {
		name                string
		bearer, ctype, body string
		wantCode            int
		wantAuth            bool
		wantAud             []string
		wantIn              string // in status.error or the Status message
	}{
		{"valid projected token", rjwt, "application/json", reviewBody(good, "vault"), 201, true, []string{"vault"}, ""},
		{"no kind or apiVersion, as Vault sends", rjwt, "application/json", `{"spec":{"token":"` + good + `","audiences":["other","x"]}}`, 201, true, []string{"other"}, ""},
		{"legacy token, API audiences", rjwt, "application/json; charset=utf-8", reviewBody(legacy), 201, true, []string{DefaultAudience}, ""},
		{"wrong audience", rjwt, "application/json", reviewBody(good, "kafka"), 201, false, nil, "invalid for the target audiences"},
		{"never issued", rjwt, "application/json", reviewBody(foreign, "vault"), 201, false, nil, "token lookup failed"},
		{"revoked", rjwt, "application/json", reviewBody(revoked, "vault"), 201, false, nil, "invalidated"},
		{"expired", rjwt, "application/json", reviewBody(expired, "vault"), 201, false, nil, "expired"},
		{"no bearer", "", "application/json", reviewBody(good, "vault"), 403, false, nil, `User "system:anonymous" cannot create resource "tokenreviews"`},
		{"unknown bearer", foreign, "application/json", reviewBody(good, "vault"), 401, false, nil, "Unauthorized"},
		{"revoked bearer", revoked, "application/json", reviewBody(good, "vault"), 401, false, nil, "Unauthorized"},
		{"bearer without review rights", njwt, "application/json", reviewBody(good, "vault"), 403, false, nil, nobody.Username()},
		{"not JSON", rjwt, "text/plain", reviewBody(good), 415, false, nil, "unknown format"},
		{"another kind", rjwt, "application/json", `{"apiVersion":"v1","kind":"Pod","spec":{"token":"x"}}`, 400, false, nil, "does not match"},
		{"no token", rjwt, "application/json", `{"spec":{}}`, 400, false, nil, "token is required"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := len(s.Reviews())
			code, out := post(t, c, url, tc.bearer, tc.ctype, tc.body)
			if code != tc.wantCode {
				t.Fatalf("HTTP %d %v, want %d", code, out, tc.wantCode)
			}
			if revs := s.Reviews()[n:]; len(revs) != 1 || revs[0].Code != tc.wantCode || revs[0].Authenticated != tc.wantAuth {
				t.Errorf("review log %+v", revs)
			}
			if code != 201 {
				if out["kind"] != "Status" || out["apiVersion"] != "v1" || out["status"] != "Failure" || out["code"] != float64(code) ||
					!strings.Contains(out["message"].(string), tc.wantIn) {
					t.Errorf("Status %v, want a Failure naming %q", out, tc.wantIn)
				}
				return
			}
			if out["kind"] != "TokenReview" || out["apiVersion"] != "authentication.k8s.io/v1" {
				t.Errorf("answer %v, want a TokenReview", out)
			}
			st, _ := out["status"].(map[string]any)
			if auth, _ := st["authenticated"].(bool); auth != tc.wantAuth {
				t.Fatalf("status %v, want authenticated=%v", st, tc.wantAuth)
			}
			if !tc.wantAuth {
				if e, _ := st["error"].(string); !strings.Contains(e, tc.wantIn) {
					t.Errorf("status.error %q, want %q", e, tc.wantIn)
				}
				if u, _ := st["user"].(map[string]any); len(u) != 0 {
					t.Errorf("status.user %v for a refused token", u)
				}
				return
			}
			user, _ := st["user"].(map[string]any)
			var aud, groups []string
			for _, a := range st["audiences"].([]any) {
				aud = append(aud, a.(string))
			}
			for _, g := range user["groups"].([]any) {
				groups = append(groups, g.(string))
			}
			if user["username"] != "system:serviceaccount:ferry:ferry-agent" || user["uid"] != agent.UID ||
				!slices.Equal(aud, tc.wantAud) || !slices.Contains(groups, "system:serviceaccounts:ferry") {
				t.Errorf("status %v, want ferry-agent (%s) for %q", st, agent.UID, tc.wantAud)
			}
		})
	}

	t.Run("other path and method", func(t *testing.T) {
		if code, out := post(t, c, s.URL()+"/api/v1/namespaces", rjwt, "application/json", "{}"); code != 404 || out["reason"] != "NotFound" {
			t.Errorf("other path: %d %v", code, out)
		}
		resp, err := c.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("GET: %d", resp.StatusCode)
		}
	})
	t.Run("TLS with its own CA only", func(t *testing.T) {
		if _, err := http.Post(url, "application/json", strings.NewReader(reviewBody(good))); err == nil ||
			!strings.Contains(err.Error(), "certificate") {
			t.Errorf("a client without the fake's CA: %v, want a certificate error", err)
		}
	})
}

// TestIssuedTokens: tokens are RS256 JWTs that verify with PublicKeyPEM
// and carry a service-account token's claims.
func TestIssuedTokens(t *testing.T) {
	s := Start(t)
	sa := NewServiceAccount("ferry", "ferry-agent")
	block, _ := pem.Decode([]byte(s.PublicKeyPEM()))
	pubAny, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pub := pubAny.(*rsa.PublicKey)
	decode := func(t *testing.T, tok string) (map[string]any, map[string]any) {
		t.Helper()
		parts := strings.Split(tok, ".")
		if len(parts) != 3 {
			t.Fatalf("%d parts", len(parts))
		}
		sig, err := base64.RawURLEncoding.DecodeString(parts[2])
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
		if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig); err != nil {
			t.Fatalf("signature: %v", err)
		}
		var h, c map[string]any
		for i, v := range []*map[string]any{&h, &c} {
			b, err := base64.RawURLEncoding.DecodeString(parts[i])
			if err != nil {
				t.Fatal(err)
			}
			d := json.NewDecoder(bytes.NewReader(b))
			if err := d.Decode(v); err != nil {
				t.Fatal(err)
			}
		}
		return h, c
	}
	t.Run("projected", func(t *testing.T) {
		tok, err := s.Issue(sa, TokenOptions{Audiences: []string{"vault"}, TTL: 10 * time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		h, c := decode(t, tok)
		k8s, _ := c["kubernetes.io"].(map[string]any)
		sac, _ := k8s["serviceaccount"].(map[string]any)
		exp, _ := c["exp"].(float64)
		if h["alg"] != "RS256" || h["kid"] == "" || c["iss"] != DefaultAudience || c["sub"] != sa.Username() ||
			k8s["namespace"] != "ferry" || sac["name"] != "ferry-agent" || sac["uid"] != sa.UID ||
			time.Until(time.Unix(int64(exp), 0)) > 10*time.Minute || time.Until(time.Unix(int64(exp), 0)) < 9*time.Minute {
			t.Errorf("header %v claims %v", h, c)
		}
		if aud, _ := c["aud"].([]any); len(aud) != 1 || aud[0] != "vault" {
			t.Errorf("aud %v", c["aud"])
		}
	})
	t.Run("legacy", func(t *testing.T) {
		tok, err := s.Issue(sa, TokenOptions{Legacy: true})
		if err != nil {
			t.Fatal(err)
		}
		_, c := decode(t, tok)
		if c["iss"] != LegacyIssuer || c["kubernetes.io/serviceaccount/service-account.name"] != "ferry-agent" ||
			c["kubernetes.io/serviceaccount/namespace"] != "ferry" || c["kubernetes.io/serviceaccount/service-account.uid"] != sa.UID ||
			c["aud"] != nil || c["exp"] != nil {
			t.Errorf("claims %v", c)
		}
	})
}
