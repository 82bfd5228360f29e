package controlplane

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ferry-ai/ferry/controlplane/api"
	"github.com/ferry-ai/ferry/controlplane/audit"
	"github.com/ferry-ai/ferry/controlplane/auth"
	"github.com/ferry-ai/ferry/controlplane/scim"
	"github.com/ferry-ai/ferry/controlplane/support"
	"github.com/ferry-ai/ferry/internal/pki"
	"github.com/ferry-ai/ferry/internal/telemetry"
)

// DefaultSupportTenant is the tenant of the provider's support staff
// unless Config.SupportTenant names another.
const DefaultSupportTenant = "ferry-support"

// DefaultTenant is the tenant of the operator's API token (api_token_file)
// and of jobs until tenants are assigned per agent.
const DefaultTenant = pki.DefaultTenant

// operatorUser is the external ID of the auth user the operator's API
// token acts as: an admin of DefaultTenant, so it can mint API tokens of its
// own.
const operatorUser = "ferry-operator"

// route is one endpoint of the user API: who may call it and what it does.
// The table of routes is the single source of the mux, the role checks,
// the audit action and the OpenAPI document.
type route struct {
	method, path string
	// role is the least role allowed.
	role auth.Role
	// action names the call in the audit log (e.g. "job.submit").
	action  string
	summary string
	handler http.HandlerFunc
}

// routes is the user API behind authentication.
func (s *Server) routes() []route {
	return append(s.coreRoutes(), s.catalogRoutes()...)
}

// coreRoutes are the jobs, agents, tokens, support, audit and metrics.
func (s *Server) coreRoutes() []route {
	return []route{
		{"GET", api.PathJobs, auth.Viewer, "job.list", "List jobs, newest first (?limit=)", s.handleJobs},
		{"POST", api.PathJobs, auth.Editor, "job.submit", "Submit a predictive query", s.handleJobs},
		{"GET", api.PathJobs + "/{id}", auth.Viewer, "job.get", "A job with its history, table statistics, model metrics, write and purge reports", s.handleJob},
		{"POST", api.PathJobs + "/{id}/cancel", auth.Editor, "job.cancel", "Cancel a job", s.handleCancel},
		{"GET", api.PathAgents, auth.Viewer, "agent.list", "Agents: connected, last seen, tables", s.handleAgents},
		{"GET", api.PathGraph, auth.Viewer, "graph.get", "The schema queries are planned against: tables, columns, primary and foreign keys (the latest an agent reported)", s.handleGraph},
		{"POST", api.PathEnrollments, auth.Admin, "agent.enroll_token", "Create a one-time enrollment token for an agent", s.handleEnrollments},
		{"POST", api.PathAgents + "/{id}/revoke", auth.Admin, "agent.revoke", "Revoke an agent's certificates", s.handleRevoke},
		{"GET", api.PathTokens, auth.Viewer, "token.list", "Your API tokens (never the tokens themselves)", s.handleListTokens},
		{"POST", api.PathTokens, auth.Viewer, "token.create", "Create an API token (role at most yours); it is shown once", s.handleCreateToken},
		{"DELETE", api.PathTokens + "/{id}", auth.Viewer, "token.revoke", "Revoke one of your API tokens (an admin: any of the tenant's)", s.handleRevokeToken},
		{"DELETE", api.PathTenants + "/{id}", auth.Admin, "tenant.delete_request", "Close a tenant's account: delete all its metadata now and report what was deleted", s.handleDeleteTenant},
		{"POST", api.PathSupport, auth.Viewer, "support.request", "Support staff: ask for time-bounded access to a tenant ({tenant, reason, duration})", s.handleSupportRequest},
		{"GET", api.PathSupport, auth.Admin, "support.list", "The tenant's support-access requests and grants", s.handleSupportList},
		{"POST", api.PathSupport + "/{id}/approve", auth.Admin, "support.approve", "Approve a support-access request (not your own)", s.handleSupportDecision},
		{"POST", api.PathSupport + "/{id}/deny", auth.Admin, "support.deny", "Deny a support-access request", s.handleSupportDecision},
		{"POST", api.PathSupport + "/{id}/revoke", auth.Admin, "support.revoke", "End a support-access grant now", s.handleSupportDecision},
		{"POST", api.PathSignInLinks, auth.Admin, "auth.signin_link", "Operator only, when auth.signin_links is on: a one-time console sign-in link for a user of the operator's tenant", s.handleSignInLink},
		{"GET", api.PathAudit, auth.Admin, "auditlog.list", "The audit log (?actor=&action=&outcome=&since=&until=&after=&limit=)", s.handleAudit},
		{"GET", telemetry.PathMetrics, auth.Viewer, "metrics.scrape", "Prometheus metrics", s.metrics.reg.MetricsHandler().ServeHTTP},
	}
}

