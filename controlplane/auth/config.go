package auth

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/ferry-ai/ferry/secrets"
)

// Defaults applied by New to empty Config fields.
const (
	DefaultSessionIdleTTL     = 30 * time.Minute
	DefaultSessionAbsoluteTTL = 12 * time.Hour
	DefaultBreakGlassTTL      = time.Hour
	DefaultTokenTTL           = 90 * 24 * time.Hour
	DefaultMaxTokenTTL        = 365 * 24 * time.Hour
	DefaultGroupClaim         = "groups"
	// FlowTTL bounds the time between /auth/login and /auth/callback.
	FlowTTL = 10 * time.Minute
	// BreakGlassTries sign-in attempts per BreakGlassWindow per remote
	// address are allowed at /auth/breakglass.
	BreakGlassTries  = 5
	BreakGlassWindow = time.Minute
)

// Config configures a Service. It decodes from YAML; the client secrets
// come from files (client_secret_file), never from the YAML itself.
type Config struct {
	// IdPs are the identity providers, one per tenant.
	IdPs []IdPConfig `yaml:"idps"`
	// SessionIdleTTL ends a session unused for this long
	// (DefaultSessionIdleTTL if zero).
	SessionIdleTTL time.Duration `yaml:"session_idle_ttl"`
	// SessionAbsoluteTTL ends a session this long after sign-in, used or
	// not (DefaultSessionAbsoluteTTL if zero).
	SessionAbsoluteTTL time.Duration `yaml:"session_absolute_ttl"`
	// MaxTokenTTL is the longest lifetime an API token may be given
	// (DefaultMaxTokenTTL if zero).
	MaxTokenTTL time.Duration `yaml:"max_token_ttl"`
	// BreakGlass is the optional local admin, disabled unless enabled.
	BreakGlass BreakGlassConfig `yaml:"break_glass"`
	// SignInLinks lets the service mint one-time sign-in links
	// (CreateSignInLink) for users it already knows: for a demo, or a
	// first admin before the tenant's provider is set up. Off by default:
	// a link is a credential, like a password-reset mail.
	SignInLinks bool `yaml:"signin_links"`
	// TrustedOrigins are origins (https://host[:port]) besides the API's
	// own whose cross-origin, cookie-authenticated requests may change
	// state (a UI served from another host).
	TrustedOrigins []string `yaml:"trusted_origins"`

	// Logger receives the package's logs (nil: slog.Default()).
	Logger *slog.Logger `yaml:"-"`
	// OnEvent receives every Event, synchronously: keep it quick.
	OnEvent func(Event) `yaml:"-"`
	// HTTPClient reaches the identity providers (nil: a client with a
	// 30 s timeout and the system's roots).
	HTTPClient *http.Client `yaml:"-"`
	// Now is the clock (nil: time.Now); tests move it.
	Now func() time.Time `yaml:"-"`
}

// IdPConfig is one tenant's OpenID Connect provider and how its groups
// map to roles.
type IdPConfig struct {
	// Tenant is the tenant whose users sign in here. Required, unique.
	Tenant string `yaml:"tenant"`
	// Issuer is the provider's issuer URL (discovery at
	// Issuer/.well-known/openid-configuration).
	Issuer string `yaml:"issuer"`
	// ClientID and the client secret are Ferry's registration at the
	// provider (a confidential web client).
	ClientID string `yaml:"client_id"`
	// ClientSecretFile names a file (mode 0600 or stricter) holding the
	// client secret; New reads it when ClientSecret is empty.
	ClientSecretFile string `yaml:"client_secret_file"`
	// ClientSecret is the client secret itself (set in code, or read from
	// ClientSecretFile).
	ClientSecret secrets.Secret `yaml:"-"`
	// RedirectURL is Ferry's callback as registered at the provider:
	// https://<api host>/auth/callback.
	RedirectURL string `yaml:"redirect_url"`
	// Scopes are requested besides openid, email and profile (some
	// providers want "groups").
	Scopes []string `yaml:"scopes"`
	// GroupClaim is the ID token (or userinfo) claim listing the user's
	// groups (DefaultGroupClaim if empty).
	GroupClaim string `yaml:"group_claim"`
	// Roles maps group names to roles. A user in several mapped groups
	// gets the highest role; a user in none is refused sign-in.
	Roles map[string]Role `yaml:"roles"`
	// NoJIT refuses users not provisioned beforehand (by SCIM, matched by
	// external ID = the provider's subject) instead of creating them at
	// their first sign-in.
	NoJIT bool `yaml:"no_jit"`
}

