package auth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/ferry-ai/ferry/controlplane/metadb"
)

// idp is one tenant's identity provider, discovered at first use.
type idp struct {
	cfg IdPConfig
	s   *Service

	mu       sync.Mutex
	provider *oidc.Provider
	verifier *oidc.IDTokenVerifier
	oauth    oauth2.Config
}

func newIdP(cfg IdPConfig, s *Service) *idp { return &idp{cfg: cfg, s: s} }

// clientContext carries the HTTP client go-oidc and oauth2 use.
func (p *idp) clientContext(ctx context.Context) context.Context {
	return oidc.ClientContext(ctx, p.s.cfg.HTTPClient)
}

// discover fetches the provider's metadata once; a failure is retried at
// the next sign-in.
func (p *idp) discover(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.provider != nil {
		return nil
	}
	dctx, cancel := context.WithTimeout(p.clientContext(context.WithoutCancel(ctx)), 30*time.Second)
	defer cancel()
	prov, err := oidc.NewProvider(dctx, p.cfg.Issuer)
	if err != nil {
		return fmt.Errorf("identity provider %s of tenant %s: discovery: %w", p.cfg.Issuer, p.cfg.Tenant, err)
	}
	p.provider = prov
	p.verifier = prov.Verifier(&oidc.Config{ClientID: p.cfg.ClientID, Now: p.s.now})
	p.oauth = oauth2.Config{
		ClientID:     p.cfg.ClientID,
		ClientSecret: p.cfg.ClientSecret.Reveal(),
		Endpoint:     prov.Endpoint(),
		RedirectURL:  p.cfg.RedirectURL,
		Scopes:       append([]string{oidc.ScopeOpenID, "email", "profile"}, p.cfg.Scopes...),
	}
	return nil
}

// roleOf returns the highest role the groups map to ("" for none).
func (p *idp) roleOf(groups []string) Role {
	var best Role
	for _, g := range groups {
		if r := p.cfg.Roles[g]; r.rank() > best.rank() {
			best = r
		}
	}
	return best
}

// idpFor picks the identity provider of a login request's tenant.
func (s *Service) idpFor(tenant string) *idp {
	if tenant == "" {
		return s.only
	}
	return s.idps[tenant]
}

// pkceVerifier derives the flow's PKCE code verifier from the secret in
// the browser's flow cookie: the database never holds what redeems a
// stolen code.
func pkceVerifier(flowSecret string) string {
	m := hmac.New(sha256.New, []byte(flowSecret))
	m.Write([]byte("ferry pkce verifier"))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// csrfToken derives a session's CSRF token from its ID.
func csrfToken(sessionID string) string {
	m := hmac.New(sha256.New, []byte(sessionID))
	m.Write([]byte("ferry csrf token"))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// safeReturn keeps a local path (no scheme, no host) to go back to after
// sign-in; anything else becomes "/".
func safeReturn(p string) string {
	if p == "" || len(p) > 2048 || !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") ||
		strings.ContainsAny(p, "\\\r\n") {
		return "/"
	}
	return p
}

func remoteHost(r *http.Request) string {
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return h
	}
	return r.RemoteAddr
}

func setCookie(w http.ResponseWriter, name, value string, maxAge time.Duration, httpOnly bool) {
	c := &http.Cookie{Name: name, Value: value, Path: "/", Secure: true, HttpOnly: httpOnly, SameSite: http.SameSiteLaxMode}
	if maxAge > 0 {
		c.MaxAge = int(maxAge / time.Second)
	} else {
		c.MaxAge = -1
	}
	http.SetCookie(w, c)
}

// startSession stores a session and sets its cookies.
func (s *Service) startSession(ctx context.Context, w http.ResponseWriter, tenant, userID string, via Via, ttl time.Duration) error {
	id, err := s.newSession(ctx, tenant, userID, via, ttl)
	if err != nil {
		return err
	}
	setCookie(w, SessionCookie, id, ttl, true)
	setCookie(w, CSRFCookie, csrfToken(id), ttl, false)
	return nil
}

// login sends the browser to the tenant's identity provider with a fresh
// state (bound to a short-lived cookie), nonce and PKCE challenge.
func (s *Service) login(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	p := s.idpFor(r.URL.Query().Get("tenant"))
	if p == nil {
		writeError(w, http.StatusNotFound, "no identity provider for this tenant: give ?tenant=")
		return
	}
	if err := p.discover(ctx); err != nil {
		s.log.Error("auth: sign-in", "tenant", p.cfg.Tenant, "err", err)
		writeError(w, http.StatusBadGateway, "the identity provider cannot be reached; try again, or use the break-glass admin")
		return
	}
	if err := s.Sweep(ctx); err != nil {
		s.log.Warn("auth: sweep", "err", err)
	}
	state, nonce, secret := randomString(32), randomString(32), randomString(32)
	err := s.putFlow(ctx, state, flow{
		tenant: p.cfg.Tenant, bindingHash: hashSecret(secret), nonce: nonce,
		returnTo: safeReturn(r.URL.Query().Get("return_to")), expires: s.now().Add(FlowTTL),
	})
	if err != nil {
		s.log.Error("auth: sign-in", "tenant", p.cfg.Tenant, "err", err)
		writeError(w, http.StatusInternalServerError, "sign-in failed: see the control plane's log")
		return
	}
	setCookie(w, flowCookie, secret, FlowTTL, true)
	u := p.oauth.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(pkceVerifier(secret)))
	s.log.Debug("auth: sign-in started", "tenant", p.cfg.Tenant, "remote", remoteHost(r))
	http.Redirect(w, r, u, http.StatusFound)
}

