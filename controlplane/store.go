package controlplane

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ferry-ai/ferry/controlplane/agentapi"
	"github.com/ferry-ai/ferry/controlplane/api"
	"github.com/ferry-ai/ferry/controlplane/metadb"
	"github.com/ferry-ai/ferry/internal/graph"
	"github.com/ferry-ai/ferry/internal/link"
	"github.com/ferry-ai/ferry/secrets"
)

// DBFile is the name of the metadata database inside Config.DataDir.
const DBFile = "ferry.db"

// migrations are the "jobs" component's, applied in order by metadb (whose
// tokens give the same SQLite schema as before and a PostgreSQL one).
// Never change what a released migration does: append a new one.
var migrations = []string{
	// 1: the walking skeleton's metadata.
	`
CREATE TABLE agents (
	id                    TEXT PRIMARY KEY,
	version               TEXT NOT NULL,
	warehouse_kind        TEXT NOT NULL,
	connected             BIGINT NOT NULL DEFAULT 0,
	connected_unix_nanos  BIGINT NOT NULL DEFAULT 0,
	last_seen_unix_nanos  BIGINT NOT NULL
);
CREATE TABLE graphs (
	agent_id             TEXT PRIMARY KEY REFERENCES agents(id),
	graph_json           TEXT NOT NULL,
	reported_unix_nanos  BIGINT NOT NULL
);
CREATE TABLE jobs (
	id                  TEXT PRIMARY KEY,
	query               TEXT NOT NULL,
	output_table        TEXT NOT NULL,
	tables_json         TEXT NOT NULL,
	state               TEXT NOT NULL,
	agent_id            TEXT NOT NULL DEFAULT '',
	created_unix_nanos  BIGINT NOT NULL,
	updated_unix_nanos  BIGINT NOT NULL,
	error_stage         TEXT NOT NULL DEFAULT '',
	error_message       TEXT NOT NULL DEFAULT ''
);
CREATE INDEX jobs_by_state ON jobs(state, created_unix_nanos);
CREATE INDEX jobs_by_created ON jobs(created_unix_nanos);
CREATE TABLE job_events (
	seq                  {{id}},
	job_id               TEXT NOT NULL REFERENCES jobs(id),
	state                TEXT NOT NULL,
	at_unix_nanos        BIGINT NOT NULL,
	reported_unix_nanos  BIGINT NOT NULL DEFAULT 0,
	note                 TEXT NOT NULL DEFAULT ''
);
CREATE INDEX job_events_by_job ON job_events(job_id, seq);
CREATE TABLE table_stats (
	job_id        TEXT NOT NULL REFERENCES jobs(id),
	table_name    TEXT NOT NULL,
	rows          BIGINT NOT NULL,
	bytes         BIGINT NOT NULL,
	batches       BIGINT NOT NULL,
	columns_json  TEXT NOT NULL,
	seconds       {{float}} NOT NULL,
	PRIMARY KEY (job_id, table_name)
);
CREATE TABLE models (
	job_id                       TEXT PRIMARY KEY REFERENCES jobs(id),
	model_id                     TEXT NOT NULL,
	task_type                    TEXT NOT NULL,
	metrics_json                 TEXT NOT NULL,
	train_rows                   BIGINT NOT NULL,
	validation_rows              BIGINT NOT NULL,
	test_rows                    BIGINT NOT NULL,
	num_features                 BIGINT NOT NULL,
	anchors                      BIGINT NOT NULL,
	best_iteration               BIGINT NOT NULL,
	prediction_rows              BIGINT NOT NULL,
	feature_seconds              {{float}} NOT NULL,
	train_seconds                {{float}} NOT NULL,
	score_seconds                {{float}} NOT NULL,
	test_positive_rate           {{float}} NOT NULL,
	scoring_anchor_unix_nanos    BIGINT NOT NULL,
	feature_importance_json      TEXT NOT NULL
);
CREATE TABLE purge_reports (
	job_id               TEXT PRIMARY KEY REFERENCES jobs(id),
	reason               TEXT NOT NULL,
	bytes_received       BIGINT NOT NULL,
	bytes_purged         BIGINT NOT NULL,
	files_written        BIGINT NOT NULL,
	storage_write_bytes  BIGINT NOT NULL,
	purged_unix_nanos    BIGINT NOT NULL
);
CREATE TABLE write_reports (
	job_id      TEXT PRIMARY KEY REFERENCES jobs(id),
	table_name  TEXT NOT NULL,
	rows        BIGINT NOT NULL,
	seconds     {{float}} NOT NULL
);
`,
	// 2: agent enrollment, certificates and revocation (issue 5).
	`
CREATE TABLE enrollment_tokens (
	token_hash          TEXT PRIMARY KEY,
	agent_id            TEXT NOT NULL,
	tenant              TEXT NOT NULL,
	created_unix_nanos  BIGINT NOT NULL,
	expires_unix_nanos  BIGINT NOT NULL,
	used_unix_nanos     BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE agent_certs (
	serial                TEXT PRIMARY KEY,
	agent_id              TEXT NOT NULL,
	tenant                TEXT NOT NULL,
	not_after_unix_nanos  BIGINT NOT NULL,
	issued_unix_nanos     BIGINT NOT NULL,
	how                   TEXT NOT NULL
);
CREATE INDEX agent_certs_by_agent ON agent_certs(agent_id);
CREATE TABLE revoked_agents (
	agent_id            TEXT PRIMARY KEY,
	revoked_unix_nanos  BIGINT NOT NULL,
	reason              TEXT NOT NULL
);
`,
	// 3: a job's training options (issue 6).
	`ALTER TABLE jobs ADD COLUMN options_json TEXT NOT NULL DEFAULT '{}';`,
	// 4: table statistics in the order they were reported (PostgreSQL has
	// no rowid).
	`ALTER TABLE table_stats ADD COLUMN reported_unix_nanos BIGINT NOT NULL DEFAULT 0;`,
	// 5: agents and jobs belong to a tenant (an agent's is in its
	// certificate, a job's is its submitter's); a job counts the times it
	// was assigned, so that one re-queued after its agent went away runs at
	// most Config.JobAttempts times (issue 8).
	`
ALTER TABLE agents ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';
ALTER TABLE jobs ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';
ALTER TABLE jobs ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
CREATE INDEX jobs_by_tenant ON jobs(tenant, created_unix_nanos);
CREATE INDEX agents_by_tenant ON agents(tenant);
`,
}