// BreakGlassConfig is the one local account, for when the identity
// provider is down. Disabled by default; /auth/breakglass answers 404 then.
type BreakGlassConfig struct {
	Enabled bool `yaml:"enabled"`
	// Tenant is the tenant the break-glass admin administers. Required
	// when enabled.
	Tenant   string `yaml:"tenant"`
	Username string `yaml:"username"`
	// PasswordHash is an argon2id PHC string
	// ($argon2id$v=19$m=65536,t=3,p=4$salt$hash; see HashPassword).
	PasswordHash string `yaml:"password_hash"`
	// SessionTTL is the break-glass session's absolute lifetime
	// (DefaultBreakGlassTTL if zero, never more than SessionAbsoluteTTL).
	SessionTTL time.Duration `yaml:"session_ttl"`
}

// ReadSecretFile reads a secret (a client secret) from a file that only
// its owner may read, trimming surrounding white space. Errors never
// quote the file.
func ReadSecretFile(path string) (secrets.Secret, error) {
	st, err := os.Stat(path)
	if err != nil {
		return secrets.Secret{}, fmt.Errorf("%w: secret file: %w", ErrConfig, err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return secrets.Secret{}, fmt.Errorf("%w: secret file %s is readable by others (mode %v): chmod 600 it", ErrConfig, path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return secrets.Secret{}, fmt.Errorf("%w: secret file: %w", ErrConfig, err)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return secrets.Secret{}, fmt.Errorf("%w: secret file %s is empty", ErrConfig, path)
	}
	return secrets.New(v), nil
}

// normalize checks cfg and fills defaults and the client secrets.
func (cfg *Config) normalize() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...))
	}
	if cfg.SessionIdleTTL < 0 || cfg.SessionAbsoluteTTL < 0 || cfg.MaxTokenTTL < 0 || cfg.BreakGlass.SessionTTL < 0 {
		return bad("durations must not be negative")
	}
	if cfg.SessionIdleTTL == 0 {
		cfg.SessionIdleTTL = DefaultSessionIdleTTL
	}
	if cfg.SessionAbsoluteTTL == 0 {
		cfg.SessionAbsoluteTTL = DefaultSessionAbsoluteTTL
	}
	if cfg.MaxTokenTTL == 0 {
		cfg.MaxTokenTTL = DefaultMaxTokenTTL
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	seen := map[string]bool{}
	for i := range cfg.IdPs {
		p := &cfg.IdPs[i]
		where := fmt.Sprintf("idps[%d]", i)
		if p.Tenant == "" {
			return bad("%s: tenant is required", where)
		}
		where = "idp of tenant " + p.Tenant
		if seen[p.Tenant] {
			return bad("%s: a tenant has one identity provider", where)
		}
		seen[p.Tenant] = true
		if u, err := url.Parse(p.Issuer); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return bad("%s: issuer %q: want an https:// URL (http:// only for local tests)", where, p.Issuer)
		}
		if p.ClientID == "" {
			return bad("%s: client_id is required", where)
		}
		if p.ClientSecret.IsZero() {
			if p.ClientSecretFile == "" {
				return bad("%s: client_secret_file is required", where)
			}
			s, err := ReadSecretFile(p.ClientSecretFile)
			if err != nil {
				return fmt.Errorf("%s: %w", where, err)
			}
			p.ClientSecret = s
		}
		if u, err := url.Parse(p.RedirectURL); err != nil || !u.IsAbs() || u.Host == "" {
			return bad("%s: redirect_url %q: want the absolute URL of /auth/callback", where, p.RedirectURL)
		}
		if p.GroupClaim == "" {
			p.GroupClaim = DefaultGroupClaim
		}
		if len(p.Roles) == 0 {
			return bad("%s: roles (group → role) is required: without it nobody can sign in", where)
		}
		for g, r := range p.Roles {
			if !r.Valid() {
				return bad("%s: group %q maps to %q: want viewer, editor or admin", where, g, r)
			}
		}
	}
	for _, o := range cfg.TrustedOrigins {
		if u, err := url.Parse(o); err != nil || u.Scheme == "" || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return bad("trusted origin %q: want scheme://host[:port]", o)
		}
	}
	bg := &cfg.BreakGlass
	if bg.Enabled {
		if bg.Tenant == "" || bg.Username == "" || bg.PasswordHash == "" {
			return bad("break_glass: tenant, username and password_hash are required when enabled")
		}
		if _, err := parsePHC(bg.PasswordHash); err != nil {
			return bad("break_glass: password_hash: %v", err)
		}
	}
	if bg.SessionTTL == 0 {
		bg.SessionTTL = DefaultBreakGlassTTL
	}
	bg.SessionTTL = min(bg.SessionTTL, cfg.SessionAbsoluteTTL)
	return nil
}
