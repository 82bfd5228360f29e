package controlplane

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-ai/ferry/controlplane/agentapi"
	"github.com/ferry-ai/ferry/controlplane/api"
	"github.com/ferry-ai/ferry/controlplane/metadb"
	"github.com/ferry-ai/ferry/controlplane/metadb/metadbtest"
	"github.com/ferry-ai/ferry/internal/graph"
	"github.com/ferry-ai/ferry/internal/pki"
)

func TestTransitionAllowed(t *testing.T) {
	tests := []struct {
		from, to api.JobState
		want     bool
	}{
		{api.StateAssigned, api.StateReading, true},
		{api.StateReading, api.StateReading, true},
		{api.StateReading, api.StateTraining, true},
		{api.StateTraining, api.StateWriting, true},
		{api.StateWriting, api.StateSucceeded, true},
		{api.StateReading, api.StateFailed, true},
		{api.StateTraining, api.StateCancelled, true},
		{api.StateFailed, api.StateFailed, true},
		{api.StateAssigned, api.StateSucceeded, false},
		{api.StateAssigned, api.StateTraining, false},
		{api.StateReading, api.StateWriting, false},
		{api.StateTraining, api.StateReading, false},
		{api.StateSucceeded, api.StateFailed, false},
		{api.StateFailed, api.StateReading, false},
		{api.StateCancelled, api.StateSucceeded, false},
		{api.StateQueued, api.StateReading, false},
		{api.StateQueued, api.StateAssigned, false},
		{api.StateReading, api.StateQueued, false},
	}
	for _, tt := range tests {
		if got := transitionAllowed(tt.from, tt.to); got != tt.want {
			t.Errorf("transitionAllowed(%s, %s) = %v, want %v", tt.from, tt.to, got, tt.want)
		}
	}
}

func TestCheckOutputTable(t *testing.T) {
	tests := []struct {
		name    string
		wantErr string
	}{
		{"churn_predictions", ""},
		{"_p1", ""},
		{"P", ""},
		{"", "empty"},
		{"1p", "must not start with a digit"},
		{"a-b", "only ASCII letters, digits and underscores"},
		{"schema.table", "only ASCII letters, digits and underscores"},
		{"préd", "only ASCII letters, digits and underscores ('é' at character 3)"},
		{"éa-", "('é' at character 1)"},
		{"pr’é", "('’' at character 3)"},
		{"a b", "only ASCII letters, digits and underscores"},
		{strings.Repeat("a", 129), "longer than 128"},
	}
	for _, tt := range tests {
		err := checkOutputTable(tt.name)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("checkOutputTable(%q) = %v, want nil", tt.name, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("checkOutputTable(%q) = %v, want error containing %q", tt.name, err, tt.wantErr)
		}
	}
}

