package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-ai/ferry/controlplane/metadb"
	"github.com/ferry-ai/ferry/controlplane/metadb/metadbtest"
)

var (
	t0      = time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	testKey = []byte("0123456789abcdef0123456789abcdef")
)

// stepClock returns t0 plus step more at each call.
func stepClock(step time.Duration) func() time.Time {
	var mu sync.Mutex
	now := t0
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(step)
		return now
	}
}

// sample is the i-th test entry: two tenants, users and an agent.
func sample(i int) Entry {
	e := Entry{
		Tenant: []string{"acme", "globex"}[i%2], ActorKind: User, Actor: fmt.Sprintf("user%d@acme.test", i),
		Action: "job.submit", Target: fmt.Sprintf("job/j-%d", i), Outcome: Success, Remote: "10.0.0.1:5000",
		Details: map[string]string{"query_id": fmt.Sprint("q", i), "model": "gbdt"},
	}
	if i%3 == 2 {
		e.ActorKind, e.Actor, e.Action, e.Outcome, e.Remote, e.Details = Agent, "agent-7", "job.report_metrics", Failed, "", nil
	}
	return e
}

// fill empties the audit tables of db (so cases can share one database)
// and opens a log with opts holding n sample entries.
func fill(t *testing.T, db *metadb.DB, opts *Options, n int) (*Log, []Entry) {
	t.Helper()
	ctx := context.Background()
	if v, _ := db.Version(ctx, component); v > 0 {
		mustExec(t, db, `DELETE FROM audit_subject`)
		mustExec(t, db, `DELETE FROM audit_log`)
		mustExec(t, db, `UPDATE audit_head SET seq = 0, hash = NULL, at_us = 0, anchor_seq = 0, anchor_hash = NULL, alg = '', key_check = NULL`)
	}
	l, err := Open(ctx, db, opts)
	if err != nil {
		t.Fatal(err)
	}
	var es []Entry
	for i := range n {
		e, err := l.Append(ctx, sample(i+1))
		if err != nil {
			t.Fatal(err)
		}
		es = append(es, e)
	}
	return l, es
}

