// Package catalog keeps what a tenant tells the control plane about its
// warehouses and questions: the tenants themselves, connections (a
// warehouse's kind, its non-secret settings and the Vault path of its
// credentials — never a credential) and saved predictive queries.
//
// Everything here is metadata. A connection setting whose name or value
// looks like a secret is refused, so that a credential pasted into the
// wrong field never reaches the metadata database.
package catalog

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/ferry-ai/ferry/controlplane/metadb"
)

// Errors callers tell apart (wrapped with what and which).
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	ErrInvalid  = errors.New("invalid")
)

// FileKinds are the kinds of connection (and agent warehouse) that read
// files rather than a warehouse: a DuckDB file, a directory of Parquet
// files. A control plane may refuse them (disable_file_connections).
var FileKinds = []string{"duckdb", "parquet"}

// IsFileKind reports whether kind is one of FileKinds.
func IsFileKind(kind string) bool { return slices.Contains(FileKinds, kind) }

// Kinds of connection, as the agent's connector URL schemes name them.
var Kinds = []string{"duckdb", "postgres", "redshift", "snowflake", "databricks", "bigquery", "s3", "parquet"}

// Tenant is a customer account.
type Tenant struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
}

// Connection is how a tenant's agent reaches one warehouse, without its
// credentials: those stay in the tenant's Vault, at VaultPath.
type Connection struct {
	ID       string            `json:"id"`
	Tenant   string            `json:"tenant"`
	Name     string            `json:"name"`
	Kind     string            `json:"kind"`
	Settings map[string]string `json:"settings"`
	// VaultPath is where the agent finds the credentials, e.g.
	// "database/creds/ferry-agent" or "secret/data/ferry/warehouse".
	VaultPath string    `json:"vault_path,omitempty"`
	Created   time.Time `json:"created"`
	Updated   time.Time `json:"updated"`
	CreatedBy string    `json:"created_by"`
}

// Query is a saved predictive query.
type Query struct {
	ID          string    `json:"id"`
	Tenant      string    `json:"tenant"`
	Name        string    `json:"name"`
	PQL         string    `json:"pql"`
	OutputTable string    `json:"output_table"`
	Connection  string    `json:"connection,omitempty"`
	Created     time.Time `json:"created"`
	Updated     time.Time `json:"updated"`
	CreatedBy   string    `json:"created_by"`
}

var migrations = []string{`
CREATE TABLE tenants (
	id                  TEXT PRIMARY KEY,
	name                TEXT NOT NULL UNIQUE,
	created_unix_nanos  BIGINT NOT NULL
);
CREATE TABLE connections (
	id                  TEXT PRIMARY KEY,
	tenant              TEXT NOT NULL REFERENCES tenants(id),
	name                TEXT NOT NULL,
	kind                TEXT NOT NULL,
	settings_json       TEXT NOT NULL,
	vault_path          TEXT NOT NULL,
	created_unix_nanos  BIGINT NOT NULL,
	updated_unix_nanos  BIGINT NOT NULL,
	created_by          TEXT NOT NULL,
	UNIQUE (tenant, name)
);
CREATE TABLE saved_queries (
	id                  TEXT PRIMARY KEY,
	tenant              TEXT NOT NULL REFERENCES tenants(id),
	name                TEXT NOT NULL,
	pql                 TEXT NOT NULL,
	output_table        TEXT NOT NULL,
	connection          TEXT NOT NULL,
	created_unix_nanos  BIGINT NOT NULL,
	updated_unix_nanos  BIGINT NOT NULL,
	created_by          TEXT NOT NULL,
	UNIQUE (tenant, name)
);
`}

// Catalog is the tenants, connections and saved queries in the metadata
// database.
type Catalog struct {
	db  *metadb.DB
	now func() time.Time
}

// Open migrates db and returns the catalog. now is the clock (time.Now if
// nil).
func Open(ctx context.Context, db *metadb.DB, now func() time.Time) (*Catalog, error) {
	if err := db.Migrate(ctx, "catalog", migrations); err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	return &Catalog{db: db, now: now}, nil
}