func TestGraphFromProto(t *testing.T) {
	col := func(name string) *agentapi.Column { return &agentapi.Column{Name: name, Type: "int64"} }
	tests := []struct {
		name    string
		tables  []*agentapi.TableMeta
		wantErr string
	}{
		{"empty schema", nil, ""},
		{"valid", []*agentapi.TableMeta{
			{Name: "c", Columns: []*agentapi.Column{col("id")}, PrimaryKey: []string{"id"}},
			{Name: "o", Columns: []*agentapi.Column{col("id"), col("c_id"), col("t")}, TimeColumn: "t",
				ForeignKeys: []*agentapi.ForeignKey{{Columns: []string{"c_id"}, RefTable: "c", RefColumns: []string{"id"}}}},
		}, ""},
		{"foreign key to a hidden table is kept", []*agentapi.TableMeta{
			{Name: "o", Columns: []*agentapi.Column{col("c_id")}, ForeignKeys: []*agentapi.ForeignKey{{Columns: []string{"c_id"}, RefTable: "hidden"}}},
		}, ""},
		{"empty table name", []*agentapi.TableMeta{{Name: ""}}, "table 0: name is empty"},
		{"duplicate table", []*agentapi.TableMeta{{Name: "a"}, {Name: "a"}}, `table "a" reported twice`},
		{"duplicate column", []*agentapi.TableMeta{{Name: "a", Columns: []*agentapi.Column{col("x"), col("x")}}}, `column "x" reported twice`},
		{"column without type", []*agentapi.TableMeta{{Name: "a", Columns: []*agentapi.Column{{Name: "x"}}}}, `column "x": type is empty`},
		{"unknown primary key", []*agentapi.TableMeta{{Name: "a", Columns: []*agentapi.Column{col("x")}, PrimaryKey: []string{"y"}}}, `primary key column "y"`},
		{"unknown time column", []*agentapi.TableMeta{{Name: "a", Columns: []*agentapi.Column{col("x")}, TimeColumn: "t"}}, `time column "t"`},
		{"unknown foreign key column", []*agentapi.TableMeta{{Name: "a", Columns: []*agentapi.Column{col("x")},
			ForeignKeys: []*agentapi.ForeignKey{{Columns: []string{"y"}, RefTable: "b"}}}}, `foreign key column "y"`},
		{"foreign key arity", []*agentapi.TableMeta{{Name: "a", Columns: []*agentapi.Column{col("x")},
			ForeignKeys: []*agentapi.ForeignKey{{Columns: []string{"x"}, RefTable: "b", RefColumns: []string{"p", "q"}}}}}, "1 columns but 2 referenced"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := graphFromProto(tt.tables)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if len(g.Tables) != len(tt.tables) {
					t.Errorf("%d tables, want %d", len(g.Tables), len(tt.tables))
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestMigrations(t *testing.T) {
	ctx := context.Background()
	metadbtest.Each(t, func(t *testing.T, db *metadb.DB) {
		for i := range 2 { // the second time finds the schema current
			st, err := newStore(ctx, db)
			if err != nil {
				t.Fatalf("open %d: %v", i, err)
			}
			if v, err := st.schemaVersion(ctx); err != nil || v != len(migrations) {
				t.Fatalf("open %d: version %d, %v; want %d", i, v, err, len(migrations))
			}
		}
		// A database from a newer binary is refused.
		if _, err := db.Exec(ctx, `UPDATE ferry_migrations SET version = 99 WHERE component = ?`, storeComponent); err != nil {
			t.Fatal(err)
		}
		if _, err := newStore(ctx, db); err == nil || !strings.Contains(err.Error(), "newer than this binary") {
			t.Errorf("open newer db: %v, want refusal", err)
		}
	})

	// A SQLite file of an earlier release: WAL, 0600, and its
	// schema_version carried over (only the later migrations run).
	dir := t.TempDir()
	path := filepath.Join(dir, DBFile)
	old, err := metadb.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range migrations[:3] {
		if _, err := old.ExecContext(ctx, old.DDL(m)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := old.ExecContext(ctx, `CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES (3);
		INSERT INTO jobs (id, query, output_table, tables_json, state, created_unix_nanos, updated_unix_nanos) VALUES ('j-old', 'q', 'o', '[]', 'succeeded', 1, 1)`); err != nil {
		t.Fatal(err)
	}
	old.Close()
	st, err := openStore(ctx, dir, "")
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	if v, err := st.schemaVersion(ctx); err != nil || v != len(migrations) {
		t.Fatalf("carried over: version %d, %v; want %d", v, err, len(migrations))
	}
	if j, err := st.job(ctx, anyTenant, "j-old"); err != nil || j.State != api.StateSucceeded {
		t.Errorf("the earlier release's job: %+v %v", j, err)
	}
	var mode string
	if err := st.db.QueryRow(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal mode %q, %v; want wal", mode, err)
	}
	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("db file mode: %v, %v; want 0600", info.Mode(), err)
	}
}

// testStore is a store on a fresh database of the dialect FERRY_TEST_METADB
// names.
func testStore(t *testing.T) *store {
	t.Helper()
	st, err := newStore(context.Background(), metadbtest.Open(t, metadbtest.FromEnv()))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestApplyEventOwnership(t *testing.T) {
	ctx := context.Background()
	st := testStore(t)
	now := time.Now()
	g := &graph.Graph{Tables: []graph.Table{{Name: "t", Columns: []graph.Column{{Name: "id", Type: "int64"}}}}}
	for _, id := range []string{"a1", "a2"} {
		if err := st.agentConnected(ctx, agentRecord{ID: id}, g, now); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.insertJob(ctx, newJob{ID: "j-1", Query: "q", OutputTable: "o", Tables: []string{"t"}, Created: now}); err != nil {
		t.Fatal(err)
	}
	if ok, err := st.assignJob(ctx, "j-1", "a1", now); !ok || err != nil {
		t.Fatalf("assign: %v, %v", ok, err)
	}
	if ok, err := st.assignJob(ctx, "j-1", "a2", now); ok || err != nil {
		t.Fatalf("second assign: %v, %v; want false", ok, err)
	}
	ev := &agentapi.JobEvent{JobId: "j-1", State: agentapi.JobState_JOB_STATE_READING}
	var oerr *ownerError
	if _, err := st.applyEvent(ctx, "a2", ev, now); !errors.As(err, &oerr) {
		t.Errorf("event from another agent: %v, want ownerError", err)
	}
	if _, err := st.applyEvent(ctx, "a1", &agentapi.JobEvent{JobId: "j-2", State: agentapi.JobState_JOB_STATE_READING}, now); !errors.Is(err, errJobNotFound) {
		t.Errorf("event for unknown job: %v, want errJobNotFound", err)
	}
	if res, err := st.applyEvent(ctx, "a1", ev, now); err != nil || res.From != api.StateAssigned || res.To != api.StateReading {
		t.Errorf("event from owner: %+v, %v", res, err)
	}
	if _, err := st.applyEvent(ctx, "a1", &agentapi.JobEvent{JobId: "j-1"}, now); err == nil {
		t.Error("event with unspecified state accepted")
	}
	// Failing without details stores a generic error; the job is then done.
	if _, err := st.applyEvent(ctx, "a1", &agentapi.JobEvent{JobId: "j-1", State: agentapi.JobState_JOB_STATE_FAILED}, now); err != nil {
		t.Fatal(err)
	}
	j, err := st.job(ctx, anyTenant, "j-1")
	if err != nil || j.Error == nil || j.Error.Stage != "agent" {
		t.Errorf("job = %+v, %v", j, err)
	}
	if from, to, _, err := st.requeueRunning(ctx, "j-1", "agent", 3, now, func(api.JobState) string { return "x" }); from != "" || to != "" || err != nil {
		t.Errorf("requeueRunning on a finished job: %q -> %q, %v; want no change", from, to, err)
	}
}

func TestConfigNormalize(t *testing.T) {
	dir := t.TempDir()
	files := pki.DevFiles(dir, "controlplane")
	planner := PlannerFunc(func(string, *graph.Graph) ([]string, error) { return nil, nil })
	valid := func() Config {
		return Config{DataDir: dir, TLS: files, APIToken: "tok", Planner: planner}
	}
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr string
	}{
		{"valid", func(*Config) {}, ""},
		{"valid hash", func(c *Config) { c.APIToken, c.APITokenHash = "", HashToken("tok") }, ""},
		{"no data dir", func(c *Config) { c.DataDir = "" }, "data_dir"},
		{"no tls", func(c *Config) { c.TLS.CA = "" }, "tls"},
		{"no planner", func(c *Config) { c.Planner = nil }, "planner"},
		{"no token", func(c *Config) { c.APIToken = "" }, "API token is required"},
		{"token and hash", func(c *Config) { c.APITokenHash = HashToken("tok") }, "not both"},
		{"bad hash", func(c *Config) { c.APIToken, c.APITokenHash = "", "abc" }, "64 hex digits"},
		{"negative heartbeat", func(c *Config) { c.HeartbeatInterval = -time.Second }, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.mutate(&c)
			hash, err := c.normalize()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if HashToken("tok") != hexString(hash[:]) || c.APIAddr != DefaultAPIAddr || c.Logger == nil {
					t.Errorf("normalized = %+v", c)
				}
				return
			}
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want ErrConfig containing %q", err, tt.wantErr)
			}
		})
	}
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

func TestParseFileConfig(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		wantErr string
	}{
		{"full", "data_dir: /var/lib/ferry\napi_addr: :8443\nagent_addr: :8444\ntls:\n  cert: c.pem\n  key: k.pem\n  ca: ca.pem\napi_token_file: /etc/ferry/token\nheartbeat_interval: 5s\nlog_level: debug\n", ""},
		{"empty", "", ""},
		{"unknown key", "data_dir: x\nlisten: :1\n", "field listen not found"},
		{"token in file", "api_token: secret\n", "api_token must not be in the config file"},
		{"bad duration", "heartbeat_interval: soon\n", "invalid config"},
		{"not yaml", "data_dir: [\n", "invalid config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fc, err := ParseFileConfig([]byte(tt.yaml))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if tt.name == "full" && (fc.TLS.CA != "ca.pem" || fc.HeartbeatInterval != 5*time.Second || fc.APITokenFile != "/etc/ferry/token") {
					t.Errorf("config = %+v", fc)
				}
				return
			}
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want ErrConfig containing %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error %q repeats the token", err)
			}
		})
	}
}

func TestReadTokenFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name, path, want, wantErr string
	}{
		{"trimmed", write("ok", "  tok123\n"), "tok123", ""},
		{"empty", write("empty", "\n"), "", "is empty"},
		{"two tokens", write("two", "a b"), "", "one token"},
		{"missing", filepath.Join(dir, "none"), "", "no such file"},
		{"unset", "", "", "api_token_file is required"},
	}
	for _, tt := range tests {
		got, err := ReadTokenFile(tt.path)
		if tt.wantErr != "" {
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: err = %v, want %q", tt.name, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s: %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
}
