// Package vaulttest starts the real Vault server that scripts/vault.sh builds
// (the Vault server code itself, in dev mode, on a free loopback port) for
// tests, and configures what Ferry's tests need in it: AppRole sign-ins
// with a policy, and the database secrets engine on the local PostgreSQL.
// Nothing here is simulated; the helpers are plain Vault API calls with the
// dev server's root token.
package vaulttest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/ferry-ai/ferry/internal/syncbuf"

	vault "github.com/hashicorp/vault/api"
	"github.com/jackc/pgx/v5"
)

// Version is the Vault release scripts/vault.sh builds.
const Version = "1.21.4"

// PostgresDSN is the local PostgreSQL the tests use as its superuser.
const PostgresDSN = "host=127.0.0.1 port=5432 dbname=test user=postgres sslmode=disable"

// Binary is the Vault server: FERRY_VAULT, or the build in $FERRY_CACHE
// (default ~/.cache/ferry). The test fails, saying how to build it, when it
// is missing.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("FERRY_VAULT"); p != "" {
		return p
	}
	cache := os.Getenv("FERRY_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "ferry")
	}
	p := filepath.Join(cache, "vault-"+Version, "vault")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("no Vault server at %s: `make services` builds it (scripts/vault.sh): %v", p, err)
	}
	return p
}

// Server is a running dev-mode Vault with a root client to configure it.
type Server struct {
	// Addr is the server's URL (http://127.0.0.1:port).
	Addr string
	// Root is a client with the root token.
	Root *vault.Client
	cmd  *exec.Cmd
	out  *syncbuf.Buffer
}

// Start runs a Vault dev server until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(Binary(t), "server", "-dev", "-dev-root-token-id=root", "-dev-listen-address="+addr)
	out := &syncbuf.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "VAULT_DISABLE_MLOCK=true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	cfg := vault.DefaultConfig()
	cfg.Address = "http://" + addr
	root, err := vault.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	root.SetToken("root")
	deadline := time.Now().Add(30 * time.Second)
	for {
		if h, err := root.Sys().Health(); err == nil && h.Initialized && !h.Sealed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Vault did not start:\n%s", out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return &Server{Addr: "http://" + addr, Root: root, cmd: cmd, out: out}
}

// Write writes path as root and fails the test on an error.
func (s *Server) Write(t testing.TB, path string, data map[string]any) *vault.Secret {
	t.Helper()
	sec, err := s.Root.Logical().Write(path, data)
	if err != nil {
		t.Fatalf("vault write %s: %v", path, err)
	}
	return sec
}

// AppRole is what an agent signs in with: a role ID and a secret ID (in a
// 0600 file, as a platform would mount it).
type AppRole struct {
	RoleID       string
	SecretID     string
	SecretIDFile string
}

// AppRole makes an AppRole sign-in (name) whose tokens carry policy, and
// returns its role ID and a fresh secret ID.
func (s *Server) AppRole(t testing.TB, name, policy string) AppRole {
	t.Helper()
	return s.AppRoleTTL(t, name, policy, "1h", "")
}

// AppRoleTTL is AppRole with the TTL and maximum TTL of the tokens its
// sign-ins get ("" for maxTTL: the mount's).
func (s *Server) AppRoleTTL(t testing.TB, name, policy, ttl, maxTTL string) AppRole {
	t.Helper()
	if err := s.Root.Sys().PutPolicy(name, policy); err != nil {
		t.Fatal(err)
	}
	if auths, _ := s.Root.Sys().ListAuth(); auths["approle/"] == nil {
		if err := s.Root.Sys().EnableAuthWithOptions("approle", &vault.EnableAuthOptions{Type: "approle"}); err != nil {
			t.Fatal(err)
		}
	}
	role := map[string]any{"token_policies": name, "token_ttl": ttl}
	if maxTTL != "" {
		role["token_max_ttl"] = maxTTL
	}
	s.Write(t, "auth/approle/role/"+name, role)
	rid, err := s.Root.Logical().Read("auth/approle/role/" + name + "/role-id")
	if err != nil {
		t.Fatal(err)
	}
	sid := s.Write(t, "auth/approle/role/"+name+"/secret-id", nil)
	secretID := sid.Data["secret_id"].(string)
	file := filepath.Join(t.TempDir(), "secret-id")
	if err := os.WriteFile(file, []byte(secretID), 0o600); err != nil {
		t.Fatal(err)
	}
	return AppRole{RoleID: rid.Data["role_id"].(string), SecretID: secretID, SecretIDFile: file}
}

