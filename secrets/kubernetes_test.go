package secrets

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/ferry-ai/ferry/internal/k8sfake"
	"github.com/ferry-ai/ferry/internal/syncbuf"
	"github.com/ferry-ai/ferry/internal/vaulttest"
)

// Kubernetes sign-in runs against the real Vault server and its real
// kubernetes auth method (vault-plugin-auth-kubernetes, built into Vault).
// That method asks a Kubernetes API server's TokenReview API whether a
// service-account token is valid; no kube-apiserver can run here, so it is
// pointed at internal/k8sfake, which speaks the TokenReview wire protocol
// over HTTPS with its own CA and only accepts tokens it issued.
//
// What the method (v0.23.1, Vault 1.21.4) checks, in order: the role
// exists; the JWT parses as RS256/ES256/PS256… and, only when pem_keys are
// configured, its signature (and iss when an issuer is configured); exp/nbf
// when present; aud against the role's audience; the service account's
// name and namespace (from the projected "kubernetes.io" claim, or the
// legacy flat kubernetes.io/serviceaccount/* claims) against the role's
// bindings. Only then does it POST a TokenReview (spec.audiences: the
// role's audience, else the JWT's aud), with the configured
// token_reviewer_jwt as the bearer, else the client's own JWT; it requires
// status.authenticated, no status.error, an audience in common, a username
// system:serviceaccount:<ns>:<name>, and name, namespace and UID equal to
// the JWT's claims.

// kubeCluster is Vault with kubernetes auth methods pointed at the fake.
type kubeCluster struct {
	d        *vaulttest.Server
	kube     *k8sfake.Server
	reviewer k8sfake.ServiceAccount // Vault's token reviewer (vault/vault-auth)
	agent    k8sfake.ServiceAccount // ferry/ferry-agent: bound, may review
	batch    k8sfake.ServiceAccount // ferry/ferry-batch: bound, may not review
}

const kubeSecret = "kube-warehouse-pa55word"