// storeComponent names the store's migrations in metadb.
const storeComponent = "jobs"

// Errors of the metadata store.
var (
	errNoGraph     = errors.New("no agent has reported a schema yet: start ferry-agent and retry")
	errJobNotFound = errors.New("job not found")
)

// transitionError reports a job event whose state change the state machine
// does not allow.
type transitionError struct {
	Job      string
	From, To api.JobState
}

func (e *transitionError) Error() string {
	return fmt.Sprintf("job %s: illegal transition %s -> %s", e.Job, e.From, e.To)
}

// ownerError reports a job event from an agent the job is not assigned to.
type ownerError struct {
	Job, Agent, Owner string
}

func (e *ownerError) Error() string {
	return fmt.Sprintf("job %s is not assigned to agent %q", e.Job, e.Agent)
}

// store is the metadata database. It holds metadata only: never a row value.
// With a sealer, the customer's sensitive fields are sealed at rest (see
// sealedPrefix).
type store struct {
	db *metadb.DB
	// sealer seals the sensitive fields (nil: plaintext).
	sealer FieldSealer
	// log receives what the store decides on its own (nil: discarded).
	log *slog.Logger
}

// The sensitive fields — jobs.query, jobs.error_message, graphs.graph_json,
// table_stats.columns_json, models.metrics_json,
// models.feature_importance_json and job_events.note — name the customer's
// tables, columns and literal values. With a sealer each non-empty value is
// stored as sealedPrefix and the base64 of a secrets.Keyring envelope, bound
// (aad) to its table, column and row, so that a value copied to another row
// or column does not open. A value without the prefix is plaintext (written
// without a sealer) and reads as is. An empty value stays empty.
const sealedPrefix = "sealed:v1:"

// Reasons a sealed field could not be opened (api.Unreadable.Reason).
const (
	reasonRevoked     = "customer key revoked"
	reasonDenied      = "customer key access denied by Vault policy"
	reasonUnavailable = "customer key unavailable (Vault unreachable)"
	reasonVault       = "customer key unavailable (Vault error)"
	reasonMoved       = "sealed value does not authenticate here (tampered, or moved from another row)"
	reasonNoKey       = "sealed, but no customer key is configured"
)

// permanent reports whether a sealed field unreadable for reason stays so:
// the key is gone or the value is not this field's. Vault being down, a
// policy refusing or a missing configuration can be fixed.
func permanent(reason string) bool {
	return reason == reasonRevoked || reason == reasonMoved
}

// fieldAAD binds a sealed value to its table, column and row key.
func fieldAAD(table, column string, key ...string) []byte {
	k, _ := json.Marshal(key) // strings always encode
	return []byte(table + "/" + column + "/" + string(k))
}

// noteAAD binds a state note to its job, state and time.
func noteAAD(job string, state api.JobState, at int64) []byte {
	return fieldAAD("job_events", "note", job, string(state), strconv.FormatInt(at, 10))
}

// sealError is a failure to seal a field under the customer's key.
type sealError struct{ err error }

func (e *sealError) Error() string { return "sealing under the customer's key: " + e.err.Error() }
func (e *sealError) Unwrap() error { return e.err }

// unreadableError reports a sealed value a request needs that cannot be
// opened.
type unreadableError struct {
	What, Reason string
}

func (e *unreadableError) Error() string {
	return fmt.Sprintf("%s cannot be opened: %s", e.What, e.Reason)
}

// seal returns the stored form of a sensitive field's value v.
func (s *store) seal(ctx context.Context, v string, aad []byte) (string, error) {
	if s.sealer == nil || v == "" {
		return v, nil
	}
	env, err := s.sealer.Seal(ctx, []byte(v), aad)
	if err != nil {
		return "", &sealError{err: err}
	}
	return sealedPrefix + base64.StdEncoding.EncodeToString(env), nil
}

// sealOwn seals a message the control plane wrote itself (a state note, a
// failure it decided). When the key cannot seal (revoked, Vault down) the
// message is kept in plaintext rather than leave a job in a state it is no
// longer in: these messages name jobs, agents and states, never the
// customer's tables, columns or values.
func (s *store) sealOwn(ctx context.Context, v string, aad []byte) string {
	out, err := s.seal(ctx, v, aad)
	if err != nil {
		s.logger().LogAttrs(ctx, slog.LevelWarn, "metadata db: a control-plane message is stored unsealed", slog.String("error", err.Error()))
		return v
	}
	return out
}

// opener opens the sealed fields of one read. Once Vault proves unreachable
// it stops asking for the rest of that read, so that a listing under a
// Vault outage costs one timeout, not one per field.
type opener struct {
	s    *store
	ctx  context.Context
	down bool
}

func (s *store) opener(ctx context.Context) *opener { return &opener{s: s, ctx: ctx} }

// open returns a sensitive field's value from its stored form. A sealed
// value that cannot be opened gives "" and the reason.
func (o *opener) open(stored string, aad []byte) (string, string) {
	if o.down && strings.HasPrefix(stored, sealedPrefix) {
		return "", reasonUnavailable
	}
	v, why := o.s.open(o.ctx, stored, aad)
	if why == reasonUnavailable {
		o.down = true
	}
	return v, why
}

// open returns a sensitive field's value from its stored form. A sealed
// value that cannot be opened gives "" and the reason.
func (s *store) open(ctx context.Context, stored string, aad []byte) (string, string) {
	b64, ok := strings.CutPrefix(stored, sealedPrefix)
	if !ok {
		return stored, ""
	}
	if s.sealer == nil {
		return "", reasonNoKey
	}
	env, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return "", reasonMoved
	}
	pt, err := s.sealer.Open(ctx, env, aad)
	switch {
	case err == nil:
		return string(pt), ""
	case errors.Is(err, secrets.ErrNotAuthentic):
		return "", reasonMoved
	case errors.Is(err, secrets.ErrUnavailable):
		return "", reasonUnavailable
	case errors.Is(err, secrets.ErrDenied):
		return "", reasonDenied
	case errors.Is(err, secrets.ErrShredded):
		return "", reasonRevoked
	}
	return "", reasonVault
}

func (s *store) logger() *slog.Logger {
	if s.log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.log
}

