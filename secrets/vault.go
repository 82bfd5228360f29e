package secrets

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	vault "github.com/hashicorp/vault/api"
)

// VaultConfig says how the agent reaches Vault and signs in.
type VaultConfig struct {
	// Address is Vault's URL, e.g. https://vault.internal:8200.
	Address string `yaml:"address"`
	// CACert is a PEM file of the CA that signs Vault's certificate (""
	// uses the system's).
	CACert string `yaml:"ca_cert"`
	// Auth is the sign-in method.
	Auth VaultAuth `yaml:"auth"`
	// Timeout bounds each request (default 30s); RetryFor bounds the
	// retries of one operation on Vault errors (default 30s).
	Timeout  time.Duration `yaml:"timeout"`
	RetryFor time.Duration `yaml:"retry_for"`
	// Dial, when set, makes every connection to Vault (the agent's egress
	// allowlist).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error) `yaml:"-"`
	// OnLeaseRenewed, when set, is called after each renewal of a lease
	// (the agent's metrics).
	OnLeaseRenewed func() `yaml:"-"`
}

// VaultAuth is an auth method and what it needs. Secrets are read from
// files (mounted by the platform), never from the configuration itself.
type VaultAuth struct {
	// Method is "approle", "kubernetes" or "token".
	Method string `yaml:"method"`
	// Mount is the auth method's path (default: the method's name).
	Mount string `yaml:"mount"`
	// RoleID and SecretIDFile sign in by AppRole.
	RoleID       string `yaml:"role_id"`
	SecretIDFile string `yaml:"secret_id_file"`
	// Role and JWTFile sign in by Kubernetes service-account token
	// (default JWTFile: the pod's mounted token).
	Role    string `yaml:"role"`
	JWTFile string `yaml:"jwt_file"`
	// TokenFile holds a Vault token.
	TokenFile string `yaml:"token_file"`
}

// DefaultJWTFile is where Kubernetes mounts a pod's service-account token.
const DefaultJWTFile = "/var/run/secrets/kubernetes.io/serviceaccount/token"

// Vault is a signed-in Vault client. Its own token is renewed in the
// background and, when it can no longer be renewed, replaced by signing in
// again. Safe for concurrent use.
type Vault struct {
	c   *vault.Client
	cfg VaultConfig
	log *slog.Logger

	mu      sync.Mutex
	stop    context.CancelFunc
	done    chan struct{}
	ownAuth bool          // the token came from a sign-in (revoked on Close)
	signed  chan struct{} // closed (and replaced) when a new sign-in replaces the token
}

// signedIn returns a channel closed when the next sign-in replaces the
// token: Vault revokes the leases taken with a token when it expires, so a
// Session replaces its credentials then.
func (v *Vault) signedIn() <-chan struct{} {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.signed
}

