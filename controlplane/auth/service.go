package auth

import (
	"context"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/ferry-ai/ferry/controlplane/metadb"
	"github.com/ferry-ai/ferry/secrets"
)

// The HTTP surface of Handler.
const (
	LoginPath      = "/auth/login"
	CallbackPath   = "/auth/callback"
	LogoutPath     = "/auth/logout"
	BreakGlassPath = "/auth/breakglass"
	MePath         = "/auth/me"
)

// Cookies and headers. The __Host- prefix pins a cookie to the API's host
// (Secure, Path=/, no Domain).
const (
	// SessionCookie holds the session ID (HttpOnly).
	SessionCookie = "__Host-ferry_session"
	// CSRFCookie holds the session's CSRF token, readable by the UI's
	// script, which echoes it in CSRFHeader.
	CSRFCookie = "__Host-ferry_csrf"
	// CSRFHeader must carry the CSRF token on cookie-authenticated
	// requests that change state (POST, PUT, PATCH, DELETE).
	CSRFHeader = "X-Ferry-CSRF"
	flowCookie = "__Host-ferry_flow"
)

// TokenPrefix starts every API token.
const TokenPrefix = "ferry_"

// Service is the control plane's identity service.
type Service struct {
	db      *metadb.DB
	cfg     Config
	log     *slog.Logger
	now     func() time.Time
	idps    map[string]*idp
	only    *idp // the one IdP, when there is one
	cop     *http.CrossOriginProtection
	bg      *phc // the break-glass password hash; nil when disabled
	limiter *limiter
	argon   chan struct{} // bounds concurrent argon2id verifications
}

// New checks cfg, migrates the "auth" tables and returns the service. The
// identity providers are discovered at their first sign-in, so one that is
// down does not stop the control plane.
func New(ctx context.Context, db *metadb.DB, cfg Config) (*Service, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	if err := db.Migrate(ctx, component, migrations); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	s := &Service{
		db: db, cfg: cfg, log: cfg.Logger, now: cfg.Now,
		idps:    map[string]*idp{},
		cop:     http.NewCrossOriginProtection(),
		limiter: newLimiter(BreakGlassTries, BreakGlassWindow),
		argon:   make(chan struct{}, 2),
	}
	for _, o := range cfg.TrustedOrigins {
		if err := s.cop.AddTrustedOrigin(strings.TrimSuffix(o, "/")); err != nil {
			return nil, fmt.Errorf("%w: trusted origin %q: %w", ErrConfig, o, err)
		}
	}
	for i := range cfg.IdPs {
		p := newIdP(cfg.IdPs[i], s)
		s.idps[p.cfg.Tenant] = p
		s.only = p
	}
	if len(s.idps) != 1 {
		s.only = nil
	}
	if cfg.BreakGlass.Enabled {
		h, err := parsePHC(cfg.BreakGlass.PasswordHash)
		if err != nil {
			return nil, fmt.Errorf("%w: break_glass: %w", ErrConfig, err)
		}
		s.bg = h
	}
	return s, nil
}

// Handler serves the sign-in endpoints:
//
//	GET  /auth/login?tenant=T&return_to=/path  redirect to T's provider
//	GET  /auth/callback                       the provider's redirect back
//	POST /auth/logout                         end the session (CSRF header or form field csrf)
//	POST /auth/breakglass                     break-glass sign-in (form or JSON username, password)
//	GET  /auth/link?token=…                   a one-time sign-in link's page (Config.SignInLinks)
//	POST /auth/link                           sign in with the link's token (form field token)
//	GET  /auth/me                             the principal, as JSON
//
// Mount it at /auth/ of the API's HTTPS listener.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+LoginPath, s.login)
	mux.HandleFunc("GET "+CallbackPath, s.callback)
	mux.HandleFunc("POST "+LogoutPath, s.logout)
	mux.HandleFunc("POST "+BreakGlassPath, s.breakGlass)
	mux.HandleFunc("GET "+SignInLinkPath, s.signInLinkPage)
	mux.HandleFunc("POST "+SignInLinkPath, s.signInWithLink)
	mux.Handle("GET "+MePath, s.Authenticate(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := FromContext(r.Context())
		writeJSON(w, http.StatusOK, p)
	})))
	return mux
}

