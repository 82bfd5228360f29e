// Package audit is the control plane's tamper-evident audit log: who did
// what, when, from where, with what outcome — for every user, admin,
// support and agent action.
//
// The log is append-only and hash-chained: each entry's hash covers the
// previous entry's hash and the entry's fields, so Verify finds an entry
// that was edited, deleted or reordered, and a tail that was cut off. With
// a key (Options.Key) the chain is HMAC-SHA256: someone who can write to
// the metadata database but does not hold the key cannot recompute it.
//
// The identifying fields of an entry (actor, target, remote address,
// details) are not hashed into the chain directly: the chain holds a salted
// commitment to them, and their clear values live in a side table. Closing
// a tenant's account (RedactTenant) deletes those clear values, and the
// chain still verifies. Prune deletes entries older than the retention
// (365 days by default) and records an anchor, the last pruned entry's seq
// and hash, from which Verify starts.
//
// Entries are typed fields only — no free-form byte field that could carry
// warehouse rows; Details is a small map of validated short strings.
//
// Entries are stored in the metadata database (package metadb), on SQLite
// or PostgreSQL; appends are serialised by a lock on a single head row, also
// across control planes sharing a PostgreSQL database.
package audit

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/ferry-ai/ferry/controlplane/metadb"
)

// ActorKind is who acted.
type ActorKind string

// The kinds of actor.
const (
	User    ActorKind = "user"    // a customer's user
	Admin   ActorKind = "admin"   // a customer's administrator
	Support ActorKind = "support" // the provider's support staff
	Agent   ActorKind = "agent"   // a ferry-agent, by its agent id
	System  ActorKind = "system"  // the control plane itself
)

// Outcome is how an action ended.
type Outcome string

// The outcomes.
const (
	Success Outcome = "success"
	Denied  Outcome = "denied"
	Failed  Outcome = "failed"
)

// Entry is one audited action.
//
// Append fills in Seq, At, Prev and Hash (values given are ignored): the
// log stamps the time, never the caller.
type Entry struct {
	Seq       int64     // position in the chain, from 1, without gaps
	At        time.Time // UTC, microseconds; never earlier than the previous entry's
	Tenant    string    // the tenant acted on; "" for the provider as a whole
	ActorKind ActorKind
	Actor     string            // a user's id or email, an agent id, a component
	Action    string            // dotted lower case: "job.submit", "support.approve"
	Target    string            // what was acted on: "job/j-123"
	Outcome   Outcome           // success, denied or failed
	Remote    string            // the client's ip:port (or ip), or ""
	Details   map[string]string // small typed metadata: at most 16 keys [a-z_]{1,40}, values of at most 256 bytes
	// Redacted is set when the tenant's account was closed (RedactTenant):
	// Actor, Target, Remote and Details are gone; the chain still verifies.
	Redacted bool
	Prev     []byte // the previous entry's hash (the anchor's for the first)
	Hash     []byte // this entry's hash
}

// Limits on an entry's fields.
const (
	MaxDetails      = 16
	MaxDetailValue  = 256
	maxTenant       = 128
	maxActor        = 256
	maxTarget       = 256
	maxAction       = 64
	reservedActions = "audit." // the log's own entries: audit.prune, audit.redact
)

// Errors.
var (
	// ErrInvalid marks an entry, filter or argument that is refused.
	ErrInvalid = errors.New("audit: invalid")
	// ErrKey marks a key that does not fit the log: missing, unexpected,
	// too short or not the log's.
	ErrKey = errors.New("audit: key mismatch")
	// ErrNoLog is returned by a read-only Open on a database without an
	// audit log.
	ErrNoLog = errors.New("audit: no audit log")
	// ErrReadOnly is returned by the writing methods of a read-only Log.
	ErrReadOnly = errors.New("audit: log opened read-only")
)

// DefaultRetention is how long entries are kept unless Options say
// otherwise: 12 months.
const DefaultRetention = 365 * 24 * time.Hour

// Options configure a Log. The zero value (or nil) is an unkeyed chain,
// 365 days of retention and the system clock.
type Options struct {
	// Key, if set (at least 32 bytes), makes the chain HMAC-SHA256 under
	// it. A log started with a key must always be opened with that key,
	// and one started without a key without one.
	Key []byte
	// Retention is how old an entry Prune deletes (default
	// DefaultRetention).
	Retention time.Duration
	// Clock stamps entries (default time.Now).
	Clock func() time.Time
	// ReadOnly opens an existing log without migrating the database or
	// writing anything: for verification and export.
	ReadOnly bool
}

