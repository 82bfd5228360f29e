// Package api defines the JSON documents of the control plane's user API,
// shared by the server (package controlplane) and its Go client (package
// apiclient). Every field is metadata: names, types, counts, metrics, states
// and timestamps, never a row value.
package api

import (
	"time"

	"github.com/ferry-ai/ferry/internal/graph"
	"github.com/ferry-ai/ferry/internal/link"
)

// Paths of the user API.
const (
	PathJobs        = "/v1/jobs"
	PathTokens      = "/v1/tokens"
	PathSCIM        = "/scim/v2"
	PathTenants     = "/v1/tenants"
	PathSignInLinks = "/v1/signin-links"
	PathSupport     = "/v1/support/requests"
	PathConnections = "/v1/connections"
	PathQueries     = "/v1/queries"
	PathAudit       = "/v1/audit"
	PathOpenAPI     = "/openapi.json"
	PathAgents      = "/v1/agents"
	PathGraph       = "/v1/graph"
	PathHealthz     = "/healthz"
	// PathEnrollments (bearer token) issues one-time enrollment tokens.
	PathEnrollments = "/v1/agents/enrollments"
	// PathEnroll is where an agent exchanges an enrollment token and a
	// certificate request for its certificate; the token is its only
	// credential.
	PathEnroll = "/v1/enroll"
	// PathCRL serves the CA-signed revocation list (DER); it is public, as
	// revocation lists are.
	PathCRL = "/v1/pki/crl"
)

// EnrollmentRequest asks for a one-time enrollment token for an agent.
type EnrollmentRequest struct {
	AgentID string `json:"agent_id"`
	Tenant  string `json:"tenant"`
	// TTLSeconds is how long the token may be used (default 3600, at most
	// 86400).
	TTLSeconds int64 `json:"ttl_seconds,omitempty"`
}

// Enrollment is an issued enrollment token. The token is shown once; the
// control plane keeps only its hash.
type Enrollment struct {
	Token     string    `json:"token"`
	AgentID   string    `json:"agent_id"`
	Tenant    string    `json:"tenant"`
	ExpiresAt time.Time `json:"expires_at"`
}

// EnrollRequest is an agent's enrollment: the token and a PEM certificate
// request for a key the agent generated.
type EnrollRequest struct {
	Token string `json:"token"`
	CSR   string `json:"csr"`
}

// EnrollResponse carries the agent's certificate and the CA bundle (PEM).
type EnrollResponse struct {
	AgentID     string    `json:"agent_id"`
	Tenant      string    `json:"tenant"`
	Certificate string    `json:"certificate"`
	CA          string    `json:"ca"`
	NotAfter    time.Time `json:"not_after"`
}

// RevokeRequest revokes an agent: every certificate issued to it is refused
// from its next connection, and enrolling it again is refused.
type RevokeRequest struct {
	Reason string `json:"reason"`
}

// Revocation reports a revoked agent.
type Revocation struct {
	AgentID      string    `json:"agent_id"`
	RevokedAt    time.Time `json:"revoked_at"`
	Certificates int       `json:"certificates"`
}

// JobState is the state of a job in the control plane's state machine.
type JobState string

// Job states, in the order a successful job passes through them.
const (
	StateQueued    JobState = "queued"
	StateAssigned  JobState = "assigned"
	StateReading   JobState = "reading"
	StateTraining  JobState = "training"
	StateWriting   JobState = "writing"
	StateSucceeded JobState = "succeeded"
	StateFailed    JobState = "failed"
	StateCancelled JobState = "cancelled"
)

// Terminal reports whether no further transition leaves s.
func (s JobState) Terminal() bool {
	return s == StateSucceeded || s == StateFailed || s == StateCancelled
}