// emit stamps e and hands it to OnEvent, and logs it (events hold no
// secrets).
func (s *Service) emit(e Event) {
	e.Time = s.now()
	level := slog.LevelInfo
	if e.Outcome != OutcomeSuccess || e.Action == ActionBreakGlass {
		level = slog.LevelWarn
	}
	s.log.Log(context.Background(), level, "auth event", "action", e.Action, "outcome", e.Outcome,
		"tenant", e.Tenant, "actor", e.Actor, "target", e.Target, "remote", e.Remote, "reason", e.Reason)
	if s.cfg.OnEvent != nil {
		s.cfg.OnEvent(e)
	}
}

// actorOf names who acts in ctx: the authenticated principal, else def.
func actorOf(ctx context.Context, def string) (actor, remote string) {
	remote, _ = ctx.Value(remoteKey{}).(string)
	if p, ok := FromContext(ctx); ok {
		return p.UserID, remote
	}
	return def, remote
}

// UpsertUser creates or updates a user of u.Tenant, matched by ID, else by
// ExternalID, else by Subject; with none matching it is created with a
// new ID. Every field but ID and CreatedAt is stored as given. A user made
// inactive loses their sessions and tokens at once, as by DeactivateUser.
func (s *Service) UpsertUser(ctx context.Context, u User) (User, error) {
	if u.Tenant == "" {
		return User{}, fmt.Errorf("auth: upsert user: %w: tenant is required", ErrInvalid)
	}
	if u.Role != "" && !u.Role.Valid() {
		return User{}, fmt.Errorf("auth: upsert user: %w: role %q", ErrInvalid, u.Role)
	}
	now := s.now()
	var out User
	var cut, created bool
	err := s.db.InTx(ctx, func(tx *metadb.Tx) error {
		var old User
		var err error
		switch {
		case u.ID != "":
			old, err = findUser(ctx, tx, u.Tenant, "id", u.ID)
		case u.ExternalID != "":
			old, err = findUser(ctx, tx, u.Tenant, "external_id", u.ExternalID)
		case u.Subject != "":
			old, err = findUser(ctx, tx, u.Tenant, "subject", u.Subject)
		default:
			err = ErrNotFound
		}
		switch {
		case errors.Is(err, ErrNotFound) && u.ID != "":
			return fmt.Errorf("auth: user %s of tenant %s: %w", u.ID, u.Tenant, ErrNotFound)
		case errors.Is(err, ErrNotFound):
			out = u
			out.ID, out.CreatedAt, out.UpdatedAt = newID("u_"), now, now
			created = true
			return insertUser(ctx, tx, out)
		case err != nil:
			return err
		}
		out = u
		out.ID, out.CreatedAt, out.UpdatedAt = old.ID, old.CreatedAt, now
		if err := updateUser(ctx, tx, out); err != nil {
			return err
		}
		if old.Active && !out.Active {
			cut = true
			_, _, err = cutOff(ctx, tx, out.Tenant, out.ID, now)
		}
		return err
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) || errors.Is(err, ErrInvalid) {
			return User{}, err
		}
		return User{}, fmt.Errorf("auth: upsert user of tenant %s: %w", u.Tenant, err)
	}
	actor, remote := actorOf(ctx, "")
	reason := "updated"
	if created {
		reason = "created"
	}
	if cut {
		reason = "deactivated: sessions ended, tokens revoked"
	}
	s.emit(Event{Tenant: out.Tenant, Actor: actor, Action: ActionUserUpsert, Outcome: OutcomeSuccess, Remote: remote, Target: out.ID, Reason: reason})
	return out, nil
}

// DeactivateUser marks a user inactive, ends all their sessions and
// revokes all their tokens, in one transaction: nothing they hold works
// after it returns.
func (s *Service) DeactivateUser(ctx context.Context, tenant, userID string) error {
	now := s.now()
	var sessions, tokens int64
	err := s.db.InTx(ctx, func(tx *metadb.Tx) error {
		r, err := tx.Exec(ctx, `UPDATE auth_users SET active = 0, updated_unix_nanos = ? WHERE tenant = ? AND id = ?`, nanos(now), tenant, userID)
		if err != nil {
			return err
		}
		if n, _ := r.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		sessions, tokens, err = cutOff(ctx, tx, tenant, userID, now)
		return err
	})
	if err != nil {
		return fmt.Errorf("auth: deactivate user %s of tenant %s: %w", userID, tenant, err)
	}
	actor, remote := actorOf(ctx, "")
	s.emit(Event{Tenant: tenant, Actor: actor, Action: ActionUserDeactivate, Outcome: OutcomeSuccess, Remote: remote, Target: userID,
		Reason: fmt.Sprintf("%d sessions ended, %d tokens revoked", sessions, tokens)})
	return nil
}

