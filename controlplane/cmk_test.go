package controlplane_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/ferry-ai/ferry/controlplane"
	"github.com/ferry-ai/ferry/controlplane/agentapi"
	"github.com/ferry-ai/ferry/controlplane/api"
	"github.com/ferry-ai/ferry/internal/vaulttest"
	"github.com/ferry-ai/ferry/secrets"
)

// cmkKeyring starts the real Vault with a Transit key for the control
// plane's customer and returns it with the control plane's Vault client,
// signed in by AppRole with only the two paths a keyring needs.
func cmkKeyring(t *testing.T, key string) (*vaulttest.Server, *secrets.Vault) {
	t.Helper()
	d := vaulttest.Start(t)
	if err := d.Root.Sys().Mount("transit", &vault.MountInput{Type: "transit"}); err != nil {
		t.Fatal(err)
	}
	d.Write(t, "transit/keys/"+key, nil)
	r := d.AppRole(t, "ferry-controlplane", fmt.Sprintf(`path "transit/datakey/plaintext/%[1]s" { capabilities = ["update"] }
path "transit/decrypt/%[1]s" { capabilities = ["update"] }`, key))
	v, err := secrets.OpenVault(context.Background(), secrets.VaultConfig{Address: d.Addr, RetryFor: 2 * time.Second,
		Auth: secrets.VaultAuth{Method: "approle", RoleID: r.RoleID, SecretIDFile: r.SecretIDFile}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return d, v
}

// startSealedHarness is startHarness with Config.Sealer set.
func startSealedHarness(t *testing.T, sealer controlplane.FieldSealer, dataDir string) *harness {
	t.Helper()
	return startHarness(t, harnessOptions{dataDir: dataDir, sealer: sealer, sqlite: true})
}

// dbBytes returns the metadata database's files as written so far (the
// main file and its write-ahead log).
func dbBytes(t *testing.T, dataDir string) []byte {
	t.Helper()
	var all []byte
	for _, name := range []string{controlplane.DBFile, controlplane.DBFile + "-wal"} {
		b, err := os.ReadFile(filepath.Join(dataDir, name))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	if len(all) == 0 {
		t.Fatal("no metadata database files")
	}
	return all
}

// openDB opens the control plane's database file directly, as someone with
// the disk would.
func openDB(t *testing.T, dataDir string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dataDir, controlplane.DBFile)+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// storedWrappedKey returns the Transit ciphertext of the data key a sealed
// jobs.query value was sealed under.
func storedWrappedKey(t *testing.T, db *sql.DB, job string) string {
	t.Helper()
	var stored string
	if err := db.QueryRow(`SELECT query FROM jobs WHERE id = ?`, job).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	b64, ok := strings.CutPrefix(stored, "sealed:v1:")
	if !ok {
		t.Fatalf("job %s query is stored unsealed: %.20q", job, stored)
	}
	env, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(env) < 3 {
		t.Fatalf("job %s query: %v", job, err)
	}
	n := int(binary.BigEndian.Uint16(env[1:3]))
	return string(env[3 : 3+n])
}

// disconnect ends a test agent's stream and waits until the control plane
// has marked it disconnected.
func (h *harness) disconnect(a *testAgent) {
	h.t.Helper()
	a.cancel()
	for deadline := time.Now().Add(10 * time.Second); ; {
		agents, err := h.client.Agents(context.Background())
		if err != nil {
			h.t.Fatal(err)
		}
		if len(agents) == 1 && !agents[0].Connected {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("agent still connected: %+v", agents)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// unreadable reports whether a document's Unreadable names field for a
// reason containing why.
func unreadable(u *api.Unreadable, field, why string) bool {
	return u != nil && strings.Contains(u.Reason, why) && slices.Contains(u.Fields, field)
}

// TestCustomerManagedKeysIntegration runs the control plane with its
// sensitive metadata sealed under a Transit key of the real Vault, and
// submits jobs through its API and a fake agent:
//   - at rest: the query texts, their literals, the reported schema, column
//     names, metrics, feature importances, error messages and state notes
//     appear nowhere in the database files, while the API returns them;
//   - aad: a sealed value copied onto another row does not open there;
//   - rotation: everything stays readable, new values use the new version;
//   - revocation by minimum decryption version: once the cache TTL has
//     passed, the old values read as unreadable ("customer key revoked")
//     while states, counts and timings still list, the newer ones read, and
//     a queued job whose query is gone fails naming the job and the reason;
//   - deletion of the key: everything sealed is unreadable, listings and
//     health still answer, a submission is refused with a clear error.
func TestCustomerManagedKeysIntegration(t *testing.T) {
	const cacheTTL = 400 * time.Millisecond
	d, v := cmkKeyring(t, "tenant-cp")
	keyring := v.Keyring("transit", "tenant-cp").WithCache(secrets.KeyringCache{TTL: cacheTTL})
	dataDir := t.TempDir()
	h := startSealedHarness(t, keyring, dataDir)
	ctx := context.Background()
	afterTTL := func() { time.Sleep(cacheTTL + 300*time.Millisecond) }

	const (
		literal      = "CMK-CANARY-LITERAL-5521"
		errCanary    = "CMK-CANARY-ERROR-77"
		colCanary    = "cmk_canary_column_x9"
		featCanary   = "cmk_canary_feature_k4"
		outputA      = "cmk_plain_output_a"
		queryPrefix  = "PREDICT COUNT(orders.*, 0, 30, days) > 0 FOR EACH customers.customer_id WHERE customers.churned = '"
		failMessageB = errCanary + ": feature " + colCanary + " is constant"
	)
	query := func(tag string) string { return queryPrefix + literal + "-" + tag + "'" }

	a := h.connectAgent(true)
	// Job A succeeds with every kind of report.
	jA, err := h.client.Submit(ctx, query("A"), outputA)
	if err != nil {
		t.Fatal(err)
	}
	if asg := a.recv().GetAssignment(); asg.GetJobId() != jA.ID || asg.GetQuery() != query("A") {
		t.Fatalf("assignment %v: want job %s with its query in clear", asg, jA.ID)
	}
	h.waitState(jA.ID, api.StateAssigned)
	cols := append(slices.Clone(testTables()[1].Columns), &agentapi.Column{Name: colCanary, Type: "utf8"})
	a.event(jA.ID, agentapi.JobState_JOB_STATE_READING, func(ev *agentapi.JobEvent) {
		ev.Detail = &agentapi.JobEvent_TableStats{TableStats: &agentapi.TableStats{Table: "orders", Rows: 1000, Bytes: 64000, Batches: 2, Seconds: 0.5, Columns: cols}}
	})
	a.event(jA.ID, agentapi.JobState_JOB_STATE_TRAINING, func(ev *agentapi.JobEvent) {
		ev.Detail = &agentapi.JobEvent_Metrics{Metrics: &agentapi.TrainMetrics{
			ModelId: "m-1", TaskType: "binary_classification", Test: &agentapi.Metric{Auroc: 0.8123, AveragePrecision: 0.42},
			TrainRows: 700, ValidationRows: 150, TestRows: 150, NumFeatures: 12, PredictionRows: 100,
			FeatureImportance: map[string]float64{featCanary: 12.5},
		}}
	})
	a.event(jA.ID, agentapi.JobState_JOB_STATE_WRITING, func(ev *agentapi.JobEvent) {
		ev.Detail = &agentapi.JobEvent_Write{Write: &agentapi.WriteReport{Table: outputA, Rows: 100, Seconds: 0.2}}
	})
	a.event(jA.ID, agentapi.JobState_JOB_STATE_SUCCEEDED, func(ev *agentapi.JobEvent) {
		ev.Detail = &agentapi.JobEvent_Purge{Purge: &agentapi.PurgeReport{Reason: "job done", BytesReceived: 65600, BytesPurged: 65600}}
	})
	for deadline := time.Now().Add(10 * time.Second); ; {
		if dA := h.waitState(jA.ID, api.StateSucceeded); dA.Purge != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no purge report")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Job B fails with an error message.
	jB, err := h.client.Submit(ctx, query("B"), "cmk_out_b")
	if err != nil {
		t.Fatal(err)
	}
	if asg := a.recv().GetAssignment(); asg.GetJobId() != jB.ID {
		t.Fatalf("assignment %v, want job %s", asg, jB.ID)
	}
	h.waitState(jB.ID, api.StateAssigned)
	a.event(jB.ID, agentapi.JobState_JOB_STATE_FAILED, func(ev *agentapi.JobEvent) {
		ev.Detail = &agentapi.JobEvent_Error{Error: &agentapi.JobError{Stage: "train", Message: failMessageB}}
	})
	h.waitState(jB.ID, api.StateFailed)
	// Job Q stays queued: no agent is connected.
	h.disconnect(a)
	jQ, err := h.client.Submit(ctx, query("Q"), "cmk_out_q")
	if err != nil {
		t.Fatal(err)
	}

	if !t.Run("sealed at rest, clear through the API", func(t *testing.T) {
		dA, err := h.client.Get(ctx, jA.ID)
		if err != nil {
			t.Fatal(err)
		}
		if dA.Query != query("A") || dA.Unreadable != nil || len(dA.History) < 2 || dA.History[1].Note != "assigned to agent "+testAgentID ||
			len(dA.TableStats) != 1 || len(dA.TableStats[0].Columns) != len(cols) || dA.TableStats[0].Columns[len(cols)-1].Name != colCanary ||
			dA.Model == nil || dA.Model.Test == nil || dA.Model.Test.AUROC != 0.8123 || dA.Model.FeatureImportance[featCanary] != 12.5 {
			t.Fatalf("job A through the API: %+v", dA)
		}
		dB, err := h.client.Get(ctx, jB.ID)
		if err != nil {
			t.Fatal(err)
		}
		if dB.Query != query("B") || dB.Error == nil || dB.Error.Message != failMessageB || dB.Error.Stage != "train" {
			t.Fatalf("job B through the API: %+v", dB)
		}
		agents, err := h.client.Agents(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(agents) != 1 || strings.Join(agents[0].Tables, ",") != "customers,orders" || agents[0].Unreadable != nil {
			t.Fatalf("agents: %+v", agents)
		}
		// A warm listing asks Vault nothing.
		before := keyring.Stats()
		jobs, err := h.client.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(jobs) != 3 || jobs[0].Query != query("Q") || jobs[2].Query != query("A") {
			t.Fatalf("list: %+v", jobs)
		}
		if after := keyring.Stats(); after.Unwraps != before.Unwraps {
			t.Errorf("a warm listing unwrapped %d data keys, want 0", after.Unwraps-before.Unwraps)
		}

		raw := dbBytes(t, dataDir)
		// The search finds what is stored in plaintext...
		for _, want := range []string{outputA, "sealed:v1:"} {
			if !bytes.Contains(raw, []byte(want)) {
				t.Errorf("the database files do not hold %q: the search is broken", want)
			}
		}
		// ...and none of what is sealed.
		for _, secret := range []string{
			query("A"), query("B"), query("Q"), literal, // query texts and their literals
			errCanary, colCanary, featCanary, // error message, column list, feature importances
			"ordered_at", "timestamp[us]", "customer_id", // the reported schema (graph_json), column lists
			`"auroc"`, "0.8123", // metrics_json
			"assigned to agent", // state notes
		} {
			if bytes.Contains(raw, []byte(secret)) {
				t.Errorf("%q is in the database files in plaintext", secret)
			}
		}
		if strings.Contains(h.logs.String(), literal) || strings.Contains(h.logs.String(), errCanary) {
			t.Error("a sealed value reached the logs")
		}
	}) {
		return
	}

	db := openDB(t, dataDir)
	if !t.Run("a value moved to another row does not open", func(t *testing.T) {
		var storedB, noteB string
		if err := db.QueryRow(`SELECT query FROM jobs WHERE id = ?`, jB.ID).Scan(&storedB); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRow(`SELECT note FROM job_events WHERE job_id = ? AND state = 'assigned'`, jB.ID).Scan(&noteB); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(`UPDATE jobs SET query = (SELECT query FROM jobs WHERE id = ?) WHERE id = ?`, jA.ID, jB.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(`UPDATE job_events SET note = (SELECT note FROM job_events WHERE job_id = ? AND state = 'assigned')
WHERE job_id = ? AND state = 'assigned'`, jA.ID, jB.ID); err != nil {
			t.Fatal(err)
		}
		dB, err := h.client.Get(ctx, jB.ID)
		if err != nil {
			t.Fatal(err)
		}
		if dB.Query != "" || !unreadable(dB.Unreadable, "query", "does not authenticate") || !unreadable(dB.Unreadable, "history[1].note", "") ||
			dB.History[1].Note != "" || dB.State != api.StateFailed || dB.Error.Message != failMessageB {
			t.Errorf("job B with job A's sealed query and note: %+v (unreadable %+v)", dB, dB.Unreadable)
		}
		jobs, err := h.client.List(ctx)
		if err != nil || len(jobs) != 3 || jobs[2].Query != query("A") || jobs[1].Query != "" || jobs[1].Unreadable == nil {
			t.Errorf("list with a moved value: %+v %v", jobs, err)
		}
		if _, err := db.Exec(`UPDATE jobs SET query = ? WHERE id = ?`, storedB, jB.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(`UPDATE job_events SET note = ? WHERE job_id = ? AND state = 'assigned'`, noteB, jB.ID); err != nil {
			t.Fatal(err)
		}
		if dB, err := h.client.Get(ctx, jB.ID); err != nil || dB.Query != query("B") || dB.Unreadable != nil {
			t.Fatalf("job B with its own query back: %+v %v", dB, err)
		}
	}) {
		return
	}

	var jR *api.Job
	if !t.Run("rotation keeps values readable and seals new ones under the new version", func(t *testing.T) {
		d.Write(t, "transit/keys/tenant-cp/rotate", nil)
		afterTTL()
		for _, j := range []struct{ id, query string }{{jA.ID, query("A")}, {jB.ID, query("B")}, {jQ.ID, query("Q")}} {
			dj, err := h.client.Get(ctx, j.id)
			if err != nil || dj.Query != j.query || dj.Unreadable != nil {
				t.Fatalf("job %s after rotation: %+v %v", j.id, dj, err)
			}
		}
		var err error
		if jR, err = h.client.Submit(ctx, query("R"), "cmk_out_r"); err != nil {
			t.Fatal(err)
		}
		if jR.Query != query("R") {
			t.Fatalf("job R: %+v", jR)
		}
		if w := storedWrappedKey(t, db, jA.ID); !strings.HasPrefix(w, "vault:v1:") {
			t.Errorf("job A's data key is wrapped as %.9s…, want v1", w)
		}
		if w := storedWrappedKey(t, db, jR.ID); !strings.HasPrefix(w, "vault:v2:") {
			t.Errorf("job R's data key is wrapped as %.9s…, want v2", w)
		}
	}) {
		return
	}

	if !t.Run("revoking the old version shreds what it sealed", func(t *testing.T) {
		d.Write(t, "transit/keys/tenant-cp/config", map[string]any{"min_decryption_version": 2})
		afterTTL()
		jobs, err := h.client.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]api.Job{}
		for _, j := range jobs {
			got[j.ID] = j
		}
		if len(got) != 4 || got[jR.ID].Query != query("R") || got[jR.ID].Unreadable != nil {
			t.Fatalf("list after revoking v1: %+v", jobs)
		}
		for _, c := range []struct {
			id    string
			state api.JobState
		}{{jA.ID, api.StateSucceeded}, {jB.ID, api.StateFailed}, {jQ.ID, api.StateQueued}} {
			j := got[c.id]
			if j.State != c.state || j.Query != "" || !unreadable(j.Unreadable, "query", "customer key revoked") || j.CreatedAt.IsZero() {
				t.Errorf("job %s after revoking v1: %+v (unreadable %+v), want state %s and the query unreadable", c.id, j, j.Unreadable, c.state)
			}
		}
		if j := got[jB.ID]; j.Error == nil || j.Error.Stage != "train" || j.Error.Message != "" || !unreadable(j.Unreadable, "error.message", "revoked") {
			t.Errorf("job B's error after revoking v1: %+v %+v", j.Error, j.Unreadable)
		}
		dA, err := h.client.Get(ctx, jA.ID)
		if err != nil {
			t.Fatal(err)
		}
		var states []string
		for _, c := range dA.History {
			states = append(states, string(c.State))
		}
		if strings.Join(states, ",") != "queued,assigned,reading,training,writing,succeeded" || dA.History[1].Note != "" ||
			!unreadable(dA.Unreadable, "history[1].note", "revoked") ||
			len(dA.TableStats) != 1 || dA.TableStats[0].Rows != 1000 || len(dA.TableStats[0].Columns) != 0 ||
			!unreadable(dA.Unreadable, "table_stats[orders].columns", "revoked") ||
			dA.Model == nil || dA.Model.TrainRows != 700 || dA.Model.Test != nil || dA.Model.FeatureImportance != nil ||
			!unreadable(dA.Unreadable, "model.metrics", "revoked") || !unreadable(dA.Unreadable, "model.feature_importance", "revoked") ||
			dA.Write == nil || dA.Write.Rows != 100 || dA.Purge == nil {
			t.Errorf("job A's detail after revoking v1: %+v (unreadable %+v)", dA, dA.Unreadable)
		}
		agents, err := h.client.Agents(ctx)
		if err != nil || len(agents) != 1 || len(agents[0].Tables) != 0 || !unreadable(agents[0].Unreadable, "tables", "revoked") {
			t.Errorf("agents after revoking v1: %+v %v", agents, err)
		}
		code, body := h.do(http.MethodPost, api.PathJobs, "Bearer "+testToken, `{"query": "`+testQuery+`", "output_table": "p"}`)
		if code != http.StatusServiceUnavailable || !strings.Contains(errorBody(t, body), "cannot be opened: customer key revoked") {
			t.Errorf("submit with the schema unreadable: %d %s", code, body)
		}

		// The agent reports its schema again (sealed under v2). The
		// scheduler fails job Q, whose query is gone, and runs job R.
		a2 := h.connectAgent(true)
		if asg := a2.recv().GetAssignment(); asg.GetJobId() != jR.ID || asg.GetQuery() != query("R") {
			t.Fatalf("assignment %v, want job %s with its query", asg, jR.ID)
		}
		dQ := h.waitState(jQ.ID, api.StateFailed)
		if dQ.Error == nil || dQ.Error.Stage != "controlplane" || !strings.Contains(dQ.Error.Message, jQ.ID) ||
			!strings.Contains(dQ.Error.Message, "query cannot be opened (customer key revoked)") {
			t.Errorf("job Q: %+v", dQ.Error)
		}
		if agents, err := h.client.Agents(ctx); err != nil || strings.Join(agents[0].Tables, ",") != "customers,orders" {
			t.Errorf("agents after the new Hello: %+v %v", agents, err)
		}

		if !t.Run("deleting the key shreds everything", func(t *testing.T) {
			d.Write(t, "transit/keys/tenant-cp/config", map[string]any{"deletion_allowed": true})
			if _, err := d.Root.Logical().Delete("transit/keys/tenant-cp"); err != nil {
				t.Fatal(err)
			}
			afterTTL()
			jobs, err := h.client.List(ctx)
			if err != nil || len(jobs) != 4 {
				t.Fatalf("list after deleting the key: %+v %v", jobs, err)
			}
			states := map[string]api.JobState{}
			for _, j := range jobs {
				states[j.ID] = j.State
				if j.Query != "" || !unreadable(j.Unreadable, "query", "customer key revoked") {
					t.Errorf("job %s after deleting the key: query %q, unreadable %+v", j.ID, j.Query, j.Unreadable)
				}
			}
			if states[jA.ID] != api.StateSucceeded || states[jB.ID] != api.StateFailed || states[jQ.ID] != api.StateFailed || states[jR.ID] != api.StateAssigned {
				t.Errorf("states after deleting the key: %v", states)
			}
			if code, _ := h.do(http.MethodGet, api.PathHealthz, "", ""); code != http.StatusOK {
				t.Errorf("healthz: %d", code)
			}
			code, body := h.do(http.MethodPost, api.PathJobs, "Bearer "+testToken, `{"query": "`+testQuery+`", "output_table": "p"}`)
			if code != http.StatusServiceUnavailable || !strings.Contains(errorBody(t, body), "customer key revoked") {
				t.Errorf("submit after deleting the key: %d %s", code, body)
			}
			// The agent goes: its job is re-queued with the control plane's
			// own note (kept unsealed, as the key can no longer seal); its
			// query stays unreadable (the scheduler fails it when an agent
			// could take it).
			h.disconnect(a2)
			dR := h.waitState(jR.ID, api.StateQueued)
			last := dR.History[len(dR.History)-1]
			if !strings.Contains(last.Note, "disconnected") || dR.Query != "" || !unreadable(dR.Unreadable, "query", "customer key revoked") {
				t.Errorf("job R after its agent left: %+v", dR)
			}
		}) {
			return
		}
	}) {
		return
	}
	if strings.Contains(h.logs.String(), "panic") {
		t.Error("the logs mention a panic")
	}
}

// swapSealer is a FieldSealer whose keyring the test replaces.
type swapSealer struct {
	k atomic.Pointer[secrets.Keyring]
}

func (s *swapSealer) Seal(ctx context.Context, p, aad []byte) ([]byte, error) {
	return s.k.Load().Seal(ctx, p, aad)
}

func (s *swapSealer) Open(ctx context.Context, e, aad []byte) ([]byte, error) {
	return s.k.Load().Open(ctx, e, aad)
}

// TestCMKListCost measures listing 1,000 jobs in plaintext and sealed —
// without a cache (a Vault round trip per field), with the cache cold and
// warm, and with values sealed one data key per value or a shared one —
// and checks how many data keys each listing unwraps. It submits 3,000
// jobs, so it runs only when FERRY_CMK_MEASURE is set.
func TestCMKListCost(t *testing.T) {
	if os.Getenv("FERRY_CMK_MEASURE") == "" {
		t.Skip("set FERRY_CMK_MEASURE=1 to measure (submits 3,000 jobs)")
	}
	const n = 1000
	ctx := context.Background()
	fill := func(h *harness) {
		h.disconnect(h.connectAgent(true))
		start := time.Now()
		for i := range n {
			if _, err := h.client.Submit(ctx, fmt.Sprintf("PREDICT COUNT(orders.*, 0, 30, days) > 0 FOR EACH customers.customer_id WHERE customers.churned = 'v%d'", i), "out"); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("  submitting %d jobs: %v", n, time.Since(start).Round(time.Millisecond))
	}
	list := func(h *harness, what string, k *secrets.Keyring) {
		t.Helper()
		var before secrets.KeyringStats
		if k != nil {
			before = k.Stats()
		}
		start := time.Now()
		code, body := h.do(http.MethodGet, api.PathJobs+"?limit=1000", "Bearer "+testToken, "")
		took := time.Since(start)
		jobs := decodeJSON[api.JobList](t, body).Jobs
		if code != http.StatusOK || len(jobs) != n || jobs[0].Query == "" {
			t.Fatalf("%s: %d, %d jobs", what, code, len(jobs))
		}
		unwraps := int64(0)
		if k != nil {
			unwraps = k.Stats().Unwraps - before.Unwraps
		}
		t.Logf("  list %d jobs, %s: %v (%d unwraps)", n, what, took.Round(100*time.Microsecond), unwraps)
	}

	t.Log("plaintext:")
	plain := startHarness(t, harnessOptions{})
	fill(plain)
	list(plain, "plaintext", nil)
	list(plain, "plaintext again", nil)

	_, v := cmkKeyring(t, "tenant-cost")
	uncached := v.Keyring("transit", "tenant-cost")
	cached := uncached.WithCache(secrets.KeyringCache{TTL: time.Minute})

	t.Log("sealed, one data key per value (no cache while writing):")
	sw := &swapSealer{}
	sw.k.Store(uncached)
	h := startSealedHarness(t, sw, t.TempDir())
	fill(h)
	list(h, "no cache (a round trip per field)", uncached)
	sw.k.Store(cached)
	cached.Forget()
	list(h, "cache cold", cached)
	list(h, "cache warm", cached)

	t.Log("sealed with the cache (shared data keys):")
	cached2 := uncached.WithCache(secrets.KeyringCache{TTL: time.Minute})
	h2 := startSealedHarness(t, cached2, t.TempDir())
	fill(h2)
	t.Logf("  data keys asked for: %d", cached2.Stats().DataKeys)
	cached2.Forget()
	list(h2, "cache cold", cached2)
	if u := cached2.Stats().Unwraps; u > 5 {
		t.Errorf("a cold listing of values sealed under shared keys unwrapped %d keys", u)
	}
	list(h2, "cache warm", cached2)
}

// TestCMKPlaintextDatabaseStillReadsIntegration: a database written without
// a sealer reads the same once one is configured; what is written after is
// sealed.
func TestCMKPlaintextDatabaseStillReadsIntegration(t *testing.T) {
	ctx := context.Background()
	dataDir := t.TempDir()
	plain := startHarness(t, harnessOptions{dataDir: dataDir, sqlite: true})
	plain.disconnect(plain.connectAgent(true))
	old, err := plain.client.Submit(ctx, testQuery, "plain_output")
	if err != nil {
		t.Fatal(err)
	}
	plain.stop()
	if !bytes.Contains(dbBytes(t, dataDir), []byte(testQuery)) {
		t.Fatal("without a sealer the query is not stored in plaintext: the search is broken")
	}

	_, v := cmkKeyring(t, "tenant-upgrade")
	k := v.Keyring("transit", "tenant-upgrade").WithCache(secrets.KeyringCache{})
	h := startSealedHarness(t, k, dataDir)
	d, err := h.client.Get(ctx, old.ID)
	if err != nil || d.Query != testQuery || d.Unreadable != nil {
		t.Fatalf("a plaintext job under a sealer: %+v %v", d, err)
	}
	const newQuery = "PREDICT customers.churned FOR EACH customers.customer_id WHERE customers.churned = 'after-upgrade'"
	j, err := h.client.Submit(ctx, newQuery, "sealed_output")
	if err != nil {
		t.Fatal(err)
	}
	if j.Query != newQuery {
		t.Fatalf("new job: %+v", j)
	}
	if storedWrappedKey(t, openDB(t, dataDir), j.ID) == "" {
		t.Error("the new job's query is not sealed")
	}
	if bytes.Contains(dbBytes(t, dataDir), []byte("after-upgrade")) {
		t.Error("a query written with a sealer is in the database files in plaintext")
	}
}

// TestOpenSealerIntegration: the encryption block of ferry-controlplane's
// YAML signs in to Vault and checks the key at start; a wrong key fails
// naming its path, a missing one is a configuration error.
func TestOpenSealerIntegration(t *testing.T) {
	d := vaulttest.Start(t)
	if err := d.Root.Sys().Mount("transit", &vault.MountInput{Type: "transit"}); err != nil {
		t.Fatal(err)
	}
	d.Write(t, "transit/keys/tenant-yaml", nil)
	r := d.AppRole(t, "ferry-cp-yaml", `path "transit/datakey/plaintext/tenant-yaml" { capabilities = ["update"] }
path "transit/decrypt/tenant-yaml" { capabilities = ["update"] }`)
	yaml := func(key string) string {
		return fmt.Sprintf(`data_dir: /tmp/x
encryption:
  vault:
    address: %s
    auth: {method: approle, role_id: %s, secret_id_file: %s}
  transit_mount: transit
  key: %q
  cache_ttl: 2s
`, d.Addr, r.RoleID, r.SecretIDFile, key)
	}
	ctx := context.Background()
	fc, err := controlplane.ParseFileConfig([]byte(yaml("tenant-yaml")))
	if err != nil {
		t.Fatal(err)
	}
	if fc.Encryption == nil || fc.Encryption.Key != "tenant-yaml" || fc.Encryption.CacheTTL != 2*time.Second || fc.Encryption.Vault.Auth.Method != "approle" {
		t.Fatalf("encryption config: %+v", fc.Encryption)
	}
	k, v, err := controlplane.OpenSealer(ctx, *fc.Encryption, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	env, err := k.Seal(ctx, []byte("q"), []byte("aad"))
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := k.Open(ctx, env, []byte("aad")); err != nil || string(pt) != "q" {
		t.Fatalf("open: %q %v", pt, err)
	}

	fc, err = controlplane.ParseFileConfig([]byte(yaml("not-the-key")))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := controlplane.OpenSealer(ctx, *fc.Encryption, nil); err == nil || !strings.Contains(err.Error(), "transit/datakey/plaintext/not-the-key") {
		t.Errorf("a key outside the policy: %v, want an error naming the path", err)
	}
	fc, err = controlplane.ParseFileConfig([]byte(yaml("")))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := controlplane.OpenSealer(ctx, *fc.Encryption, nil); !errors.Is(err, controlplane.ErrConfig) {
		t.Errorf("no key: %v, want ErrConfig", err)
	}
	if _, err := controlplane.ParseFileConfig([]byte("encryption: {key: k, keyring: x}\n")); !errors.Is(err, controlplane.ErrConfig) {
		t.Errorf("an unknown key in encryption: %v, want ErrConfig", err)
	}
}