// SubmitRequest is the body of POST /v1/jobs.
type SubmitRequest struct {
	// Query is a predictive query, e.g.
	// "PREDICT COUNT(orders.*, 0, 30, days) > 0 FOR EACH customers.customer_id".
	Query string `json:"query"`
	// OutputTable is the warehouse table the predictions are written to:
	// ASCII letters, digits and underscores, not starting with a digit.
	OutputTable string `json:"output_table"`
	// Options tune training: a split by dates, the hyperparameter search's
	// budget (docs/pql.md). The zero value uses the defaults.
	Options link.JobOptions `json:"options,omitzero"`
}

// Job is a predictive query's run as listed by GET /v1/jobs.
type Job struct {
	ID string `json:"id"`
	// Tenant is the submitter's tenant: only its agents run the job, and
	// only its users see it.
	Tenant      string   `json:"tenant"`
	Query       string   `json:"query"`
	OutputTable string   `json:"output_table"`
	State       JobState `json:"state"`
	AgentID     string   `json:"agent_id,omitempty"`
	// Attempts counts the times the job was assigned: a job whose agent
	// went away (restarted, lost its connection, or the control plane
	// restarted) is queued again, up to the control plane's job_attempts.
	Attempts int      `json:"attempts"`
	Tables   []string `json:"tables"`
	// Options are the job's training options.
	Options   link.JobOptions `json:"options,omitzero"`
	CreatedAt time.Time       `json:"created_at"`
	UpdatedAt time.Time       `json:"updated_at"`
	Error     *JobError       `json:"error,omitempty"`
	// Unreadable is set when fields the control plane keeps sealed under
	// the customer's key could not be opened (the key was revoked, Vault
	// is unreachable, or a value was moved from another row); those fields
	// are empty in this document, everything else is as stored.
	Unreadable *Unreadable `json:"unreadable,omitempty"`
}

// Unreadable names the sealed fields of a document that could not be
// opened, and why.
type Unreadable struct {
	// Reason is, for example, "customer key revoked" or "customer key
	// unavailable".
	Reason string `json:"reason"`
	// Fields are JSON paths, e.g. "query", "error.message",
	// "history[2].note", "table_stats[orders].columns", "model.metrics".
	Fields []string `json:"fields"`
}

// Add records field as unreadable for reason (the first reason is kept)
// and returns u, allocating it when nil.
func (u *Unreadable) Add(field, reason string) *Unreadable {
	if u == nil {
		u = &Unreadable{Reason: reason}
	}
	u.Fields = append(u.Fields, field)
	return u
}

// JobError says where a job failed; the message is scrubbed of values.
type JobError struct {
	// Stage is one of: read, stream, train, score, writeback, agent,
	// controlplane.
	Stage   string `json:"stage"`
	Message string `json:"message"`
}

// JobDetail is a job with everything reported about it, as returned by
// GET /v1/jobs/{id}.
type JobDetail struct {
	Job
	History    []StateChange `json:"history"`
	TableStats []TableStats  `json:"table_stats"`
	Model      *Model        `json:"model,omitempty"`
	Purge      *PurgeReport  `json:"purge,omitempty"`
	Write      *WriteReport  `json:"write,omitempty"`
}

// StateChange is one entry of a job's state history.
type StateChange struct {
	State JobState  `json:"state"`
	At    time.Time `json:"at"`
	// Note says why the control plane made the change (empty when the agent
	// reported it).
	Note string `json:"note,omitempty"`
}

// Column is a column's name and Arrow type, and in a job's table
// statistics what the agent measured of it as it read the table.
type Column struct {
	Name     string       `json:"name"`
	Type     string       `json:"type"`
	Nullable bool         `json:"nullable"`
	Stats    *ColumnStats `json:"stats,omitempty"`
}