// EndSessions signs a user out everywhere (their tokens stay valid).
func (s *Service) EndSessions(ctx context.Context, tenant, userID string) error {
	r, err := s.db.Exec(ctx, `DELETE FROM auth_sessions WHERE tenant = ? AND user_id = ?`, tenant, userID)
	if err != nil {
		return fmt.Errorf("auth: end sessions of %s: %w", userID, err)
	}
	n, _ := r.RowsAffected()
	actor, remote := actorOf(ctx, "")
	s.emit(Event{Tenant: tenant, Actor: actor, Action: ActionSessionsEnd, Outcome: OutcomeSuccess, Remote: remote, Target: userID,
		Reason: fmt.Sprintf("%d sessions ended", n)})
	return nil
}

// GetUser returns a user of the tenant.
func (s *Service) GetUser(ctx context.Context, tenant, userID string) (User, error) {
	var u User
	err := s.db.InTx(ctx, func(tx *metadb.Tx) error {
		var err error
		u, err = findUser(ctx, tx, tenant, "id", userID)
		return err
	})
	if err != nil {
		return User{}, fmt.Errorf("auth: user %s of tenant %s: %w", userID, tenant, err)
	}
	return u, nil
}

// ListUsers returns the tenant's users, oldest first.
func (s *Service) ListUsers(ctx context.Context, tenant string) ([]User, error) {
	rows, err := s.db.Query(ctx, `SELECT `+userColumns+` FROM auth_users WHERE tenant = ? ORDER BY created_unix_nanos, id`, tenant)
	if err != nil {
		return nil, fmt.Errorf("auth: list users of tenant %s: %w", tenant, err)
	}
	defer rows.Close()
	var out []User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("auth: list users of tenant %s: %w", tenant, err)
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

var tokenEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// CreateToken makes an API token for a user of the tenant, acting with
// role (at most the user's own) for ttl (DefaultTokenTTL if zero, at most
// Config.MaxTokenTTL). The token (ferry_ and 52 base32 characters) is
// returned once, as a Secret to reveal only into the response; only its
// SHA-256 is stored. At each use the token acts with the lower of its role
// and its user's role then.
func (s *Service) CreateToken(ctx context.Context, tenant, userID string, role Role, name string, ttl time.Duration) (Token, secrets.Secret, error) {
	switch {
	case !role.Valid():
		return Token{}, secrets.Secret{}, fmt.Errorf("auth: create token: %w: role %q", ErrInvalid, role)
	case strings.TrimSpace(name) == "" || len(name) > 100:
		return Token{}, secrets.Secret{}, fmt.Errorf("auth: create token: %w: a name of 1 to 100 characters is required", ErrInvalid)
	case ttl < 0 || ttl > s.cfg.MaxTokenTTL:
		return Token{}, secrets.Secret{}, fmt.Errorf("auth: create token: %w: ttl %v: at most %v", ErrInvalid, ttl, s.cfg.MaxTokenTTL)
	case ttl == 0:
		ttl = min(DefaultTokenTTL, s.cfg.MaxTokenTTL)
	}
	b := make([]byte, 32)
	randomBytes(b)
	secret := TokenPrefix + tokenEncoding.EncodeToString(b)
	now := s.now()
	t := Token{ID: newID("tok_"), Tenant: tenant, UserID: userID, Name: name, Role: role, CreatedAt: now, ExpiresAt: now.Add(ttl)}
	actor, remote := actorOf(ctx, userID)
	err := s.db.InTx(ctx, func(tx *metadb.Tx) error {
		u, err := findUser(ctx, tx, tenant, "id", userID)
		switch {
		case err != nil:
			return err
		case !u.Active:
			return ErrInactive
		case !Allows(u.Role, role):
			return fmt.Errorf("%w: a token's role (%s) cannot exceed its user's (%s)", ErrRoleTooHigh, role, roleName(u.Role))
		}
		_, err = tx.Exec(ctx, `INSERT INTO auth_tokens (id, tenant, user_id, name, role, token_hash, created_unix_nanos, expires_unix_nanos)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, t.ID, tenant, userID, name, string(role), hashSecret(secret), nanos(now), nanos(t.ExpiresAt))
		return err
	})
	if err != nil {
		s.emit(Event{Tenant: tenant, Actor: actor, Action: ActionTokenCreate, Outcome: OutcomeFailure, Remote: remote, Target: userID, Reason: err.Error()})
		return Token{}, secrets.Secret{}, fmt.Errorf("auth: create token for %s of tenant %s: %w", userID, tenant, err)
	}
	s.emit(Event{Tenant: tenant, Actor: actor, Action: ActionTokenCreate, Outcome: OutcomeSuccess, Remote: remote, Target: t.ID,
		Reason: fmt.Sprintf("role %s for user %s until %s", role, userID, t.ExpiresAt.Format(time.RFC3339))})
	return t, secrets.New(secret), nil
}

func roleName(r Role) string {
	if r == "" {
		return "none"
	}
	return string(r)
}

// RevokeToken revokes a token of the tenant at once. Revoking a revoked
// token does nothing.
func (s *Service) RevokeToken(ctx context.Context, tenant, tokenID string) error {
	var exists int
	err := s.db.QueryRow(ctx, `SELECT COUNT(*) FROM auth_tokens WHERE tenant = ? AND id = ?`, tenant, tokenID).Scan(&exists)
	if err == nil && exists == 0 {
		err = ErrNotFound
	}
	if err == nil {
		_, err = s.db.Exec(ctx, `UPDATE auth_tokens SET revoked_unix_nanos = ? WHERE tenant = ? AND id = ? AND revoked_unix_nanos = 0`, nanos(s.now()), tenant, tokenID)
	}
	if err != nil {
		return fmt.Errorf("auth: revoke token %s of tenant %s: %w", tokenID, tenant, err)
	}
	actor, remote := actorOf(ctx, "")
	s.emit(Event{Tenant: tenant, Actor: actor, Action: ActionTokenRevoke, Outcome: OutcomeSuccess, Remote: remote, Target: tokenID})
	return nil
}

// ListTokens returns the tenant's tokens (of one user, if userID is not
// empty), newest first, without their secrets (only hashes are kept).
func (s *Service) ListTokens(ctx context.Context, tenant, userID string) ([]Token, error) {
	q := `SELECT ` + tokenColumns + ` FROM auth_tokens WHERE tenant = ?`
	args := []any{tenant}
	if userID != "" {
		q += ` AND user_id = ?`
		args = append(args, userID)
	}
	rows, err := s.db.Query(ctx, q+` ORDER BY created_unix_nanos DESC, id`, args...)
	if err != nil {
		return nil, fmt.Errorf("auth: list tokens of tenant %s: %w", tenant, err)
	}
	defer rows.Close()
	var out []Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("auth: list tokens of tenant %s: %w", tenant, err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// DeleteTenant deletes every row of the tenant in every auth table (users,
// sessions, tokens, sign-in flows, groups, memberships) in one transaction
// — account closure — and returns the rows deleted per table.
func (s *Service) DeleteTenant(ctx context.Context, tenant string) (map[string]int64, error) {
	if tenant == "" {
		return nil, fmt.Errorf("auth: delete tenant: %w: tenant is required", ErrInvalid)
	}
	out := map[string]int64{}
	err := s.db.InTx(ctx, func(tx *metadb.Tx) error {
		for _, table := range tenantTables {
			r, err := tx.Exec(ctx, `DELETE FROM `+table+` WHERE tenant = ?`, tenant)
			if err != nil {
				return fmt.Errorf("%s: %w", table, err)
			}
			out[table], _ = r.RowsAffected()
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("auth: delete tenant %s: %w", tenant, err)
	}
	actor, remote := actorOf(ctx, "")
	s.emit(Event{Tenant: tenant, Actor: actor, Action: ActionTenantDelete, Outcome: OutcomeSuccess, Remote: remote, Target: tenant,
		Reason: fmt.Sprintf("account closed: %v rows deleted", out)})
	return out, nil
}