func newID(prefix string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9 _.-]{0,99}$`)

func checkName(what, s string) error {
	if !nameRE.MatchString(s) {
		return fmt.Errorf("%w: %s %q: 1 to 100 letters, digits, spaces, '_', '.' or '-', starting with a letter or digit", ErrInvalid, what, s)
	}
	return nil
}

// isUnique reports a uniqueness violation from either database.
func isUnique(err error) bool {
	if err == nil {
		return false
	}
	m := err.Error()
	return strings.Contains(m, "UNIQUE constraint failed") || strings.Contains(m, "23505") || strings.Contains(m, "duplicate key")
}

// CreateTenant adds a tenant.
func (c *Catalog) CreateTenant(ctx context.Context, name string) (Tenant, error) {
	if err := checkName("tenant name", name); err != nil {
		return Tenant{}, err
	}
	t := Tenant{ID: newID("t-"), Name: name, Created: c.now().UTC()}
	_, err := c.db.Exec(ctx, `INSERT INTO tenants (id, name, created_unix_nanos) VALUES (?, ?, ?)`, t.ID, t.Name, t.Created.UnixNano())
	if isUnique(err) {
		return Tenant{}, fmt.Errorf("tenant %q: %w", name, ErrExists)
	}
	if err != nil {
		return Tenant{}, fmt.Errorf("catalog: create tenant: %w", err)
	}
	return t, nil
}

// EnsureTenant adds a tenant with a given ID (a tenant the deployment
// names in its configuration) unless it exists.
func (c *Catalog) EnsureTenant(ctx context.Context, id, name string) error {
	if err := checkName("tenant name", name); err != nil {
		return err
	}
	var n int
	if err := c.db.QueryRow(ctx, `SELECT count(*) FROM tenants WHERE id = ?`, id).Scan(&n); err != nil {
		return fmt.Errorf("catalog: tenant %s: %w", id, err)
	}
	if n > 0 {
		return nil
	}
	if _, err := c.db.Exec(ctx, `INSERT INTO tenants (id, name, created_unix_nanos) VALUES (?, ?, ?)`, id, name, c.now().UTC().UnixNano()); err != nil && !isUnique(err) {
		return fmt.Errorf("catalog: add tenant %s: %w", id, err)
	}
	return nil
}

// Tenant returns a tenant by ID.
func (c *Catalog) Tenant(ctx context.Context, id string) (Tenant, error) {
	var t Tenant
	var created int64
	err := c.db.QueryRow(ctx, `SELECT id, name, created_unix_nanos FROM tenants WHERE id = ?`, id).Scan(&t.ID, &t.Name, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return Tenant{}, fmt.Errorf("tenant %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Tenant{}, fmt.Errorf("catalog: tenant %s: %w", id, err)
	}
	t.Created = time.Unix(0, created).UTC()
	return t, nil
}

// Tenants lists every tenant by name.
func (c *Catalog) Tenants(ctx context.Context) ([]Tenant, error) {
	rows, err := c.db.Query(ctx, `SELECT id, name, created_unix_nanos FROM tenants ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("catalog: tenants: %w", err)
	}
	defer rows.Close()
	var out []Tenant
	for rows.Next() {
		var t Tenant
		var created int64
		if err := rows.Scan(&t.ID, &t.Name, &created); err != nil {
			return nil, fmt.Errorf("catalog: tenants: %w", err)
		}
		t.Created = time.Unix(0, created).UTC()
		out = append(out, t)
	}
	return out, rows.Err()
}

// secretish matches setting names that hold credentials.
var secretish = regexp.MustCompile(`(?i)(pass(word|wd)?|secret|token|private|credential|api[_-]?key|access[_-]?key|session[_-]?key|^key$|_key$)`)

