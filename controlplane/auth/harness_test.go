package auth_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-ai/ferry/controlplane/auth"
	"github.com/ferry-ai/ferry/controlplane/metadb"
	"github.com/ferry-ai/ferry/internal/oidctest"
	"github.com/ferry-ai/ferry/internal/syncbuf"
)

const tenant = "acme"

// clock is the injected clock: real time plus what the test added.
type clock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

// Reset puts the clock back to real time (the provider's: its ID tokens
// expire an hour after real now).
func (c *clock) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off = 0
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off += d
}

// events records what OnEvent got.
type events struct {
	mu   sync.Mutex
	list []auth.Event
}

func (e *events) add(ev auth.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.list = append(e.list, ev)
}

func (e *events) all() []auth.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]auth.Event(nil), e.list...)
}

// last returns the last event of the action.
func (e *events) last(action string) (auth.Event, bool) {
	all := e.all()
	for i := len(all) - 1; i >= 0; i-- {
		if all[i].Action == action {
			return all[i], true
		}
	}
	return auth.Event{}, false
}

func (e *events) count(action, outcome string) int {
	n := 0
	for _, ev := range e.all() {
		if ev.Action == action && ev.Outcome == outcome {
			n++
		}
	}
	return n
}

// tokenRewriter sits between the control plane and the provider. When
// asOther is set it authenticates the token request as the provider's
// other client; it records the token endpoint's answers (to look for their
// tokens in logs).
type tokenRewriter struct {
	base    http.RoundTripper
	asOther atomic.Bool
	mu      sync.Mutex
	bodies  []string
}

func (rw *tokenRewriter) RoundTrip(req *http.Request) (*http.Response, error) {
	isToken := req.Method == http.MethodPost && strings.HasSuffix(req.URL.Path, "/token")
	if isToken && rw.asOther.Load() {
		req = req.Clone(req.Context())
		req.SetBasicAuth(otherClient, otherSecret)
	}
	resp, err := rw.base.RoundTrip(req)
	if err == nil && isToken {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		resp.Body = io.NopCloser(strings.NewReader(string(b)))
		rw.mu.Lock()
		rw.bodies = append(rw.bodies, string(b))
		rw.mu.Unlock()
	}
	return resp, err
}

// issuedTokens returns the access and ID tokens the provider issued.
func (rw *tokenRewriter) issuedTokens() []string {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	var out []string
	for _, b := range rw.bodies {
		var v struct {
			AccessToken string `json:"access_token"`
			IDToken     string `json:"id_token"`
		}
		if json.Unmarshal([]byte(b), &v) == nil {
			for _, s := range []string{v.AccessToken, v.IDToken} {
				if s != "" {
					out = append(out, s)
				}
			}
		}
	}
	return out
}

const (
	ferryClient  = "ferry"
	ferrySecret  = "ferry-client-secret-5d1c0ffee"
	otherClient  = "other-app"
	otherSecret  = "other-client-secret-77b0b"
	breakGlassPW = "correct horse battery staple"
)

// idpUsers are the provider's users: their groups decide their roles.
var idpUsers = []oidctest.User{
	{Username: "erin", Email: "erin@acme.example", FirstName: "Erin", LastName: "Editor", Groups: []string{"ferry-editors", "staff"}},
	{Username: "vic", Email: "vic@acme.example", Groups: []string{"ferry-viewers"}},
	{Username: "ann", Email: "ann@acme.example", Groups: []string{"ferry-viewers", "ferry-admins"}},
	{Username: "nora", Email: "nora@acme.example", Groups: []string{"marketing"}},
	{Username: "gus", Email: "gus@acme.example"},
}

var roles = map[string]auth.Role{"ferry-admins": auth.Admin, "ferry-editors": auth.Editor, "ferry-viewers": auth.Viewer}

// harness is a control plane API over HTTPS with the auth service, and a
// real OpenID provider.
type harness struct {
	t      *testing.T
	db     *metadb.DB
	idp    *oidctest.Provider
	svc    *auth.Service
	srv    *httptest.Server
	clock  *clock
	events *events
	logs   *syncbuf.Buffer
	rw     *tokenRewriter
}

