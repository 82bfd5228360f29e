package audit

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ferry-ai/ferry/controlplane/metadb"
)

// Verify walks the whole chain in seq order, from the anchor to the head,
// and reports the first broken entry: one edited (its hash, or its
// commitment to actor, target, remote and details, does not match), deleted
// (a gap in seq, or an entry that follows one no longer in the log),
// reordered (an entry that follows one stored elsewhere, or a time going
// backwards), a truncated tail (the head row records a later seq), entries
// deleted before the anchor outside Prune, or identifying fields deleted
// outside RedactTenant. It reads one consistent snapshot; appends may go
// on meanwhile. An error is a failure to read, not a broken chain.
func (l *Log) Verify(ctx context.Context) (Report, error) {
	var rep Report
	var keyErr error
	err := l.snapshot(ctx, func(q txQuerier) error {
		h, err := readHead(ctx, q, "")
		if err != nil {
			return err
		}
		if h.alg != "" {
			if keyErr = l.chain.fits(h.alg, h.keyCheck); keyErr != nil {
				return nil // the head changed since Open
			}
		}
		c := newChecker(l.chain, h.anchorSeq, h.anchorHash, true, true)
		rows, err := q.Query(ctx, selectEntries+` ORDER BY l.seq`)
		if err != nil {
			return err
		}
		var brk *Break
		var prev []byte
		for rows.Next() {
			r, err := scanRecord(rows)
			if err != nil {
				rows.Close()
				return err
			}
			if brk = c.add(&r); brk != nil {
				prev = r.Prev
				break
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if brk != nil && brk.Kind == kindPrev {
			var at int64
			err := q.QueryRow(ctx, `SELECT seq FROM audit_log WHERE hash = ? ORDER BY seq LIMIT 1`, prev).Scan(&at)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			brk = prevBreak(brk.Seq, at, err == nil)
		}
		if brk == nil {
			brk = c.finish(h.seq, h.hash, true)
		}
		rep = c.rep
		rep.Broken = brk
		return nil
	})
	if err != nil {
		return Report{}, fmt.Errorf("audit: verify: %w", err)
	}
	if keyErr != nil {
		return Report{}, keyErr
	}
	return rep, nil
}

// txQuerier runs ? queries in a read-only transaction.
type txQuerier struct {
	tx *sql.Tx
	db *metadb.DB
}

func (q txQuerier) QueryRow(ctx context.Context, s string, args ...any) *sql.Row {
	return q.tx.QueryRowContext(ctx, q.db.Rebind(s), args...)
}

func (q txQuerier) Query(ctx context.Context, s string, args ...any) (*sql.Rows, error) {
	return q.tx.QueryContext(ctx, q.db.Rebind(s), args...)
}

// snapshot runs fn in a read-only transaction that sees one state of the
// database (PostgreSQL: repeatable read; SQLite: a deferred transaction,
// which does not block appenders in WAL mode).
func (l *Log) snapshot(ctx context.Context, fn func(q txQuerier) error) error {
	opts := &sql.TxOptions{ReadOnly: true}
	if l.db.Dialect == metadb.Postgres {
		opts.Isolation = sql.LevelRepeatableRead
	}
	tx, err := l.db.BeginTx(ctx, opts)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // read-only
	return fn(txQuerier{tx: tx, db: l.db})
}

// selectEntries reads entries with their clear identifying fields (NULL
// when redacted).
const selectEntries = `SELECT l.seq, l.at_us, l.tenant, l.actor_kind, l.action, l.outcome, l.subject, l.prev, l.hash,
	s.salt, s.actor, s.target, s.remote, s.details
	FROM audit_log l LEFT JOIN audit_subject s ON s.seq = l.seq`

// scanRecord reads one row of selectEntries. Details that are not a JSON
// map of strings are marked for the checker (someone wrote them), not an
// error.
func scanRecord(rows *sql.Rows) (record, error) {
	var r record
	var atUS int64
	var actorKind, outcome string
	var actor, target, remote, details sql.NullString
	if err := rows.Scan(&r.Seq, &atUS, &r.Tenant, &actorKind, &r.Action, &outcome, &r.subject, &r.Prev, &r.Hash,
		&r.salt, &actor, &target, &remote, &details); err != nil {
		return r, err
	}
	r.At = time.UnixMicro(atUS).UTC()
	r.ActorKind, r.Outcome = ActorKind(actorKind), Outcome(outcome)
	if !details.Valid {
		r.Redacted = true
		return r, nil
	}
	r.clear = true
	r.Actor, r.Target, r.Remote = actor.String, target.String, remote.String
	if err := json.Unmarshal([]byte(details.String), &r.Details); err != nil {
		r.badDetails = true
	}
	if len(r.Details) == 0 {
		r.Details = nil
	}
	return r, nil
}