// openStore opens (creating if needed) the metadata database — target, a
// PostgreSQL URL, or DataDir/ferry.db when it is empty — and migrates it.
func openStore(ctx context.Context, dir, target string) (*store, error) {
	if target == "" {
		if strings.ContainsAny(dir, "?#") {
			return nil, fmt.Errorf("metadata db: data dir %q must not contain '?' or '#'", dir)
		}
		target = filepath.Join(dir, DBFile)
	}
	db, err := metadb.Open(ctx, target)
	if err != nil {
		return nil, err
	}
	s, err := newStore(ctx, db)
	if err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// newStore migrates db and returns the store on it.
func newStore(ctx context.Context, db *metadb.DB) (*store, error) {
	s := &store{db: db}
	if err := s.migrate(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *store) close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("metadata db: close: %w", err)
	}
	return nil
}

// migrate brings the store's tables to len(migrations). A SQLite file made
// before metadb kept its version in schema_version: that count is carried
// over once.
func (s *store) migrate(ctx context.Context) error {
	if s.db.Dialect == metadb.SQLite {
		var legacy int
		err := s.db.QueryRow(ctx, `SELECT version FROM schema_version`).Scan(&legacy)
		if err == nil {
			err = s.db.InTx(ctx, func(tx *metadb.Tx) error {
				if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS ferry_migrations (component TEXT PRIMARY KEY, version INTEGER NOT NULL)`); err != nil {
					return err
				}
				if _, err := tx.Exec(ctx, `INSERT INTO ferry_migrations (component, version) VALUES (?, ?)`, storeComponent, legacy); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, `DROP TABLE schema_version`)
				return err
			})
			if err != nil {
				return fmt.Errorf("metadata db: carry over schema version %d: %w", legacy, err)
			}
		}
	}
	return s.db.Migrate(ctx, storeComponent, migrations)
}

// schemaVersion returns the applied migration count.
func (s *store) schemaVersion(ctx context.Context) (int, error) {
	return s.db.Version(ctx, storeComponent)
}

// tx runs fn in a write transaction.
func (s *store) tx(ctx context.Context, fn func(*metadb.Tx) error) error {
	return s.db.InTx(ctx, fn)
}

// agentRecord is what a Hello and the agent's certificate tell about an
// agent.
type agentRecord struct {
	ID, Tenant, Version, WarehouseKind string
}

// errAgentOfOtherTenant refuses an agent whose ID another tenant's agent
// already has: agent IDs are unique across tenants.
var errAgentOfOtherTenant = errors.New("the agent ID belongs to another tenant's agent")

// agentConnected records a connecting agent and the schema it reported.
func (s *store) agentConnected(ctx context.Context, a agentRecord, g *graph.Graph, now time.Time) error {
	b, err := json.Marshal(g)
	if err != nil {
		return fmt.Errorf("metadata db: encode graph: %w", err)
	}
	gj, err := s.seal(ctx, string(b), fieldAAD("graphs", "graph_json", a.ID))
	if err != nil {
		return fmt.Errorf("metadata db: agent %s graph: %w", a.ID, err)
	}
	return s.tx(ctx, func(tx *metadb.Tx) error {
		n := now.UnixNano()
		var tenant string
		switch err := tx.QueryRow(ctx, `SELECT tenant FROM agents WHERE id = ?`, a.ID).Scan(&tenant); {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return fmt.Errorf("metadata db: record agent: %w", err)
		case tenant != a.Tenant:
			return errAgentOfOtherTenant
		}
		if _, err := tx.Exec(ctx, `
INSERT INTO agents (id, tenant, version, warehouse_kind, connected, connected_unix_nanos, last_seen_unix_nanos)
VALUES (?, ?, ?, ?, 1, ?, ?)
ON CONFLICT (id) DO UPDATE SET version = excluded.version, warehouse_kind = excluded.warehouse_kind,
	connected = 1, connected_unix_nanos = excluded.connected_unix_nanos, last_seen_unix_nanos = excluded.last_seen_unix_nanos`,
			a.ID, a.Tenant, a.Version, a.WarehouseKind, n, n); err != nil {
			return fmt.Errorf("metadata db: record agent: %w", err)
		}
		if _, err := tx.Exec(ctx, `
INSERT INTO graphs (agent_id, graph_json, reported_unix_nanos) VALUES (?, ?, ?)
ON CONFLICT (agent_id) DO UPDATE SET graph_json = excluded.graph_json, reported_unix_nanos = excluded.reported_unix_nanos`,
			a.ID, gj, n); err != nil {
			return fmt.Errorf("metadata db: record graph: %w", err)
		}
		return nil
	})
}

// agentsSeen records agents' last heartbeats (agent ID to Unix
// nanoseconds) in one transaction, never moving a time backwards.
func (s *store) agentsSeen(ctx context.Context, seen map[string]int64) error {
	if len(seen) == 0 {
		return nil
	}
	return s.tx(ctx, func(tx *metadb.Tx) error {
		for id, n := range seen {
			if _, err := tx.Exec(ctx, `UPDATE agents SET last_seen_unix_nanos = ? WHERE id = ? AND last_seen_unix_nanos < ?`, n, id, n); err != nil {
				return fmt.Errorf("metadata db: agents seen: %w", err)
			}
		}
		return nil
	})
}

// agentDisconnected marks an agent disconnected.
func (s *store) agentDisconnected(ctx context.Context, id string, now time.Time) error {
	if _, err := s.db.Exec(ctx, `UPDATE agents SET connected = 0, last_seen_unix_nanos = ? WHERE id = ?`, now.UnixNano(), id); err != nil {
		return fmt.Errorf("metadata db: agent disconnected: %w", err)
	}
	return nil
}

// listAgents returns a tenant's agents, most recently seen first.
func (s *store) listAgents(ctx context.Context, tenant string) ([]api.Agent, error) {
	rows, err := s.db.Query(ctx, `
SELECT a.id, a.version, a.warehouse_kind, a.connected, a.connected_unix_nanos, a.last_seen_unix_nanos, COALESCE(g.graph_json, '')
FROM agents a LEFT JOIN graphs g ON g.agent_id = a.id
WHERE a.tenant = ?
ORDER BY a.last_seen_unix_nanos DESC, a.id`, tenant)
	if err != nil {
		return nil, fmt.Errorf("metadata db: list agents: %w", err)
	}
	out := []api.Agent{}
	var graphs []string
	for rows.Next() {
		var (
			a          api.Agent
			connected  bool
			conn, seen int64
			graphJSON  string
		)
		if err := rows.Scan(&a.ID, &a.Version, &a.WarehouseKind, &connected, &conn, &seen, &graphJSON); err != nil {
			rows.Close()
			return nil, fmt.Errorf("metadata db: list agents: %w", err)
		}
		a.Connected = connected
		a.ConnectedAt = fromNanos(conn)
		a.LastSeen = fromNanos(seen)
		a.Tables = []string{}
		out = append(out, a)
		graphs = append(graphs, graphJSON)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("metadata db: list agents: %w", err)
	}
	// Sealed graphs are opened once the rows are read: no connection is
	// held while Vault answers.
	o := s.opener(ctx)
	for i := range out {
		a := &out[i]
		gj, why := o.open(graphs[i], fieldAAD("graphs", "graph_json", a.ID))
		if why != "" {
			a.Unreadable = a.Unreadable.Add("tables", why)
			continue
		}
		if gj != "" {
			var g graph.Graph
			if err := json.Unmarshal([]byte(gj), &g); err != nil {
				return nil, fmt.Errorf("metadata db: agent %s graph: %w", a.ID, err)
			}
			a.Tables = g.TableNames()
		}
	}
	return out, nil
}

// latestGraph returns the most recently reported graph of a tenant's
// agents, preferring connected agents, or errNoGraph.
func (s *store) latestGraph(ctx context.Context, tenant string) (*graph.Graph, string, error) {
	var agentID, stored string
	err := s.db.QueryRow(ctx, `
SELECT g.agent_id, g.graph_json FROM graphs g JOIN agents a ON a.id = g.agent_id
WHERE a.tenant = ?
ORDER BY a.connected DESC, g.reported_unix_nanos DESC LIMIT 1`, tenant).Scan(&agentID, &stored)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, "", errNoGraph
	}
	if err != nil {
		return nil, "", fmt.Errorf("metadata db: latest graph: %w", err)
	}
	gj, why := s.opener(ctx).open(stored, fieldAAD("graphs", "graph_json", agentID))
	if why != "" {
		return nil, "", &unreadableError{What: fmt.Sprintf("the schema agent %s reported", agentID), Reason: why}
	}
	var g graph.Graph
	if err := json.Unmarshal([]byte(gj), &g); err != nil {
		return nil, "", fmt.Errorf("metadata db: graph of agent %s: %w", agentID, err)
	}
	return &g, agentID, nil
}

// newJob is a job about to be queued.
type newJob struct {
	ID, Tenant, Query, OutputTable string
	Tables                         []string
	Options                        link.JobOptions
	Created                        time.Time
}

// insertJob queues a job.
func (s *store) insertJob(ctx context.Context, j newJob) error {
	tj, err := json.Marshal(j.Tables)
	if err != nil {
		return fmt.Errorf("metadata db: encode tables: %w", err)
	}
	oj, err := json.Marshal(j.Options)
	if err != nil {
		return fmt.Errorf("metadata db: encode options: %w", err)
	}
	q, err := s.seal(ctx, j.Query, fieldAAD("jobs", "query", j.ID))
	if err != nil {
		return fmt.Errorf("metadata db: job %s query: %w", j.ID, err)
	}
	return s.tx(ctx, func(tx *metadb.Tx) error {
		n := j.Created.UnixNano()
		if _, err := tx.Exec(ctx, `
INSERT INTO jobs (id, tenant, query, output_table, tables_json, options_json, state, created_unix_nanos, updated_unix_nanos)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, j.ID, j.Tenant, q, j.OutputTable, string(tj), string(oj), api.StateQueued, n, n); err != nil {
			return fmt.Errorf("metadata db: insert job: %w", err)
		}
		return insertEvent(ctx, tx, j.ID, api.StateQueued, j.Created, 0, "")
	})
}

// insertEvent records a state change; note is in its stored form (see
// sealNote).
func insertEvent(ctx context.Context, tx *metadb.Tx, job string, state api.JobState, at time.Time, reported int64, note string) error {
	if _, err := tx.Exec(ctx, `INSERT INTO job_events (job_id, state, at_unix_nanos, reported_unix_nanos, note) VALUES (?, ?, ?, ?, ?)`,
		job, state, at.UnixNano(), reported, note); err != nil {
		return fmt.Errorf("metadata db: insert job event: %w", err)
	}
	return nil
}

// sealNote returns the stored form of the note of job's change to state at
// at.
func (s *store) sealNote(ctx context.Context, job string, state api.JobState, at time.Time, note string) string {
	return s.sealOwn(ctx, note, noteAAD(job, state, at.UnixNano()))
}

const jobColumns = `id, tenant, query, output_table, tables_json, options_json, state, agent_id, attempts, created_unix_nanos, updated_unix_nanos, error_stage, error_message`

type scanner interface{ Scan(...any) error }

func scanJob(sc scanner) (api.Job, error) {
	var (
		j                api.Job
		tj, oj           string
		created, updated int64
		stage, msg       string
	)
	if err := sc.Scan(&j.ID, &j.Tenant, &j.Query, &j.OutputTable, &tj, &oj, &j.State, &j.AgentID, &j.Attempts, &created, &updated, &stage, &msg); err != nil {
		return api.Job{}, err
	}
	if err := json.Unmarshal([]byte(tj), &j.Tables); err != nil {
		return api.Job{}, fmt.Errorf("job %s tables: %w", j.ID, err)
	}
	if err := json.Unmarshal([]byte(oj), &j.Options); err != nil {
		return api.Job{}, fmt.Errorf("job %s options: %w", j.ID, err)
	}
	j.CreatedAt, j.UpdatedAt = fromNanos(created), fromNanos(updated)
	if stage != "" || msg != "" {
		j.Error = &api.JobError{Stage: stage, Message: msg}
	}
	return j, nil
}

// openJob replaces a scanned job's sealed fields by their values; a field
// that cannot be opened is left empty and named in j.Unreadable.
func (o *opener) openJob(j *api.Job) {
	var why string
	if j.Query, why = o.open(j.Query, fieldAAD("jobs", "query", j.ID)); why != "" {
		j.Unreadable = j.Unreadable.Add("query", why)
	}
	if j.Error != nil {
		if j.Error.Message, why = o.open(j.Error.Message, fieldAAD("jobs", "error_message", j.ID)); why != "" {
			j.Unreadable = j.Unreadable.Add("error.message", why)
		}
	}
}

func (s *store) queryJobs(ctx context.Context, query string, args ...any) ([]api.Job, error) {
	rows, err := s.db.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("metadata db: list jobs: %w", err)
	}
	out := []api.Job{}
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("metadata db: list jobs: %w", err)
		}
		out = append(out, j)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("metadata db: list jobs: %w", err)
	}
	// Opened once the rows are read: no connection is held while Vault
	// answers. Values sealed around the same time share a data key, so a
	// listing asks Vault once per key, not once per field.
	o := s.opener(ctx)
	for i := range out {
		o.openJob(&out[i])
	}
	return out, nil
}