// accessHandler serves the routes: the caller is authenticated (the
// operator's token, an API token or a session), its role checked against
// the route's, and the call audited — refusals included.
func (s *Server) accessHandler() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range s.routes() {
		mux.Handle(rt.method+" "+rt.path, s.supportScope(s.audited(rt, auth.Require(rt.role)(rt.handler))))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint: %s %s", r.Method, r.URL.Path))
	})
	authed := s.authenticated(mux)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w}
		authed.ServeHTTP(rec, r)
		// A route that ran records its pattern (audited); a refusal
		// without one came before any route: audit the attempt.
		h, _ := r.Context().Value(routeKey{}).(*string)
		ranRoute := h != nil && *h != ""
		if (rec.status == http.StatusUnauthorized || rec.status == http.StatusForbidden) && !ranRoute {
			s.appendAudit(r.Context(), audit.Entry{ActorKind: audit.User, Action: "api.unauthenticated",
				Target: r.Method + " " + clip(r.URL.Path, 200), Outcome: audit.Denied, Remote: r.RemoteAddr})
		}
	})
}

// scimHandler serves SCIM 2.0 provisioning (controlplane/scim) for the
// tenant of the caller's admin API token — the token a tenant's admin
// creates (POST /v1/tokens, role admin) and gives to the identity provider.
// Users and groups land in the auth tables (auth.Directory): roles follow
// group membership at once, and deprovisioning ends sessions and tokens.
func (s *Server) scimHandler() http.Handler {
	h := scim.Handler(api.PathSCIM, s.auth.Directory(), func(r *http.Request) string {
		p, _ := auth.FromContext(r.Context())
		return p.Tenant
	}, s.log)
	rt := route{method: "ANY", path: api.PathSCIM + "/", role: auth.Admin, action: "scim.request"}
	inner := s.audited(rt, auth.Require(auth.Admin)(h))
	return s.authenticated(inner)
}

// authenticated serves next with the caller's principal in the request's
// context: the operator's token, else an API token or a session (auth);
// others get auth's 401.
func (s *Server) authenticated(next http.Handler) http.Handler {
	withAuth := s.auth.Authenticate(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p, ok := s.operator(r); ok {
			next.ServeHTTP(w, r.WithContext(auth.NewContext(r.Context(), p)))
			return
		}
		withAuth.ServeHTTP(w, r)
	})
}

// SupportHeader names the tenant a support engineer acts on.
const SupportHeader = "X-Ferry-Tenant"

// supportScope lets a support engineer (a user of the support tenant) act
// on the tenant named by SupportHeader — read-only, as a viewer, and only
// while they hold an approved, unexpired grant for it (controlplane/support);
// without one they see nothing of the tenant. Anyone else naming a tenant
// other than their own is refused.
func (s *Server) supportScope(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		target := r.Header.Get(SupportHeader)
		p, ok := auth.FromContext(r.Context())
		if target == "" || !ok || target == p.Tenant {
			next.ServeHTTP(w, r)
			return
		}
		// A refusal here is this layer's decision about a signed-in
		// caller, audited as support.access_denied (by controlplane/support)
		// or by the route below it, never as an unauthenticated call.
		routed(r)
		if p.Tenant != s.supportTenant() {
			writeError(w, http.StatusForbidden, "only support staff act on another tenant")
			return
		}
		grant, ok, err := s.support.Access(r.Context(), target, p.UserID)
		switch {
		case err != nil:
			writeError(w, http.StatusInternalServerError, "checking support access failed")
			return
		case !ok:
			writeError(w, http.StatusForbidden, fmt.Sprintf("no approved, unexpired support grant for tenant %s: request one (POST %s)", clip(target, maxNameLen), api.PathSupport))
			return
		}
		sp := auth.Principal{Tenant: target, UserID: "support:" + p.UserID, Role: auth.Viewer, Via: "support", TokenID: grant.ID}
		next.ServeHTTP(w, r.WithContext(auth.NewContext(r.Context(), sp)))
	})
}