// Log is the audit log in a metadata database. It is safe for concurrent
// use, and several Logs (in several processes) may share one database.
type Log struct {
	db        *metadb.DB
	chain     chain
	retention time.Duration
	clock     func() time.Time
	readOnly  bool
	mu        sync.Mutex // one appender per process at a time; the head row's lock does it across processes
}

const component = "audit"

// migrations are the audit log's tables; never edit a released step.
var migrations = []string{
	// audit_head is one row: the chain's last entry, and the anchor Verify
	// starts from (the last pruned entry; seq 0 and no hash at first).
	// audit_log is the chain; audit_subject holds the clear values the
	// chain commits to in audit_log.subject, deleted to redact a tenant.
	`CREATE TABLE audit_head (
		id INTEGER PRIMARY KEY CHECK (id = 1),
		seq BIGINT NOT NULL,
		hash {{blob}},
		at_us BIGINT NOT NULL,
		anchor_seq BIGINT NOT NULL,
		anchor_hash {{blob}},
		alg TEXT NOT NULL,
		key_check {{blob}}
	);
	INSERT INTO audit_head (id, seq, at_us, anchor_seq, alg) VALUES (1, 0, 0, 0, '');
	CREATE TABLE audit_log (
		seq BIGINT PRIMARY KEY,
		at_us BIGINT NOT NULL,
		tenant TEXT NOT NULL,
		actor_kind TEXT NOT NULL,
		action TEXT NOT NULL,
		outcome TEXT NOT NULL,
		subject {{blob}} NOT NULL,
		prev {{blob}} NOT NULL,
		hash {{blob}} NOT NULL
	);
	CREATE INDEX audit_log_by_tenant ON audit_log (tenant, seq);
	CREATE INDEX audit_log_by_at ON audit_log (at_us);
	CREATE TABLE audit_subject (
		seq BIGINT PRIMARY KEY,
		salt {{blob}} NOT NULL,
		actor TEXT NOT NULL,
		target TEXT NOT NULL,
		remote TEXT NOT NULL,
		details TEXT NOT NULL
	)`,
}