// OpenVault connects to Vault and signs in. Errors name the address and
// the auth path, never a secret.
func OpenVault(ctx context.Context, cfg VaultConfig, log *slog.Logger) (*Vault, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Address == "" {
		return nil, errors.New("vault: address is required")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.RetryFor <= 0 {
		cfg.RetryFor = 30 * time.Second
	}
	vc := vault.DefaultConfig()
	vc.Address = cfg.Address
	vc.Timeout = cfg.Timeout
	vc.MaxRetries = 0 // retries are ours, with backoff and a deadline
	if cfg.CACert != "" {
		if err := vc.ConfigureTLS(&vault.TLSConfig{CACert: cfg.CACert}); err != nil {
			return nil, fmt.Errorf("vault %s: TLS: %w", cfg.Address, err)
		}
	}
	if cfg.Dial != nil {
		if t, ok := vc.HttpClient.Transport.(*http.Transport); ok {
			t.DialContext = cfg.Dial
		}
	}
	c, err := vault.NewClient(vc)
	if err != nil {
		return nil, fmt.Errorf("vault %s: %w", cfg.Address, err)
	}
	c.ClearToken()
	v := &Vault{c: c, cfg: cfg, log: log, signed: make(chan struct{})}
	auth, err := v.login(ctx)
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(context.Background())
	v.stop, v.done = cancel, make(chan struct{})
	go v.keepToken(wctx, auth)
	return v, nil
}

// login signs in with the configured method and returns the login's
// secret (nil for a token).
func (v *Vault) login(ctx context.Context) (*vault.Secret, error) {
	a := v.cfg.Auth
	mount := a.Mount
	if mount == "" {
		mount = a.Method
	}
	read := func(what, path string) (string, error) {
		if path == "" {
			return "", fmt.Errorf("vault: auth %s: %s is required", a.Method, what)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("vault: auth %s: %s: %w", a.Method, what, err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	var body map[string]any
	switch a.Method {
	case "token":
		tok, err := read("token_file", a.TokenFile)
		if err != nil {
			return nil, err
		}
		v.c.SetToken(tok)
		if _, err := v.c.Auth().Token().LookupSelfWithContext(ctx); err != nil {
			return nil, v.wrap("auth/token/lookup-self", err)
		}
		return nil, nil
	case "approle":
		sid, err := read("secret_id_file", a.SecretIDFile)
		if err != nil {
			return nil, err
		}
		if a.RoleID == "" {
			return nil, errors.New("vault: auth approle: role_id is required")
		}
		body = map[string]any{"role_id": a.RoleID, "secret_id": sid}
	case "kubernetes":
		jwtFile := a.JWTFile
		if jwtFile == "" {
			jwtFile = DefaultJWTFile
		}
		jwt, err := read("jwt_file", jwtFile)
		if err != nil {
			return nil, err
		}
		if a.Role == "" {
			return nil, errors.New("vault: auth kubernetes: role is required")
		}
		body = map[string]any{"role": a.Role, "jwt": jwt}
	default:
		return nil, fmt.Errorf("vault: auth method %q: want approle, kubernetes or token", a.Method)
	}
	path := "auth/" + mount + "/login"
	var s *vault.Secret
	err := v.retry(ctx, path, func() error {
		var err error
		s, err = v.c.Logical().WriteWithContext(ctx, path, body)
		return err
	})
	if err != nil {
		return nil, err
	}
	if s == nil || s.Auth == nil || s.Auth.ClientToken == "" {
		return nil, fmt.Errorf("vault: %s: no token in the response", path)
	}
	v.c.SetToken(s.Auth.ClientToken)
	v.mu.Lock()
	v.ownAuth = true
	close(v.signed)
	v.signed = make(chan struct{})
	v.mu.Unlock()
	v.log.Info("vault: signed in", "method", a.Method, "path", path, "ttl", time.Duration(s.Auth.LeaseDuration)*time.Second)
	return s, nil
}

// keepToken renews the sign-in's token at about two thirds of its TTL and
// signs in again when it can no longer be renewed, until Close.
func (v *Vault) keepToken(ctx context.Context, auth *vault.Secret) {
	defer close(v.done)
	for auth != nil && auth.Auth != nil && auth.Auth.Renewable {
		w, err := v.c.NewLifetimeWatcher(&vault.LifetimeWatcherInput{Secret: auth})
		if err != nil {
			v.log.Warn("vault: token renewal", "error", err.Error())
			return
		}
		go w.Start()
		select {
		case <-ctx.Done():
			w.Stop()
			return
		case err := <-w.DoneCh():
			w.Stop()
			if err != nil {
				v.log.Warn("vault: token renewal ended", "error", err.Error())
			}
		}
		// Renewal is over (max TTL, or an error): sign in again, with
		// backoff, until it works or Close.
		for {
			next, err := v.login(ctx)
			if err == nil {
				auth = next
				break
			}
			v.log.Warn("vault: signing in again failed", "error", err.Error())
			select {
			case <-ctx.Done():
				return
			case <-time.After(2 * time.Second):
			}
		}
	}
	<-ctx.Done()
}

// Close stops the token's renewal and revokes a token that came from a
// sign-in (a token given in a file is the operator's and is left alone).
func (v *Vault) Close() error {
	v.stop()
	<-v.done
	v.mu.Lock()
	own := v.ownAuth
	v.mu.Unlock()
	if own {
		ctx, cancel := context.WithTimeout(context.Background(), v.cfg.Timeout)
		defer cancel()
		if err := v.c.Auth().Token().RevokeSelfWithContext(ctx, ""); err != nil {
			return v.wrap("auth/token/revoke-self", err)
		}
	}
	return nil
}

// KV reads a KV version 2 secret at mount/data/path. Every value is a
// Secret.
func (v *Vault) KV(ctx context.Context, mount, path string) (map[string]Secret, error) {
	full := mount + "/data/" + strings.TrimPrefix(path, "/")
	var s *vault.KVSecret
	err := v.retry(ctx, full, func() error {
		var err error
		s, err = v.c.KVv2(mount).Get(ctx, path)
		if errors.Is(err, vault.ErrSecretNotFound) {
			return backoff.Permanent(err)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make(map[string]Secret, len(s.Data))
	for k, val := range s.Data {
		str, ok := val.(string)
		if !ok {
			return nil, fmt.Errorf("vault: %s: key %q is not a string", full, k)
		}
		out[k] = New(str)
	}
	return out, nil
}

// retry runs op with exponential backoff and jitter while Vault answers
// with a server error or cannot be reached, for at most RetryFor; client
// errors (permission denied, not found, bad request) end it at once. The
// error names the path and the status, never a secret.
func (v *Vault) retry(ctx context.Context, path string, op func() error) error {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval, b.MaxElapsedTime = 200*time.Millisecond, 5*time.Second, v.cfg.RetryFor
	err := backoff.Retry(func() error {
		err := op()
		var re *vault.ResponseError
		if errors.As(err, &re) && re.StatusCode < 500 {
			return backoff.Permanent(err)
		}
		return err
	}, backoff.WithContext(b, ctx))
	if err != nil {
		return v.wrap(path, err)
	}
	return nil
}

// wrap names the path and Vault's status in an error; Vault's own messages
// say what failed without echoing secrets, and the request body is never
// part of them.
func (v *Vault) wrap(path string, err error) error {
	var re *vault.ResponseError
	if errors.As(err, &re) {
		msg := vaultMessage(re.Errors)
		switch re.StatusCode {
		case http.StatusForbidden:
			if msg == "" {
				msg = "permission denied"
			}
			return fmt.Errorf("vault %s: %s: %s (403): %w", v.cfg.Address, path, msg, ErrDenied)
		case http.StatusServiceUnavailable:
			if strings.Contains(msg, "sealed") {
				return fmt.Errorf("vault %s: %s: Vault is sealed (503): %w", v.cfg.Address, path, ErrUnavailable)
			}
		}
		return fmt.Errorf("vault %s: %s: %d %s: %w", v.cfg.Address, path, re.StatusCode, msg, ErrVault)
	}
	return fmt.Errorf("vault %s: %s: %w: %w", v.cfg.Address, path, err, ErrUnavailable)
}

// vaultMessage is Vault's error list on one line: "1 error occurred:\n\t*
// permission denied\n\n" becomes "permission denied".
func vaultMessage(errs []string) string {
	var parts []string
	for _, e := range errs {
		for _, line := range strings.Split(e, "\n") {
			line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "*"))
			if line == "" || strings.HasSuffix(line, "error occurred:") || strings.HasSuffix(line, "errors occurred:") {
				continue
			}
			parts = append(parts, line)
		}
	}
	return strings.Join(parts, "; ")
}

// Errors Vault operations wrap.
var (
	// ErrDenied is a request Vault's policy refuses.
	ErrDenied = errors.New("denied by Vault")
	// ErrUnavailable is a Vault that cannot be reached, or is sealed.
	ErrUnavailable = errors.New("vault unavailable")
	// ErrVault is any other error Vault answered with.
	ErrVault = errors.New("vault error")
)
