package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"sync"

	"github.com/ferry-ai/ferry/connectors"
	"github.com/ferry-ai/ferry/secrets"
)

// vaultEndpoint is the host:port of Vault's address, for the egress
// allowlist.
func vaultEndpoint(address string) (string, error) {
	u, err := url.Parse(address)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("credentials.vault.address %q is not a URL", address)
	}
	if u.Port() != "" {
		return u.Host, nil
	}
	port := "443"
	if u.Scheme == "http" {
		port = "80"
	}
	return net.JoinHostPort(u.Hostname(), port), nil
}

// openVault signs in to Vault through the egress allowlist, when the
// configuration takes credentials from it.
func (a *Agent) openVault(ctx context.Context) error {
	c := a.cfg.Credentials
	if c == nil || c.Vault == nil {
		return nil
	}
	cfg := *c.Vault
	cfg.Dial = func(ctx context.Context, _, addr string) (net.Conn, error) { return a.egress.dial(ctx, addr) }
	cfg.OnLeaseRenewed = a.metrics.leaseRenewed
	v, err := secrets.OpenVault(ctx, cfg, a.log)
	if err != nil {
		return err
	}
	a.vault = v
	return nil
}

// warehouse is the agent's connection to the warehouse for one use: a job,
// or listing the tables for the control plane. With dynamic credentials
// from Vault it follows them: when Vault replaces them (their lease reached
// its maximum TTL), the next connection is opened with the new ones, and a
// read broken mid-table resumes on it (see read). Close closes every
// connection and revokes every lease the use took.
type warehouse struct {
	a       *Agent
	log     *slog.Logger
	dynamic bool // credentials are a per-use database user from Vault
	release func(context.Context) error

	mu     sync.Mutex
	creds  map[string]string
	gen    int // bumped when Vault replaces the credentials
	cur    *connectors.Conn
	curGen int
	conns  []*connectors.Conn // every connection opened, closed by Close
}

// openWarehouse takes the use's credentials and connects.
func (a *Agent) openWarehouse(ctx context.Context, log *slog.Logger) (*warehouse, error) {
	w := &warehouse{a: a, log: log, release: func(context.Context) error { return nil }}
	c := a.cfg.Credentials
	switch {
	case c == nil:
	case c.File != "":
		m, err := secrets.LoadFile(c.File)
		if err != nil {
			return nil, err
		}
		w.creds = m
	case a.vault == nil:
		return nil, fmt.Errorf("credentials: Vault is not signed in")
	case c.Database != nil:
		s := a.vault.NewSession()
		creds, err := s.DatabaseCredentials(ctx, c.Database.Mount, c.Database.Role, w.replaced)
		if err != nil {
			_ = s.Close(context.WithoutCancel(ctx))
			return nil, err
		}
		w.dynamic, w.release = true, s.Close
		w.creds = map[string]string{"user": creds.Username, "password": creds.Password.Reveal()}
	default:
		kv, err := a.vault.KV(ctx, c.KV.Mount, c.KV.Path)
		if err != nil {
			return nil, err
		}
		w.creds = make(map[string]string, len(kv))
		for k, v := range kv {
			w.creds[k] = v.Reveal()
		}
	}
	if _, err := w.Conn(ctx); err != nil {
		_ = w.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	return w, nil
}

// replaced takes the credentials Vault gave in place of the current ones.
func (w *warehouse) replaced(c secrets.DBCredentials) {
	w.mu.Lock()
	w.creds = map[string]string{"user": c.Username, "password": c.Password.Reveal()}
	w.gen++
	w.mu.Unlock()
	w.log.Info("warehouse credentials replaced by Vault; new connections use them", "lease_id", c.LeaseID)
}

// Conn returns the connection to use now: the current one, or a new one
// when the credentials changed since it was opened.
func (w *warehouse) Conn(ctx context.Context) (*connectors.Conn, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cur != nil && w.curGen == w.gen {
		return w.cur, nil
	}
	return w.connectLocked(ctx)
}

// reconnect opens a new connection with the current credentials, for a
// read whose connection broke.
func (w *warehouse) reconnect(ctx context.Context) (*connectors.Conn, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.connectLocked(ctx)
}

func (w *warehouse) connectLocked(ctx context.Context) (*connectors.Conn, error) {
	c, err := w.a.mux.Open(ctx, w.a.cfg.Warehouse, &connectors.Options{Credentials: w.creds})
	if err != nil {
		return nil, fmt.Errorf("open warehouse: %w", err)
	}
	// Connections made with replaced credentials stay open for reads still
	// on them, until Close.
	w.conns = append(w.conns, c)
	w.cur, w.curGen = c, w.gen
	return c, nil
}

// Close closes the connections and revokes the use's credentials (its
// database users are gone when it returns).
func (w *warehouse) Close(ctx context.Context) error {
	w.mu.Lock()
	conns := w.conns
	w.conns, w.cur = nil, nil
	w.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	return w.release(ctx)
}