// DatabaseRole configures the database secrets engine (mounted at
// "database", connection "pg") for the local PostgreSQL and a role whose
// users are made by creation and dropped by revocation (SQL with Vault's
// {{name}}, {{password}} and {{expiration}}).
func (s *Server) DatabaseRole(t testing.TB, role, creation, revocation, ttl, maxTTL string) {
	t.Helper()
	if mounts, _ := s.Root.Sys().ListMounts(); mounts["database/"] == nil {
		if err := s.Root.Sys().Mount("database", &vault.MountInput{Type: "database"}); err != nil {
			t.Fatal(err)
		}
	}
	s.Write(t, "database/config/pg", map[string]any{
		"plugin_name":    "postgresql-database-plugin",
		"connection_url": "postgresql://{{username}}:{{password}}@127.0.0.1:5432/test?sslmode=disable",
		"username":       AdminRole, "password": adminPassword, "allowed_roles": "*",
		"verify_connection": true,
	})
	s.Write(t, "database/roles/"+role, map[string]any{
		"db_name": "pg", "creation_statements": creation, "revocation_statements": revocation,
		"default_ttl": ttl, "max_ttl": maxTTL,
	})
}

// AdminRole is the PostgreSQL role Vault's database secrets engine signs in
// as (EnsureAdmin makes it).
const AdminRole = "ferry_vault_admin"

const adminPassword = "vault-admin"

// EnsureAdmin makes the PostgreSQL role Vault manages users with (a
// superuser, as Vault's own PostgreSQL guide sets up; a CREATEROLE role
// owning the schemas does as well).
func EnsureAdmin(t testing.TB) {
	t.Helper()
	Exec(t, `DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '`+AdminRole+`') THEN
	   CREATE ROLE `+AdminRole+` LOGIN SUPERUSER PASSWORD '`+adminPassword+`'; END IF; END $$`)
}

// Connect connects to the local PostgreSQL as its superuser; the caller
// closes the connection.
func Connect(t testing.TB) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(context.Background(), PostgresDSN)
	if err != nil {
		t.Fatalf("PostgreSQL is not reachable (run `make services`): %v", err)
	}
	return c
}

// Exec runs statements on the local PostgreSQL as its superuser.
func Exec(t testing.TB, stmts ...string) {
	t.Helper()
	ctx := context.Background()
	c := Connect(t)
	defer c.Close(ctx)
	for _, s := range stmts {
		if _, err := c.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// Name returns prefix and 8 random hex digits, for schemas and roles that
// must not collide between runs.
func Name(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// RoleExists reports whether a PostgreSQL role exists.
func RoleExists(t testing.TB, name string) bool {
	t.Helper()
	ctx := context.Background()
	c := Connect(t)
	defer c.Close(ctx)
	var n int
	if err := c.QueryRow(ctx, "SELECT count(*) FROM pg_roles WHERE rolname = $1", name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

// RolesLike returns the PostgreSQL roles whose names start with prefix.
func RolesLike(t testing.TB, prefix string) []string {
	t.Helper()
	ctx := context.Background()
	c := Connect(t)
	defer c.Close(ctx)
	rows, err := c.Query(ctx, "SELECT rolname FROM pg_roles WHERE starts_with(rolname, $1) ORDER BY 1", prefix)
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// LeaseKnown reports whether Vault still holds a lease.
func (s *Server) LeaseKnown(id string) bool {
	_, err := s.Root.Logical().Write("sys/leases/lookup", map[string]any{"lease_id": id})
	return err == nil
}

// Kill stops the server at once (an unreachable Vault).
func (s *Server) Kill() {
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
}

// Log returns what the server has printed.
func (s *Server) Log() string { return s.out.String() }