// listJobs returns up to limit of a tenant's jobs, newest first.
func (s *store) listJobs(ctx context.Context, tenant string, limit int) ([]api.Job, error) {
	return s.queryJobs(ctx, `SELECT `+jobColumns+` FROM jobs WHERE tenant = ? ORDER BY created_unix_nanos DESC, id DESC LIMIT ?`, tenant, limit)
}

// queuedJobs returns up to limit queued jobs that can run, oldest first. A
// queued job whose query can no longer be opened (the customer's key was
// revoked, or the value is not this job's) is failed here, with an error
// naming the job and the reason, and left out; one whose key is only
// unavailable for now (Vault down) is left out and stays queued.
func (s *store) queuedJobs(ctx context.Context, limit int) ([]api.Job, error) {
	jobs, err := s.queryJobs(ctx, `SELECT `+jobColumns+` FROM jobs WHERE state = ? ORDER BY created_unix_nanos, id LIMIT ?`, api.StateQueued, limit)
	if err != nil {
		return nil, err
	}
	runnable := jobs[:0]
	for _, j := range jobs {
		if j.Unreadable == nil {
			runnable = append(runnable, j)
			continue
		}
		log := s.logger().With(slog.String("job_id", j.ID), slog.String("reason", j.Unreadable.Reason))
		if !permanent(j.Unreadable.Reason) {
			log.LogAttrs(ctx, slog.LevelWarn, "scheduler: a queued job's query cannot be opened now; it stays queued")
			continue
		}
		msg := fmt.Sprintf("job %s cannot run: its query cannot be opened (%s)", j.ID, j.Unreadable.Reason)
		if _, err := s.failQueued(ctx, j.ID, "controlplane", msg, time.Now()); err != nil {
			return nil, err
		}
		log.LogAttrs(ctx, slog.LevelWarn, "job failed: its query cannot be opened")
	}
	return runnable, nil
}