// ColumnStats are aggregates over one column of a table an agent read:
// counts, an estimate and, for a numeric column that is not a key, its
// range. Never a value of a text, binary, time or key column.
type ColumnStats struct {
	// Nulls is the number of null values.
	Nulls int64 `json:"nulls"`
	// NullFraction is Nulls divided by the table's rows, in [0, 1] (0 for
	// a table with no rows).
	NullFraction float64 `json:"null_fraction"`
	// Min and Max are the smallest and largest value of a numeric non-key
	// column with a non-null value (NaN and ±Inf left out); omitted
	// otherwise.
	Min *float64 `json:"min,omitempty"`
	Max *float64 `json:"max,omitempty"`
	// DistinctEstimate estimates the distinct non-null values
	// (HyperLogLog, about 0.8% relative standard error; at most the
	// non-null values).
	DistinctEstimate int64 `json:"distinct_estimate"`
}

// TableStats describe one table uploaded to the engine for a job.
type TableStats struct {
	Table   string   `json:"table"`
	Rows    int64    `json:"rows"`
	Bytes   int64    `json:"bytes"`
	Batches int64    `json:"batches"`
	Columns []Column `json:"columns"`
	Seconds float64  `json:"seconds"`
}

// Metric is a model-quality measurement on a held-out set.
type Metric struct {
	AUROC            float64 `json:"auroc"`
	AveragePrecision float64 `json:"average_precision"`
	Accuracy         float64 `json:"accuracy,omitempty"`
	MAE              float64 `json:"mae,omitempty"`
	RMSE             float64 `json:"rmse,omitempty"`
	MAPAtK           float64 `json:"map_at_k,omitempty"`
}

// Model is a trained model's metrics and timings.
type Model struct {
	ModelID             string             `json:"model_id"`
	TaskType            string             `json:"task_type"`
	Test                *Metric            `json:"test,omitempty"`
	Validation          *Metric            `json:"validation,omitempty"`
	Classes             int64              `json:"classes,omitempty"`
	ParameterSets       int64              `json:"parameter_sets,omitempty"`
	TopK                int64              `json:"top_k,omitempty"`
	BaselineLabelRate   *Metric            `json:"baseline_label_rate,omitempty"`
	BaselineRecentCount *Metric            `json:"baseline_recent_count,omitempty"`
	TrainRows           int64              `json:"train_rows"`
	ValidationRows      int64              `json:"validation_rows"`
	TestRows            int64              `json:"test_rows"`
	NumFeatures         int64              `json:"num_features"`
	Anchors             int64              `json:"anchors"`
	BestIteration       int64              `json:"best_iteration"`
	PredictionRows      int64              `json:"prediction_rows"`
	FeatureSeconds      float64            `json:"feature_seconds"`
	TrainSeconds        float64            `json:"train_seconds"`
	ScoreSeconds        float64            `json:"score_seconds"`
	TestPositiveRate    float64            `json:"test_positive_rate"`
	ScoringAnchor       time.Time          `json:"scoring_anchor,omitzero"`
	FeatureImportance   map[string]float64 `json:"feature_importance,omitempty"`
	// ROC is a binary classifier's ROC curve on the test split: at most 101
	// points by falling threshold, from (0,0) to (1,1). Residuals is a
	// regression's histogram of test residuals (prediction minus actual) in
	// equal-width bins. Both are aggregates the engine draws only from a
	// test split of 50 rows or more; multiclass and recommendation models
	// have neither.
	ROC       []CurvePoint   `json:"roc,omitempty"`
	Residuals []HistogramBin `json:"residuals,omitempty"`
}

// CurvePoint is one point of a ROC curve: predicting positive when the score
// is at least Threshold gives these rates.
type CurvePoint struct {
	Threshold         float64 `json:"threshold"`
	FalsePositiveRate float64 `json:"false_positive_rate"`
	TruePositiveRate  float64 `json:"true_positive_rate"`
}

// HistogramBin counts the values in [Lower, Upper) (the last bin of a
// histogram includes Upper; the end bins also count the outliers beyond).
type HistogramBin struct {
	Lower float64 `json:"lower"`
	Upper float64 `json:"upper"`
	Count int64   `json:"count"`
}

