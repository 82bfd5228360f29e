package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/ferry-ai/ferry/controlplane/metadb"
)

// component names this package's migrations in metadb.
const component = "auth"

// migrations are the "auth" component's tables. Never change a released
// step: append one. Step 2 is SCIM's (Directory): the user's userName and
// name, groups and memberships; a user's role then follows their groups as
// it follows the group claim at sign-in.
var migrations = []string{
	// 1: users, sessions, API tokens, sign-in flows.
	`
CREATE TABLE auth_users (
	tenant              TEXT NOT NULL,
	id                  TEXT NOT NULL,
	external_id         TEXT NOT NULL DEFAULT '',
	subject             TEXT NOT NULL DEFAULT '',
	email               TEXT NOT NULL DEFAULT '',
	display_name        TEXT NOT NULL DEFAULT '',
	active              INTEGER NOT NULL,
	role                TEXT NOT NULL DEFAULT '',
	created_unix_nanos  BIGINT NOT NULL,
	updated_unix_nanos  BIGINT NOT NULL,
	PRIMARY KEY (tenant, id)
);
CREATE UNIQUE INDEX auth_users_subject ON auth_users (tenant, subject) WHERE subject <> '';
CREATE UNIQUE INDEX auth_users_external_id ON auth_users (tenant, external_id) WHERE external_id <> '';
CREATE TABLE auth_sessions (
	id_hash               TEXT PRIMARY KEY,
	tenant                TEXT NOT NULL,
	user_id               TEXT NOT NULL,
	via                   TEXT NOT NULL,
	created_unix_nanos    BIGINT NOT NULL,
	last_seen_unix_nanos  BIGINT NOT NULL,
	expires_unix_nanos    BIGINT NOT NULL,
	FOREIGN KEY (tenant, user_id) REFERENCES auth_users (tenant, id)
);
CREATE INDEX auth_sessions_user ON auth_sessions (tenant, user_id);
CREATE TABLE auth_tokens (
	id                    TEXT PRIMARY KEY,
	tenant                TEXT NOT NULL,
	user_id               TEXT NOT NULL,
	name                  TEXT NOT NULL,
	role                  TEXT NOT NULL,
	token_hash            TEXT NOT NULL UNIQUE,
	created_unix_nanos    BIGINT NOT NULL,
	expires_unix_nanos    BIGINT NOT NULL,
	last_used_unix_nanos  BIGINT NOT NULL DEFAULT 0,
	revoked_unix_nanos    BIGINT NOT NULL DEFAULT 0,
	FOREIGN KEY (tenant, user_id) REFERENCES auth_users (tenant, id)
);
CREATE INDEX auth_tokens_user ON auth_tokens (tenant, user_id);
CREATE TABLE auth_flows (
	state_hash          TEXT PRIMARY KEY,
	tenant              TEXT NOT NULL,
	binding_hash        TEXT NOT NULL,
	nonce               TEXT NOT NULL,
	return_to           TEXT NOT NULL,
	expires_unix_nanos  BIGINT NOT NULL
);
`,
	// 2: SCIM: a user's userName (unique per tenant case-insensitively,
	// through user_name_key = its lower case) and name; groups and their
	// members.
	`
ALTER TABLE auth_users ADD COLUMN user_name TEXT NOT NULL DEFAULT '';
ALTER TABLE auth_users ADD COLUMN user_name_key TEXT NOT NULL DEFAULT '';
ALTER TABLE auth_users ADD COLUMN given_name TEXT NOT NULL DEFAULT '';
ALTER TABLE auth_users ADD COLUMN family_name TEXT NOT NULL DEFAULT '';
CREATE UNIQUE INDEX auth_users_user_name ON auth_users (tenant, user_name_key) WHERE user_name_key <> '';
CREATE INDEX auth_users_email ON auth_users (tenant, lower(email));
CREATE TABLE auth_groups (
	tenant              TEXT NOT NULL,
	id                  TEXT NOT NULL,
	external_id         TEXT NOT NULL DEFAULT '',
	display_name        TEXT NOT NULL,
	created_unix_nanos  BIGINT NOT NULL,
	updated_unix_nanos  BIGINT NOT NULL,
	PRIMARY KEY (tenant, id)
);
CREATE UNIQUE INDEX auth_groups_external_id ON auth_groups (tenant, external_id) WHERE external_id <> '';
CREATE INDEX auth_groups_display_name ON auth_groups (tenant, display_name);
CREATE TABLE auth_group_members (
	tenant    TEXT NOT NULL,
	group_id  TEXT NOT NULL,
	user_id   TEXT NOT NULL,
	PRIMARY KEY (tenant, group_id, user_id),
	FOREIGN KEY (tenant, group_id) REFERENCES auth_groups (tenant, id) ON DELETE CASCADE,
	FOREIGN KEY (tenant, user_id) REFERENCES auth_users (tenant, id) ON DELETE CASCADE
);
CREATE INDEX auth_group_members_user ON auth_group_members (tenant, user_id);
`,
	// 3: one-time sign-in links (Config.SignInLinks), by the hash of
	// their token.
	`
CREATE TABLE auth_signin_links (
	token_hash          TEXT PRIMARY KEY,
	tenant              TEXT NOT NULL,
	user_id             TEXT NOT NULL,
	expires_unix_nanos  BIGINT NOT NULL
);
`,
}