// routed records that a route's layer answered the request (its pattern,
// as the mux matched it), so the API's outer handler does not audit a
// refusal as an unauthenticated call.
func routed(r *http.Request) {
	if h, ok := r.Context().Value(routeKey{}).(*string); ok && *h == "" {
		*h = r.Pattern
	}
}

// isOperator reports whether p is the operator's token (api_token_file),
// which may act on any tenant's agents.
func isOperator(p auth.Principal) bool { return p.Via == auth.ViaToken && p.TokenID == operatorTokenID }

// operatorTokenID is the TokenID of the operator's principal.
const operatorTokenID = "operator"

// supportTenant is the tenant whose users are the provider's support staff.
func (s *Server) supportTenant() string {
	if s.cfg.SupportTenant != "" {
		return s.cfg.SupportTenant
	}
	return DefaultSupportTenant
}

func (s *Server) handleSupportRequest(w http.ResponseWriter, r *http.Request) {
	p, _ := auth.FromContext(r.Context())
	if p.Tenant != s.supportTenant() {
		writeError(w, http.StatusForbidden, "only support staff request support access")
		return
	}
	var req api.SupportRequest
	if status, err := decodeBody(w, r, &req); err != nil {
		writeError(w, status, err.Error())
		return
	}
	d, err := time.ParseDuration(req.Duration)
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("duration %q: want e.g. 1h", req.Duration))
		return
	}
	out, err := s.support.Request(r.Context(), req.Tenant, p.UserID, req.Reason, d)
	if errors.Is(err, support.ErrInvalid) {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, "recording the request failed")
		return
	}
	writeJSON(w, http.StatusCreated, out)
}

func (s *Server) handleSupportList(w http.ResponseWriter, r *http.Request) {
	p, _ := auth.FromContext(r.Context())
	list, err := s.support.List(r.Context(), p.Tenant)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "listing support requests failed")
		return
	}
	if list == nil {
		list = []support.Request{}
	}
	writeJSON(w, http.StatusOK, list)
}

// handleSupportDecision approves, denies or revokes a request of the
// admin's own tenant (the last path element says which).
func (s *Server) handleSupportDecision(w http.ResponseWriter, r *http.Request) {
	p, _ := auth.FromContext(r.Context())
	if p.Via == "support" {
		writeError(w, http.StatusForbidden, "support staff cannot decide support requests")
		return
	}
	id := r.PathValue("id")
	var out support.Request
	var err error
	switch r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:] {
	case "approve":
		out, err = s.support.Approve(r.Context(), p.Tenant, id, p.UserID)
	case "deny":
		out, err = s.support.Deny(r.Context(), p.Tenant, id, p.UserID)
	default:
		out, err = s.support.Revoke(r.Context(), p.Tenant, id, p.UserID)
	}
	switch {
	case errors.Is(err, support.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, support.ErrSelfApproval), errors.Is(err, support.ErrNotPending):
		writeError(w, http.StatusConflict, err.Error())
	case err != nil:
		writeError(w, http.StatusInternalServerError, "recording the decision failed")
	default:
		writeJSON(w, http.StatusOK, out)
	}
}

// operator recognises the operator's API token (api_token_file), compared
// by SHA-256 in constant time: an admin of DefaultTenant.
func (s *Server) operator(r *http.Request) (auth.Principal, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.HasPrefix(token, auth.TokenPrefix) {
		return auth.Principal{}, false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(token)))
	if subtle.ConstantTimeCompare(sum[:], s.tokenHash[:]) != 1 {
		return auth.Principal{}, false
	}
	return auth.Principal{Tenant: DefaultTenant, UserID: s.operatorID, Role: auth.Admin, Via: auth.ViaToken, TokenID: operatorTokenID}, true
}

