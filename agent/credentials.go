package agent

import (
	"context"
	"fmt"
	"net"
	"net/url"

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
	v, err := secrets.OpenVault(ctx, cfg, a.log)
	if err != nil {
		return err
	}
	a.vault = v
	return nil
}

// warehouseCredentials returns the credentials to open the warehouse with
// for one use (a job, or listing its tables) and a release function: a
// job's dynamic database user is revoked when it is called.
func (a *Agent) warehouseCredentials(ctx context.Context) (map[string]string, func(context.Context) error, error) {
	none := func(context.Context) error { return nil }
	c := a.cfg.Credentials
	switch {
	case c == nil:
		return nil, none, nil
	case c.File != "":
		m, err := secrets.LoadFile(c.File)
		return m, none, err
	case a.vault == nil:
		return nil, none, fmt.Errorf("credentials: Vault is not signed in")
	case c.Database != nil:
		s := a.vault.NewSession()
		creds, err := s.DatabaseCredentials(ctx, c.Database.Mount, c.Database.Role, nil)
		if err != nil {
			_ = s.Close(ctx)
			return nil, none, err
		}
		return map[string]string{"user": creds.Username, "password": creds.Password.Reveal()}, s.Close, nil
	default:
		kv, err := a.vault.KV(ctx, c.KV.Mount, c.KV.Path)
		if err != nil {
			return nil, none, err
		}
		m := make(map[string]string, len(kv))
		for k, v := range kv {
			m[k] = v.Reveal()
		}
		return m, none, nil
	}
}