// Open opens the audit log in db, creating its tables if needed (unless
// opts.ReadOnly). A key that does not fit the log is refused with ErrKey.
func Open(ctx context.Context, db *metadb.DB, opts *Options) (*Log, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Key != nil && len(o.Key) < 32 {
		return nil, fmt.Errorf("%w: an HMAC key of %d bytes: want at least 32", ErrKey, len(o.Key))
	}
	if o.Retention < 0 {
		return nil, fmt.Errorf("%w options: retention %v: want a positive duration", ErrInvalid, o.Retention)
	}
	if o.Retention == 0 {
		o.Retention = DefaultRetention
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	l := &Log{db: db, chain: newChain(o.Key), retention: o.Retention, clock: o.Clock, readOnly: o.ReadOnly}
	if o.ReadOnly {
		v, err := version(ctx, db)
		if err != nil {
			return nil, fmt.Errorf("audit: open: %w", err)
		}
		if v == 0 {
			return nil, fmt.Errorf("%w in %s", ErrNoLog, db.Where)
		}
		if v > len(migrations) {
			return nil, fmt.Errorf("audit: open: schema version %d is newer than this binary supports (%d)", v, len(migrations))
		}
		var alg string
		var check []byte
		if err := db.QueryRow(ctx, `SELECT alg, key_check FROM audit_head WHERE id = 1`).Scan(&alg, &check); err != nil {
			return nil, fmt.Errorf("audit: open: read the head: %w", err)
		}
		if alg != "" { // "": never written
			if err := l.chain.fits(alg, check); err != nil {
				return nil, err
			}
		}
		return l, nil
	}
	if err := db.Migrate(ctx, component, migrations); err != nil {
		return nil, fmt.Errorf("audit: open: %w", err)
	}
	var keyErr error
	err := db.InTx(ctx, func(tx *metadb.Tx) error {
		h, err := lockHead(ctx, tx, db.Dialect)
		if err != nil {
			return err
		}
		if h.alg == "" {
			// The first Open decides whether the chain is keyed.
			_, err := tx.Exec(ctx, `UPDATE audit_head SET alg = ?, key_check = ? WHERE id = 1`, l.chain.alg, l.chain.check)
			return err
		}
		keyErr = l.chain.fits(h.alg, h.keyCheck)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("audit: open: %w", err)
	}
	if keyErr != nil {
		return nil, keyErr
	}
	return l, nil
}

// version is the audit log's schema version, 0 in a database that has
// none, or no metadata tables at all.
func version(ctx context.Context, db *metadb.DB) (int, error) {
	q := `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'ferry_migrations'`
	if db.Dialect == metadb.Postgres {
		q = `SELECT count(*) FROM pg_catalog.pg_tables WHERE tablename = 'ferry_migrations' AND schemaname = current_schema()`
	}
	var n int
	if err := db.QueryRow(ctx, q).Scan(&n); err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, nil
	}
	return db.Version(ctx, component)
}

// head is the audit_head row.
type head struct {
	seq        int64
	hash       []byte
	atUS       int64
	anchorSeq  int64
	anchorHash []byte
	alg        string
	keyCheck   []byte
}

// querier is a transaction (or the database) that takes ? placeholders.
type querier interface {
	QueryRow(ctx context.Context, q string, args ...any) *sql.Row
}

func readHead(ctx context.Context, q querier, forUpdate string) (head, error) {
	var h head
	err := q.QueryRow(ctx, `SELECT seq, hash, at_us, anchor_seq, anchor_hash, alg, key_check FROM audit_head WHERE id = 1`+forUpdate).
		Scan(&h.seq, &h.hash, &h.atUS, &h.anchorSeq, &h.anchorHash, &h.alg, &h.keyCheck)
	if err != nil {
		return h, fmt.Errorf("read the head: %w", err)
	}
	if h.hash == nil {
		h.hash = genesis()
	}
	if h.anchorHash == nil {
		h.anchorHash = genesis()
	}
	return h, nil
}

// lockHead reads the head row and holds it until tx ends: appends are
// serialised by it. SQLite transactions are writers from their start
// (BEGIN IMMEDIATE), so only PostgreSQL needs the row lock.
func lockHead(ctx context.Context, tx *metadb.Tx, d metadb.Dialect) (head, error) {
	forUpdate := ""
	if d == metadb.Postgres {
		forUpdate = " FOR UPDATE"
	}
	return readHead(ctx, tx, forUpdate)
}

// Append adds e to the chain and returns it as stored: Seq, At, Prev and
// Hash filled in. An entry that breaks the field rules is refused with
// ErrInvalid, naming the field; actions starting with "audit." are the
// log's own.
func (l *Log) Append(ctx context.Context, e Entry) (Entry, error) {
	if err := e.validate(); err != nil {
		return Entry{}, err
	}
	if strings.HasPrefix(e.Action, reservedActions) {
		return Entry{}, fmt.Errorf("%w entry: action %q: actions starting with %q are the audit log's own", ErrInvalid, e.Action, reservedActions)
	}
	var out Entry
	err := l.write(ctx, func(tx *metadb.Tx, h *head) error {
		var err error
		out, err = l.appendTx(ctx, tx, h, e)
		return err
	})
	if err != nil {
		return Entry{}, fmt.Errorf("audit: append %s: %w", e.Action, err)
	}
	return out, nil
}

// write runs fn in a transaction holding the head row.
func (l *Log) write(ctx context.Context, fn func(tx *metadb.Tx, h *head) error) error {
	if l.readOnly {
		return ErrReadOnly
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.db.InTx(ctx, func(tx *metadb.Tx) error {
		h, err := lockHead(ctx, tx, l.db.Dialect)
		if err != nil {
			return err
		}
		return fn(tx, &h)
	})
}

// appendTx appends a validated entry after h, inside tx, and advances h.
func (l *Log) appendTx(ctx context.Context, tx *metadb.Tx, h *head, e Entry) (Entry, error) {
	e.Seq = h.seq + 1
	atUS := max(l.clock().UnixMicro(), h.atUS) // never backwards, even across control planes with skewed clocks
	e.At = time.UnixMicro(atUS).UTC()
	e.Prev = h.hash
	e.Redacted = false
	salt := make([]byte, saltSize)
	_, _ = rand.Read(salt) // never fails (crypto/rand)
	r := record{Entry: e, salt: salt, clear: true}
	r.subject = commit(&r)
	e.Hash = l.chain.hash(&r)
	details, err := json.Marshal(e.Details)
	if err != nil {
		return Entry{}, err
	}
	if e.Details == nil {
		details = []byte("{}")
	}
	if _, err := tx.Exec(ctx, `INSERT INTO audit_log (seq, at_us, tenant, actor_kind, action, outcome, subject, prev, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.Seq, atUS, e.Tenant, string(e.ActorKind), e.Action, string(e.Outcome), r.subject, e.Prev, e.Hash); err != nil {
		return Entry{}, err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO audit_subject (seq, salt, actor, target, remote, details) VALUES (?, ?, ?, ?, ?, ?)`,
		e.Seq, salt, e.Actor, e.Target, e.Remote, string(details)); err != nil {
		return Entry{}, err
	}
	if _, err := tx.Exec(ctx, `UPDATE audit_head SET seq = ?, hash = ?, at_us = ? WHERE id = 1`, e.Seq, e.Hash, atUS); err != nil {
		return Entry{}, err
	}
	h.seq, h.hash, h.atUS = e.Seq, e.Hash, atUS
	return e, nil
}

// Pruned says what Prune deleted.
type Pruned struct {
	Entries    int64 // how many entries were deleted
	ThroughSeq int64 // the last deleted entry, now the anchor (0 if none)
	Entry      Entry // the audit.prune entry recording it (zero if none)
}

// Prune deletes the entries older than the retention before now, records
// the last deleted entry's seq and hash as the anchor Verify starts from,
// and appends an audit.prune entry saying so — all in one transaction.
// Nothing to delete is not an error, and appends nothing.
func (l *Log) Prune(ctx context.Context, now time.Time) (Pruned, error) {
	cutoff := now.Add(-l.retention)
	var p Pruned
	err := l.write(ctx, func(tx *metadb.Tx, h *head) error {
		var through int64
		var throughHash []byte
		err := tx.QueryRow(ctx, `SELECT seq, hash FROM audit_log WHERE at_us < ? ORDER BY seq DESC LIMIT 1`, cutoff.UnixMicro()).Scan(&through, &throughHash)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM audit_subject WHERE seq <= ?`, through); err != nil {
			return err
		}
		res, err := tx.Exec(ctx, `DELETE FROM audit_log WHERE seq <= ?`, through)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE audit_head SET anchor_seq = ?, anchor_hash = ? WHERE id = 1`, through, throughHash); err != nil {
			return err
		}
		e, err := l.appendTx(ctx, tx, h, Entry{
			ActorKind: System, Actor: "audit", Action: actionPrune, Target: "audit", Outcome: Success,
			Details: map[string]string{
				"entries":      strconv.FormatInt(n, 10),
				"through_seq":  strconv.FormatInt(through, 10),
				"through_hash": hex.EncodeToString(throughHash),
				"before":       cutoff.UTC().Format(time.RFC3339),
			},
		})
		p = Pruned{Entries: n, ThroughSeq: through, Entry: e}
		return err
	})
	if err != nil {
		return Pruned{}, fmt.Errorf("audit: prune: %w", err)
	}
	return p, nil
}

// RedactTenant deletes the clear actor, target, remote address and details
// of every entry of tenant (the account was closed) and appends an
// audit.redact entry saying how many; the chain keeps each entry's salted
// commitment to them, so it still verifies, and the values cannot be
// recovered or guessed from it. Entries appended later keep theirs.
func (l *Log) RedactTenant(ctx context.Context, tenant string) (int64, error) {
	if tenant == "" {
		return 0, fmt.Errorf("%w tenant: redaction needs a tenant (\"\" is the provider's own entries)", ErrInvalid)
	}
	if err := checkText("tenant", tenant, maxTenant); err != nil {
		return 0, err
	}
	var n int64
	err := l.write(ctx, func(tx *metadb.Tx, h *head) error {
		res, err := tx.Exec(ctx, `DELETE FROM audit_subject WHERE seq IN (SELECT seq FROM audit_log WHERE tenant = ? AND action NOT LIKE 'audit.%')`, tenant)
		if err != nil {
			return err
		}
		if n, err = res.RowsAffected(); err != nil {
			return err
		}
		_, err = l.appendTx(ctx, tx, h, Entry{
			Tenant: tenant, ActorKind: System, Actor: "audit", Action: actionRedact, Target: "tenant/" + tenant, Outcome: Success,
			Details: map[string]string{"entries": strconv.FormatInt(n, 10)},
		})
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("audit: redact tenant %q: %w", tenant, err)
	}
	return n, nil
}

// Checkpoint is the chain's head: publishing it outside the database (a
// ticket, another system's log) lets a later Verify or VerifyExport prove
// that nothing up to it was rolled back.
type Checkpoint struct {
	Seq  int64
	Hash []byte
	At   time.Time
}

// Head returns the chain's last entry's seq, hash and time.
func (l *Log) Head(ctx context.Context) (Checkpoint, error) {
	h, err := readHead(ctx, l.db, "")
	if err != nil {
		return Checkpoint{}, fmt.Errorf("audit: %w", err)
	}
	return Checkpoint{Seq: h.seq, Hash: h.hash, At: time.UnixMicro(h.atUS).UTC()}, nil
}

// The log's own actions.
const (
	actionPrune  = "audit.prune"
	actionRedact = "audit.redact"
)

var (
	actionRE     = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$`)
	detailsKeyRE = regexp.MustCompile(`^[a-z_]{1,40}$`)
	// secretKeyRE catches details named like a secret: an enrollment_token
	// is refused, a token_id is not.
	secretKeyRE = regexp.MustCompile(`(^|_)(password|passwd|secret|credentials?|token|api_key|private_key)$`)
)

// validate checks e's fields and normalises Remote.
func (e *Entry) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w entry: %s", ErrInvalid, fmt.Sprintf(format, args...))
	}
	if err := checkText("tenant", e.Tenant, maxTenant); err != nil {
		return err
	}
	switch e.ActorKind {
	case User, Admin, Support, Agent, System:
	default:
		return bad("actor kind %q: want user, admin, support, agent or system", e.ActorKind)
	}
	if e.Actor == "" {
		return bad("actor is empty: want an id or email")
	}
	if err := checkText("actor", e.Actor, maxActor); err != nil {
		return err
	}
	if len(e.Action) > maxAction || !actionRE.MatchString(e.Action) {
		return bad("action %q: want dotted lower-case words of at most %d bytes, like job.submit", e.Action, maxAction)
	}
	if err := checkText("target", e.Target, maxTarget); err != nil {
		return err
	}
	switch e.Outcome {
	case Success, Denied, Failed:
	default:
		return bad("outcome %q: want success, denied or failed", e.Outcome)
	}
	if e.Remote != "" {
		if ap, err := netip.ParseAddrPort(e.Remote); err == nil {
			e.Remote = ap.String()
		} else if a, err := netip.ParseAddr(e.Remote); err == nil {
			e.Remote = a.String()
		} else {
			return bad("remote %q: want ip:port, ip or empty", e.Remote)
		}
	}
	if len(e.Details) > MaxDetails {
		return bad("%d details: want at most %d", len(e.Details), MaxDetails)
	}
	for k, v := range e.Details {
		if !detailsKeyRE.MatchString(k) {
			return bad("details key %q: want [a-z_]{1,40}", k)
		}
		if secretKeyRE.MatchString(k) {
			return bad("details key %q names a secret: the audit log never holds secrets", k)
		}
		if err := checkText("details "+k, v, MaxDetailValue); err != nil {
			return err
		}
	}
	return nil
}

// checkText refuses a value that is too long, not UTF-8 or holds control
// characters.
func checkText(field, v string, limit int) error {
	switch {
	case len(v) > limit:
		return fmt.Errorf("%w entry: %s is %d bytes: want at most %d", ErrInvalid, field, len(v), limit)
	case !utf8.ValidString(v):
		return fmt.Errorf("%w entry: %s is not UTF-8", ErrInvalid, field)
	case strings.IndexFunc(v, unicode.IsControl) >= 0:
		return fmt.Errorf("%w entry: %s holds a control character", ErrInvalid, field)
	}
	return nil
}