// refusal is a sign-in refused: what the browser is told, what the audit
// log records.
type refusal struct {
	status        int
	tenant, actor string
	message       string // to the browser
	reason        string // to the audit log
}

func (e *refusal) Error() string { return e.reason }

// callback completes a sign-in: checks the state against the browser's
// flow cookie, exchanges the code (with the PKCE verifier), verifies the
// ID token (signature, issuer, audience, expiry, nonce), maps the groups
// to a role, provisions the user and starts a session.
func (s *Service) callback(w http.ResponseWriter, r *http.Request) {
	remote := remoteHost(r)
	// The flow cookie is good for this one try, whatever its outcome.
	setCookie(w, flowCookie, "", 0, true)
	u, f, created, err := s.complete(r)
	if err != nil {
		var ref *refusal
		if !errors.As(err, &ref) {
			ref = &refusal{status: http.StatusInternalServerError, tenant: f.tenant, message: "sign-in failed: see the control plane's log", reason: err.Error()}
		}
		s.emit(Event{Tenant: ref.tenant, Actor: ref.actor, Action: ActionSignInFailed, Outcome: OutcomeFailure, Remote: remote, Reason: ref.reason})
		writeError(w, ref.status, ref.message)
		return
	}
	if err := s.startSession(r.Context(), w, u.Tenant, u.ID, ViaSession, s.cfg.SessionAbsoluteTTL); err != nil {
		s.emit(Event{Tenant: u.Tenant, Actor: u.ID, Action: ActionSignInFailed, Outcome: OutcomeFailure, Remote: remote, Reason: err.Error()})
		writeError(w, http.StatusInternalServerError, "sign-in failed: see the control plane's log")
		return
	}
	reason := "role " + string(u.Role)
	if created {
		reason += "; user provisioned just in time"
	}
	s.emit(Event{Tenant: u.Tenant, Actor: u.ID, Action: ActionSignIn, Outcome: OutcomeSuccess, Remote: remote, Reason: reason})
	http.Redirect(w, r, f.returnTo, http.StatusSeeOther)
}

// claims are what Ferry reads from the ID token and userinfo.
type claims struct {
	subject, email, name string
	groups               []string
	hasGroups            bool
}

func (c *claims) read(raw map[string]json.RawMessage, groupClaim string) {
	str := func(k string) string {
		var v string
		_ = json.Unmarshal(raw[k], &v)
		return v
	}
	if c.email == "" {
		c.email = str("email")
	}
	if c.name == "" {
		c.name = str("name")
	}
	if c.name == "" {
		c.name = str("preferred_username")
	}
	if g, ok := raw[groupClaim]; ok && !c.hasGroups {
		var list []string
		var one string
		switch {
		case json.Unmarshal(g, &list) == nil:
			c.groups, c.hasGroups = list, true
		case json.Unmarshal(g, &one) == nil:
			c.groups, c.hasGroups = []string{one}, true
		}
	}
}

