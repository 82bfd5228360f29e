package secrets

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-ai/ferry/internal/syncbuf"

	vault "github.com/hashicorp/vault/api"
	"github.com/jackc/pgx/v5"

	"github.com/ferry-ai/ferry/internal/vaulttest"
)

// startVault starts the real Vault server (vaulttest).
func startVault(t *testing.T) *vaulttest.Server { return vaulttest.Start(t) }

// appRole makes an AppRole sign-in with the policy and returns the config
// the agent would have and its secret ID.
func appRole(t *testing.T, d *vaulttest.Server, name, policy string) (VaultConfig, string) {
	t.Helper()
	r := d.AppRole(t, name, policy)
	return VaultConfig{Address: d.Addr, RetryFor: 2 * time.Second,
		Auth: VaultAuth{Method: "approle", RoleID: r.RoleID, SecretIDFile: r.SecretIDFile}}, r.SecretID
}

func TestAppRoleKVAndDenied(t *testing.T) {
	d := startVault(t)
	const password = "kv-pa55word-never-logged"
	d.Write(t, "secret/data/ferry/warehouse", map[string]any{"data": map[string]any{"user": "reader", "password": password}})
	d.Write(t, "secret/data/other/thing", map[string]any{"data": map[string]any{"k": "v"}})
	cfg, secretID := appRole(t, d, "ferry-kv", `path "secret/data/ferry/*" { capabilities = ["read"] }`)
	var logs syncbuf.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx := context.Background()
	v, err := OpenVault(ctx, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	kv, err := v.KV(ctx, "secret", "ferry/warehouse")
	if err != nil {
		t.Fatal(err)
	}
	if kv["user"].Reveal() != "reader" || kv["password"].Reveal() != password {
		t.Fatalf("kv %v", kv)
	}
	log.Debug("read the warehouse credentials", "kv", kv)
	_, err = v.KV(ctx, "secret", "other/thing")
	if !errors.Is(err, ErrDenied) || !strings.Contains(err.Error(), "secret/data/other/thing") || !strings.Contains(err.Error(), "403") {
		t.Errorf("a read outside the policy: %v, want ErrDenied naming the path", err)
	}
	_, err = v.KV(ctx, "secret", "ferry/missing")
	if err == nil || !strings.Contains(err.Error(), "secret/data/ferry/missing") {
		t.Errorf("a missing secret: %v", err)
	}
	for _, s := range []string{password, secretID, v.c.Token()} {
		if strings.Contains(logs.String(), s) || (err != nil && strings.Contains(err.Error(), s)) {
			t.Errorf("a secret reached the logs or an error: %q", s)
		}
	}
	// A wrong role: refused, the error names the login path.
	bad := cfg
	bad.Auth.RoleID = "not-a-role"
	if _, err := OpenVault(ctx, bad, nil); err == nil || !strings.Contains(err.Error(), "auth/approle/login") || strings.Contains(err.Error(), secretID) {
		t.Errorf("a wrong role id: %v", err)
	}
}

func TestTokenAuth(t *testing.T) {
	d := startVault(t)
	if err := d.Root.Sys().PutPolicy("kv-read", `path "secret/data/*" { capabilities = ["read"] }`); err != nil {
		t.Fatal(err)
	}
	tok, err := d.Root.Auth().Token().Create(&vault.TokenCreateRequest{Policies: []string{"kv-read"}, TTL: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte(tok.Auth.ClientToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d.Write(t, "secret/data/x", map[string]any{"data": map[string]any{"k": "v"}})
	v, err := OpenVault(context.Background(), VaultConfig{Address: d.Addr, Auth: VaultAuth{Method: "token", TokenFile: file}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := v.KV(context.Background(), "secret", "x")
	if err != nil || kv["k"].Reveal() != "v" {
		t.Fatalf("kv %v %v", kv, err)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	// The operator's token is not revoked by Close.
	if _, err := d.Root.Auth().Token().Lookup(tok.Auth.ClientToken); err != nil {
		t.Errorf("Close revoked the operator's token: %v", err)
	}
	if _, err := OpenVault(context.Background(), VaultConfig{Address: d.Addr, Auth: VaultAuth{Method: "ldap"}}, nil); err == nil || !strings.Contains(err.Error(), "approle, kubernetes or token") {
		t.Errorf("an unknown method: %v", err)
	}
}

func TestUnreachableAndSealed(t *testing.T) {
	ctx := context.Background()
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + l.Addr().String()
	l.Close()
	file := filepath.Join(t.TempDir(), "token")
	_ = os.WriteFile(file, []byte("t"), 0o600)
	start := time.Now()
	_, err := OpenVault(ctx, VaultConfig{Address: dead, RetryFor: time.Second, Auth: VaultAuth{Method: "token", TokenFile: file}}, nil)
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), dead) || time.Since(start) > 10*time.Second {
		t.Errorf("unreachable Vault: %v after %v", err, time.Since(start))
	}
	d := startVault(t)
	cfg, _ := appRole(t, d, "sealed", `path "secret/data/*" { capabilities = ["read"] }`)
	v, err := OpenVault(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Root.Sys().Seal(); err != nil {
		t.Fatal(err)
	}
	_, err = v.KV(ctx, "secret", "x")
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "secret/data/x") {
		t.Errorf("sealed Vault: %v", err)
	}
}

// pgForVault makes a schema with a table the job reads, and the admin
// role Vault's database secrets engine signs in with.
func pgForVault(t *testing.T) (schema string) {
	t.Helper()
	vaulttest.EnsureAdmin(t)
	schema = vaulttest.Name("ferry_vault_")
	vaulttest.Exec(t, "CREATE SCHEMA "+schema,
		"CREATE TABLE "+schema+".orders (id int, amount float8)",
		"INSERT INTO "+schema+".orders VALUES (1, 9.5), (2, 3.25)")
	t.Cleanup(func() { vaulttest.Exec(t, "DROP SCHEMA "+schema+" CASCADE") })
	return schema
}

// dbEngine configures the database secrets engine for PostgreSQL with a
// role that reads the schema.
func dbEngine(t *testing.T, d *vaulttest.Server, schema, role, ttl, maxTTL string) {
	t.Helper()
	d.DatabaseRole(t, role,
		fmt.Sprintf(`CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';
GRANT USAGE ON SCHEMA %[1]s TO "{{name}}"; GRANT SELECT ON ALL TABLES IN SCHEMA %[1]s TO "{{name}}";`, schema),
		fmt.Sprintf(`REVOKE ALL ON ALL TABLES IN SCHEMA %[1]s FROM "{{name}}"; REVOKE USAGE ON SCHEMA %[1]s FROM "{{name}}"; DROP ROLE IF EXISTS "{{name}}";`, schema),
		ttl, maxTTL)
}

func roleExists(t *testing.T, name string) bool { return vaulttest.RoleExists(t, name) }

// readAs reads the job's table as the dynamic user.
func readAs(ctx context.Context, schema string, creds DBCredentials) (float64, error) {
	cfg, err := pgx.ParseConfig("host=127.0.0.1 port=5432 dbname=test sslmode=disable")
	if err != nil {
		return 0, err
	}
	cfg.User, cfg.Password = creds.Username, creds.Password.Reveal()
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return 0, err
	}
	defer c.Close(ctx)
	var sum float64
	err = c.QueryRow(ctx, "SELECT sum(amount) FROM "+schema+".orders").Scan(&sum)
	return sum, err
}

// TestDynamicCredentials: a job takes a database user of its own from
// Vault, reads with it, and when the session closes the lease is revoked
// and the PostgreSQL role no longer exists; a write is refused (the role is
// read-only); nothing secret reaches the debug logs.
func TestDynamicCredentials(t *testing.T) {
	d := startVault(t)
	schema := pgForVault(t)
	dbEngine(t, d, schema, "ferry-job", "1h", "2h")
	cfg, secretID := appRole(t, d, "ferry-db", AgentPolicy("database", "ferry-job"))
	var logs syncbuf.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx := context.Background()
	v, err := OpenVault(ctx, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	s := v.NewSession()
	creds, err := s.DatabaseCredentials(ctx, "database", "ferry-job", nil)
	if err != nil {
		t.Fatal(err)
	}
	log.Debug("job credentials", "creds", creds, "password", creds.Password)
	if sum, err := readAs(ctx, schema, creds); err != nil || sum != 12.75 {
		t.Fatalf("read as %s: %v %v", creds.Username, sum, err)
	}
	if !roleExists(t, creds.Username) || len(s.Leases()) != 1 {
		t.Fatalf("role %s / leases %v", creds.Username, s.Leases())
	}
	if _, err := s.DatabaseCredentials(ctx, "database", "other-role", nil); !errors.Is(err, ErrDenied) || !strings.Contains(err.Error(), "database/creds/other-role") {
		t.Errorf("a role outside the policy: %v", err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if roleExists(t, creds.Username) {
		t.Errorf("role %s still exists after the job", creds.Username)
	}
	if _, err := d.Root.Logical().Write("sys/leases/lookup", map[string]any{"lease_id": creds.LeaseID}); err == nil {
		t.Errorf("lease %s is still known to Vault", creds.LeaseID)
	}
	if _, err := readAs(ctx, schema, creds); err == nil {
		t.Error("the revoked credentials still read")
	}
	for _, secret := range []string{creds.Password.Reveal(), secretID} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("a secret reached the debug logs")
		}
	}
	if !strings.Contains(logs.String(), "lease revoked") {
		t.Errorf("no revocation logged:\n%s", logs.String())
	}
}

// TestRenewalAndReplacement: credentials with a TTL shorter than the job
// are renewed and keep working; credentials whose max TTL ends mid-job are
// replaced by new ones (onReplace), which work; Close revokes every lease
// the session took.
func TestRenewalAndReplacement(t *testing.T) {
	d := startVault(t)
	schema := pgForVault(t)
	dbEngine(t, d, schema, "short", "3s", "1h")
	dbEngine(t, d, schema, "capped", "3s", "5s")
	cfg, _ := appRole(t, d, "ferry-renew", AgentPolicy("database", "short")+AgentPolicy("database", "capped"))
	ctx := context.Background()
	v, err := OpenVault(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	s := v.NewSession()
	defer s.Close(ctx)
	short, err := s.DatabaseCredentials(ctx, "database", "short", nil)
	if err != nil {
		t.Fatal(err)
	}
	replaced := make(chan DBCredentials, 4)
	capped, err := s.DatabaseCredentials(ctx, "database", "capped", func(c DBCredentials) { replaced <- c })
	if err != nil {
		t.Fatal(err)
	}
	// Past the 3 s TTL: the short lease was renewed, its user still reads.
	time.Sleep(5 * time.Second)
	lookup, err := d.Root.Logical().Write("sys/leases/lookup", map[string]any{"lease_id": short.LeaseID})
	if err != nil {
		t.Fatalf("the short lease expired instead of being renewed: %v", err)
	}
	if lookup.Data["last_renewal"] == nil {
		t.Errorf("lease %s never renewed: %v", short.LeaseID, lookup.Data)
	}
	if _, err := readAs(ctx, schema, short); err != nil {
		t.Errorf("renewed credentials: %v", err)
	}
	// The capped lease ends at 5 s: new credentials come, and they read.
	select {
	case next := <-replaced:
		if next.Username == capped.Username || next.LeaseID == capped.LeaseID {
			t.Fatalf("replacement %s is the old user", next.Username)
		}
		if _, err := readAs(ctx, schema, next); err != nil {
			t.Errorf("replacement credentials: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the capped credentials were not replaced")
	}
	n := len(s.Leases())
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if n < 2 || len(s.Leases()) != 0 || roleExists(t, short.Username) {
		t.Errorf("%d leases before Close, %d after; short user exists %v", n, len(s.Leases()), roleExists(t, short.Username))
	}
}

// TestKeyring: a tenant's field sealed under a data key that the tenant's
// Transit key wraps opens again (also after the key rotates), does not
// open under another field's aad, and cannot be opened at all once the
// tenant's key is shredded — by raising its minimum decryption version
// past the value's, or by deleting the key.
func TestKeyring(t *testing.T) {
	d := startVault(t)
	if err := d.Root.Sys().Mount("transit", &vault.MountInput{Type: "transit"}); err != nil {
		t.Fatal(err)
	}
	d.Write(t, "transit/keys/tenant-acme", nil)
	cfg, _ := appRole(t, d, "ferry-keys", `path "transit/datakey/plaintext/tenant-acme" { capabilities = ["update"] }
path "transit/decrypt/tenant-acme" { capabilities = ["update"] }`)
	ctx := context.Background()
	v, err := OpenVault(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	k := v.Keyring("transit", "tenant-acme")
	field := []byte("acme/connection/host")
	sealed, err := k.Seal(ctx, []byte("warehouse.acme.internal"), field)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("warehouse.acme.internal")) {
		t.Fatal("the envelope holds the plaintext")
	}
	if pt, err := k.Open(ctx, sealed, field); err != nil || string(pt) != "warehouse.acme.internal" {
		t.Fatalf("open: %q %v", pt, err)
	}
	if _, err := k.Open(ctx, sealed, []byte("acme/other-field")); err == nil {
		t.Error("opened under another field's aad")
	}
	tampered := append([]byte(nil), sealed...)
	tampered[len(tampered)-1] ^= 1
	if _, err := k.Open(ctx, tampered, field); err == nil {
		t.Error("a tampered value opened")
	}
	// Rotation keeps old values readable.
	d.Write(t, "transit/keys/tenant-acme/rotate", nil)
	if pt, err := k.Open(ctx, sealed, field); err != nil || string(pt) != "warehouse.acme.internal" {
		t.Fatalf("open after rotation: %q %v", pt, err)
	}
	newer, err := k.Seal(ctx, []byte("after rotation"), field)
	if err != nil {
		t.Fatal(err)
	}
	// Shred the first version: values sealed under it are gone for good,
	// newer ones still open.
	d.Write(t, "transit/keys/tenant-acme/config", map[string]any{"min_decryption_version": 2})
	if _, err := k.Open(ctx, sealed, field); !errors.Is(err, ErrShredded) {
		t.Errorf("a value under a shredded key version: %v, want ErrShredded", err)
	}
	if pt, err := k.Open(ctx, newer, field); err != nil || string(pt) != "after rotation" {
		t.Fatalf("a value under the current version: %q %v", pt, err)
	}
	// Delete the key: nothing of the tenant's opens any more.
	d.Write(t, "transit/keys/tenant-acme/config", map[string]any{"deletion_allowed": true})
	if _, err := d.Root.Logical().Delete("transit/keys/tenant-acme"); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Open(ctx, newer, field); !errors.Is(err, ErrShredded) {
		t.Errorf("a value after the key's deletion: %v, want ErrShredded", err)
	}
	if _, err := k.Open(ctx, []byte{9, 9}, field); err == nil {
		t.Error("a malformed envelope opened")
	}
}