// tenantTables are the auth tables, children first: what DeleteTenant
// empties of a tenant.
var tenantTables = []string{"auth_group_members", "auth_groups", "auth_sessions", "auth_tokens", "auth_flows", "auth_signin_links", "auth_users"}

// touchEvery is how stale a session's last use (or a token's) may be
// before a request records it again: one write a minute, not one a
// request.
const touchEvery = time.Minute

// User is a person of a tenant.
type User struct {
	Tenant string `json:"tenant"`
	// ID is Ferry's, assigned when the user is created.
	ID string `json:"id"`
	// ExternalID is the provisioning system's (SCIM externalId).
	ExternalID string `json:"external_id,omitempty"`
	// Subject is the identity provider's subject (sub), set at the first
	// sign-in (or by provisioning, when the two agree).
	Subject     string `json:"subject,omitempty"`
	Email       string `json:"email,omitempty"`
	DisplayName string `json:"display_name,omitempty"`
	Active      bool   `json:"active"`
	// Role is the user's role: from their groups at their last sign-in,
	// or as provisioned. Empty means none (nothing allowed).
	Role      Role      `json:"role,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Token describes an API token. The token itself is shown once, by
// CreateToken; only its SHA-256 is kept.
type Token struct {
	ID        string    `json:"id"`
	Tenant    string    `json:"tenant"`
	UserID    string    `json:"user_id"`
	Name      string    `json:"name"`
	Role      Role      `json:"role"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	// LastUsedAt is zero for a token never used (updated at most once a
	// minute).
	LastUsedAt time.Time `json:"last_used_at,omitzero"`
	// RevokedAt is zero for a token not revoked.
	RevokedAt time.Time `json:"revoked_at,omitzero"`
}

// randomBytes fills b from crypto/rand (which never fails: it panics
// rather).
func randomBytes(b []byte) { _, _ = rand.Read(b) }