// complete runs the checks of callback; it returns the user signed in, the
// flow, and whether the user was just created.
func (s *Service) complete(r *http.Request) (User, flow, bool, error) {
	ctx := r.Context()
	q := r.URL.Query()
	bad := func(status int, tenant, message, reason string) error {
		return &refusal{status: status, tenant: tenant, message: message, reason: reason}
	}
	cookie, err := r.Cookie(flowCookie)
	if err != nil || cookie.Value == "" {
		return User{}, flow{}, false, bad(http.StatusBadRequest, "", "no sign-in in progress in this browser (or it took over 10 minutes): start again at "+LoginPath, "no flow cookie")
	}
	state := q.Get("state")
	if state == "" {
		return User{}, flow{}, false, bad(http.StatusBadRequest, "", "the identity provider's answer has no state: start again at "+LoginPath, "no state")
	}
	f, err := s.takeFlow(ctx, state)
	switch {
	case errors.Is(err, ErrNotFound):
		return User{}, flow{}, false, bad(http.StatusBadRequest, "", "unknown or already used sign-in state: start again at "+LoginPath, "unknown or used state")
	case err != nil:
		return User{}, flow{}, false, err
	case !equalHashes(f.bindingHash, hashSecret(cookie.Value)):
		return User{}, f, false, bad(http.StatusBadRequest, f.tenant, "this sign-in was started in another browser: start again at "+LoginPath, "state not bound to this browser's flow cookie")
	case !s.now().Before(f.expires):
		return User{}, f, false, bad(http.StatusBadRequest, f.tenant, "the sign-in took too long: start again at "+LoginPath, "flow expired")
	}
	if e := q.Get("error"); e != "" {
		return User{}, f, false, bad(http.StatusForbidden, f.tenant, "the identity provider refused the sign-in ("+oneWord(e)+")", "identity provider answered "+oneWord(e))
	}
	p := s.idps[f.tenant]
	if p == nil {
		return User{}, f, false, bad(http.StatusBadRequest, f.tenant, "this tenant no longer has an identity provider", "no identity provider for the flow's tenant")
	}
	if err := p.discover(ctx); err != nil {
		return User{}, f, false, bad(http.StatusBadGateway, f.tenant, "the identity provider cannot be reached", err.Error())
	}
	octx := p.clientContext(ctx)
	tok, err := p.oauth.Exchange(octx, q.Get("code"), oauth2.VerifierOption(pkceVerifier(cookie.Value)))
	if err != nil {
		// A RetrieveError's text holds the provider's answer; keep its code.
		reason := "code exchange: the provider is unreachable or answered badly"
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			reason = fmt.Sprintf("code exchange refused: HTTP %d %s", re.Response.StatusCode, oneWord(re.ErrorCode))
		}
		return User{}, f, false, bad(http.StatusBadGateway, f.tenant, "the identity provider refused the code", reason)
	}
	rawID, _ := tok.Extra("id_token").(string)
	if rawID == "" {
		return User{}, f, false, bad(http.StatusBadGateway, f.tenant, "the identity provider sent no ID token", "no id_token in the token response")
	}
	idt, err := p.verifier.Verify(ctx, rawID)
	if err != nil {
		return User{}, f, false, bad(http.StatusForbidden, f.tenant, "the ID token is not valid for this sign-in", "ID token refused: "+err.Error())
	}
	if !equalHashes(idt.Nonce, f.nonce) {
		return User{}, f, false, bad(http.StatusForbidden, f.tenant, "the ID token is not valid for this sign-in", "ID token refused: nonce does not match the sign-in's")
	}
	if idt.AccessTokenHash != "" {
		if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
			return User{}, f, false, bad(http.StatusForbidden, f.tenant, "the ID token is not valid for this sign-in", "ID token refused: "+err.Error())
		}
	}
	c := claims{subject: idt.Subject}
	var raw map[string]json.RawMessage
	if err := idt.Claims(&raw); err != nil {
		return User{}, f, false, bad(http.StatusForbidden, f.tenant, "the ID token is not valid for this sign-in", "ID token claims: "+err.Error())
	}
	c.read(raw, p.cfg.GroupClaim)
	if !c.hasGroups || c.email == "" {
		// Providers that keep ID tokens small put the rest in userinfo.
		ui, err := p.provider.UserInfo(octx, oauth2.StaticTokenSource(tok))
		switch {
		case err != nil:
			s.log.Info("auth: userinfo", "tenant", f.tenant, "err", err)
		case ui.Subject != idt.Subject:
			return User{}, f, false, bad(http.StatusForbidden, f.tenant, "the identity provider's answers disagree", "userinfo subject differs from the ID token's")
		default:
			var more map[string]json.RawMessage
			if ui.Claims(&more) == nil {
				c.read(more, p.cfg.GroupClaim)
			}
		}
	}
	role := p.roleOf(c.groups)
	if role == "" {
		return User{}, f, false, &refusal{status: http.StatusForbidden, tenant: f.tenant, actor: c.subject,
			message: "you are in no group that gives access to Ferry: ask your administrator",
			reason:  fmt.Sprintf("no mapped group in claim %q (%d groups)", p.cfg.GroupClaim, len(c.groups))}
	}
	u, created, err := s.signInUser(ctx, f.tenant, c, role, p.cfg.NoJIT)
	switch {
	case errors.Is(err, ErrInactive):
		return User{}, f, false, &refusal{status: http.StatusForbidden, tenant: f.tenant, actor: u.ID, message: "your Ferry account is deactivated", reason: "user deactivated"}
	case errors.Is(err, errNotProvisioned):
		return User{}, f, false, &refusal{status: http.StatusForbidden, tenant: f.tenant, actor: c.subject, message: "you have no Ferry account: ask your administrator", reason: "user not provisioned (just-in-time provisioning is off)"}
	case err != nil:
		return User{}, f, false, err
	}
	return u, f, created, nil
}

