package auth

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/ferry-ai/ferry/controlplane/metadb"
	"github.com/ferry-ai/ferry/secrets"
)

// SignInLinkPath is where a one-time sign-in link points (GET shows a page
// with a sign-in button; its POST signs in).
const SignInLinkPath = "/auth/link"

// Sign-in link lifetimes.
const (
	DefaultSignInLinkTTL = 15 * time.Minute
	MaxSignInLinkTTL     = time.Hour
)

// signInLinkPrefix starts every sign-in link token, so a leaked one is
// recognisable; signInLinkBytes random bytes follow, base64url.
const (
	signInLinkPrefix = "fsl_"
	signInLinkBytes  = 32
)

// ErrSignInLinksOff refuses CreateSignInLink when Config.SignInLinks is
// not set.
var ErrSignInLinksOff = errors.New("one-time sign-in links are disabled (auth.signin_links)")

// SignInLinkTTL checks that a link of lifetime ttl may be minted and
// returns the lifetime it would have: ErrSignInLinksOff when links are off,
// ErrInvalid for a lifetime out of range. A caller that makes the link's
// user first checks here, so a refused request changes nothing.
func (s *Service) SignInLinkTTL(ttl time.Duration) (time.Duration, error) {
	if !s.cfg.SignInLinks {
		return 0, ErrSignInLinksOff
	}
	if ttl == 0 {
		ttl = DefaultSignInLinkTTL
	}
	if ttl < 0 || ttl > MaxSignInLinkTTL {
		return 0, fmt.Errorf("%w: sign-in link lifetime %v: want up to %v", ErrInvalid, ttl, MaxSignInLinkTTL)
	}
	return ttl, nil
}

// CreateSignInLink mints a one-time sign-in link token for an active user
// of tenant, valid for ttl (DefaultSignInLinkTTL if zero, at most
// MaxSignInLinkTTL; another is ErrInvalid): its first use at SignInLinkPath starts a browser
// session as the user, with their role. Only the token's hash is stored.
func (s *Service) CreateSignInLink(ctx context.Context, tenant, userID string, ttl time.Duration) (secrets.Secret, time.Time, error) {
	ttl, err := s.SignInLinkTTL(ttl)
	if err != nil {
		return secrets.Secret{}, time.Time{}, err
	}
	token := signInLinkPrefix + randomString(signInLinkBytes)
	expires := s.now().Add(ttl)
	err = s.db.InTx(ctx, func(tx *metadb.Tx) error {
		u, err := findUser(ctx, tx, tenant, "id", userID)
		if err != nil {
			return fmt.Errorf("user %s of tenant %s: %w", userID, tenant, err)
		}
		if !u.Active {
			return fmt.Errorf("user %s of tenant %s: %w", userID, tenant, ErrInactive)
		}
		_, err = tx.Exec(ctx, `INSERT INTO auth_signin_links (token_hash, tenant, user_id, expires_unix_nanos) VALUES (?, ?, ?, ?)`,
			hashSecret(token), tenant, userID, nanos(expires))
		return err
	})
	if err != nil {
		return secrets.Secret{}, time.Time{}, fmt.Errorf("auth: sign-in link: %w", err)
	}
	s.emit(Event{Tenant: tenant, Actor: userID, Action: ActionSignInLink, Outcome: OutcomeSuccess, Target: userID,
		Reason: "one-time sign-in link valid until " + expires.UTC().Format(time.RFC3339)})
	return secrets.New(token), expires, nil
}

// linkPage asks for a click before the link is spent: a mail scanner or
// link preview that fetches the URL does not sign anyone in. No script, no
// style: the page's policy allows neither.
var linkPage = template.Must(template.New("link").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Ferry: sign in</title></head>
<body><h1>Sign in to Ferry</h1>
<p>This link signs you in once, as the user it was made for, until it expires.</p>
<form method="post" action="{{.Action}}"><input type="hidden" name="token" value="{{.Token}}"><button type="submit">Sign in</button></form>
</body></html>
`))

// linkHeaders keep a link's page and answers out of caches and referrers.
func linkHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", "default-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
}

// signInLinkPage serves the link's page. It does not check the token: only
// the POST spends it.
func (s *Service) signInLinkPage(w http.ResponseWriter, r *http.Request) {
	linkHeaders(w)
	if !s.cfg.SignInLinks {
		writeError(w, http.StatusNotFound, "not found")
		return
	}
	token := r.URL.Query().Get("token")
	if len(token) != len(signInLinkPrefix)+base64.RawURLEncoding.EncodedLen(signInLinkBytes) || !strings.HasPrefix(token, signInLinkPrefix) {
		writeError(w, http.StatusBadRequest, "this is not a Ferry sign-in link")
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = linkPage.Execute(w, map[string]string{"Action": SignInLinkPath, "Token": token})
}

// signInWithLink spends a link's token (form field token) and starts a
// session as its user, then sends the browser to the console. Every try is
// an event; a used, expired or unknown token is refused alike.
func (s *Service) signInWithLink(w http.ResponseWriter, r *http.Request) {
	linkHeaders(w)
	if !s.cfg.SignInLinks {
		writeError(w, http.StatusNotFound, "not found")
		return
	}
	remote := remoteHost(r)
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	token := r.PostFormValue("token")
	ctx := r.Context()
	var tenant, userID string
	var expires int64
	err := s.db.InTx(ctx, func(tx *metadb.Tx) error {
		h := hashSecret(token)
		err := tx.QueryRow(ctx, `SELECT tenant, user_id, expires_unix_nanos FROM auth_signin_links WHERE token_hash = ?`, h).Scan(&tenant, &userID, &expires)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		// Spent now, whatever follows.
		_, err = tx.Exec(ctx, `DELETE FROM auth_signin_links WHERE token_hash = ?`, h)
		return err
	})
	refuse := func(status int, reason, msg string) {
		s.emit(Event{Tenant: tenant, Actor: userID, Action: ActionSignInFailed, Outcome: OutcomeFailure, Remote: remote, Reason: reason})
		writeError(w, status, msg)
	}
	switch {
	case errors.Is(err, ErrNotFound):
		refuse(http.StatusGone, "one-time sign-in link used, expired or unknown", "this sign-in link was used already, has expired or is not known: ask for a new one")
		return
	case err != nil:
		s.log.Error("sign-in link", "error", err.Error())
		writeError(w, http.StatusInternalServerError, "sign-in failed")
		return
	case s.now().UnixNano() > expires:
		refuse(http.StatusGone, "one-time sign-in link expired", "this sign-in link was used already, has expired or is not known: ask for a new one")
		return
	}
	u, err := s.GetUser(ctx, tenant, userID)
	if err != nil || !u.Active {
		refuse(http.StatusForbidden, "one-time sign-in link of a user who is gone or deactivated", "this user can no longer sign in")
		return
	}
	if err := s.startSession(ctx, w, tenant, userID, ViaSession, s.cfg.SessionAbsoluteTTL); err != nil {
		s.log.Error("sign-in link: session", "error", err.Error())
		writeError(w, http.StatusInternalServerError, "sign-in failed")
		return
	}
	s.emit(Event{Tenant: tenant, Actor: userID, Action: ActionSignIn, Outcome: OutcomeSuccess, Remote: remote, Reason: "one-time sign-in link; role " + string(u.Role)})
	http.Redirect(w, r, "/console/", http.StatusSeeOther)
}