// PurgeReport is the engine's attestation that a job's data was released.
type PurgeReport struct {
	Reason            string    `json:"reason"`
	BytesReceived     int64     `json:"bytes_received"`
	BytesPurged       int64     `json:"bytes_purged"`
	FilesWritten      int64     `json:"files_written"`
	StorageWriteBytes int64     `json:"storage_write_bytes"`
	PurgedAt          time.Time `json:"purged_at,omitzero"`
}

// WriteReport describes the prediction table written back to the warehouse.
type WriteReport struct {
	Table   string  `json:"table"`
	Rows    int64   `json:"rows"`
	Seconds float64 `json:"seconds"`
}

// JobList is the body of GET /v1/jobs, newest job first.
type JobList struct {
	Jobs []Job `json:"jobs"`
}

// Agent is a ferry-agent known to the control plane.
type Agent struct {
	ID            string    `json:"id"`
	Version       string    `json:"version"`
	WarehouseKind string    `json:"warehouse_kind"`
	Connected     bool      `json:"connected"`
	ConnectedAt   time.Time `json:"connected_at,omitzero"`
	LastSeen      time.Time `json:"last_seen"`
	// Tables names the tables of the schema the agent last reported.
	Tables []string `json:"tables"`
	// RunningJob is the job the agent is running now, if any.
	RunningJob string `json:"running_job,omitempty"`
	// Unreadable is set when the reported schema is sealed under the
	// customer's key and could not be opened (Tables is then empty).
	Unreadable *Unreadable `json:"unreadable,omitempty"`
}

// AgentList is the body of GET /v1/agents.
type AgentList struct {
	Agents []Agent `json:"agents"`
}

// Error is the body of every error response.
type Error struct {
	Error string `json:"error"`
}

// CreateTokenRequest asks for an API token of the caller's own.
type CreateTokenRequest struct {
	// Name says what the token is for.
	Name string `json:"name"`
	// Role is viewer, editor or admin, at most the caller's.
	Role string `json:"role"`
	// TTL is the token's lifetime, e.g. "720h" (default 30 days).
	TTL string `json:"ttl,omitempty"`
}

// CreatedToken is a new API token: Secret is shown this once, never again.
type CreatedToken struct {
	Token  any    `json:"token"`
	Secret string `json:"secret"`
}

// Graph is the body of GET /v1/graph: the schema the caller's tenant's
// agent last reported (tables, columns with their types, primary and
// foreign keys, time columns), the one queries are planned against.
// Metadata only.
type Graph struct {
	// AgentID is the agent that reported it (a connected one first, then
	// the most recent).
	AgentID string        `json:"agent_id"`
	Tables  []graph.Table `json:"tables"`
}

// SignInLinkRequest asks for a one-time console sign-in link for a user
// of the operator's tenant, made (or updated) with the given role.
type SignInLinkRequest struct {
	// User names the user (letters, digits, '.', '_', '-'; "demo-admin").
	User string `json:"user"`
	// Role is admin, editor or viewer.
	Role string `json:"role"`
	// TTLSeconds is how long the link works (default 900, at most 3600).
	TTLSeconds int64 `json:"ttl_seconds,omitempty"`
}

// SignInLink is a one-time console sign-in link: URL is shown this once,
// never again, and signs in once.
type SignInLink struct {
	URL       string    `json:"url"`
	Tenant    string    `json:"tenant"`
	User      string    `json:"user"`
	Role      string    `json:"role"`
	ExpiresAt time.Time `json:"expires_at"`
}

// TenantDeletion reports an account closure: the rows deleted per table
// and the audit entries whose identifying fields were removed.
type TenantDeletion struct {
	Tenant        string           `json:"tenant"`
	Deleted       map[string]int64 `json:"deleted"`
	AuditRedacted int64            `json:"audit_redacted"`
}

// SupportRequest is a support engineer's request for access to a tenant.
type SupportRequest struct {
	Tenant   string `json:"tenant"`
	Reason   string `json:"reason"`
	Duration string `json:"duration"` // e.g. "1h" (5m to 8h)
}