// looksSecret reports values shaped like credentials: URLs with a
// password, PEM blocks, cloud access keys.
func looksSecret(v string) bool {
	if strings.Contains(v, "-----BEGIN") {
		return true
	}
	if i := strings.Index(v, "://"); i >= 0 {
		rest := v[i+3:]
		if at := strings.IndexByte(rest, '@'); at >= 0 && strings.Contains(rest[:at], ":") {
			return true
		}
	}
	for _, prefix := range []string{"AKIA", "ASIA", "ghp_", "xoxb-", "eyJ"} {
		if strings.HasPrefix(v, prefix) && len(v) >= 16 {
			return true
		}
	}
	return false
}

var settingRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

var vaultPathRE = regexp.MustCompile(`^[A-Za-z0-9_-]+(/[A-Za-z0-9_.-]+)+$`)

// checkConnection refuses a connection that is malformed or carries what
// looks like a credential.
func checkConnection(cn Connection) error {
	if err := checkName("connection name", cn.Name); err != nil {
		return err
	}
	known := false
	for _, k := range Kinds {
		known = known || k == cn.Kind
	}
	if !known {
		return fmt.Errorf("%w: connection kind %q: want one of %s", ErrInvalid, cn.Kind, strings.Join(Kinds, ", "))
	}
	if len(cn.Settings) > 32 {
		return fmt.Errorf("%w: %d settings, at most 32", ErrInvalid, len(cn.Settings))
	}
	for k, v := range cn.Settings {
		switch {
		case !settingRE.MatchString(k):
			return fmt.Errorf("%w: setting %q: want lower-case letters, digits and '_'", ErrInvalid, k)
		case len(v) > 1024:
			return fmt.Errorf("%w: setting %s is %d bytes, at most 1024", ErrInvalid, k, len(v))
		case secretish.MatchString(k):
			return fmt.Errorf("%w: setting %s names a credential: credentials stay in Vault (give vault_path)", ErrInvalid, k)
		case looksSecret(v):
			return fmt.Errorf("%w: setting %s looks like a credential: credentials stay in Vault (give vault_path)", ErrInvalid, k)
		}
	}
	if cn.VaultPath != "" && !vaultPathRE.MatchString(cn.VaultPath) {
		return fmt.Errorf("%w: vault_path %q: want a Vault path such as database/creds/ferry-agent", ErrInvalid, cn.VaultPath)
	}
	return nil
}

