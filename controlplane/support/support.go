// Package support is just-in-time support access: a support engineer asks
// for access to one tenant, with a reason and a duration; a second admin —
// never the requester — approves; the grant ends by itself when its time is
// up, or earlier when an admin revokes it. Without an approved, unexpired
// grant, support sees nothing of the tenant: Access answers false, and the
// control plane's authorization refuses.
//
// Every step (request, approve, deny, revoke, expire, each access check
// that is refused) is reported to an audit hook as typed fields.
package support

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ferry-ai/ferry/controlplane/metadb"
)

// States of a request.
const (
	StatePending  = "pending"
	StateApproved = "approved"
	StateDenied   = "denied"
	StateRevoked  = "revoked"
	StateExpired  = "expired"
)

// Limits on a request.
const (
	MaxDuration  = 8 * time.Hour
	MinDuration  = 5 * time.Minute
	MaxReasonLen = 500
	// PendingFor is how long a request waits for approval before it
	// lapses.
	PendingFor = 24 * time.Hour
)

// Errors callers tell apart (wrapped with what and which).
var (
	ErrNotFound     = errors.New("support request not found")
	ErrSelfApproval = errors.New("the requester cannot approve their own request")
	ErrNotPending   = errors.New("the request is not pending")
	ErrInvalid      = errors.New("invalid support request")
)

// Request is a support engineer's request for access to a tenant, and its
// outcome.
type Request struct {
	ID        string    `json:"id"`
	Tenant    string    `json:"tenant"`
	Requester string    `json:"requester"`
	Reason    string    `json:"reason"`
	Duration  Duration  `json:"duration"`
	State     string    `json:"state"`
	Created   time.Time `json:"created"`
	// Approver is who approved, denied or revoked it.
	Approver string    `json:"approver,omitempty"`
	Decided  time.Time `json:"decided,omitzero"`
	// Expires is when an approved grant ends (Decided + Duration).
	Expires time.Time `json:"expires,omitzero"`
}

// Duration is a time.Duration that reads and writes JSON as "1h30m".
type Duration time.Duration

// MarshalText writes d as Go's duration text.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads Go's duration text.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("duration %q: %w", b, err)
	}
	*d = Duration(v)
	return nil
}

// Event is one step of a request, for the audit log.
type Event struct {
	Tenant  string
	Actor   string // who did it ("" for the system: expiry)
	Action  string // support.request, support.approve, support.deny, support.revoke, support.expire, support.access_denied
	Request string // the request ID
	Outcome string // success or denied
	Detail  string // why, when refused
}

// Service keeps support requests in the metadata database.
type Service struct {
	db      *metadb.DB
	now     func() time.Time
	onEvent func(context.Context, Event)
}

// Options configure a Service.
type Options struct {
	// Now is the clock (time.Now if nil).
	Now func() time.Time
	// OnEvent receives every step (the audit log); nil drops them.
	OnEvent func(context.Context, Event)
}

var migrations = []string{`
CREATE TABLE support_requests (
	id                  TEXT PRIMARY KEY,
	tenant              TEXT NOT NULL,
	requester           TEXT NOT NULL,
	reason              TEXT NOT NULL,
	duration_seconds    BIGINT NOT NULL,
	state               TEXT NOT NULL,
	created_unix_nanos  BIGINT NOT NULL,
	approver            TEXT NOT NULL DEFAULT '',
	decided_unix_nanos  BIGINT NOT NULL DEFAULT 0,
	expires_unix_nanos  BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX support_requests_by_tenant ON support_requests(tenant, state);
`}

// New migrates the database and returns the service.
func New(ctx context.Context, db *metadb.DB, o Options) (*Service, error) {
	if err := db.Migrate(ctx, "support", migrations); err != nil {
		return nil, err
	}
	s := &Service{db: db, now: o.Now, onEvent: o.OnEvent}
	if s.now == nil {
		s.now = time.Now
	}
	if s.onEvent == nil {
		s.onEvent = func(context.Context, Event) {}
	}
	return s, nil
}