// audited appends an audit entry for every call of rt once it is answered:
// who (the principal), what (the route's action and its target), when,
// from where and the outcome (by status: < 400 success, 401/403 denied,
// else failed).
func (s *Server) audited(rt route, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h, ok := r.Context().Value(routeKey{}).(*string); ok {
			*h = rt.path
		}
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if rt.method == http.MethodGet && rt.action == "metrics.scrape" {
			return // scrapes every few seconds are not user actions
		}
		status := rec.status
		if status == 0 {
			status = http.StatusOK
		}
		outcome := audit.Success
		switch {
		case status == http.StatusUnauthorized || status == http.StatusForbidden:
			outcome = audit.Denied
		case status >= 400:
			outcome = audit.Failed
		}
		p, _ := auth.FromContext(r.Context())
		kind := audit.User
		if p.Via == auth.ViaBreakGlass || isOperator(p) {
			kind = audit.Admin
		}
		target := rt.path
		if rt.method == "ANY" {
			target = r.Method + " " + clip(r.URL.Path, 200)
		}
		if id := r.PathValue("id"); id != "" {
			target = strings.Replace(rt.path, "{id}", clip(id, maxNameLen), 1)
		}
		s.appendAudit(r.Context(), audit.Entry{Tenant: p.Tenant, ActorKind: kind, Actor: p.UserID, Action: rt.action,
			Target: target, Outcome: outcome, Remote: r.RemoteAddr, Details: map[string]string{"status": strconv.Itoa(status), "via": string(p.Via)}})
	})
}

// appendAudit records e; an audit log that cannot be written is logged as
// an error (the request has already been answered).
func (s *Server) appendAudit(ctx context.Context, e audit.Entry) {
	if s.audit == nil {
		return
	}
	if host, _, err := net.SplitHostPort(e.Remote); err == nil && e.Remote != "" {
		e.Remote = host
	}
	if e.Actor == "" {
		// Someone not (yet) known: an unauthenticated caller, or the
		// control plane acting on its own.
		e.Actor = "anonymous"
		if e.ActorKind == audit.System {
			e.Actor = "controlplane"
		}
	}
	if _, err := s.audit.Append(context.WithoutCancel(ctx), e); err != nil {
		s.log.LogAttrs(ctx, slog.LevelError, "audit log append failed", slog.String("action", e.Action), slog.String("error", err.Error()))
	}
}

// authEvent records an auth.Event (sign-in, token, user changes) in the
// audit log.
func (s *Server) authEvent(e auth.Event) {
	outcome := audit.Success
	if e.Outcome != auth.OutcomeSuccess {
		outcome = audit.Denied
	}
	kind := audit.User
	switch {
	case e.Action == auth.ActionBreakGlass:
		kind = audit.Admin
	case e.Actor == "":
		kind = audit.System
	}
	d := map[string]string{}
	if e.Reason != "" {
		d["reason"] = clip(e.Reason, 200)
	}
	s.appendAudit(context.Background(), audit.Entry{Tenant: e.Tenant, ActorKind: kind, Actor: e.Actor, Action: e.Action,
		Target: e.Target, Outcome: outcome, Remote: e.Remote, Details: d})
}

// supportEvent records a support-access step in the audit log.
func (s *Server) supportEvent(ctx context.Context, e support.Event) {
	outcome := audit.Success
	if e.Outcome != "success" {
		outcome = audit.Denied
	}
	d := map[string]string{}
	if e.Detail != "" {
		d["reason"] = clip(e.Detail, 200)
	}
	kind := audit.Support
	if e.Action == "support.approve" || e.Action == "support.deny" || e.Action == "support.revoke" {
		kind = audit.Admin
	}
	if e.Actor == "" {
		kind = audit.System
	}
	s.appendAudit(ctx, audit.Entry{Tenant: e.Tenant, ActorKind: kind, Actor: e.Actor, Action: e.Action, Target: "support/" + e.Request, Outcome: outcome, Details: d})
}

// auditAgent records an agent's action (connect, disconnect, a job's state
// change) in the audit log.
func (s *Server) auditAgent(ctx context.Context, tenant, agentID, action, target string, outcome audit.Outcome, details map[string]string) {
	s.appendAudit(ctx, audit.Entry{Tenant: tenant, ActorKind: audit.Agent, Actor: agentID, Action: action, Target: target, Outcome: outcome, Details: details})
}

// Auth returns the server's identity service: for provisioning tools and
// tests that make users and tokens without an identity provider.
func (s *Server) Auth() *auth.Service { return s.auth }

// ensureOperator makes (or finds) the auth user the operator's token acts
// as, and remembers its ID.
func (s *Server) ensureOperator(ctx context.Context) error {
	u, err := s.auth.UpsertUser(ctx, auth.User{Tenant: DefaultTenant, ExternalID: operatorUser, DisplayName: "operator (api_token_file)", Active: true, Role: auth.Admin})
	if err != nil {
		return fmt.Errorf("operator account: %w", err)
	}
	s.operatorID = u.ID
	return nil
}