// oneWord keeps an OAuth error code printable and short (it comes from
// outside).
func oneWord(s string) string {
	var b strings.Builder
	for _, r := range s {
		if b.Len() >= 64 {
			break
		}
		if r == '_' || r == '-' || r == '.' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		}
	}
	return b.String()
}

var errNotProvisioned = errors.New("user not provisioned")

// signInUser finds the user of the provider's subject (or of an external
// ID equal to it, provisioned beforehand), or creates one just in time,
// and records their email, name and role. A deactivated user stays so:
// ErrInactive.
func (s *Service) signInUser(ctx context.Context, tenant string, c claims, role Role, noJIT bool) (User, bool, error) {
	var out User
	var created bool
	try := func() error {
		return s.db.InTx(ctx, func(tx *metadb.Tx) error {
			now := s.now()
			created = false
			u, err := findUser(ctx, tx, tenant, "subject", c.subject)
			if errors.Is(err, ErrNotFound) {
				u, err = findUser(ctx, tx, tenant, "external_id", c.subject)
				if err == nil && u.Subject != "" && u.Subject != c.subject {
					return fmt.Errorf("user %s: external ID %q is linked to another subject", u.ID, c.subject)
				}
			}
			switch {
			case errors.Is(err, ErrNotFound):
				if noJIT {
					return errNotProvisioned
				}
				out = User{Tenant: tenant, ID: newID("u_"), Subject: c.subject, Email: c.email, DisplayName: c.name,
					Active: true, Role: role, CreatedAt: now, UpdatedAt: now}
				created = true
				return insertUser(ctx, tx, out)
			case err != nil:
				return err
			case !u.Active:
				out = u
				return ErrInactive
			}
			u.Subject, u.Role, u.UpdatedAt = c.subject, role, now
			if c.email != "" {
				u.Email = c.email
			}
			if c.name != "" {
				u.DisplayName = c.name
			}
			out = u
			return updateUser(ctx, tx, u)
		})
	}
	err := try()
	if err != nil && !errors.Is(err, ErrInactive) && !errors.Is(err, errNotProvisioned) {
		// Two first sign-ins of one user at once: the second insert hits
		// the unique subject; the retry finds the user.
		err = try()
	}
	return out, created, err
}

// logout ends the browser's session. It is a state change made with the
// session cookie, so it needs the CSRF token (header, or form field csrf).
func (s *Service) logout(w http.ResponseWriter, r *http.Request) {
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" {
		writeJSON(w, http.StatusOK, map[string]bool{"signed_out": false})
		return
	}
	if err := s.cop.Check(r); err != nil {
		writeError(w, http.StatusForbidden, "cross-origin request refused")
		return
	}
	got := r.Header.Get(CSRFHeader)
	if got == "" {
		got = r.PostFormValue("csrf")
	}
	if !equalHashes(got, csrfToken(c.Value)) {
		writeError(w, http.StatusForbidden, "missing or wrong CSRF token: send the "+CSRFCookie+" cookie's value in "+CSRFHeader)
		return
	}
	setCookie(w, SessionCookie, "", 0, true)
	setCookie(w, CSRFCookie, "", 0, false)
	tenant, user, err := s.endSession(r.Context(), c.Value)
	if err != nil && !errors.Is(err, ErrNotFound) {
		s.log.Error("auth: sign-out", "err", err)
		writeError(w, http.StatusInternalServerError, "sign-out failed: see the control plane's log")
		return
	}
	if err == nil {
		s.emit(Event{Tenant: tenant, Actor: user, Action: ActionSignOut, Outcome: OutcomeSuccess, Remote: remoteHost(r)})
	}
	writeJSON(w, http.StatusOK, map[string]bool{"signed_out": err == nil})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