func mustExec(t testing.TB, db *metadb.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(context.Background(), q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func mustVerify(t *testing.T, l *Log) Report {
	t.Helper()
	rep, err := l.Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// wantBreak checks a report names the expected first broken entry; kind
// "" wants an intact chain.
func wantBreak(t *testing.T, rep Report, kind Kind, seq int64, reason string) {
	t.Helper()
	t.Logf("report: %s", rep)
	if kind == "" {
		if !rep.OK() {
			t.Fatalf("want an intact chain, got %s", rep)
		}
		return
	}
	if rep.OK() {
		t.Fatalf("want entry %d %s, got an intact chain: %s", seq, kind, rep)
	}
	if b := rep.Broken; b.Kind != kind || b.Seq != seq || !strings.Contains(b.Reason, reason) {
		t.Fatalf("got %s; want entry %d %s with %q", b, seq, kind, reason)
	}
}

// rechain is an attacker with write access to the database: it recomputes
// the hashes from entry from on with key (nil: plain SHA-256) and moves the
// head, as a tool that does not hold the log's key would.
func rechain(t *testing.T, db *metadb.DB, key []byte, from int64) {
	t.Helper()
	ctx := context.Background()
	c := newChain(key)
	rows, err := db.Query(ctx, selectEntries+` WHERE l.seq >= ? ORDER BY l.seq`, from)
	if err != nil {
		t.Fatal(err)
	}
	var rs []record
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	rows.Close()
	var prev []byte
	if err := db.QueryRow(ctx, `SELECT hash FROM audit_log WHERE seq = ?`, from-1).Scan(&prev); err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		r.Prev = prev
		r.Hash = c.hash(&r)
		mustExec(t, db, `UPDATE audit_log SET prev = ?, hash = ? WHERE seq = ?`, r.Prev, r.Hash, r.Seq)
		prev = r.Hash
	}
	mustExec(t, db, `UPDATE audit_head SET hash = ? WHERE id = 1`, prev)
}

// swap exchanges the seq of two entries in both tables.
func swap(t *testing.T, db *metadb.DB, a, b int64) {
	for _, table := range []string{"audit_log", "audit_subject"} {
		mustExec(t, db, `UPDATE `+table+` SET seq = -1 WHERE seq = ?`, a)
		mustExec(t, db, `UPDATE `+table+` SET seq = ? WHERE seq = ?`, a, b)
		mustExec(t, db, `UPDATE `+table+` SET seq = ? WHERE seq = -1`, b)
	}
}

func deleteEntry(t *testing.T, db *metadb.DB, seq int64) {
	mustExec(t, db, `DELETE FROM audit_subject WHERE seq = ?`, seq)
	mustExec(t, db, `DELETE FROM audit_log WHERE seq = ?`, seq)
}

// TestAppendVerify: appended entries come back as given, stamped and
// chained, and the chain verifies.
func TestAppendVerify(t *testing.T) {
	metadbtest.Each(t, func(t *testing.T, db *metadb.DB) {
		ctx := context.Background()
		for _, key := range [][]byte{nil, testKey} {
			l, es := fill(t, db, &Options{Key: key, Clock: stepClock(time.Second)}, 7)
			rep := mustVerify(t, l)
			wantBreak(t, rep, "", 0, "")
			if rep.Entries != 7 || rep.First != 1 || rep.Last != 7 || !bytes.Equal(rep.Head, es[6].Hash) {
				t.Errorf("report %+v, want 7 entries from 1 to 7 ending in the last hash", rep)
			}
			if want := fmt.Sprintf("chain intact: 7 entries from seq 1 to 7 (%s)", newChain(key).alg); rep.String() != want {
				t.Errorf("report says %q, want %q", rep, want)
			}
			got, err := l.List(ctx, Filter{})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 7 {
				t.Fatalf("listed %d entries, want 7", len(got))
			}
			for i, e := range got {
				want := sample(i + 1)
				if e.Seq != int64(i+1) || !e.At.Equal(t0.Add(time.Duration(i+1)*time.Second)) || e.At.Location() != time.UTC ||
					e.Actor != want.Actor || e.Target != want.Target || e.Remote != want.Remote || fmt.Sprint(e.Details) != fmt.Sprint(want.Details) ||
					!bytes.Equal(e.Hash, es[i].Hash) || (i > 0 && !bytes.Equal(e.Prev, got[i-1].Hash)) {
					t.Errorf("entry %d: %+v, want %+v stamped and chained", i+1, e, want)
				}
			}
			if !bytes.Equal(got[0].Prev, genesis()) {
				t.Errorf("the first entry's prev is %x, want the genesis", got[0].Prev)
			}
			head, err := l.Head(ctx)
			if err != nil || head.Seq != 7 || !bytes.Equal(head.Hash, es[6].Hash) {
				t.Errorf("head %+v %v, want seq 7", head, err)
			}
		}
	})
}

// TestTamper changes the database behind the log's back, each case as an
// attacker with SQL access would, and checks Verify names the first broken
// entry and why.
func TestTamper(t *testing.T) {
	tests := []struct {
		name   string
		key    bool
		tamper func(t *testing.T, db *metadb.DB, es []Entry)
		kind   Kind // "" an intact chain (a limit, documented)
		seq    int64
		reason string
	}{
		{name: "edit a chained field", tamper: func(t *testing.T, db *metadb.DB, _ []Entry) {
			mustExec(t, db, `UPDATE audit_log SET outcome = 'denied' WHERE seq = 3`)
		}, kind: Edited, seq: 3, reason: "hash does not match its fields"},
		{name: "edit the tenant, keyed", key: true, tamper: func(t *testing.T, db *metadb.DB, _ []Entry) {
			mustExec(t, db, `UPDATE audit_log SET tenant = 'initech' WHERE seq = 4`)
		}, kind: Edited, seq: 4, reason: "hash does not match"},
		{name: "edit the actor", tamper: func(t *testing.T, db *metadb.DB, _ []Entry) {
			mustExec(t, db, `UPDATE audit_subject SET actor = 'mallory@evil.test' WHERE seq = 3`)
		}, kind: Edited, seq: 3, reason: "actor, target, remote address or details differ"},
		{name: "edit the details", tamper: func(t *testing.T, db *metadb.DB, _ []Entry) {
			mustExec(t, db, `UPDATE audit_subject SET details = '{"model":"gbdt","query_id":"q9"}' WHERE seq = 1`)
		}, kind: Edited, seq: 1, reason: "details differ"},
		{name: "details that are not JSON", tamper: func(t *testing.T, db *metadb.DB, _ []Entry) {
			mustExec(t, db, `UPDATE audit_subject SET details = '{' WHERE seq = 2`)
		}, kind: Edited, seq: 2, reason: "not a JSON map"},
		{name: "edit a hash", tamper: func(t *testing.T, db *metadb.DB, _ []Entry) {
			mustExec(t, db, `UPDATE audit_log SET hash = ? WHERE seq = 3`, bytes.Repeat([]byte{7}, 32))
		}, kind: Edited, seq: 3, reason: "hash does not match"},
		{name: "delete an entry in the middle", tamper: func(t *testing.T, db *metadb.DB, _ []Entry) {
			deleteEntry(t, db, 3)
		}, kind: Deleted, seq: 3, reason: "entry 3 is missing (the next is 4)"},
		{name: "delete two entries", tamper: func(t *testing.T, db *metadb.DB, _ []Entry) {
			deleteEntry(t, db, 3)
			deleteEntry(t, db, 4)
		}, kind: Deleted, seq: 3, reason: "entries 3 to 4 are missing"},
		{name: "delete an entry and renumber the rest", tamper: func(t *testing.T, db *metadb.DB, _ []Entry) {
			deleteEntry(t, db, 3)
			for s := 4; s <= 6; s++ {
				mustExec(t, db, `UPDATE audit_log SET seq = ? WHERE seq = ?`, s-1, s)
				mustExec(t, db, `UPDATE audit_subject SET seq = ? WHERE seq = ?`, s-1, s)
			}
			mustExec(t, db, `UPDATE audit_head SET seq = 5`)
		}, kind: Deleted, seq: 3, reason: "the entry it follows is not in the log"},
		{name: "delete the first entry", tamper: func(t *testing.T, db *metadb.DB, _ []Entry) {
			deleteEntry(t, db, 1)
		}, kind: Deleted, seq: 1, reason: "entry 1 is missing"},
		{name: "delete the last entry", tamper: func(t *testing.T, db *metadb.DB, _ []Entry) {
			deleteEntry(t, db, 6)
		}, kind: Truncated, seq: 6, reason: "the head records seq 6 but the last entry is 5"},
		{name: "delete every entry", tamper: func(t *testing.T, db *metadb.DB, _ []Entry) {
			mustExec(t, db, `DELETE FROM audit_log`)
		}, kind: Truncated, seq: 1, reason: "the head records seq 6 but no entry remains: entries 1 to 6 were deleted"},
		{name: "swap two entries' seq", tamper: func(t *testing.T, db *metadb.DB, _ []Entry) {
			swap(t, db, 3, 4)
		}, kind: Reordered, seq: 3, reason: "the entry it follows is stored at seq 4"},
		{name: "swap two entries and recompute the chain without a key", tamper: func(t *testing.T, db *metadb.DB, _ []Entry) {
			swap(t, db, 3, 4)
			rechain(t, db, nil, 3)
		}, kind: Reordered, seq: 4, reason: "its time 2025-03-01T09:00:03Z is before entry 3's (2025-03-01T09:00:04Z)"},
		{name: "swap two entries and recompute the chain, keyed", key: true, tamper: func(t *testing.T, db *metadb.DB, _ []Entry) {
			swap(t, db, 3, 4)
			rechain(t, db, nil, 3)
		}, kind: Edited, seq: 3, reason: "or the chain was recomputed without the key"},
		{name: "change a hash and recompute the rest, keyed", key: true, tamper: func(t *testing.T, db *metadb.DB, _ []Entry) {
			mustExec(t, db, `UPDATE audit_log SET outcome = 'success' WHERE seq = 3`)
			rechain(t, db, nil, 3)
		}, kind: Edited, seq: 3, reason: "recomputed without the key"},
		{name: "recompute with a guessed key", key: true, tamper: func(t *testing.T, db *metadb.DB, _ []Entry) {
			mustExec(t, db, `UPDATE audit_log SET outcome = 'success' WHERE seq = 3`)
			rechain(t, db, bytes.Repeat([]byte("k"), 32), 3)
		}, kind: Edited, seq: 3, reason: "recomputed without the key"},
		{name: "change a field and recompute the rest, unkeyed: not detectable", tamper: func(t *testing.T, db *metadb.DB, _ []Entry) {
			mustExec(t, db, `UPDATE audit_log SET outcome = 'success' WHERE seq = 3`)
			rechain(t, db, nil, 3)
		}},
		{name: "delete identifying fields outside RedactTenant", tamper: func(t *testing.T, db *metadb.DB, _ []Entry) {
			mustExec(t, db, `DELETE FROM audit_subject WHERE seq = 2`)
		}, kind: Edited, seq: 2, reason: `no later audit.redact entry for tenant "acme" covers it`},
		{name: "add an entry outside Append", tamper: func(t *testing.T, db *metadb.DB, es []Entry) {
			mustExec(t, db, `INSERT INTO audit_log (seq, at_us, tenant, actor_kind, action, outcome, subject, prev, hash) SELECT 7, at_us, tenant, actor_kind, action, outcome, subject, hash, hash FROM audit_log WHERE seq = 6`)
			mustExec(t, db, `INSERT INTO audit_subject (seq, salt, actor, target, remote, details) SELECT 7, salt, actor, target, remote, details FROM audit_subject WHERE seq = 6`)
			rechain(t, db, nil, 7)
			mustExec(t, db, `UPDATE audit_head SET hash = ?`, es[5].Hash)
		}, kind: Inserted, seq: 7, reason: "entry 7 was added outside Append, after the head (seq 6)"},
		{name: "move the head", tamper: func(t *testing.T, db *metadb.DB, _ []Entry) {
			mustExec(t, db, `UPDATE audit_head SET hash = ?`, bytes.Repeat([]byte{1}, 32))
		}, kind: Edited, seq: 6, reason: "not the one the head records"},
		{name: "delete the oldest entries and move the anchor", tamper: func(t *testing.T, db *metadb.DB, es []Entry) {
			deleteEntry(t, db, 1)
			deleteEntry(t, db, 2)
			mustExec(t, db, `UPDATE audit_head SET anchor_seq = 2, anchor_hash = ?`, es[1].Hash)
		}, kind: Deleted, seq: 1, reason: "entries 1 to 2 were deleted outside Prune"},
		{name: "insert an entry before the anchor", tamper: func(t *testing.T, db *metadb.DB, es []Entry) {
			mustExec(t, db, `UPDATE audit_head SET anchor_seq = 1, anchor_hash = ?`, es[0].Hash)
		}, kind: Inserted, seq: 1, reason: "at or before the anchor (seq 1)"},
	}
	metadbtest.Each(t, func(t *testing.T, db *metadb.DB) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				opts := &Options{Clock: stepClock(time.Second)}
				if tt.key {
					opts.Key = testKey
				}
				l, es := fill(t, db, opts, 6)
				wantBreak(t, mustVerify(t, l), "", 0, "")
				tt.tamper(t, db, es)
				wantBreak(t, mustVerify(t, l), tt.kind, tt.seq, tt.reason)
			})
		}
	})
}