// --- tokens -----------------------------------------------------------

func (s *Server) handleListTokens(w http.ResponseWriter, r *http.Request) {
	p, _ := auth.FromContext(r.Context())
	toks, err := s.auth.ListTokens(r.Context(), p.Tenant, p.UserID)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "listing tokens failed")
		return
	}
	writeJSON(w, http.StatusOK, toks)
}

func (s *Server) handleCreateToken(w http.ResponseWriter, r *http.Request) {
	p, _ := auth.FromContext(r.Context())
	var req api.CreateTokenRequest
	if status, err := decodeBody(w, r, &req); err != nil {
		writeError(w, status, err.Error())
		return
	}
	role, err := auth.ParseRole(req.Role)
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("role %q: want viewer, editor or admin", req.Role))
		return
	}
	ttl, err := time.ParseDuration(req.TTL)
	if req.TTL == "" {
		ttl, err = 30*24*time.Hour, nil
	}
	if err != nil || ttl <= 0 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("ttl %q: want a duration such as 720h", req.TTL))
		return
	}
	tok, secret, err := s.auth.CreateToken(r.Context(), p.Tenant, p.UserID, role, req.Name, ttl)
	switch {
	case errors.Is(err, auth.ErrRoleTooHigh):
		writeError(w, http.StatusForbidden, fmt.Sprintf("a token's role cannot exceed yours (%s)", p.Role))
		return
	case errors.Is(err, auth.ErrInvalid):
		writeError(w, http.StatusBadRequest, err.Error())
		return
	case err != nil:
		writeError(w, http.StatusInternalServerError, "creating the token failed")
		return
	}
	writeJSON(w, http.StatusCreated, api.CreatedToken{Token: tok, Secret: secret.Reveal()})
}

func (s *Server) handleRevokeToken(w http.ResponseWriter, r *http.Request) {
	p, _ := auth.FromContext(r.Context())
	id := r.PathValue("id")
	if p.Role != auth.Admin {
		// Not an admin: only one's own tokens.
		toks, err := s.auth.ListTokens(r.Context(), p.Tenant, p.UserID)
		if err != nil {
			writeError(w, http.StatusInternalServerError, "listing tokens failed")
			return
		}
		mine := false
		for _, t := range toks {
			mine = mine || t.ID == id
		}
		if !mine {
			writeError(w, http.StatusNotFound, fmt.Sprintf("token %s not found", clip(id, maxNameLen)))
			return
		}
	}
	err := s.auth.RevokeToken(r.Context(), p.Tenant, id)
	switch {
	case errors.Is(err, auth.ErrNotFound):
		writeError(w, http.StatusNotFound, fmt.Sprintf("token %s not found", clip(id, maxNameLen)))
	case err != nil:
		writeError(w, http.StatusInternalServerError, "revoking the token failed")
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// --- audit ------------------------------------------------------------

func (s *Server) handleAudit(w http.ResponseWriter, r *http.Request) {
	p, _ := auth.FromContext(r.Context())
	q := r.URL.Query()
	tenant := p.Tenant
	if isOperator(p) {
		tenant = q.Get("tenant") // the provider's operator sees every tenant, and requests refused before one was known
	}
	f := audit.Filter{Tenant: tenant, Actor: q.Get("actor"), Action: q.Get("action"), Outcome: audit.Outcome(q.Get("outcome")), Limit: 100}
	for name, dst := range map[string]*time.Time{"since": &f.Since, "until": &f.Until} {
		if v := q.Get(name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("%s %q: want an RFC 3339 time", name, v))
				return
			}
			*dst = t
		}
	}
	f.Newest = true
	for name, dst := range map[string]*int64{"after": &f.AfterSeq, "limit": nil} {
		v := q.Get(name)
		if v == "" {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("%s %q: want a non-negative number", name, v))
			return
		}
		if dst != nil {
			*dst = n
		} else {
			f.Limit = int(min(n, maxListLimit))
		}
	}
	entries, err := s.audit.List(r.Context(), f)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "reading the audit log failed")
		return
	}
	writeJSON(w, http.StatusOK, entries)
}

// --- OpenAPI ----------------------------------------------------------