// CreateConnection adds a connection to a tenant.
func (c *Catalog) CreateConnection(ctx context.Context, cn Connection) (Connection, error) {
	if err := checkConnection(cn); err != nil {
		return Connection{}, err
	}
	if _, err := c.Tenant(ctx, cn.Tenant); err != nil {
		return Connection{}, err
	}
	now := c.now().UTC()
	cn.ID, cn.Created, cn.Updated = newID("c-"), now, now
	if cn.Settings == nil {
		cn.Settings = map[string]string{}
	}
	sj, _ := json.Marshal(cn.Settings)
	_, err := c.db.Exec(ctx, `INSERT INTO connections (id, tenant, name, kind, settings_json, vault_path, created_unix_nanos, updated_unix_nanos, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		cn.ID, cn.Tenant, cn.Name, cn.Kind, string(sj), cn.VaultPath, now.UnixNano(), now.UnixNano(), cn.CreatedBy)
	if isUnique(err) {
		return Connection{}, fmt.Errorf("connection %q: %w", cn.Name, ErrExists)
	}
	if err != nil {
		return Connection{}, fmt.Errorf("catalog: create connection: %w", err)
	}
	return cn, nil
}

// UpdateConnection replaces a connection's kind, settings and Vault path.
func (c *Catalog) UpdateConnection(ctx context.Context, cn Connection) (Connection, error) {
	if err := checkConnection(cn); err != nil {
		return Connection{}, err
	}
	old, err := c.Connection(ctx, cn.Tenant, cn.ID)
	if err != nil {
		return Connection{}, err
	}
	cn.Created, cn.CreatedBy, cn.Updated = old.Created, old.CreatedBy, c.now().UTC()
	sj, _ := json.Marshal(cn.Settings)
	_, err = c.db.Exec(ctx, `UPDATE connections SET name = ?, kind = ?, settings_json = ?, vault_path = ?, updated_unix_nanos = ? WHERE id = ? AND tenant = ?`,
		cn.Name, cn.Kind, string(sj), cn.VaultPath, cn.Updated.UnixNano(), cn.ID, cn.Tenant)
	if isUnique(err) {
		return Connection{}, fmt.Errorf("connection %q: %w", cn.Name, ErrExists)
	}
	if err != nil {
		return Connection{}, fmt.Errorf("catalog: update connection: %w", err)
	}
	return cn, nil
}

const connColumns = `id, tenant, name, kind, settings_json, vault_path, created_unix_nanos, updated_unix_nanos, created_by`

func scanConnection(sc interface{ Scan(...any) error }) (Connection, error) {
	var cn Connection
	var sj string
	var created, updated int64
	if err := sc.Scan(&cn.ID, &cn.Tenant, &cn.Name, &cn.Kind, &sj, &cn.VaultPath, &created, &updated, &cn.CreatedBy); err != nil {
		return Connection{}, err
	}
	if err := json.Unmarshal([]byte(sj), &cn.Settings); err != nil {
		return Connection{}, fmt.Errorf("catalog: connection %s: settings: %w", cn.ID, err)
	}
	cn.Created, cn.Updated = time.Unix(0, created).UTC(), time.Unix(0, updated).UTC()
	return cn, nil
}

// Connection returns one of a tenant's connections.
func (c *Catalog) Connection(ctx context.Context, tenant, id string) (Connection, error) {
	cn, err := scanConnection(c.db.QueryRow(ctx, `SELECT `+connColumns+` FROM connections WHERE id = ? AND tenant = ?`, id, tenant))
	if errors.Is(err, sql.ErrNoRows) {
		return Connection{}, fmt.Errorf("connection %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Connection{}, fmt.Errorf("catalog: connection %s: %w", id, err)
	}
	return cn, nil
}

// Connections lists a tenant's connections by name.
func (c *Catalog) Connections(ctx context.Context, tenant string) ([]Connection, error) {
	rows, err := c.db.Query(ctx, `SELECT `+connColumns+` FROM connections WHERE tenant = ? ORDER BY name`, tenant)
	if err != nil {
		return nil, fmt.Errorf("catalog: connections: %w", err)
	}
	defer rows.Close()
	out := []Connection{}
	for rows.Next() {
		cn, err := scanConnection(rows)
		if err != nil {
			return nil, fmt.Errorf("catalog: connections: %w", err)
		}
		out = append(out, cn)
	}
	return out, rows.Err()
}

// DeleteConnection removes one of a tenant's connections.
func (c *Catalog) DeleteConnection(ctx context.Context, tenant, id string) error {
	res, err := c.db.Exec(ctx, `DELETE FROM connections WHERE id = ? AND tenant = ?`, id, tenant)
	if err != nil {
		return fmt.Errorf("catalog: delete connection: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("connection %s: %w", id, ErrNotFound)
	}
	return nil
}

var tableRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

// SaveQuery stores a new saved query (its PQL is checked by the caller,
// who knows the graph).
func (c *Catalog) SaveQuery(ctx context.Context, q Query) (Query, error) {
	if err := checkName("query name", q.Name); err != nil {
		return Query{}, err
	}
	if strings.TrimSpace(q.PQL) == "" || len(q.PQL) > 8192 {
		return Query{}, fmt.Errorf("%w: pql: 1 to 8192 bytes", ErrInvalid)
	}
	if !tableRE.MatchString(q.OutputTable) {
		return Query{}, fmt.Errorf("%w: output_table %q: a table name of letters, digits and '_'", ErrInvalid, q.OutputTable)
	}
	if _, err := c.Tenant(ctx, q.Tenant); err != nil {
		return Query{}, err
	}
	now := c.now().UTC()
	q.ID, q.Created, q.Updated = newID("q-"), now, now
	_, err := c.db.Exec(ctx, `INSERT INTO saved_queries (id, tenant, name, pql, output_table, connection, created_unix_nanos, updated_unix_nanos, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		q.ID, q.Tenant, q.Name, q.PQL, q.OutputTable, q.Connection, now.UnixNano(), now.UnixNano(), q.CreatedBy)
	if isUnique(err) {
		return Query{}, fmt.Errorf("query %q: %w", q.Name, ErrExists)
	}
	if err != nil {
		return Query{}, fmt.Errorf("catalog: save query: %w", err)
	}
	return q, nil
}

const queryColumns = `id, tenant, name, pql, output_table, connection, created_unix_nanos, updated_unix_nanos, created_by`

func scanQuery(sc interface{ Scan(...any) error }) (Query, error) {
	var q Query
	var created, updated int64
	if err := sc.Scan(&q.ID, &q.Tenant, &q.Name, &q.PQL, &q.OutputTable, &q.Connection, &created, &updated, &q.CreatedBy); err != nil {
		return Query{}, err
	}
	q.Created, q.Updated = time.Unix(0, created).UTC(), time.Unix(0, updated).UTC()
	return q, nil
}

// Query returns one of a tenant's saved queries.
func (c *Catalog) Query(ctx context.Context, tenant, id string) (Query, error) {
	q, err := scanQuery(c.db.QueryRow(ctx, `SELECT `+queryColumns+` FROM saved_queries WHERE id = ? AND tenant = ?`, id, tenant))
	if errors.Is(err, sql.ErrNoRows) {
		return Query{}, fmt.Errorf("query %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Query{}, fmt.Errorf("catalog: query %s: %w", id, err)
	}
	return q, nil
}

// Queries lists a tenant's saved queries by name.
func (c *Catalog) Queries(ctx context.Context, tenant string) ([]Query, error) {
	rows, err := c.db.Query(ctx, `SELECT `+queryColumns+` FROM saved_queries WHERE tenant = ? ORDER BY name`, tenant)
	if err != nil {
		return nil, fmt.Errorf("catalog: queries: %w", err)
	}
	defer rows.Close()
	out := []Query{}
	for rows.Next() {
		q, err := scanQuery(rows)
		if err != nil {
			return nil, fmt.Errorf("catalog: queries: %w", err)
		}
		out = append(out, q)
	}
	return out, rows.Err()
}

// DeleteQuery removes one of a tenant's saved queries.
func (c *Catalog) DeleteQuery(ctx context.Context, tenant, id string) error {
	res, err := c.db.Exec(ctx, `DELETE FROM saved_queries WHERE id = ? AND tenant = ?`, id, tenant)
	if err != nil {
		return fmt.Errorf("catalog: delete query: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("query %s: %w", id, ErrNotFound)
	}
	return nil
}

// DeleteTenant removes the tenant and everything of it the catalog holds
// (account closure), and returns the rows removed per table.
func (c *Catalog) DeleteTenant(ctx context.Context, tenant string) (map[string]int64, error) {
	out := map[string]int64{}
	err := c.db.InTx(ctx, func(tx *metadb.Tx) error {
		for _, table := range []string{"saved_queries", "connections"} {
			res, err := tx.Exec(ctx, `DELETE FROM `+table+` WHERE tenant = ?`, tenant)
			if err != nil {
				return fmt.Errorf("catalog: delete tenant %s: %s: %w", tenant, table, err)
			}
			out[table], _ = res.RowsAffected()
		}
		res, err := tx.Exec(ctx, `DELETE FROM tenants WHERE id = ?`, tenant)
		if err != nil {
			return fmt.Errorf("catalog: delete tenant %s: %w", tenant, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("tenant %s: %w", tenant, ErrNotFound)
		}
		out["tenants"] = 1
		return nil
	})
	return out, err
}