// TestPrune: pruning deletes what is older than the retention, keeps the
// chain verifiable from its anchor and records itself; tampering after a
// prune is still found.
func TestPrune(t *testing.T) {
	metadbtest.Each(t, func(t *testing.T, db *metadb.DB) {
		ctx := context.Background()
		day := 24 * time.Hour
		// Entries 1 to 10 at t0 + 1 day … t0 + 10 days.
		l, _ := fill(t, db, &Options{Key: testKey, Retention: 5 * day, Clock: stepClock(day)}, 10)
		p, err := l.Prune(ctx, t0.Add(10*day+time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if p.Entries != 5 || p.ThroughSeq != 5 || p.Entry.Seq != 11 || p.Entry.Action != "audit.prune" ||
			p.Entry.Details["through_seq"] != "5" || p.Entry.Details["entries"] != "5" || p.Entry.Details["before"] != "2025-03-06T10:00:00Z" {
			t.Fatalf("pruned %+v, want entries 1 to 5 and an audit.prune entry 11", p)
		}
		rep := mustVerify(t, l)
		wantBreak(t, rep, "", 0, "")
		if rep.Entries != 6 || rep.First != 6 || rep.Last != 11 || rep.AnchorSeq != 5 {
			t.Errorf("after the prune: %s, want 6 entries from 6 to 11 after 5", rep)
		}
		if left, _ := l.List(ctx, Filter{}); len(left) != 6 || left[0].Seq != 6 {
			t.Errorf("listed %d entries after the prune, want 6 from seq 6", len(left))
		}
		// Nothing old enough: nothing happens.
		if p, err := l.Prune(ctx, t0.Add(10*day+time.Hour)); err != nil || p.Entries != 0 || p.Entry.Seq != 0 {
			t.Errorf("a second prune: %+v %v, want nothing", p, err)
		}
		// A second prune moves the anchor past the first prune's entry.
		p, err = l.Prune(ctx, t0.Add(20*day))
		if err != nil || p.Entries != 6 || p.ThroughSeq != 11 || p.Entry.Seq != 12 {
			t.Fatalf("the second prune: %+v %v, want entries 6 to 11", p, err)
		}
		rep = mustVerify(t, l)
		wantBreak(t, rep, "", 0, "")
		if rep.Entries != 1 || rep.AnchorSeq != 11 {
			t.Errorf("after the second prune: %s", rep)
		}

		t.Run("tamper after pruning", func(t *testing.T) {
			l, _ := fill(t, db, &Options{Retention: 5 * day, Clock: stepClock(day)}, 10)
			if _, err := l.Prune(ctx, t0.Add(10*day+time.Hour)); err != nil {
				t.Fatal(err)
			}
			mustExec(t, db, `UPDATE audit_subject SET target = 'job/j-999' WHERE seq = 7`)
			wantBreak(t, mustVerify(t, l), Edited, 7, "differ from what the chain committed to")
		})
		t.Run("delete more than was pruned", func(t *testing.T) {
			l, es := fill(t, db, &Options{Retention: 5 * day, Clock: stepClock(day)}, 10)
			if _, err := l.Prune(ctx, t0.Add(10*day+time.Hour)); err != nil {
				t.Fatal(err)
			}
			deleteEntry(t, db, 6)
			deleteEntry(t, db, 7)
			mustExec(t, db, `UPDATE audit_head SET anchor_seq = 7, anchor_hash = ?`, es[6].Hash)
			wantBreak(t, mustVerify(t, l), Deleted, 6, "entries 6 to 7 were deleted outside Prune: no audit.prune entry records the anchor (seq 7)")
		})
		t.Run("delete the prune's record", func(t *testing.T) {
			l, _ := fill(t, db, &Options{Retention: 5 * day, Clock: stepClock(day)}, 10)
			if _, err := l.Prune(ctx, t0.Add(10*day+time.Hour)); err != nil {
				t.Fatal(err)
			}
			mustExec(t, db, `DELETE FROM audit_subject WHERE seq = 11`)
			wantBreak(t, mustVerify(t, l), Edited, 11, "details of the log's own audit.prune entry were deleted")
		})
		t.Run("default retention is 365 days", func(t *testing.T) {
			l, _ := fill(t, db, &Options{Clock: stepClock(day)}, 3)
			if p, err := l.Prune(ctx, t0.Add(365*day)); err != nil || p.Entries != 0 {
				t.Errorf("pruned %+v %v within 365 days of the entries", p, err)
			}
			if p, err := l.Prune(ctx, t0.Add(367*day)); err != nil || p.Entries != 1 {
				t.Errorf("pruned %+v %v a year after entry 1, want it", p, err)
			}
		})
	})
}

// TestRedactTenant: closing a tenant's account deletes its entries'
// identifying fields; the chain still verifies, and only a redaction
// recorded in the chain excuses missing fields.
func TestRedactTenant(t *testing.T) {
	metadbtest.Each(t, func(t *testing.T, db *metadb.DB) {
		ctx := context.Background()
		l, _ := fill(t, db, &Options{Key: testKey, Clock: stepClock(time.Second)}, 6) // acme: 2, 4, 6
		n, err := l.RedactTenant(ctx, "acme")
		if err != nil || n != 3 {
			t.Fatalf("redacted %d %v, want 3", n, err)
		}
		after, err := l.Append(ctx, sample(8)) // acme again
		if err != nil {
			t.Fatal(err)
		}
		rep := mustVerify(t, l)
		wantBreak(t, rep, "", 0, "")
		if rep.Redacted != 3 || rep.Entries != 8 || !strings.Contains(rep.String(), "3 redacted") {
			t.Errorf("report %s, want 8 entries, 3 redacted", rep)
		}
		acme, err := l.List(ctx, Filter{Tenant: "acme"})
		if err != nil {
			t.Fatal(err)
		}
		if len(acme) != 5 {
			t.Fatalf("%d acme entries, want 5", len(acme))
		}
		for _, e := range acme[:3] {
			if !e.Redacted || e.Actor != "" || e.Target != "" || e.Remote != "" || e.Details != nil || e.Action == "" || e.Hash == nil {
				t.Errorf("entry %d after redaction: %+v, want no actor, target, remote or details", e.Seq, e)
			}
		}
		if r := acme[3]; r.Action != "audit.redact" || r.Redacted || r.Details["entries"] != "3" || r.Target != "tenant/acme" {
			t.Errorf("the redaction's entry: %+v", r)
		}
		if acme[4].Seq != after.Seq || acme[4].Redacted || acme[4].Actor == "" {
			t.Errorf("an entry appended after the redaction: %+v, want its actor", acme[4])
		}
		if globex, _ := l.List(ctx, Filter{Tenant: "globex"}); len(globex) != 3 || globex[0].Redacted {
			t.Errorf("another tenant's entries: %+v", globex)
		}
		var left int
		if err := db.QueryRow(ctx, `SELECT count(*) FROM audit_subject WHERE actor LIKE 'user%' AND seq IN (SELECT seq FROM audit_log WHERE tenant = 'acme') AND seq < 7`).Scan(&left); err != nil || left != 0 {
			t.Errorf("%d clear actors of acme remain (%v)", left, err)
		}
		// Deleting another tenant's fields is not a redaction.
		mustExec(t, db, `DELETE FROM audit_subject WHERE seq = 3`)
		wantBreak(t, mustVerify(t, l), Edited, 3, `no later audit.redact entry for tenant "globex"`)

		if _, err := l.RedactTenant(ctx, ""); !errors.Is(err, ErrInvalid) {
			t.Errorf("redacting the provider's entries: %v, want ErrInvalid", err)
		}
	})
}

// TestConcurrentAppend: appenders on several goroutines, and two Logs on
// two connection pools (two control planes), keep one valid chain.
func TestConcurrentAppend(t *testing.T) {
	metadbtest.Each(t, func(t *testing.T, db *metadb.DB) {
		ctx := context.Background()
		target := db.Where
		if db.Dialect == metadb.Postgres {
			var schema string
			if err := db.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
				t.Fatal(err)
			}
			target = metadbtest.PostgresURL() + "&search_path=" + schema
		}
		db2, err := metadb.Open(ctx, target)
		if err != nil {
			t.Fatal(err)
		}
		defer db2.Close()
		l1, err := Open(ctx, db, &Options{Key: testKey})
		if err != nil {
			t.Fatal(err)
		}
		l2, err := Open(ctx, db2, &Options{Key: testKey})
		if err != nil {
			t.Fatal(err)
		}
		const workers, each = 4, 15
		var wg sync.WaitGroup
		errs := make(chan error, 2*workers)
		for w := range 2 * workers {
			l := []*Log{l1, l2}[w%2]
			wg.Go(func() {
				for i := range each {
					if _, err := l.Append(ctx, sample(w*each+i)); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		rep := mustVerify(t, l2)
		wantBreak(t, rep, "", 0, "")
		if rep.Entries != 2*workers*each || rep.Last != 2*workers*each {
			t.Errorf("%s, want %d entries", rep, 2*workers*each)
		}
	})
}

// TestInvalid: an entry that could carry anything but small typed
// metadata is refused, naming the field.
func TestInvalid(t *testing.T) {
	many := map[string]string{}
	for i := range 17 {
		many["k"+strings.Repeat("x", i)] = "v"
	}
	tests := []struct {
		name string
		edit func(e *Entry)
		want string
	}{
		{"details key with a capital", func(e *Entry) { e.Details = map[string]string{"Row": "1"} }, `details key "Row": want [a-z_]{1,40}`},
		{"details key with a digit", func(e *Entry) { e.Details = map[string]string{"col1": "x"} }, `details key "col1"`},
		{"details key too long", func(e *Entry) { e.Details = map[string]string{strings.Repeat("a", 41): "x"} }, "want [a-z_]{1,40}"},
		{"details value too long", func(e *Entry) { e.Details = map[string]string{"rows": strings.Repeat("x", 257)} }, "details rows is 257 bytes: want at most 256"},
		{"too many details", func(e *Entry) { e.Details = many }, "17 details: want at most 16"},
		{"details value not UTF-8", func(e *Entry) { e.Details = map[string]string{"b": "\xff\xfe"} }, "details b is not UTF-8"},
		{"details value with a newline", func(e *Entry) { e.Details = map[string]string{"b": "a\nb"} }, "details b holds a control character"},
		{"a secret in the details", func(e *Entry) { e.Details = map[string]string{"enrollment_token": "x"} }, `details key "enrollment_token" names a secret`},
		{"a password in the details", func(e *Entry) { e.Details = map[string]string{"password": "x"} }, "never holds secrets"},
		{"unknown actor kind", func(e *Entry) { e.ActorKind = "robot" }, `actor kind "robot"`},
		{"no actor", func(e *Entry) { e.Actor = "" }, "actor is empty"},
		{"unknown outcome", func(e *Entry) { e.Outcome = "ok" }, `outcome "ok": want success, denied or failed`},
		{"action not dotted lower case", func(e *Entry) { e.Action = "Job Submit" }, `action "Job Submit"`},
		{"the log's own action", func(e *Entry) { e.Action = "audit.prune" }, "are the audit log's own"},
		{"remote not an address", func(e *Entry) { e.Remote = "example.com:443" }, `remote "example.com:443": want ip:port`},
		{"target too long", func(e *Entry) { e.Target = strings.Repeat("t", 257) }, "target is 257 bytes"},
	}
	metadbtest.Each(t, func(t *testing.T, db *metadb.DB) {
		l, _ := fill(t, db, nil, 0)
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				e := sample(1)
				tt.edit(&e)
				_, err := l.Append(context.Background(), e)
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("Append: %v, want ErrInvalid with %q", err, tt.want)
				}
			})
		}
		if rep := mustVerify(t, l); rep.Entries != 0 {
			t.Errorf("refused entries were stored: %s", rep)
		}
		// An id of a token is not a secret.
		if _, err := l.Append(context.Background(), Entry{ActorKind: Admin, Actor: "a", Action: "token.revoke", Outcome: Success,
			Details: map[string]string{"token_id": "tok-1"}}); err != nil {
			t.Errorf("token_id refused: %v", err)
		}
		// An IPv6 address is normalised.
		e := sample(1)
		e.Remote = "[2001:DB8::1]:443"
		if got, err := l.Append(context.Background(), e); err != nil || got.Remote != "[2001:db8::1]:443" {
			t.Errorf("IPv6 remote: %q %v", got.Remote, err)
		}
	})
}

// TestKeys: a log is always opened with the key it started with.
func TestKeys(t *testing.T) {
	metadbtest.Each(t, func(t *testing.T, db *metadb.DB) {
		ctx := context.Background()
		if _, err := Open(ctx, db, &Options{ReadOnly: true}); !errors.Is(err, ErrNoLog) {
			t.Errorf("read-only open of an empty database: %v, want ErrNoLog", err)
		}
		fill(t, db, &Options{Key: testKey}, 2)
		other := bytes.Repeat([]byte("z"), 32)
		for name, opts := range map[string]*Options{
			"no key":    nil,
			"other key": {Key: other},
			"short key": {Key: []byte("short")},
			"read-only": {ReadOnly: true, Key: other},
		} {
			if _, err := Open(ctx, db, opts); !errors.Is(err, ErrKey) {
				t.Errorf("%s: %v, want ErrKey", name, err)
			}
		}
		ro, err := Open(ctx, db, &Options{ReadOnly: true, Key: testKey})
		if err != nil {
			t.Fatal(err)
		}
		wantBreak(t, mustVerify(t, ro), "", 0, "")
		if _, err := ro.Append(ctx, sample(1)); !errors.Is(err, ErrReadOnly) {
			t.Errorf("append to a read-only log: %v", err)
		}
		fill(t, db, nil, 1)
		if _, err := Open(ctx, db, &Options{Key: testKey}); !errors.Is(err, ErrKey) || !strings.Contains(err.Error(), "not keyed") {
			t.Errorf("a key for an unkeyed log: %v", err)
		}
	})
}

// TestClockBackwards: a clock that goes back (another control plane's, or
// NTP) never makes time go backwards in the chain.
func TestClockBackwards(t *testing.T) {
	metadbtest.Each(t, func(t *testing.T, db *metadb.DB) {
		l, es := fill(t, db, &Options{Clock: stepClock(-time.Minute)}, 3)
		if !es[1].At.Equal(es[0].At) || !es[2].At.Equal(es[0].At) {
			t.Errorf("times %v %v %v, want the first one held", es[0].At, es[1].At, es[2].At)
		}
		wantBreak(t, mustVerify(t, l), "", 0, "")
	})
}

// TestList: the console's filters.
func TestList(t *testing.T) {
	metadbtest.Each(t, func(t *testing.T, db *metadb.DB) {
		ctx := context.Background()
		l, _ := fill(t, db, &Options{Clock: stepClock(time.Second)}, 9)
		e := sample(10)
		e.Action = "jobs.list"
		if _, err := l.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
		seqs := func(f Filter) string {
			t.Helper()
			es, err := l.List(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			var s []string
			for _, e := range es {
				s = append(s, fmt.Sprint(e.Seq))
			}
			return strings.Join(s, ",")
		}
		for _, tt := range []struct {
			f    Filter
			want string
		}{
			{Filter{}, "1,2,3,4,5,6,7,8,9,10"},
			{Filter{Tenant: "acme"}, "2,4,6,8,10"},
			{Filter{ActorKind: Agent}, "2,5,8"},
			{Filter{Actor: "user4@acme.test"}, "4"},
			{Filter{Action: "job."}, "1,2,3,4,5,6,7,8,9"},
			{Filter{Action: "job.report_"}, "2,5,8"},
			{Filter{Action: "job.report%"}, ""},
			{Filter{Action: "jobs"}, "10"},
			{Filter{Outcome: Failed}, "2,5,8"},
			{Filter{Since: t0.Add(3 * time.Second), Until: t0.Add(6 * time.Second)}, "3,4,5"},
			{Filter{AfterSeq: 7}, "8,9,10"},
			{Filter{Newest: true, Limit: 3}, "10,9,8"},
			{Filter{Newest: true, BeforeSeq: 8, Limit: 2}, "7,6"},
			{Filter{Tenant: "globex", Outcome: Success, AfterSeq: 2}, "3,7,9"},
		} {
			if got := seqs(tt.f); got != tt.want {
				t.Errorf("List(%+v) = %s, want %s", tt.f, got, tt.want)
			}
		}
		for _, f := range []Filter{{ActorKind: "robot"}, {Outcome: "ok"}, {Limit: -1}} {
			if _, err := l.List(ctx, f); !errors.Is(err, ErrInvalid) {
				t.Errorf("List(%+v): %v, want ErrInvalid", f, err)
			}
		}
	})
}

// BenchmarkAppend measures appends, one transaction each, on each
// database.
func BenchmarkAppend(b *testing.B) {
	for _, d := range []metadb.Dialect{metadb.SQLite, metadb.Postgres} {
		b.Run(d.String(), func(b *testing.B) {
			ctx := context.Background()
			l, err := Open(ctx, metadbtest.Open(b, d), &Options{Key: testKey})
			if err != nil {
				b.Fatal(err)
			}
			e := sample(1)
			b.ResetTimer()
			for b.Loop() {
				if _, err := l.Append(ctx, e); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
		})
	}
}