// startKubeCluster starts Vault and the TokenReview fake and mounts
// Vault's kubernetes auth method four times:
//   - kubernetes: with a token reviewer JWT (the usual setup);
//   - kubernetes-pem: also verifying JWT signatures with the cluster's
//     public key (pem_keys) and the issuer;
//   - kubernetes-badreviewer: with a reviewer JWT the cluster never issued;
//   - kubernetes-selfreview: without a reviewer JWT (the client's own JWT
//     is the bearer, so its service account needs review rights).
//
// Each has the role ferry-agent (service accounts ferry-agent and
// ferry-batch in namespace ferry, audience vault, policy ferry-kv);
// kubernetes also has ferry-agent-legacy (no audience).
func startKubeCluster(t *testing.T) *kubeCluster {
	t.Helper()
	c := &kubeCluster{
		d:        vaulttest.Start(t),
		kube:     k8sfake.Start(t),
		reviewer: k8sfake.NewServiceAccount("vault", "vault-auth"),
		agent:    k8sfake.NewServiceAccount("ferry", "ferry-agent"),
		batch:    k8sfake.NewServiceAccount("ferry", "ferry-batch"),
	}
	c.kube.AllowTokenReview(c.reviewer)
	c.kube.AllowTokenReview(c.agent)
	reviewerJWT := issue(t, c.kube, c.reviewer, k8sfake.TokenOptions{TTL: 24 * time.Hour})
	strangerJWT := issue(t, k8sfake.Start(t), c.reviewer, k8sfake.TokenOptions{TTL: 24 * time.Hour})

	c.d.Write(t, "secret/data/ferry/warehouse", map[string]any{"data": map[string]any{"password": kubeSecret}})
	c.d.Write(t, "secret/data/other/thing", map[string]any{"data": map[string]any{"k": "v"}})
	if err := c.d.Root.Sys().PutPolicy("ferry-kv", `path "secret/data/ferry/warehouse" { capabilities = ["read"] }`); err != nil {
		t.Fatal(err)
	}
	base := map[string]any{
		"kubernetes_host":      c.kube.URL(),
		"kubernetes_ca_cert":   c.kube.CACertPEM(),
		"disable_local_ca_jwt": true,
	}
	with := func(extra map[string]any) map[string]any {
		m := map[string]any{}
		for k, v := range base {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	mounts := []struct {
		path   string
		config map[string]any
	}{
		{"kubernetes", with(map[string]any{"token_reviewer_jwt": reviewerJWT})},
		{"kubernetes-pem", with(map[string]any{"token_reviewer_jwt": reviewerJWT,
			"pem_keys": []string{c.kube.PublicKeyPEM()}, "issuer": k8sfake.DefaultAudience, "disable_iss_validation": false})},
		{"kubernetes-badreviewer", with(map[string]any{"token_reviewer_jwt": strangerJWT})},
		{"kubernetes-selfreview", base},
	}
	for _, m := range mounts {
		if err := c.d.Root.Sys().EnableAuthWithOptions(m.path, &vault.EnableAuthOptions{Type: "kubernetes"}); err != nil {
			t.Fatal(err)
		}
		c.d.Write(t, "auth/"+m.path+"/config", m.config)
		c.d.Write(t, "auth/"+m.path+"/role/ferry-agent", map[string]any{
			"bound_service_account_names":      []string{"ferry-agent", "ferry-batch"},
			"bound_service_account_namespaces": []string{"ferry"},
			"audience":                         "vault",
			"token_policies":                   []string{"ferry-kv"},
			"token_ttl":                        "1h",
		})
	}
	c.d.Write(t, "auth/kubernetes/role/ferry-agent-legacy", map[string]any{
		"bound_service_account_names":      []string{"ferry-agent"},
		"bound_service_account_namespaces": []string{"ferry"},
		"token_policies":                   []string{"ferry-kv"},
		"token_ttl":                        "1h",
	})
	return c
}

// issue signs a service-account token in the fake.
func issue(t *testing.T, kube *k8sfake.Server, sa k8sfake.ServiceAccount, o k8sfake.TokenOptions) string {
	t.Helper()
	tok, err := kube.Issue(sa, o)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// jwtFile writes a token where a pod would have it mounted.
func jwtFile(t *testing.T, jwt string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte(jwt+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestKubernetesSignIn(t *testing.T) {
	c := startKubeCluster(t)
	ctx := context.Background()
	vaultAud := k8sfake.TokenOptions{Audiences: []string{"vault"}}
	bothAud := k8sfake.TokenOptions{Audiences: []string{"vault", k8sfake.DefaultAudience}}
	open := func(t *testing.T, mount, role, jwt string) (*Vault, *syncbuf.Buffer, error) {
		t.Helper()
		var logs syncbuf.Buffer
		log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		v, err := OpenVault(ctx, VaultConfig{Address: c.d.Addr, RetryFor: 2 * time.Second,
			Auth: VaultAuth{Method: "kubernetes", Mount: mount, Role: role, JWTFile: jwtFile(t, jwt)}}, log)
		return v, &logs, err
	}
	// newReviews returns what the fake answered since n reviews.
	newReviews := func(n int) []k8sfake.Review { return c.kube.Reviews()[n:] }

	signIns := []struct {
		name, mount, role string
		opts              k8sfake.TokenOptions
		wantReviewer      string   // who the fake saw as the bearer
		wantAud           []string // spec.audiences Vault asked for
	}{
		{"projected token", "", "ferry-agent", vaultAud, c.reviewer.Username(), []string{"vault"}},
		{"legacy secret-based token", "", "ferry-agent-legacy", k8sfake.TokenOptions{Legacy: true}, c.reviewer.Username(), nil},
		{"signature verified with pem_keys at another mount", "kubernetes-pem", "ferry-agent", vaultAud, c.reviewer.Username(), []string{"vault"}},
		// The client's token is then the API server's bearer too, so it
		// needs the API server's audience besides Vault's.
		{"own token as the reviewer's bearer", "kubernetes-selfreview", "ferry-agent", bothAud, c.agent.Username(), []string{"vault"}},
	}
	for _, tc := range signIns {
		t.Run("signs in/"+tc.name, func(t *testing.T) {
			jwt := issue(t, c.kube, c.agent, tc.opts)
			n := len(c.kube.Reviews())
			v, logs, err := open(t, tc.mount, tc.role, jwt)
			if err != nil {
				t.Fatalf("OpenVault: %v", err)
			}
			closed := false
			defer func() {
				if !closed {
					_ = v.Close()
				}
			}()
			revs := newReviews(n)
			if len(revs) != 1 {
				t.Fatalf("the TokenReview API answered %d requests, want 1: %+v", len(revs), revs)
			}
			r := revs[0]
			if r.Code != http.StatusCreated || !r.Authenticated || r.Username != c.agent.Username() || r.UID != c.agent.UID ||
				r.Reviewer != tc.wantReviewer || !slices.Equal(r.Audiences, tc.wantAud) {
				t.Errorf("review %+v, want 201 authenticated %s (uid %s) reviewed by %s for audiences %q",
					r, c.agent.Username(), c.agent.UID, tc.wantReviewer, tc.wantAud)
			}

			kv, err := v.KV(ctx, "secret", "ferry/warehouse")
			if err != nil || kv["password"].Reveal() != kubeSecret {
				t.Fatalf("KV read in the policy: %v %v", kv, err)
			}
			if _, err := v.KV(ctx, "secret", "other/thing"); !errors.Is(err, ErrDenied) {
				t.Errorf("KV read outside the policy: %v, want ErrDenied", err)
			}

			// The token Vault issued carries the reviewed service account.
			tok := v.c.Token()
			look, err := c.d.Root.Auth().Token().Lookup(tok)
			if err != nil {
				t.Fatal(err)
			}
			mount := tc.mount
			if mount == "" {
				mount = "kubernetes"
			}
			meta, _ := look.Data["meta"].(map[string]any)
			want := map[string]string{"service_account_name": "ferry-agent", "service_account_namespace": "ferry",
				"service_account_uid": c.agent.UID, "role": tc.role}
			for k, w := range want {
				if meta[k] != w {
					t.Errorf("token meta %s = %v, want %q", k, meta[k], w)
				}
			}
			if p := look.Data["path"]; p != "auth/"+mount+"/login" {
				t.Errorf("token path %v, want auth/%s/login", p, mount)
			}
			if pol, _ := look.Data["policies"].([]any); !slices.Contains(pol, any("ferry-kv")) {
				t.Errorf("token policies %v, want ferry-kv", pol)
			}
			if strings.Contains(logs.String(), jwt) || strings.Contains(logs.String(), tok) {
				t.Errorf("the JWT or the Vault token reached the log:\n%s", logs.String())
			}

			closed = true
			if err := v.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if _, err := c.d.Root.Auth().Token().Lookup(tok); err == nil {
				t.Errorf("the token is still valid after Close")
			}
		})
	}

	other := k8sfake.Start(t) // another cluster: same claims, another key
	refused := []struct {
		name, mount, role string
		jwt               func(t *testing.T) string
		wantErr           error
		wantCode          int    // the fake's answer; 0: Vault refused without asking it
		wantIn            string // also in the error, when set
	}{
		{name: "service account not bound to the role", role: "ferry-agent",
			jwt: func(t *testing.T) string {
				return issue(t, c.kube, k8sfake.NewServiceAccount("ferry", "intruder"), vaultAud)
			}, wantErr: ErrDenied},
		{name: "bound name in another namespace", role: "ferry-agent",
			jwt: func(t *testing.T) string {
				return issue(t, c.kube, k8sfake.NewServiceAccount("default", "ferry-agent"), vaultAud)
			}, wantErr: ErrDenied},
		{name: "token for another audience", role: "ferry-agent",
			jwt: func(t *testing.T) string {
				return issue(t, c.kube, c.agent, k8sfake.TokenOptions{Audiences: []string{k8sfake.DefaultAudience}})
			}, wantErr: ErrDenied},
		{name: "expired token", role: "ferry-agent",
			jwt: func(t *testing.T) string {
				return issue(t, c.kube, c.agent, k8sfake.TokenOptions{Audiences: []string{"vault"}, TTL: -time.Hour})
			}, wantErr: ErrDenied},
		{name: "token the cluster never issued", role: "ferry-agent",
			jwt: func(t *testing.T) string { return issue(t, other, c.agent, vaultAud) }, wantErr: ErrDenied, wantCode: http.StatusCreated},
		{name: "token revoked after issue", role: "ferry-agent",
			jwt: func(t *testing.T) string {
				jwt := issue(t, c.kube, c.agent, vaultAud)
				c.kube.Revoke(jwt)
				return jwt
			}, wantErr: ErrDenied, wantCode: http.StatusCreated},
		{name: "never-issued token refused by the pem_keys signature check", mount: "kubernetes-pem", role: "ferry-agent",
			jwt: func(t *testing.T) string { return issue(t, other, c.agent, vaultAud) }, wantErr: ErrDenied},
		{name: "reviewer JWT the cluster does not know", mount: "kubernetes-badreviewer", role: "ferry-agent",
			jwt: func(t *testing.T) string { return issue(t, c.kube, c.agent, vaultAud) }, wantErr: ErrDenied, wantCode: http.StatusUnauthorized},
		{name: "own token without review rights", mount: "kubernetes-selfreview", role: "ferry-agent",
			jwt: func(t *testing.T) string { return issue(t, c.kube, c.batch, bothAud) }, wantErr: ErrDenied, wantCode: http.StatusForbidden},
		{name: "own token not meant for the API server", mount: "kubernetes-selfreview", role: "ferry-agent",
			jwt: func(t *testing.T) string { return issue(t, c.kube, c.agent, vaultAud) }, wantErr: ErrDenied, wantCode: http.StatusUnauthorized},
		{name: "unknown role", role: "no-such-role",
			jwt: func(t *testing.T) string { return issue(t, c.kube, c.agent, vaultAud) }, wantErr: ErrVault, wantIn: `invalid role name "no-such-role"`},
		{name: "empty jwt file", role: "ferry-agent",
			jwt: func(t *testing.T) string { return "" }, wantErr: ErrVault, wantIn: "missing jwt"},
	}
	for _, tc := range refused {
		t.Run("refused/"+tc.name, func(t *testing.T) {
			jwt := tc.jwt(t)
			n := len(c.kube.Reviews())
			v, logs, err := open(t, tc.mount, tc.role, jwt)
			if v != nil {
				_ = v.Close()
				t.Fatal("signed in, want refused")
			}
			mount := tc.mount
			if mount == "" {
				mount = "kubernetes"
			}
			if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), "auth/"+mount+"/login") || !strings.Contains(err.Error(), tc.wantIn) {
				t.Errorf("error %v, want %v naming auth/%s/login and %q", err, tc.wantErr, mount, tc.wantIn)
			}
			if jwt != "" && (strings.Contains(err.Error(), jwt) || strings.Contains(logs.String(), jwt)) {
				t.Errorf("the JWT reached the error or the log: %v", err)
			}
			revs := newReviews(n)
			switch {
			case tc.wantCode == 0 && len(revs) != 0:
				t.Errorf("Vault asked the TokenReview API: %+v, want refused before", revs)
			case tc.wantCode != 0 && (len(revs) != 1 || revs[0].Code != tc.wantCode || revs[0].Authenticated):
				t.Errorf("TokenReview answers %+v, want one %d, not authenticated", revs, tc.wantCode)
			case tc.wantCode == http.StatusCreated && revs[0].Error == "":
				t.Errorf("review %+v: no status.error", revs[0])
			}
		})
	}
}

// TestKubernetesSignInConfigErrors: a missing token file or role is refused
// before anything is sent to Vault.
func TestKubernetesSignInConfigErrors(t *testing.T) {
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		http.Error(w, "no", http.StatusTeapot)
	}))
	defer srv.Close()
	kube := k8sfake.Start(t)
	jwt := issue(t, kube, k8sfake.NewServiceAccount("ferry", "ferry-agent"), k8sfake.TokenOptions{Audiences: []string{"vault"}})
	missing := filepath.Join(t.TempDir(), "no-token")
	cases := []struct {
		name, jwtFile, role string
		wantIn              []string
	}{
		{"missing jwt_file", missing, "ferry-agent", []string{"vault: auth kubernetes: jwt_file", missing}},
		{"missing role", jwtFile(t, jwt), "", []string{"vault: auth kubernetes: role is required"}},
	}
	if _, err := os.Stat(DefaultJWTFile); errors.Is(err, os.ErrNotExist) {
		cases = append(cases, struct {
			name, jwtFile, role string
			wantIn              []string
		}{"default jwt_file outside a pod", "", "ferry-agent", []string{"vault: auth kubernetes: jwt_file", DefaultJWTFile}})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, err := OpenVault(context.Background(), VaultConfig{Address: srv.URL, RetryFor: time.Second,
				Auth: VaultAuth{Method: "kubernetes", Role: tc.role, JWTFile: tc.jwtFile}}, nil)
			if v != nil {
				_ = v.Close()
				t.Fatal("signed in")
			}
			if err == nil {
				t.Fatalf("no error, want one naming %q", tc.wantIn)
			}
			for _, w := range tc.wantIn {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
			if strings.Contains(err.Error(), jwt) {
				t.Errorf("the JWT is in the error")
			}
		})
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("%d requests reached Vault, want none", n)
	}
}