// anyTenant, as the tenant of a job lookup, finds a job of any tenant (the
// control plane's own use, never a user's request).
const anyTenant = ""

// job returns one of a tenant's jobs, or errJobNotFound: another tenant's
// job is not found, not forbidden, so its ID tells nothing.
func (s *store) job(ctx context.Context, tenant, id string) (api.Job, error) {
	j, err := scanJob(s.db.QueryRow(ctx, `SELECT `+jobColumns+` FROM jobs WHERE id = ? AND (? = '' OR tenant = ?)`, id, tenant, tenant))
	if errors.Is(err, sql.ErrNoRows) {
		return api.Job{}, errJobNotFound
	}
	if err != nil {
		return api.Job{}, fmt.Errorf("metadata db: job %s: %w", id, err)
	}
	s.opener(ctx).openJob(&j)
	return j, nil
}

// jobDetail returns a job with its history and every report about it.
func (s *store) jobDetail(ctx context.Context, tenant, id string) (api.JobDetail, error) {
	j, err := s.job(ctx, tenant, id)
	if err != nil {
		return api.JobDetail{}, err
	}
	d := api.JobDetail{Job: j, History: []api.StateChange{}, TableStats: []api.TableStats{}}
	wrap := func(what string, err error) error { return fmt.Errorf("metadata db: job %s %s: %w", id, what, err) }

	rows, err := s.db.Query(ctx, `SELECT state, at_unix_nanos, note FROM job_events WHERE job_id = ? ORDER BY seq`, id)
	if err != nil {
		return api.JobDetail{}, wrap("history", err)
	}
	var ats []int64
	for rows.Next() {
		var c api.StateChange
		var at int64
		if err := rows.Scan(&c.State, &at, &c.Note); err != nil {
			rows.Close()
			return api.JobDetail{}, wrap("history", err)
		}
		c.At = fromNanos(at)
		d.History = append(d.History, c)
		ats = append(ats, at)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return api.JobDetail{}, wrap("history", err)
	}
	o := s.opener(ctx)
	for i := range d.History {
		c := &d.History[i]
		var why string
		if c.Note, why = o.open(c.Note, noteAAD(id, c.State, ats[i])); why != "" {
			d.Unreadable = d.Unreadable.Add(fmt.Sprintf("history[%d].note", i), why)
		}
	}

	rows, err = s.db.Query(ctx, `SELECT table_name, rows, bytes, batches, columns_json, seconds FROM table_stats WHERE job_id = ? ORDER BY reported_unix_nanos, table_name`, id)
	if err != nil {
		return api.JobDetail{}, wrap("table stats", err)
	}
	var cols []string
	for rows.Next() {
		var t api.TableStats
		var cj string
		if err := rows.Scan(&t.Table, &t.Rows, &t.Bytes, &t.Batches, &cj, &t.Seconds); err != nil {
			rows.Close()
			return api.JobDetail{}, wrap("table stats", err)
		}
		d.TableStats = append(d.TableStats, t)
		cols = append(cols, cj)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return api.JobDetail{}, wrap("table stats", err)
	}
	for i := range d.TableStats {
		t := &d.TableStats[i]
		t.Columns = []api.Column{}
		cj, why := o.open(cols[i], fieldAAD("table_stats", "columns_json", id, t.Table))
		if why != "" {
			d.Unreadable = d.Unreadable.Add(fmt.Sprintf("table_stats[%s].columns", t.Table), why)
			continue
		}
		if err := json.Unmarshal([]byte(cj), &t.Columns); err != nil {
			return api.JobDetail{}, wrap("table stats", err)
		}
	}

	var (
		m          api.Model
		mj, fij    string
		anchorNano int64
	)
	err = s.db.QueryRow(ctx, `
SELECT model_id, task_type, metrics_json, train_rows, validation_rows, test_rows, num_features, anchors, best_iteration,
	prediction_rows, feature_seconds, train_seconds, score_seconds, test_positive_rate, scoring_anchor_unix_nanos, feature_importance_json
FROM models WHERE job_id = ?`, id).Scan(&m.ModelID, &m.TaskType, &mj, &m.TrainRows, &m.ValidationRows, &m.TestRows, &m.NumFeatures,
		&m.Anchors, &m.BestIteration, &m.PredictionRows, &m.FeatureSeconds, &m.TrainSeconds, &m.ScoreSeconds, &m.TestPositiveRate,
		&anchorNano, &fij)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return api.JobDetail{}, wrap("model", err)
	default:
		if mj, why := o.open(mj, fieldAAD("models", "metrics_json", id)); why != "" {
			d.Unreadable = d.Unreadable.Add("model.metrics", why)
		} else {
			var ms storedMetrics
			if err := json.Unmarshal([]byte(mj), &ms); err != nil {
				return api.JobDetail{}, wrap("model metrics", err)
			}
			m.Test, m.BaselineLabelRate, m.BaselineRecentCount = ms.Test, ms.BaselineLabelRate, ms.BaselineRecentCount
			m.Validation, m.Classes, m.ParameterSets, m.TopK = ms.Validation, ms.Classes, ms.ParameterSets, ms.TopK
			m.ROC, m.Residuals = ms.ROC, ms.Residuals
		}
		if fij, why := o.open(fij, fieldAAD("models", "feature_importance_json", id)); why != "" {
			d.Unreadable = d.Unreadable.Add("model.feature_importance", why)
		} else if err := json.Unmarshal([]byte(fij), &m.FeatureImportance); err != nil {
			return api.JobDetail{}, wrap("feature importance", err)
		}
		m.ScoringAnchor = fromNanos(anchorNano)
		d.Model = &m
	}

	var p api.PurgeReport
	var purged int64
	err = s.db.QueryRow(ctx, `SELECT reason, bytes_received, bytes_purged, files_written, storage_write_bytes, purged_unix_nanos FROM purge_reports WHERE job_id = ?`, id).
		Scan(&p.Reason, &p.BytesReceived, &p.BytesPurged, &p.FilesWritten, &p.StorageWriteBytes, &purged)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return api.JobDetail{}, wrap("purge report", err)
	default:
		p.PurgedAt = fromNanos(purged)
		d.Purge = &p
	}

	var w api.WriteReport
	err = s.db.QueryRow(ctx, `SELECT table_name, rows, seconds FROM write_reports WHERE job_id = ?`, id).Scan(&w.Table, &w.Rows, &w.Seconds)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return api.JobDetail{}, wrap("write report", err)
	default:
		d.Write = &w
	}
	return d, nil
}