// randomString returns n random bytes, base64url without padding.
func randomString(n int) string {
	b := make([]byte, n)
	randomBytes(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// newID returns a random identifier with a prefix (u_, tok_).
func newID(prefix string) string {
	b := make([]byte, 12)
	randomBytes(b)
	return prefix + hex.EncodeToString(b)
}

// hashSecret returns the hex SHA-256 of a session ID, token or state: what
// the database keeps instead.
func hashSecret(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func equalHashes(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

func nanos(t time.Time) int64 { return t.UnixNano() }

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

const userColumns = `tenant, id, external_id, subject, email, display_name, active, role, created_unix_nanos, updated_unix_nanos`

type rowScanner interface{ Scan(dest ...any) error }

func scanUser(r rowScanner) (User, error) {
	var u User
	var active int
	var role string
	var created, updated int64
	if err := r.Scan(&u.Tenant, &u.ID, &u.ExternalID, &u.Subject, &u.Email, &u.DisplayName, &active, &role, &created, &updated); err != nil {
		return User{}, err
	}
	u.Active, u.Role = active == 1, Role(role)
	u.CreatedAt, u.UpdatedAt = fromNanos(created), fromNanos(updated)
	return u, nil
}

// findUser returns the tenant's user whose column equals value.
func findUser(ctx context.Context, tx *metadb.Tx, tenant, column, value string) (User, error) {
	u, err := scanUser(tx.QueryRow(ctx, `SELECT `+userColumns+` FROM auth_users WHERE tenant = ? AND `+column+` = ?`, tenant, value))
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, ErrNotFound
	}
	return u, err
}

func insertUser(ctx context.Context, tx *metadb.Tx, u User) error {
	_, err := tx.Exec(ctx, `INSERT INTO auth_users (`+userColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		u.Tenant, u.ID, u.ExternalID, u.Subject, u.Email, u.DisplayName, boolInt(u.Active), string(u.Role), nanos(u.CreatedAt), nanos(u.UpdatedAt))
	return err
}

func updateUser(ctx context.Context, tx *metadb.Tx, u User) error {
	_, err := tx.Exec(ctx, `UPDATE auth_users SET external_id = ?, subject = ?, email = ?, display_name = ?, active = ?, role = ?, updated_unix_nanos = ?
		WHERE tenant = ? AND id = ?`,
		u.ExternalID, u.Subject, u.Email, u.DisplayName, boolInt(u.Active), string(u.Role), nanos(u.UpdatedAt), u.Tenant, u.ID)
	return err
}

// cutOff ends a user's sessions and revokes their tokens, in tx.
func cutOff(ctx context.Context, tx *metadb.Tx, tenant, userID string, now time.Time) (sessions, tokens int64, err error) {
	r, err := tx.Exec(ctx, `DELETE FROM auth_sessions WHERE tenant = ? AND user_id = ?`, tenant, userID)
	if err != nil {
		return 0, 0, err
	}
	sessions, _ = r.RowsAffected()
	r, err = tx.Exec(ctx, `UPDATE auth_tokens SET revoked_unix_nanos = ? WHERE tenant = ? AND user_id = ? AND revoked_unix_nanos = 0`, nanos(now), tenant, userID)
	if err != nil {
		return 0, 0, err
	}
	tokens, _ = r.RowsAffected()
	return sessions, tokens, nil
}

// flow is a sign-in between /auth/login and /auth/callback.
type flow struct {
	tenant, bindingHash, nonce, returnTo string
	expires                              time.Time
}

func (s *Service) putFlow(ctx context.Context, state string, f flow) error {
	_, err := s.db.Exec(ctx, `INSERT INTO auth_flows (state_hash, tenant, binding_hash, nonce, return_to, expires_unix_nanos) VALUES (?, ?, ?, ?, ?, ?)`,
		hashSecret(state), f.tenant, f.bindingHash, f.nonce, f.returnTo, nanos(f.expires))
	if err != nil {
		return fmt.Errorf("auth: store sign-in flow: %w", err)
	}
	return nil
}

// takeFlow removes and returns the flow of state: a state is good once.
func (s *Service) takeFlow(ctx context.Context, state string) (flow, error) {
	var f flow
	err := s.db.InTx(ctx, func(tx *metadb.Tx) error {
		h := hashSecret(state)
		var exp int64
		err := tx.QueryRow(ctx, `SELECT tenant, binding_hash, nonce, return_to, expires_unix_nanos FROM auth_flows WHERE state_hash = ?`, h).
			Scan(&f.tenant, &f.bindingHash, &f.nonce, &f.returnTo, &exp)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		f.expires = fromNanos(exp)
		_, err = tx.Exec(ctx, `DELETE FROM auth_flows WHERE state_hash = ?`, h)
		return err
	})
	return f, err
}

// Sweep deletes expired sessions and sign-in flows. The login handler
// calls it; a server may also call it now and then.
func (s *Service) Sweep(ctx context.Context) error {
	now := s.now()
	if _, err := s.db.Exec(ctx, `DELETE FROM auth_signin_links WHERE expires_unix_nanos < ?`, nanos(now)); err != nil {
		return fmt.Errorf("auth: sweep: %w", err)
	}
	if _, err := s.db.Exec(ctx, `DELETE FROM auth_flows WHERE expires_unix_nanos < ?`, nanos(now)); err != nil {
		return fmt.Errorf("auth: sweep: %w", err)
	}
	if _, err := s.db.Exec(ctx, `DELETE FROM auth_sessions WHERE expires_unix_nanos < ? OR last_seen_unix_nanos < ?`,
		nanos(now), nanos(now.Add(-s.cfg.SessionIdleTTL))); err != nil {
		return fmt.Errorf("auth: sweep: %w", err)
	}
	return nil
}

// newSession stores a session for the user and returns its ID (the cookie
// value; only its hash is stored).
func (s *Service) newSession(ctx context.Context, tenant, userID string, via Via, ttl time.Duration) (string, error) {
	id := randomString(32)
	now := s.now()
	_, err := s.db.Exec(ctx, `INSERT INTO auth_sessions (id_hash, tenant, user_id, via, created_unix_nanos, last_seen_unix_nanos, expires_unix_nanos)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, hashSecret(id), tenant, userID, string(via), nanos(now), nanos(now), nanos(now.Add(ttl)))
	if err != nil {
		return "", fmt.Errorf("auth: store session: %w", err)
	}
	return id, nil
}

// errExpired reports an expired session or token.
var errExpired = errors.New("expired")

// session returns the principal of a session ID; ErrNotFound, errExpired
// or ErrInactive if it does not hold.
func (s *Service) session(ctx context.Context, id string) (Principal, error) {
	h := hashSecret(id)
	var p Principal
	var via, role string
	var lastSeen, expires int64
	var active int
	err := s.db.QueryRow(ctx, `SELECT s.tenant, s.user_id, s.via, s.last_seen_unix_nanos, s.expires_unix_nanos, u.email, u.role, u.active
		FROM auth_sessions s JOIN auth_users u ON u.tenant = s.tenant AND u.id = s.user_id WHERE s.id_hash = ?`, h).
		Scan(&p.Tenant, &p.UserID, &via, &lastSeen, &expires, &p.Email, &role, &active)
	if errors.Is(err, sql.ErrNoRows) {
		return Principal{}, ErrNotFound
	}
	if err != nil {
		return Principal{}, fmt.Errorf("auth: read session: %w", err)
	}
	now := s.now()
	switch {
	case active != 1:
		return Principal{}, ErrInactive
	case !now.Before(fromNanos(expires)) || now.Sub(fromNanos(lastSeen)) >= s.cfg.SessionIdleTTL:
		_, _ = s.db.Exec(ctx, `DELETE FROM auth_sessions WHERE id_hash = ?`, h)
		return Principal{}, errExpired
	}
	if now.Sub(fromNanos(lastSeen)) >= touchEvery {
		if _, err := s.db.Exec(ctx, `UPDATE auth_sessions SET last_seen_unix_nanos = ? WHERE id_hash = ?`, nanos(now), h); err != nil {
			s.log.Warn("auth: record session use", "tenant", p.Tenant, "user", p.UserID, "err", err)
		}
	}
	p.Via, p.Role = Via(via), Role(role)
	return p, nil
}

// endSession deletes a session; it reports the tenant and user it was of.
func (s *Service) endSession(ctx context.Context, id string) (tenant, userID string, err error) {
	h := hashSecret(id)
	err = s.db.QueryRow(ctx, `SELECT tenant, user_id FROM auth_sessions WHERE id_hash = ?`, h).Scan(&tenant, &userID)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", ErrNotFound
	}
	if err != nil {
		return "", "", fmt.Errorf("auth: end session: %w", err)
	}
	if _, err := s.db.Exec(ctx, `DELETE FROM auth_sessions WHERE id_hash = ?`, h); err != nil {
		return "", "", fmt.Errorf("auth: end session: %w", err)
	}
	return tenant, userID, nil
}

// tokenPrincipal returns the principal of an API token.
func (s *Service) tokenPrincipal(ctx context.Context, token string) (Principal, error) {
	h := hashSecret(token)
	var p Principal
	var tokRole, userRole string
	var expires, lastUsed, revoked int64
	var active int
	err := s.db.QueryRow(ctx, `SELECT t.id, t.tenant, t.user_id, t.role, t.expires_unix_nanos, t.last_used_unix_nanos, t.revoked_unix_nanos, u.email, u.role, u.active
		FROM auth_tokens t JOIN auth_users u ON u.tenant = t.tenant AND u.id = t.user_id WHERE t.token_hash = ?`, h).
		Scan(&p.TokenID, &p.Tenant, &p.UserID, &tokRole, &expires, &lastUsed, &revoked, &p.Email, &userRole, &active)
	if errors.Is(err, sql.ErrNoRows) {
		return Principal{}, ErrNotFound
	}
	if err != nil {
		return Principal{}, fmt.Errorf("auth: read token: %w", err)
	}
	now := s.now()
	switch {
	case revoked != 0:
		return Principal{}, ErrNotFound
	case active != 1:
		return Principal{}, ErrInactive
	case !now.Before(fromNanos(expires)):
		return Principal{}, errExpired
	}
	if now.Sub(fromNanos(lastUsed)) >= touchEvery {
		if _, err := s.db.Exec(ctx, `UPDATE auth_tokens SET last_used_unix_nanos = ? WHERE id = ?`, nanos(now), p.TokenID); err != nil {
			s.log.Warn("auth: record token use", "tenant", p.Tenant, "token", p.TokenID, "err", err)
		}
	}
	// A token never does more than its user may do now.
	p.Role, p.Via = lower(Role(tokRole), Role(userRole)), ViaToken
	return p, nil
}

const tokenColumns = `id, tenant, user_id, name, role, created_unix_nanos, expires_unix_nanos, last_used_unix_nanos, revoked_unix_nanos`

func scanToken(r rowScanner) (Token, error) {
	var t Token
	var role string
	var created, expires, used, revoked int64
	if err := r.Scan(&t.ID, &t.Tenant, &t.UserID, &t.Name, &role, &created, &expires, &used, &revoked); err != nil {
		return Token{}, err
	}
	t.Role = Role(role)
	t.CreatedAt, t.ExpiresAt, t.LastUsedAt, t.RevokedAt = fromNanos(created), fromNanos(expires), fromNanos(used), fromNanos(revoked)
	return t, nil
}