// openAPI is the OpenAPI 3.1 document of the user API, made from the
// route table: every path, its methods, the least role (x-ferry-role) and
// the bearer or session security.
func (s *Server) openAPI() map[string]any {
	paths := map[string]map[string]any{}
	for _, rt := range s.routes() {
		if paths[rt.path] == nil {
			paths[rt.path] = map[string]any{}
		}
		op := map[string]any{
			"operationId": rt.action, "summary": rt.summary, "x-ferry-role": string(rt.role),
			"security":  []map[string][]string{{"bearer": {}}, {"session": {}}},
			"responses": map[string]any{"200": map[string]string{"description": "OK"}, "401": map[string]string{"description": "not signed in"}, "403": map[string]string{"description": "role " + string(rt.role) + " or higher required"}},
		}
		if strings.Contains(rt.path, "{id}") {
			op["parameters"] = []map[string]any{{"name": "id", "in": "path", "required": true, "schema": map[string]string{"type": "string"}}}
		}
		paths[rt.path][strings.ToLower(rt.method)] = op
	}
	for _, p := range []struct{ path, summary string }{
		{api.PathHealthz, "Liveness (no token)"}, {telemetry.PathReadyz, "Readiness: metadata DB and agent port (no token)"},
		{api.PathCRL, "The agents' certificate revocation list, signed (no token)"},
	} {
		paths[p.path] = map[string]any{"get": map[string]any{"summary": p.summary, "security": []any{}, "responses": map[string]any{"200": map[string]string{"description": "OK"}}}}
	}
	return map[string]any{
		"openapi": "3.1.0",
		"info":    map[string]string{"title": "Ferry control plane", "version": "1"},
		"paths":   paths,
		"components": map[string]any{"securitySchemes": map[string]any{
			"bearer":  map[string]string{"type": "http", "scheme": "bearer", "description": "an API token (ferry_…) or the operator's token"},
			"session": map[string]string{"type": "apiKey", "in": "cookie", "name": auth.SessionCookie, "description": "a browser session after sign-in at /auth/login"},
		}},
	}
}

func (s *Server) handleOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(s.openAPI())
}

// signInUserRE is what a sign-in link's user name may be.
var signInUserRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// handleSignInLink mints a one-time console sign-in link (the demo prints
// one for its admin). Only the operator's token may, and only when the
// configuration turns links on; the user is one of the operator's tenant,
// made or updated with the role asked for.
func (s *Server) handleSignInLink(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	if !isOperator(p) {
		writeError(w, http.StatusForbidden, "only the operator's token (api_token_file) mints sign-in links")
		return
	}
	var req api.SignInLinkRequest
	if code, err := decodeBody(w, r, &req); err != nil {
		writeError(w, code, err.Error())
		return
	}
	role, roleErr := auth.ParseRole(req.Role)
	switch {
	case !signInUserRE.MatchString(req.User):
		writeError(w, http.StatusBadRequest, "user: want 1-64 letters, digits, '.', '_' or '-'")
		return
	case roleErr != nil:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("role %q: want admin, editor or viewer", req.Role))
		return
	}
	ttl, err := s.auth.SignInLinkTTL(time.Duration(req.TTLSeconds) * time.Second)
	switch {
	case errors.Is(err, auth.ErrSignInLinksOff):
		writeError(w, http.StatusNotFound, err.Error())
		return
	case err != nil:
		writeError(w, http.StatusBadRequest, "ttl_seconds: "+err.Error())
		return
	}
	ctx := r.Context()
	u, err := s.auth.UpsertUser(ctx, auth.User{Tenant: p.Tenant, ExternalID: "signin-link:" + req.User, DisplayName: req.User + " (sign-in link)", Active: true, Role: role})
	if err != nil {
		s.log.Error("sign-in link user", "error", err.Error())
		writeError(w, http.StatusInternalServerError, "could not record the user")
		return
	}
	token, expires, err := s.auth.CreateSignInLink(ctx, p.Tenant, u.ID, ttl)
	if err != nil {
		s.log.Error("sign-in link", "error", err.Error())
		writeError(w, http.StatusInternalServerError, "could not make the link")
		return
	}
	writeJSON(w, http.StatusCreated, api.SignInLink{
		URL:    "https://" + r.Host + auth.SignInLinkPath + "?token=" + url.QueryEscape(token.Reveal()),
		Tenant: p.Tenant, User: req.User, Role: string(role), ExpiresAt: expires.UTC(),
	})
}