// newHarness starts the provider and the API. edit may change the config.
func newHarness(t *testing.T, db *metadb.DB, edit func(*auth.Config)) *harness {
	t.Helper()
	h := &harness{t: t, db: db, clock: &clock{}, events: &events{}, logs: &syncbuf.Buffer{}}
	h.srv = httptest.NewUnstartedServer(nil)
	base := "https://" + h.srv.Listener.Addr().String()
	h.idp = oidctest.Start(t, oidctest.Options{
		Users: idpUsers,
		Clients: []oidctest.Client{
			{ID: ferryClient, Secret: ferrySecret, RedirectURIs: []string{base + auth.CallbackPath}},
			{ID: otherClient, Secret: otherSecret, RedirectURIs: []string{base + auth.CallbackPath}},
		},
	})
	secretFile := filepath.Join(t.TempDir(), "client_secret")
	if err := os.WriteFile(secretFile, []byte(ferrySecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h.rw = &tokenRewriter{base: h.idp.Transport()}
	cfg := auth.Config{
		IdPs: []auth.IdPConfig{{
			Tenant: tenant, Issuer: h.idp.Issuer, ClientID: ferryClient, ClientSecretFile: secretFile,
			RedirectURL: base + auth.CallbackPath, Roles: roles,
		}},
		TrustedOrigins: []string{"https://ui.acme.example"},
		Logger:         slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		OnEvent:        h.events.add,
		HTTPClient:     &http.Client{Transport: h.rw, Timeout: 30 * time.Second},
		Now:            h.clock.Now,
	}
	if edit != nil {
		edit(&cfg)
	}
	svc, err := auth.New(context.Background(), db, cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.svc = svc
	h.srv.Config.Handler = apiMux(svc)
	h.srv.StartTLS()
	t.Cleanup(h.srv.Close)
	return h
}

// apiMux is an API guarded as the control plane guards its own.
func apiMux(svc *auth.Service) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/auth/", svc.Handler())
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := auth.FromContext(r.Context())
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(p)
	})
	mux.Handle("GET /api/whoami", svc.Authenticate(ok))
	mux.Handle("POST /api/jobs", svc.Authenticate(auth.Require(auth.Editor)(ok)))
	mux.Handle("DELETE /api/users/x", svc.Authenticate(auth.Require(auth.Admin)(ok)))
	return mux
}

// browser returns a fresh cookie-keeping client that follows no redirect.
func (h *harness) browser() *http.Client { return h.idp.NewBrowser() }

// signIn signs username in through the provider and returns their
// browser; it fails the test unless the control plane answers 303.
func (h *harness) signIn(username string) *http.Client {
	h.t.Helper()
	b := h.browser()
	resp, err := h.idp.SignIn(context.Background(), b, h.srv.URL+auth.LoginPath, username)
	if err != nil {
		h.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		h.t.Fatalf("sign-in of %s: %d %s", username, resp.StatusCode, body)
	}
	return b
}

// callback runs the flow to the redirect URI and requests it, returning
// the control plane's status and body.
func (h *harness) callback(b *http.Client, cb *url.URL) (int, string) {
	h.t.Helper()
	resp, err := b.Get(cb.String())
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// loginURL asks the control plane to start a sign-in and returns the
// provider's authorization URL it redirects to.
func (h *harness) loginURL(b *http.Client) *url.URL {
	h.t.Helper()
	resp, err := b.Get(h.srv.URL + auth.LoginPath)
	if err != nil {
		h.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		h.t.Fatalf("login: %d", resp.StatusCode)
	}
	u, err := resp.Location()
	if err != nil {
		h.t.Fatal(err)
	}
	return u
}

// do sends a request with b and returns the status and body.
func (h *harness) do(b *http.Client, method, path string, hdr map[string]string) (int, string) {
	h.t.Helper()
	req, err := http.NewRequest(method, h.srv.URL+path, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := b.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// whoami returns the principal the API sees for b (and the status).
func (h *harness) whoami(b *http.Client, hdr map[string]string) (auth.Principal, int) {
	h.t.Helper()
	status, body := h.do(b, http.MethodGet, "/api/whoami", hdr)
	var p auth.Principal
	if status == http.StatusOK {
		if err := json.Unmarshal([]byte(body), &p); err != nil {
			h.t.Fatal(err)
		}
	}
	return p, status
}

// cookie returns the value of b's cookie for the API.
func (h *harness) cookie(b *http.Client, name string) string {
	u, _ := url.Parse(h.srv.URL)
	for _, c := range b.Jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// csrf returns the headers a cookie-authenticated state change needs.
func (h *harness) csrf(b *http.Client) map[string]string {
	return map[string]string{auth.CSRFHeader: h.cookie(b, auth.CSRFCookie)}
}

func bearer(token string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + token}
}