// storedMetrics is the JSON kept in models.metrics_json.
type storedMetrics struct {
	Test                *api.Metric `json:"test,omitempty"`
	Validation          *api.Metric `json:"validation,omitempty"`
	Classes             int64       `json:"classes,omitempty"`
	ParameterSets       int64       `json:"parameter_sets,omitempty"`
	TopK                int64       `json:"top_k,omitempty"`
	BaselineLabelRate   *api.Metric `json:"baseline_label_rate,omitempty"`
	BaselineRecentCount *api.Metric `json:"baseline_recent_count,omitempty"`
	// ROC and Residuals are the model's plots (api.Model), sealed with the
	// rest of the metrics.
	ROC       []api.CurvePoint   `json:"roc,omitempty"`
	Residuals []api.HistogramBin `json:"residuals,omitempty"`
}

// assignJob moves a queued job to assigned on agentID. It reports false when
// the job is no longer queued.
func (s *store) assignJob(ctx context.Context, id, agentID string, now time.Time) (bool, error) {
	assigned := false
	note := s.sealNote(ctx, id, api.StateAssigned, now, "assigned to agent "+agentID)
	err := s.tx(ctx, func(tx *metadb.Tx) error {
		res, err := tx.Exec(ctx, `UPDATE jobs SET state = ?, agent_id = ?, attempts = attempts + 1, updated_unix_nanos = ? WHERE id = ? AND state = ?`,
			api.StateAssigned, agentID, now.UnixNano(), id, api.StateQueued)
		if err != nil {
			return fmt.Errorf("metadata db: assign job %s: %w", id, err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		assigned = true
		return insertEvent(ctx, tx, id, api.StateAssigned, now, 0, note)
	})
	return assigned, err
}

// cancelQueued cancels a job that is still queued; it reports false when the
// job is not queued.
func (s *store) cancelQueued(ctx context.Context, id string, now time.Time) (bool, error) {
	cancelled := false
	note := s.sealNote(ctx, id, api.StateCancelled, now, "cancelled by user before assignment")
	err := s.tx(ctx, func(tx *metadb.Tx) error {
		res, err := tx.Exec(ctx, `UPDATE jobs SET state = ?, updated_unix_nanos = ? WHERE id = ? AND state = ?`,
			api.StateCancelled, now.UnixNano(), id, api.StateQueued)
		if err != nil {
			return fmt.Errorf("metadata db: cancel job %s: %w", id, err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		cancelled = true
		return insertEvent(ctx, tx, id, api.StateCancelled, now, 0, note)
	})
	return cancelled, err
}

// requeueRunning puts a job that is assigned or running back in the queue
// after its agent session ended (the agent stopped the job with it), noting
// why: the scheduler assigns it again, and its writeback, keyed by the job,
// is idempotent. A job already assigned maxAttempts times fails instead,
// with the error stage and why(previous state). It returns the previous and
// the new state, or "" and "" when the job was not running (queued or
// already finished), and the job's tenant.
//
// The note is sealed before the write transaction (sealing may ask Vault),
// so the write applies only if the job is still in the state the note was
// made for; otherwise it is made again.
func (s *store) requeueRunning(ctx context.Context, id, stage string, maxAttempts int, now time.Time, why func(from api.JobState) string) (from, to api.JobState, tenant string, err error) {
	for try := 0; ; try++ {
		var state api.JobState
		var attempts int
		err := s.db.QueryRow(ctx, `SELECT state, attempts, tenant FROM jobs WHERE id = ?`, id).Scan(&state, &attempts, &tenant)
		if errors.Is(err, sql.ErrNoRows) {
			return "", "", "", errJobNotFound
		}
		if err != nil {
			return "", "", "", fmt.Errorf("metadata db: re-queue job %s: %w", id, err)
		}
		if state == api.StateQueued || state.Terminal() {
			return "", "", tenant, nil
		}
		var ok bool
		if attempts >= maxAttempts {
			ok, err = s.failFrom(ctx, id, state, stage, fmt.Sprintf("%s; gave up after %d attempts", why(state), attempts), now)
			to = api.StateFailed
		} else {
			ok, err = s.requeueFrom(ctx, id, state, fmt.Sprintf("re-queued: %s (attempt %d of %d)", why(state), attempts, maxAttempts), now)
			to = api.StateQueued
		}
		if err != nil || ok {
			return state, to, tenant, err
		}
		if try == 10 {
			return "", "", tenant, fmt.Errorf("metadata db: re-queue job %s: its state keeps changing", id)
		}
	}
}

// requeueFrom puts job id back in the queue if it is in state from, with
// the control plane's note; it reports whether it did.
func (s *store) requeueFrom(ctx context.Context, id string, from api.JobState, note string, now time.Time) (bool, error) {
	stored := s.sealNote(ctx, id, api.StateQueued, now, note)
	done := false
	err := s.tx(ctx, func(tx *metadb.Tx) error {
		res, err := tx.Exec(ctx, `UPDATE jobs SET state = ?, agent_id = '', updated_unix_nanos = ? WHERE id = ? AND state = ?`,
			api.StateQueued, now.UnixNano(), id, from)
		if err != nil {
			return fmt.Errorf("metadata db: re-queue job %s: %w", id, err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		done = true
		return insertEvent(ctx, tx, id, api.StateQueued, now, 0, stored)
	})
	return done && err == nil, err
}

// failQueued fails a job that is still queued; it reports false when the job
// is no longer queued.
func (s *store) failQueued(ctx context.Context, id, stage, msg string, now time.Time) (bool, error) {
	return s.failFrom(ctx, id, api.StateQueued, stage, msg, now)
}

// failFrom fails job id if it is in state from, with the error stage and the
// control plane's message msg; it reports whether it did.
func (s *store) failFrom(ctx context.Context, id string, from api.JobState, stage, msg string, now time.Time) (bool, error) {
	stored := s.sealOwn(ctx, msg, fieldAAD("jobs", "error_message", id))
	note := s.sealNote(ctx, id, api.StateFailed, now, msg)
	done := false
	err := s.tx(ctx, func(tx *metadb.Tx) error {
		res, err := tx.Exec(ctx, `UPDATE jobs SET state = ?, updated_unix_nanos = ?, error_stage = ?, error_message = ? WHERE id = ? AND state = ?`,
			api.StateFailed, now.UnixNano(), stage, stored, id, from)
		if err != nil {
			return fmt.Errorf("metadata db: fail job %s: %w", id, err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		done = true
		return insertEvent(ctx, tx, id, api.StateFailed, now, 0, note)
	})
	return done && err == nil, err
}

// runningJobs returns the ids of every assigned or running job.
func (s *store) runningJobs(ctx context.Context) ([]string, error) {
	rows, err := s.db.Query(ctx, `SELECT id FROM jobs WHERE state IN (?, ?, ?, ?) ORDER BY created_unix_nanos`,
		api.StateAssigned, api.StateReading, api.StateTraining, api.StateWriting)
	if err != nil {
		return nil, fmt.Errorf("metadata db: running jobs: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("metadata db: running jobs: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("metadata db: running jobs: %w", err)
	}
	return ids, nil
}

// markAllDisconnected marks every agent disconnected (at startup).
func (s *store) markAllDisconnected(ctx context.Context) error {
	if _, err := s.db.Exec(ctx, `UPDATE agents SET connected = 0`); err != nil {
		return fmt.Errorf("metadata db: reset agents: %w", err)
	}
	return nil
}

// eventResult says what applying a job event changed.
type eventResult struct {
	From, To api.JobState
}

// Limits on strings an agent reports, so a faulty agent cannot bloat the DB.
const (
	maxNameLen    = 512
	maxMessageLen = 4096
)

// applyEvent applies a job event reported by agentID in one transaction: it
// checks the job belongs to the agent and the transition is legal, records
// the state change and stores the event's detail.
func (s *store) applyEvent(ctx context.Context, agentID string, ev *agentapi.JobEvent, now time.Time) (eventResult, error) {
	to, ok := stateFromProto(ev.GetState())
	if !ok {
		return eventResult{}, fmt.Errorf("job %s: unknown state %v", ev.GetJobId(), ev.GetState())
	}
	id := ev.GetJobId()
	// Seal what the event carries before the write transaction: sealing
	// may ask Vault. What the agent reports is never stored unsealed.
	stage, msg := "agent", "the agent reported a failure without details"
	if e := ev.GetError(); e != nil {
		stage, msg = clip(e.GetStage(), maxNameLen), clip(e.GetMessage(), maxMessageLen)
	}
	var storedMsg string
	switch {
	case to != api.StateFailed:
	case ev.GetError() == nil:
		storedMsg = s.sealOwn(ctx, msg, fieldAAD("jobs", "error_message", id))
	default:
		var err error
		if storedMsg, err = s.seal(ctx, msg, fieldAAD("jobs", "error_message", id)); err != nil {
			return eventResult{}, fmt.Errorf("metadata db: job %s error: %w", id, err)
		}
	}
	writeDetail, err := s.prepareDetail(ctx, id, ev)
	if err != nil {
		return eventResult{}, err
	}
	var res eventResult
	err = s.tx(ctx, func(tx *metadb.Tx) error {
		var from api.JobState
		var owner, errStage string
		err := tx.QueryRow(ctx, `SELECT state, agent_id, error_stage FROM jobs WHERE id = ?`, ev.GetJobId()).Scan(&from, &owner, &errStage)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("job %s: %w", ev.GetJobId(), errJobNotFound)
		}
		if err != nil {
			return fmt.Errorf("metadata db: job %s: %w", ev.GetJobId(), err)
		}
		if owner != agentID {
			return &ownerError{Job: ev.GetJobId(), Agent: agentID, Owner: owner}
		}
		if !transitionAllowed(from, to) {
			return &transitionError{Job: ev.GetJobId(), From: from, To: to}
		}
		res = eventResult{From: from, To: to}
		if from != to {
			if _, err := tx.Exec(ctx, `UPDATE jobs SET state = ?, updated_unix_nanos = ? WHERE id = ?`, to, now.UnixNano(), id); err != nil {
				return fmt.Errorf("metadata db: job %s state: %w", id, err)
			}
			if err := insertEvent(ctx, tx, id, to, now, ev.GetAtUnixNanos(), ""); err != nil {
				return err
			}
		}
		if to == api.StateFailed && errStage == "" {
			if _, err := tx.Exec(ctx, `UPDATE jobs SET error_stage = ?, error_message = ? WHERE id = ?`, stage, storedMsg, id); err != nil {
				return fmt.Errorf("metadata db: job %s error: %w", id, err)
			}
		}
		return writeDetail(tx)
	})
	return res, err
}

// prepareDetail encodes and seals the detail of a job event and returns the
// write that stores it, replacing an earlier report of the same kind (and
// table).
func (s *store) prepareDetail(ctx context.Context, id string, ev *agentapi.JobEvent) (func(*metadb.Tx) error, error) {
	wrap := func(what string, err error) error { return fmt.Errorf("metadata db: job %s %s: %w", id, what, err) }
	switch d := ev.GetDetail().(type) {
	case *agentapi.JobEvent_TableStats:
		t := d.TableStats
		cols := make([]api.Column, len(t.GetColumns()))
		stats := columnStats(t)
		for i, c := range t.GetColumns() {
			cols[i] = api.Column{Name: clip(c.GetName(), maxNameLen), Type: clip(c.GetType(), maxNameLen), Nullable: c.GetNullable(), Stats: stats[c.GetName()]}
		}
		b, err := json.Marshal(cols)
		if err != nil {
			return nil, wrap("table stats", err)
		}
		table := clip(t.GetTable(), maxNameLen)
		cj, err := s.seal(ctx, string(b), fieldAAD("table_stats", "columns_json", id, table))
		if err != nil {
			return nil, wrap("table stats", err)
		}
		return func(tx *metadb.Tx) error {
			if _, err := tx.Exec(ctx, `
INSERT INTO table_stats (job_id, table_name, rows, bytes, batches, columns_json, seconds, reported_unix_nanos) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (job_id, table_name) DO UPDATE SET rows = excluded.rows, bytes = excluded.bytes, batches = excluded.batches,
	columns_json = excluded.columns_json, seconds = excluded.seconds`,
				id, table, t.GetRows(), t.GetBytes(), t.GetBatches(), cj, t.GetSeconds(), time.Now().UnixNano()); err != nil {
				return wrap("table stats", err)
			}
			return nil
		}, nil
	case *agentapi.JobEvent_Metrics:
		m := d.Metrics
		mb, err := json.Marshal(storedMetrics{
			Test:                metricFromProto(m.GetTest()),
			Validation:          metricFromProto(m.GetValidation()),
			Classes:             m.GetClasses(),
			ParameterSets:       m.GetParameterSets(),
			TopK:                m.GetTopK(),
			BaselineLabelRate:   metricFromProto(m.GetBaselineLabelRate()),
			BaselineRecentCount: metricFromProto(m.GetBaselineRecentCount()),
			ROC:                 rocFromProto(m),
			Residuals:           residualsFromProto(m),
		})
		if err != nil {
			return nil, wrap("metrics", err)
		}
		fi := make(map[string]float64, len(m.GetFeatureImportance()))
		for k, v := range m.GetFeatureImportance() {
			fi[clip(k, maxNameLen)] = v
		}
		fib, err := json.Marshal(fi)
		if err != nil {
			return nil, wrap("feature importance", err)
		}
		mj, err := s.seal(ctx, string(mb), fieldAAD("models", "metrics_json", id))
		if err != nil {
			return nil, wrap("metrics", err)
		}
		fij, err := s.seal(ctx, string(fib), fieldAAD("models", "feature_importance_json", id))
		if err != nil {
			return nil, wrap("feature importance", err)
		}
		return func(tx *metadb.Tx) error {
			// A report sent again replaces the first (INSERT OR REPLACE, in SQL both databases speak).
			if _, err := tx.Exec(ctx, `DELETE FROM models WHERE job_id = ?`, id); err != nil {
				return wrap("metrics", err)
			}
			if _, err := tx.Exec(ctx, `
INSERT INTO models (job_id, model_id, task_type, metrics_json, train_rows, validation_rows, test_rows, num_features,
	anchors, best_iteration, prediction_rows, feature_seconds, train_seconds, score_seconds, test_positive_rate,
	scoring_anchor_unix_nanos, feature_importance_json)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				id, clip(m.GetModelId(), maxNameLen), clip(m.GetTaskType(), maxNameLen), mj, m.GetTrainRows(), m.GetValidationRows(),
				m.GetTestRows(), m.GetNumFeatures(), m.GetAnchors(), m.GetBestIteration(), m.GetPredictionRows(), m.GetFeatureSeconds(),
				m.GetTrainSeconds(), m.GetScoreSeconds(), m.GetTestPositiveRate(), m.GetScoringAnchorUnixNanos(), fij); err != nil {
				return wrap("metrics", err)
			}
			return nil
		}, nil
	case *agentapi.JobEvent_Purge:
		p := d.Purge
		return func(tx *metadb.Tx) error {
			// A report sent again replaces the first (INSERT OR REPLACE, in SQL both databases speak).
			if _, err := tx.Exec(ctx, `DELETE FROM purge_reports WHERE job_id = ?`, id); err != nil {
				return wrap("purge report", err)
			}
			if _, err := tx.Exec(ctx, `
INSERT INTO purge_reports (job_id, reason, bytes_received, bytes_purged, files_written, storage_write_bytes, purged_unix_nanos)
VALUES (?, ?, ?, ?, ?, ?, ?)`, id, clip(p.GetReason(), maxNameLen), p.GetBytesReceived(), p.GetBytesPurged(), p.GetFilesWritten(),
				p.GetStorageWriteBytes(), p.GetPurgedUnixNanos()); err != nil {
				return wrap("purge report", err)
			}
			return nil
		}, nil
	case *agentapi.JobEvent_Write:
		w := d.Write
		return func(tx *metadb.Tx) error {
			// A report sent again replaces the first (INSERT OR REPLACE, in SQL both databases speak).
			if _, err := tx.Exec(ctx, `DELETE FROM write_reports WHERE job_id = ?`, id); err != nil {
				return wrap("write report", err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO write_reports (job_id, table_name, rows, seconds) VALUES (?, ?, ?, ?)`,
				id, clip(w.GetTable(), maxNameLen), w.GetRows(), w.GetSeconds()); err != nil {
				return wrap("write report", err)
			}
			return nil
		}, nil
	}
	return func(*metadb.Tx) error { return nil }, nil
}

func metricFromProto(m *agentapi.Metric) *api.Metric {
	if m == nil {
		return nil
	}
	return &api.Metric{AUROC: m.GetAuroc(), AveragePrecision: m.GetAveragePrecision(), Accuracy: m.GetAccuracy(), MAE: m.GetMae(), RMSE: m.GetRmse(), MAPAtK: m.GetMapAtK()}
}

// clip cuts s to at most n bytes without splitting a UTF-8 sequence.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
