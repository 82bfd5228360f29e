// Package auth is the control plane's identity: sign-in by OpenID Connect
// against each tenant's identity provider, roles mapped from the
// provider's group claim, sessions, API tokens for automation, and one
// optional break-glass admin.
//
// A Service (New) owns its tables in the metadata database (component
// "auth"): users, sessions, API tokens and sign-in flows, every row of one
// tenant. Only SHA-256 hashes of session IDs and API tokens are stored.
// Handler serves /auth/login, /auth/callback, /auth/logout,
// /auth/breakglass and /auth/me; Authenticate and Require guard the rest
// of the API. Users are provisioned just in time at their first sign-in or
// beforehand (by SCIM) through UpsertUser; DeactivateUser ends their
// sessions and revokes their tokens at once. Every sign-in, refusal, token
// change and break-glass use is reported to Config.OnEvent (the audit
// log).
//
// Nothing secret is ever logged or stored in clear: not the client
// secret, an authorization code, a token, a session ID or a password.
package auth

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Role is what a principal may do. Roles are ordered: viewer < editor <
// admin; the zero Role is no role at all.
type Role string

// The roles.
const (
	Viewer Role = "viewer"
	Editor Role = "editor"
	Admin  Role = "admin"
)

func (r Role) rank() int {
	switch r {
	case Viewer:
		return 1
	case Editor:
		return 2
	case Admin:
		return 3
	}
	return 0
}

// Valid reports whether r is viewer, editor or admin.
func (r Role) Valid() bool { return r.rank() > 0 }

// ParseRole returns the role named s.
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if !r.Valid() {
		return "", fmt.Errorf("role %q: want viewer, editor or admin", s)
	}
	return r, nil
}

// Allows reports whether a principal with role may do what needs needed:
// role is needed or higher.
func Allows(role, needed Role) bool {
	return needed.Valid() && role.rank() >= needed.rank()
}

// lower returns the lower of two roles.
func lower(a, b Role) Role {
	if a.rank() <= b.rank() {
		return a
	}
	return b
}

// Via is how a principal authenticated.
type Via string

// The ways in.
const (
	ViaSession    Via = "session"    // a browser session after OIDC sign-in
	ViaToken      Via = "token"      // an API token (Authorization: Bearer)
	ViaBreakGlass Via = "breakglass" // the break-glass admin's session
)

// Principal is who a request acts for.
type Principal struct {
	Tenant string `json:"tenant"`
	UserID string `json:"user_id"`
	Email  string `json:"email,omitempty"`
	// Role is the user's current role; for a token, the lower of the
	// token's and the user's.
	Role Role `json:"role"`
	Via  Via  `json:"via"`
	// TokenID names the API token used (Via == ViaToken).
	TokenID string `json:"token_id,omitempty"`
}

type principalKey struct{}

type remoteKey struct{}

// FromContext returns the principal Authenticate put in the request's
// context.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// NewContext returns ctx carrying p (for tests and internal callers; HTTP
// requests get it from Authenticate).
func NewContext(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// Errors.
var (
	// ErrConfig marks an invalid configuration.
	ErrConfig = errors.New("invalid auth config")
	// ErrNotFound: no such user or token in the tenant.
	ErrNotFound = errors.New("not found")
	// ErrInactive: the user is deactivated.
	ErrInactive = errors.New("user is deactivated")
	// ErrRoleTooHigh: a token's role would exceed its user's.
	ErrRoleTooHigh = errors.New("role exceeds the user's own")
	// ErrInvalid marks an invalid argument (a role, a name, a TTL).
	ErrInvalid = errors.New("invalid argument")
)

// Actions reported in Event.Action.
const (
	ActionSignIn         = "auth.signin"
	ActionSignInFailed   = "auth.signin_failed"
	ActionSignOut        = "auth.signout"
	ActionBreakGlass     = "auth.breakglass"
	ActionTokenCreate    = "auth.token_create"
	ActionTokenRevoke    = "auth.token_revoke"
	ActionUserUpsert     = "auth.user_upsert"
	ActionUserDeactivate = "auth.user_deactivate"
	ActionSessionsEnd    = "auth.sessions_end"
	ActionSignInLink     = "auth.signin_link_create"
)

// Outcomes reported in Event.Outcome.
const (
	OutcomeSuccess     = "success"
	OutcomeFailure     = "failure"
	OutcomeRateLimited = "rate_limited"
)

// Event is one security-relevant thing that happened, for the audit log.
// It never holds a secret.
type Event struct {
	Time   time.Time
	Tenant string
	// Actor is the user ID acting (or signing in), the break-glass
	// username, or empty when unknown (a refused sign-in before the
	// provider named the user).
	Actor   string
	Action  string
	Outcome string
	// Remote is the client's address (host, without port).
	Remote string
	// Target is what was acted on: a token ID, a user ID.
	Target string
	// Reason says why a failure failed, or what a success did.
	Reason string
}
