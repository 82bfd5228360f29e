package agent

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/ferry-ai/ferry/connectors"
	"github.com/ferry-ai/ferry/connectors/postgres"
	"github.com/ferry-ai/ferry/internal/graph"
	"github.com/ferry-ai/ferry/internal/vaulttest"
	"github.com/ferry-ai/ferry/secrets"
)

// TestCredentialsReplacedMidRead: a job's database user from Vault has a
// maximum TTL shorter than the read. Before it ends the agent takes a new
// user (re-reading the role's credentials); when Vault revokes the old one
// — with revocation statements that end its sessions, as a careful admin
// writes them — the COPY in flight breaks, and the read resumes on a new
// connection as the new user from the first row not yet delivered: every
// row once, in key order. When the job ends, both users are gone.
func TestCredentialsReplacedMidRead(t *testing.T) {
	if testing.Short() {
		t.Skip("needs Vault and PostgreSQL")
	}
	d := vaulttest.Start(t)
	vaulttest.EnsureAdmin(t)
	schema := vaulttest.Name("ferry_resume_")
	const rows = 60000
	vaulttest.Exec(t, "CREATE SCHEMA "+schema,
		"CREATE TABLE "+schema+".events (id bigint PRIMARY KEY, payload text NOT NULL)",
		// Inserted out of key order; wide rows, so the COPY is still
		// running (not sitting in socket buffers) when the user is revoked.
		fmt.Sprintf("INSERT INTO %s.events SELECT (i * 7919) %% %d, repeat(md5(i::text), 8) FROM generate_series(0, %d) i", schema, rows, rows-1))
	t.Cleanup(func() { vaulttest.Exec(t, "DROP SCHEMA "+schema+" CASCADE") })
	d.DatabaseRole(t, "capped",
		fmt.Sprintf(`CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';
GRANT USAGE ON SCHEMA %[1]s TO "{{name}}"; GRANT SELECT ON ALL TABLES IN SCHEMA %[1]s TO "{{name}}";`, schema),
		fmt.Sprintf(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{{name}}';
REVOKE ALL ON ALL TABLES IN SCHEMA %[1]s FROM "{{name}}"; REVOKE USAGE ON SCHEMA %[1]s FROM "{{name}}"; DROP ROLE IF EXISTS "{{name}}";`, schema),
		"2s", "4s")
	role := d.AppRole(t, "ferry-agent-resume", secrets.AgentPolicy("database", "capped"))

	var logs vaulttest.SyncBuffer
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
			Credentials: &CredentialsConfig{Database: &VaultPath{Mount: "database", Role: "capped"}}},
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
	tbl := graph.Table{Name: "events", PrimaryKey: []string{"id"}}
	r, err := w.read(ctx, tbl, connectors.ReadOptions{BatchSize: 500})
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
		// A slow consumer (an engine busy elsewhere): the read takes
		// longer than the user's maximum TTL.
		time.Sleep(50 * time.Millisecond)
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
	t.Logf("read %d rows in %v; credentials replaced %d times (%s → %s)", next, time.Since(start), gen, first, last)
	if gen == 0 || last == first {
		t.Fatalf("the credentials were never replaced:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "warehouse read resumed") {
		t.Errorf("the read never broke and resumed (the revocation did not end the COPY):\n%s", logs.String())
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	closed = true
	for _, u := range []string{first, last} {
		if vaulttest.RoleExists(t, u) {
			t.Errorf("database user %s exists after the job", u)
		}
	}
}