// Request records a support engineer's request for access to tenant.
func (s *Service) Request(ctx context.Context, tenant, requester, reason string, d time.Duration) (Request, error) {
	reason = strings.TrimSpace(reason)
	switch {
	case tenant == "" || requester == "":
		return Request{}, fmt.Errorf("%w: tenant and requester are required", ErrInvalid)
	case reason == "":
		return Request{}, fmt.Errorf("%w: a reason is required", ErrInvalid)
	case len(reason) > MaxReasonLen:
		return Request{}, fmt.Errorf("%w: the reason is %d bytes, at most %d", ErrInvalid, len(reason), MaxReasonLen)
	case d < MinDuration || d > MaxDuration:
		return Request{}, fmt.Errorf("%w: duration %v: want %v to %v", ErrInvalid, d, MinDuration, MaxDuration)
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	r := Request{ID: "sr-" + hex.EncodeToString(b[:]), Tenant: tenant, Requester: requester, Reason: reason,
		Duration: Duration(d), State: StatePending, Created: s.now().UTC()}
	if _, err := s.db.Exec(ctx, `INSERT INTO support_requests (id, tenant, requester, reason, duration_seconds, state, created_unix_nanos) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		r.ID, r.Tenant, r.Requester, r.Reason, int64(d/time.Second), r.State, r.Created.UnixNano()); err != nil {
		return Request{}, fmt.Errorf("support: record request: %w", err)
	}
	s.onEvent(ctx, Event{Tenant: tenant, Actor: requester, Action: "support.request", Request: r.ID, Outcome: "success"})
	return r, nil
}

// Approve grants a pending request, from now for its duration. The
// approver must be another person than the requester.
func (s *Service) Approve(ctx context.Context, tenant, id, approver string) (Request, error) {
	return s.decide(ctx, tenant, id, approver, StateApproved, "support.approve")
}

// Deny refuses a pending request.
func (s *Service) Deny(ctx context.Context, tenant, id, approver string) (Request, error) {
	return s.decide(ctx, tenant, id, approver, StateDenied, "support.deny")
}

func (s *Service) decide(ctx context.Context, tenant, id, approver, state, action string) (Request, error) {
	var out Request
	err := s.db.InTx(ctx, func(tx *metadb.Tx) error {
		r, err := get(ctx, tx, tenant, id)
		if err != nil {
			return err
		}
		now := s.now().UTC()
		s.lapse(&r, now)
		switch {
		case r.State != StatePending:
			return fmt.Errorf("support request %s is %s: %w", id, r.State, ErrNotPending)
		case strings.EqualFold(approver, r.Requester):
			return fmt.Errorf("support request %s: %s: %w", id, approver, ErrSelfApproval)
		case approver == "":
			return fmt.Errorf("%w: an approver is required", ErrInvalid)
		}
		r.State, r.Approver, r.Decided = state, approver, now
		if state == StateApproved {
			r.Expires = now.Add(time.Duration(r.Duration))
		}
		if _, err := tx.Exec(ctx, `UPDATE support_requests SET state = ?, approver = ?, decided_unix_nanos = ?, expires_unix_nanos = ? WHERE id = ? AND state = ?`,
			r.State, r.Approver, r.Decided.UnixNano(), nanos(r.Expires), r.ID, StatePending); err != nil {
			return fmt.Errorf("support: %s: %w", action, err)
		}
		out = r
		return nil
	})
	if err != nil {
		outcome := "denied"
		s.onEvent(ctx, Event{Tenant: tenant, Actor: approver, Action: action, Request: id, Outcome: outcome, Detail: err.Error()})
		return Request{}, err
	}
	s.onEvent(ctx, Event{Tenant: tenant, Actor: approver, Action: action, Request: id, Outcome: "success"})
	return out, nil
}

// Revoke ends an approved grant (or withdraws a pending request) at once.
func (s *Service) Revoke(ctx context.Context, tenant, id, by string) (Request, error) {
	var out Request
	err := s.db.InTx(ctx, func(tx *metadb.Tx) error {
		r, err := get(ctx, tx, tenant, id)
		if err != nil {
			return err
		}
		now := s.now().UTC()
		s.lapse(&r, now)
		if r.State != StatePending && r.State != StateApproved {
			return fmt.Errorf("support request %s is %s: %w", id, r.State, ErrNotPending)
		}
		r.State, r.Approver, r.Decided = StateRevoked, by, now
		if _, err := tx.Exec(ctx, `UPDATE support_requests SET state = ?, approver = ?, decided_unix_nanos = ? WHERE id = ?`,
			r.State, r.Approver, now.UnixNano(), r.ID); err != nil {
			return fmt.Errorf("support: revoke: %w", err)
		}
		out = r
		return nil
	})
	if err != nil {
		return Request{}, err
	}
	s.onEvent(ctx, Event{Tenant: tenant, Actor: by, Action: "support.revoke", Request: id, Outcome: "success"})
	return out, nil
}

// Access reports whether support engineer who holds an approved,
// unexpired grant to tenant now, and which. A refusal is reported to the
// audit hook.
func (s *Service) Access(ctx context.Context, tenant, who string) (Request, bool, error) {
	now := s.now().UTC()
	rows, err := s.db.Query(ctx, `SELECT `+columns+` FROM support_requests WHERE tenant = ? AND requester = ? AND state = ? AND expires_unix_nanos > ? ORDER BY expires_unix_nanos DESC`,
		tenant, who, StateApproved, now.UnixNano())
	if err != nil {
		return Request{}, false, fmt.Errorf("support: access: %w", err)
	}
	defer rows.Close()
	if rows.Next() {
		r, err := scan(rows)
		if err != nil {
			return Request{}, false, err
		}
		return r, true, nil
	}
	if err := rows.Err(); err != nil {
		return Request{}, false, fmt.Errorf("support: access: %w", err)
	}
	s.onEvent(ctx, Event{Tenant: tenant, Actor: who, Action: "support.access_denied", Outcome: "denied", Detail: "no approved, unexpired grant"})
	return Request{}, false, nil
}

// List returns tenant's requests, newest first, with lapsed ones shown as
// expired.
func (s *Service) List(ctx context.Context, tenant string) ([]Request, error) {
	rows, err := s.db.Query(ctx, `SELECT `+columns+` FROM support_requests WHERE tenant = ? ORDER BY created_unix_nanos DESC`, tenant)
	if err != nil {
		return nil, fmt.Errorf("support: list: %w", err)
	}
	defer rows.Close()
	now := s.now().UTC()
	var out []Request
	for rows.Next() {
		r, err := scan(rows)
		if err != nil {
			return nil, err
		}
		s.lapse(&r, now)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("support: list: %w", err)
	}
	return out, nil
}

// Expire records as expired every grant whose time is up and every
// request that waited too long, reporting each to the audit hook; run it
// periodically (access never depends on it: Access checks the time).
func (s *Service) Expire(ctx context.Context) (int, error) {
	now := s.now().UTC()
	rows, err := s.db.Query(ctx, `SELECT `+columns+` FROM support_requests WHERE (state = ? AND expires_unix_nanos <= ?) OR (state = ? AND created_unix_nanos <= ?)`,
		StateApproved, now.UnixNano(), StatePending, now.Add(-PendingFor).UnixNano())
	if err != nil {
		return 0, fmt.Errorf("support: expire: %w", err)
	}
	var lapsed []Request
	for rows.Next() {
		r, err := scan(rows)
		if err != nil {
			rows.Close()
			return 0, err
		}
		lapsed = append(lapsed, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("support: expire: %w", err)
	}
	n := 0
	for _, r := range lapsed {
		res, err := s.db.Exec(ctx, `UPDATE support_requests SET state = ? WHERE id = ? AND state = ?`, StateExpired, r.ID, r.State)
		if err != nil {
			return n, fmt.Errorf("support: expire %s: %w", r.ID, err)
		}
		if k, _ := res.RowsAffected(); k == 1 {
			n++
			s.onEvent(ctx, Event{Tenant: r.Tenant, Action: "support.expire", Request: r.ID, Outcome: "success"})
		}
	}
	return n, nil
}

// lapse shows a grant past its time, or a request past PendingFor, as
// expired.
func (s *Service) lapse(r *Request, now time.Time) {
	switch {
	case r.State == StateApproved && !now.Before(r.Expires):
		r.State = StateExpired
	case r.State == StatePending && !now.Before(r.Created.Add(PendingFor)):
		r.State = StateExpired
	}
}

const columns = `id, tenant, requester, reason, duration_seconds, state, created_unix_nanos, approver, decided_unix_nanos, expires_unix_nanos`

type scanner interface{ Scan(...any) error }

func scan(sc scanner) (Request, error) {
	var r Request
	var secs, created, decided, expires int64
	if err := sc.Scan(&r.ID, &r.Tenant, &r.Requester, &r.Reason, &secs, &r.State, &created, &r.Approver, &decided, &expires); err != nil {
		return Request{}, fmt.Errorf("support: read request: %w", err)
	}
	r.Duration = Duration(time.Duration(secs) * time.Second)
	r.Created = time.Unix(0, created).UTC()
	if decided != 0 {
		r.Decided = time.Unix(0, decided).UTC()
	}
	if expires != 0 {
		r.Expires = time.Unix(0, expires).UTC()
	}
	return r, nil
}

func get(ctx context.Context, tx *metadb.Tx, tenant, id string) (Request, error) {
	r, err := scan(tx.QueryRow(ctx, `SELECT `+columns+` FROM support_requests WHERE id = ? AND tenant = ?`, id, tenant))
	if errors.Is(err, sql.ErrNoRows) {
		return Request{}, fmt.Errorf("support request %s in tenant %s: %w", id, tenant, ErrNotFound)
	}
	return r, err
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// DeleteTenant removes every request of tenant (account closure) and
// returns how many.
func (s *Service) DeleteTenant(ctx context.Context, tenant string) (int64, error) {
	res, err := s.db.Exec(ctx, `DELETE FROM support_requests WHERE tenant = ?`, tenant)
	if err != nil {
		return 0, fmt.Errorf("support: delete tenant %s: %w", tenant, err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}
