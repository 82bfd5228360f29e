package auth

import (
	"context"
	"errors"
	"net/http"
	"strings"
)

// Authenticate admits requests carrying a valid API token (Authorization:
// Bearer ferry_…) or session cookie, with the Principal in their context
// (FromContext); others get 401 with a JSON error. A cookie-authenticated
// request that changes state (any method but GET, HEAD, OPTIONS) must
// also pass the CSRF rule — the X-Ferry-CSRF header equal to the
// session's CSRF token (the __Host-ferry_csrf cookie's value), and no
// foreign Origin or Sec-Fetch-Site: cross-site — else 403. Bearer tokens
// are exempt: browsers never send them on their own.
func (s *Service) Authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, status, msg := s.authenticate(r)
		if status != 0 {
			if status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="ferry"`)
			}
			writeError(w, status, msg)
			return
		}
		ctx := context.WithValue(r.Context(), principalKey{}, p)
		ctx = context.WithValue(ctx, remoteKey{}, remoteHost(r))
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// authenticate returns the request's principal, or the status and message
// of its refusal.
func (s *Service) authenticate(r *http.Request) (Principal, int, string) {
	ctx := r.Context()
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, _ := strings.Cut(h, " ")
		tok = strings.TrimSpace(tok)
		if !strings.EqualFold(scheme, "Bearer") || !strings.HasPrefix(tok, TokenPrefix) {
			return Principal{}, http.StatusUnauthorized, "want Authorization: Bearer " + TokenPrefix + "…"
		}
		p, err := s.tokenPrincipal(ctx, tok)
		switch {
		case err == nil && !p.Role.Valid():
			return Principal{}, http.StatusForbidden, "the token's user has no role"
		case err == nil:
			s.log.Debug("auth: token accepted", "tenant", p.Tenant, "user", p.UserID, "token", p.TokenID)
			return p, 0, ""
		case errors.Is(err, ErrNotFound), errors.Is(err, ErrInactive), errors.Is(err, errExpired):
			return Principal{}, http.StatusUnauthorized, "invalid, expired or revoked token"
		default:
			s.log.Error("auth: token check", "err", err)
			return Principal{}, http.StatusInternalServerError, "authentication failed: see the control plane's log"
		}
	}
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" {
		return Principal{}, http.StatusUnauthorized, "sign in (" + LoginPath + ") or send an API token"
	}
	p, err := s.session(ctx, c.Value)
	switch {
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrInactive), errors.Is(err, errExpired):
		return Principal{}, http.StatusUnauthorized, "session expired or ended: sign in again (" + LoginPath + ")"
	case err != nil:
		s.log.Error("auth: session check", "err", err)
		return Principal{}, http.StatusInternalServerError, "authentication failed: see the control plane's log"
	case !p.Role.Valid():
		return Principal{}, http.StatusForbidden, "your account has no role"
	}
	if !safeMethod(r.Method) {
		if err := s.cop.Check(r); err != nil {
			return Principal{}, http.StatusForbidden, "cross-origin request refused"
		}
		if !equalHashes(r.Header.Get(CSRFHeader), csrfToken(c.Value)) {
			return Principal{}, http.StatusForbidden, "missing or wrong CSRF token: send the " + CSRFCookie + " cookie's value in " + CSRFHeader
		}
	}
	s.log.Debug("auth: session accepted", "tenant", p.Tenant, "user", p.UserID, "via", p.Via)
	return p, 0, ""
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// Require admits requests whose principal (put there by Authenticate) has
// role or a higher one; others get 403 with a JSON error (401 without a
// principal).
func Require(role Role) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, ok := FromContext(r.Context())
			if !ok {
				w.Header().Set("WWW-Authenticate", `Bearer realm="ferry"`)
				writeError(w, http.StatusUnauthorized, "authentication required")
				return
			}
			if !Allows(p.Role, role) {
				writeError(w, http.StatusForbidden, "this needs the "+string(role)+" role; you have "+roleName(p.Role))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}
