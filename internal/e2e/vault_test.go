//go:build duckdb_arrow

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/ferry-ai/ferry/connectors"
	"github.com/ferry-ai/ferry/connectors/postgres"
	"github.com/ferry-ai/ferry/controlplane/api"
	"github.com/ferry-ai/ferry/internal/demodata"
	"github.com/ferry-ai/ferry/internal/devstack"
	"github.com/ferry-ai/ferry/internal/vaulttest"
	"github.com/ferry-ai/ferry/secrets"
)

// TestVaultCredentialsEndToEnd runs the demo query on PostgreSQL through
// the three real processes, the agent taking its database user from a real
// Vault's database secrets engine per use, with the grants, Vault role and
// URL that `ferry grants postgres --vault` prints (invariant 3):
//   - the job reads the source schema and writes the predictions to the
//     output schema with its own short-lived user, whose lease (TTL 2 s) is
//     renewed while the job runs;
//   - when the job ends — succeeded, failed or cancelled — its leases are
//     revoked and every user Vault made is gone from PostgreSQL;
//   - a Vault policy that no longer allows the role, a sealed Vault and an
//     unreachable one fail the job cleanly with an error naming Vault and
//     the path, never a secret;
//   - no secret Vault handed out (every password, token and secret ID, read
//     from Vault's own raw audit log) appears in any line the three
//     processes logged at debug level, or in the control plane's files.
func TestVaultCredentialsEndToEnd(t *testing.T) {
	d := vaulttest.Start(t)
	audit := filepath.Join(t.TempDir(), "vault-audit.log")
	// log_raw: the audit log holds the secrets in clear, so the test knows
	// every one Vault handed out.
	if err := d.Root.Sys().EnableAuditWithOptions("file", &vault.EnableAuditOptions{Type: "file", Options: map[string]string{"file_path": audit, "log_raw": "true"}}); err != nil {
		t.Fatal(err)
	}
	vaulttest.EnsureAdmin(t)
	src, out, group := vaulttest.Name("ferry_e2e_src_"), vaulttest.Name("ferry_e2e_out_"), vaulttest.Name("ferry_e2e_agent_")
	vaulttest.Exec(t, "CREATE SCHEMA "+src)
	t.Cleanup(func() {
		vaulttest.Exec(t, "DROP SCHEMA IF EXISTS "+src+" CASCADE", "DROP SCHEMA IF EXISTS "+out+" CASCADE",
			"DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '"+group+"') THEN DROP OWNED BY "+group+"; DROP ROLE "+group+"; END IF; END $$")
	})
	ctx := context.Background()

	// The warehouse: the demo data set in the source schema.
	mux := connectors.NewMux()
	mux.Register(postgres.Scheme, postgres.Opener{})
	base := "postgres://127.0.0.1:5432/test?sslmode=disable"
	wh, err := mux.Open(ctx, base+"&schema="+src, &connectors.Options{Credentials: map[string]string{"user": "postgres"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := demodata.Generate(ctx, wh, demodata.Config{Scale: testScale, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	wh.Close()

	// The admin's part: what `ferry grants postgres --vault` prints, run
	// as printed, and the Vault role from its comments.
	code, grantsOut, stderr := ferry(t, nil, "grants", "postgres", "--read", src, "--write", out, "--role", group, "--vault")
	if code != 0 {
		t.Fatalf("ferry grants: exit %d: %s", code, stderr)
	}
	var stmts []string
	comments := map[string]string{}
	section := ""
	for _, line := range strings.Split(grantsOut, "\n") {
		switch {
		case strings.HasPrefix(line, "-- creation.sql"), strings.HasPrefix(line, "-- revocation.sql"):
			section = strings.TrimSuffix(strings.Fields(line)[1], ":")
		case strings.HasPrefix(line, "--   ") && section != "":
			comments[section] += strings.TrimPrefix(line, "--   ") + "\n"
		case strings.HasPrefix(line, "--"):
			section = ""
		case strings.TrimSpace(line) != "":
			stmts = append(stmts, line)
		}
	}
	creation, revocation := comments["creation.sql"], comments["revocation.sql"]
	if len(stmts) < 4 || creation == "" || revocation == "" {
		t.Fatalf("ferry grants printed no Vault role:\n%s", grantsOut)
	}
	vaulttest.Exec(t, stmts...)
	d.DatabaseRole(t, "ferry-agent", creation, revocation, "2s", "1h")
	const policyName = "ferry-agent-e2e"
	role := d.AppRole(t, policyName, secrets.AgentPolicy("database", "ferry-agent"))
	warehouse := fmt.Sprintf("%s&schema=%s&output_schema=%s&write_role=%s", base, src, out, group)
	if !strings.Contains(grantsOut, strings.TrimPrefix(warehouse, base+"&")) {
		t.Errorf("the URL ferry grants printed is not the one used: want …%s in\n%s", strings.TrimPrefix(warehouse, base), grantsOut)
	}

	s := startStackWith(t, devstack.Options{
		Warehouse: warehouse, LogLevel: "debug",
		AgentYAML: fmt.Sprintf("credentials:\n  vault:\n    address: %q\n    retry_for: 2s\n    auth: {method: approle, role_id: %q, secret_id_file: %q}\n  database: {mount: database, role: ferry-agent}\n",
			d.Addr, role.RoleID, role.SecretIDFile),
	})
	members := func() int {
		c := vaulttest.Connect(t)
		defer c.Close(ctx)
		var n int
		if err := c.QueryRow(ctx, `SELECT count(*) FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid WHERE g.rolname = $1`, group).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	leases := func() []any {
		sec, err := d.Root.Logical().List("sys/leases/lookup/database/creds/ferry-agent/")
		if err != nil {
			t.Fatal(err)
		}
		if sec == nil {
			return nil
		}
		keys, _ := sec.Data["keys"].([]any)
		return keys
	}

	job := runJob(t, s.Client, demoQuery, "churn_predictions")
	t.Run("ReadAndWriteBack", func(t *testing.T) {
		c := vaulttest.Connect(t)
		defer c.Close(ctx)
		var rows, distinct int64
		var owner string
		if err := c.QueryRow(ctx, fmt.Sprintf(`SELECT count(*), count(DISTINCT customer_id) FROM %s.churn_predictions`, out)).Scan(&rows, &distinct); err != nil {
			t.Fatal(err)
		}
		if err := c.QueryRow(ctx, `SELECT tableowner FROM pg_tables WHERE schemaname = $1 AND tablename = 'churn_predictions'`, out).Scan(&owner); err != nil {
			t.Fatal(err)
		}
		if rows == 0 || rows != job.Model.PredictionRows || distinct != rows || owner != group {
			t.Errorf("%s.churn_predictions: %d rows, %d customers, owner %q; want %d rows, one per customer, owned by %q",
				out, rows, distinct, owner, job.Model.PredictionRows, group)
		}
		t.Logf("read and wrote back as Vault users: %d predictions, test AUROC %.3f", rows, job.Model.Test.AUROC)
	})
	agentLog := func() string {
		b, err := os.ReadFile(s.Agent.LogPath)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	t.Run("RenewedAndRevoked", func(t *testing.T) {
		log := agentLog()
		if !strings.Contains(log, `"vault: lease renewed"`) {
			t.Error("no lease was renewed during the job (TTL 2 s)")
		}
		if n := strings.Count(log, `"vault: lease revoked"`); n < 2 {
			t.Errorf("%d leases revoked; want the table listing's and the job's", n)
		}
		if n := members(); n != 0 {
			t.Errorf("%d users Vault made are still members of %s after the job", n, group)
		}
		if l := leases(); len(l) != 0 {
			t.Errorf("Vault still holds leases %v", l)
		}
	})

	// A job cancelled while it trains: cancelled, and its user revoked all
	// the same.
	t.Run("CancelledJobRevokes", func(t *testing.T) {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		j, err := s.Client.Submit(cctx, demoQuery, "churn_predictions")
		if err != nil {
			t.Fatal(err)
		}
		for {
			d, err := s.Client.Get(cctx, j.ID)
			if err != nil {
				t.Fatal(err)
			}
			if d.Job.State == api.StateTraining {
				break
			}
			if d.Job.State.Terminal() {
				t.Fatalf("job ended %s before it could be cancelled", d.Job.State)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if n := members(); n != 1 {
			t.Errorf("%d users Vault made while the job trains, want its own", n)
		}
		if _, err := s.Client.Cancel(cctx, j.ID); err != nil {
			t.Fatal(err)
		}
		d, err := s.Client.Wait(cctx, j.ID, 100*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if d.Job.State != api.StateCancelled {
			t.Errorf("cancelled job ended %s", d.Job.State)
		}
		// The agent revokes before it reports the end; allow the report to
		// overtake the revocation by a moment.
		for i := 0; members() != 0 && i < 50; i++ {
			time.Sleep(100 * time.Millisecond)
		}
		if n := members(); n != 0 {
			t.Errorf("%d users left after the cancelled job", n)
		}
	})

	// The policy no longer allows the role: the job fails, naming the path.
	if err := d.Root.Sys().PutPolicy(policyName, `path "secret/data/nothing" { capabilities = ["read"] }`); err != nil {
		t.Fatal(err)
	}
	denied := endJob(t, s.Client, demoQuery, "churn_predictions")
	if err := d.Root.Sys().PutPolicy(policyName, secrets.AgentPolicy("database", "ferry-agent")); err != nil {
		t.Fatal(err)
	}
	if denied.Job.State != api.StateFailed || denied.Job.Error == nil || denied.Job.Error.Stage != "read" ||
		!strings.Contains(denied.Job.Error.Message, "database/creds/ferry-agent") || !strings.Contains(denied.Job.Error.Message, "permission denied") {
		t.Errorf("denied by policy: job %s %+v; want failed at read, naming database/creds/ferry-agent", denied.Job.State, denied.Job.Error)
	}
	// A sealed Vault: the job fails, saying so.
	if err := d.Root.Sys().Seal(); err != nil {
		t.Fatal(err)
	}
	sealed := endJob(t, s.Client, demoQuery, "churn_predictions")
	if sealed.Job.State != api.StateFailed || sealed.Job.Error == nil || !strings.Contains(sealed.Job.Error.Message, "sealed") {
		t.Errorf("sealed Vault: job %s %+v; want failed, saying Vault is sealed", sealed.Job.State, sealed.Job.Error)
	}
	if n := members(); n != 0 {
		t.Errorf("%d users left behind by the failed jobs", n)
	}
	t.Logf("denied: %+v; sealed: %+v", denied.Job.Error, sealed.Job.Error)
	// An unreachable Vault: the job fails, naming Vault's address.
	d.Kill()
	gone := endJob(t, s.Client, demoQuery, "churn_predictions")
	if gone.Job.State != api.StateFailed || gone.Job.Error == nil || !strings.Contains(gone.Job.Error.Message, "vault unavailable") {
		t.Errorf("unreachable Vault: job %s %+v; want failed, saying Vault is unavailable", gone.Job.State, gone.Job.Error)
	}
	t.Logf("unreachable: %+v", gone.Job.Error)
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}

	t.Run("NoSecretLogged", func(t *testing.T) {
		secretsSeen := auditSecrets(t, audit)
		secretsSeen["AppRole secret ID"] = append(secretsSeen["AppRole secret ID"], role.SecretID)
		if len(secretsSeen["password"]) < 2 || len(secretsSeen["client_token"]) < 1 {
			t.Fatalf("the audit log shows %d passwords and %d tokens; want the jobs' users and the agent's sign-in", len(secretsSeen["password"]), len(secretsSeen["client_token"]))
		}
		var files []string
		for _, p := range []*devstack.Proc{s.ControlPlane, s.Engine, s.Agent} {
			files = append(files, p.LogPath)
		}
		_ = filepath.WalkDir(s.DataDir, func(p string, e os.DirEntry, err error) error {
			if err == nil && !e.IsDir() {
				files = append(files, p)
			}
			return nil
		})
		lines := 0
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			lines += strings.Count(string(b), "\n")
			for kind, values := range secretsSeen {
				for _, v := range values {
					if strings.Contains(string(b), v) {
						t.Errorf("a %s Vault handed out appears in %s", kind, f)
					}
				}
			}
		}
		if !strings.Contains(agentLog(), `"level":"DEBUG"`) {
			t.Error("the agent did not log at debug level: the canary proves nothing")
		}
		t.Logf("%d secrets from Vault's audit log checked against %d lines in %d files", countValues(secretsSeen), lines, len(files))
	})
}

// auditSecrets reads a raw Vault audit log and returns every password,
// client token and secret ID it shows, by key.
func auditSecrets(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]string{}
	seen := map[string]bool{}
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, val := range x {
				if s, ok := val.(string); ok && (k == "password" || k == "client_token" || k == "secret_id") && len(s) >= 8 && !seen[s] {
					seen[s] = true
					out[k] = append(out[k], s)
				}
				walk(val)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var entry any
		if err := json.Unmarshal(sc.Bytes(), &entry); err != nil {
			t.Fatalf("audit log: %v", err)
		}
		walk(entry)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func countValues(m map[string][]string) int {
	n := 0
	for _, v := range m {
		n += len(v)
	}
	return n
}
