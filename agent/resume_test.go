package agent

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ferry-ai/ferry/internal/syncbuf"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/ferry-ai/ferry/connectors"
	"github.com/ferry-ai/ferry/connectors/postgres"
	"github.com/ferry-ai/ferry/internal/graph"
	"github.com/ferry-ai/ferry/internal/vaulttest"
	"github.com/ferry-ai/ferry/secrets"
)

// TestCredentialsReplacedMidRead: a job's read lasts longer than its
// credentials can — either the database user's lease reaches its maximum
// TTL, or the agent's own Vault token does (and Vault revokes the leases
// taken with it). Before or when that happens the agent takes a new user,
// signing in to Vault again in the second case; when Vault revokes the old
// user — with revocation statements that end its sessions, as a careful
// admin writes them — the COPY in flight breaks, and the read resumes on a
// new connection as the new user from the first row not yet delivered:
// every row once, in key order. When the job ends, every user is gone.
func TestCredentialsReplacedMidRead(t *testing.T) {
	if testing.Short() {
		t.Skip("needs Vault and PostgreSQL")
	}
	d := vaulttest.Start(t)
	vaulttest.EnsureAdmin(t)
	schema := vaulttest.Name("ferry_resume_")
	const rows = 200000
	vaulttest.Exec(t, "CREATE SCHEMA "+schema,
		"CREATE TABLE "+schema+".events (id bigint PRIMARY KEY, payload text NOT NULL)",
		// Inserted out of key order; 50 MB of rows, so the COPY is still
		// running when the user is revoked, not done and waiting in socket
		// buffers (loopback's take a few MB).
		fmt.Sprintf("INSERT INTO %s.events SELECT (i * 7919) %% %d, repeat(md5(i::text), 8) FROM generate_series(0, %d) i", schema, rows, rows-1))
	t.Cleanup(func() { vaulttest.Exec(t, "DROP SCHEMA "+schema+" CASCADE") })
	creation := fmt.Sprintf(`CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';
GRANT USAGE ON SCHEMA %[1]s TO "{{name}}"; GRANT SELECT ON ALL TABLES IN SCHEMA %[1]s TO "{{name}}";`, schema)
	revocation := fmt.Sprintf(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{{name}}';
REVOKE ALL ON ALL TABLES IN SCHEMA %[1]s FROM "{{name}}"; REVOKE USAGE ON SCHEMA %[1]s FROM "{{name}}"; DROP ROLE IF EXISTS "{{name}}";`, schema)

	for _, tc := range []struct {
		name               string
		leaseTTL, leaseMax string // the database user's
		tokenTTL, tokenMax string // the agent's Vault token's
		wantSignIns        int    // at least, counting the first
		wantLogLine        string // in the agent's log
	}{
		{name: "UserMaxTTL", leaseTTL: "2s", leaseMax: "4s", tokenTTL: "1h", wantSignIns: 1, wantLogLine: "credentials replaced"},
		{name: "TokenMaxTTL", leaseTTL: "2s", leaseMax: "1h", tokenTTL: "2s", tokenMax: "4s", wantSignIns: 2, wantLogLine: "credentials replaced"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dbRole := "resume-" + strings.ToLower(tc.name)
			d.DatabaseRole(t, dbRole, creation, revocation, tc.leaseTTL, tc.leaseMax)
			role := d.AppRoleTTL(t, "ferry-agent-"+dbRole, secrets.AgentPolicy("database", dbRole), tc.tokenTTL, tc.tokenMax)
			var logs syncbuf.Buffer
			log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			ctx := context.Background()
			v, err := secrets.OpenVault(ctx, secrets.VaultConfig{Address: d.Addr, RetryFor: 2 * time.Second,
				Auth: secrets.VaultAuth{Method: "approle", RoleID: role.RoleID, SecretIDFile: role.SecretIDFile}}, log)
			if err != nil {
				t.Fatal(err)
			}
			defer v.Close()
			mux := connectors.NewMux()
			mux.Register(postgres.Scheme, postgres.Opener{})
			a := &Agent{
				cfg: Config{Warehouse: "postgres://127.0.0.1:5432/test?sslmode=disable&schema=" + schema,
					Credentials: &CredentialsConfig{Database: &VaultPath{Mount: "database", Role: dbRole}}},
				mux: mux, log: log, vault: v,
			}
			w, err := a.openWarehouse(ctx, log)
			if err != nil {
				t.Fatal(err)
			}
			closed := false
			defer func() {
				if !closed {
					w.Close(ctx)
				}
			}()
			first := w.creds["user"]
			r, err := w.read(ctx, graph.Table{Name: "events", PrimaryKey: []string{"id"}}, connectors.ReadOptions{BatchSize: 1000})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Release()
			next := int64(0)
			start := time.Now()
			for r.Next() {
				ids := r.RecordBatch().Column(0).(*array.Int64)
				for i := 0; i < ids.Len(); i++ {
					if ids.Value(i) != next {
						t.Fatalf("row %d has id %d: a row was lost or repeated across the resume", next, ids.Value(i))
					}
					next++
				}
				// A slow consumer (an engine busy elsewhere): the read
				// outlasts the credentials.
				time.Sleep(40 * time.Millisecond)
			}
			if err := r.Err(); err != nil {
				t.Fatalf("read failed after %v: %v\n%s", time.Since(start), err, logs.String())
			}
			if next != rows {
				t.Fatalf("read %d rows, want %d", next, rows)
			}
			w.mu.Lock()
			last, gen := w.creds["user"], w.gen
			w.mu.Unlock()
			out := logs.String()
			signIns := strings.Count(out, `"vault: signed in"`)
			t.Logf("read %d rows in %v; %d sign-ins; credentials replaced %d times (%s → %s)", next, time.Since(start), signIns, gen, first, last)
			if gen == 0 || last == first || !strings.Contains(out, tc.wantLogLine) {
				t.Fatalf("the credentials were never replaced:\n%s", out)
			}
			if signIns < tc.wantSignIns {
				t.Errorf("%d sign-ins to Vault, want at least %d", signIns, tc.wantSignIns)
			}
			if !strings.Contains(out, "warehouse read resumed") {
				t.Errorf("the read never broke and resumed (the revocation did not end the COPY):\n%s", out)
			}
			if err := w.Close(ctx); err != nil {
				t.Fatal(err)
			}
			closed = true
			// Vault's user names end in -<random>-<unix time>: every user
			// of this role shares the rest.
			prefix := first[:strings.LastIndex(first[:strings.LastIndex(first, "-")], "-")+1]
			if left := vaulttest.RolesLike(t, prefix); len(left) > 0 {
				t.Errorf("database users %v exist after the job", left)
			}
		})
	}
}
