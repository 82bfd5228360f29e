package support_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-ai/ferry/controlplane/metadb"
	"github.com/ferry-ai/ferry/controlplane/metadb/metadbtest"
	"github.com/ferry-ai/ferry/controlplane/support"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// events records the audit hook's events.
type events struct {
	mu  sync.Mutex
	all []support.Event
}

func (e *events) add(_ context.Context, ev support.Event) {
	e.mu.Lock()
	e.all = append(e.all, ev)
	e.mu.Unlock()
}
func (e *events) actions() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, ev := range e.all {
		out = append(out, ev.Action+":"+ev.Outcome)
	}
	return out
}

func newService(t *testing.T, db *metadb.DB) (*support.Service, *clock, *events) {
	t.Helper()
	c := &clock{t: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
	ev := &events{}
	s, err := support.New(context.Background(), db, support.Options{Now: c.now, OnEvent: ev.add})
	if err != nil {
		t.Fatal(err)
	}
	return s, c, ev
}

// TestGrantLifecycle: a request needs a second admin; the grant opens the
// tenant to its requester only, for its duration; it lapses by itself,
// and a revocation ends it at once; every step is audited.
func TestGrantLifecycle(t *testing.T) {
	metadbtest.Each(t, func(t *testing.T, db *metadb.DB) {
		ctx := context.Background()
		s, clk, ev := newService(t, db)
		if _, ok, err := s.Access(ctx, "acme", "sam@ferry"); ok || err != nil {
			t.Fatalf("support sees the tenant before any request: %v %v", ok, err)
		}
		r, err := s.Request(ctx, "acme", "sam@ferry", "ticket 4711: job fails at writeback", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := s.Access(ctx, "acme", "sam@ferry"); ok {
			t.Fatal("a pending request gives access")
		}
		if _, err := s.Approve(ctx, "acme", r.ID, "SAM@ferry"); !errors.Is(err, support.ErrSelfApproval) {
			t.Fatalf("self-approval: %v", err)
		}
		if _, err := s.Approve(ctx, "globex", r.ID, "ada@ferry"); !errors.Is(err, support.ErrNotFound) {
			t.Fatalf("approval from another tenant: %v", err)
		}
		got, err := s.Approve(ctx, "acme", r.ID, "ada@ferry")
		if err != nil {
			t.Fatal(err)
		}
		if got.State != support.StateApproved || !got.Expires.Equal(clk.now().Add(time.Hour)) || got.Approver != "ada@ferry" {
			t.Fatalf("approved request: %+v", got)
		}
		if _, err := s.Approve(ctx, "acme", r.ID, "bob@ferry"); !errors.Is(err, support.ErrNotPending) {
			t.Errorf("approving twice: %v", err)
		}
		for _, tc := range []struct {
			tenant, who string
			want        bool
		}{
			{"acme", "sam@ferry", true},
			{"acme", "eve@ferry", false},   // another engineer
			{"globex", "sam@ferry", false}, // another tenant
		} {
			if _, ok, err := s.Access(ctx, tc.tenant, tc.who); ok != tc.want || err != nil {
				t.Errorf("Access(%s, %s) = %v, %v; want %v", tc.tenant, tc.who, ok, err, tc.want)
			}
		}
		// The grant lapses by itself.
		clk.add(59 * time.Minute)
		if _, ok, _ := s.Access(ctx, "acme", "sam@ferry"); !ok {
			t.Fatal("the grant ended early")
		}
		clk.add(time.Minute)
		if _, ok, _ := s.Access(ctx, "acme", "sam@ferry"); ok {
			t.Fatal("the grant outlived its hour")
		}
		if list, _ := s.List(ctx, "acme"); len(list) != 1 || list[0].State != support.StateExpired {
			t.Errorf("listed %+v, want one expired", list)
		}
		if n, err := s.Expire(ctx); n != 1 || err != nil {
			t.Errorf("Expire = %d, %v; want 1", n, err)
		}
		if n, _ := s.Expire(ctx); n != 0 {
			t.Errorf("expired twice")
		}
		// A revocation ends a grant at once.
		r2, _ := s.Request(ctx, "acme", "sam@ferry", "follow-up", 2*time.Hour)
		if _, err := s.Approve(ctx, "acme", r2.ID, "ada@ferry"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Revoke(ctx, "acme", r2.ID, "ada@ferry"); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := s.Access(ctx, "acme", "sam@ferry"); ok {
			t.Fatal("a revoked grant still gives access")
		}
		// A denied request gives nothing; a request left pending lapses.
		r3, _ := s.Request(ctx, "acme", "sam@ferry", "again", time.Hour)
		if _, err := s.Deny(ctx, "acme", r3.ID, "ada@ferry"); err != nil {
			t.Fatal(err)
		}
		r4, _ := s.Request(ctx, "acme", "sam@ferry", "and again", time.Hour)
		clk.add(support.PendingFor)
		if _, err := s.Approve(ctx, "acme", r4.ID, "ada@ferry"); !errors.Is(err, support.ErrNotPending) {
			t.Errorf("approving a lapsed request: %v", err)
		}
		if _, ok, _ := s.Access(ctx, "acme", "sam@ferry"); ok {
			t.Fatal("access after denial and lapse")
		}
		want := strings.Join([]string{
			"support.access_denied:denied", "support.request:success", "support.access_denied:denied",
			"support.approve:denied", "support.approve:denied", "support.approve:success", "support.approve:denied",
			"support.access_denied:denied", "support.access_denied:denied", "support.access_denied:denied",
			"support.expire:success",
			"support.request:success", "support.approve:success", "support.revoke:success", "support.access_denied:denied",
			"support.request:success", "support.deny:success", "support.request:success", "support.approve:denied",
			"support.access_denied:denied",
		}, " ")
		if got := strings.Join(ev.actions(), " "); got != want {
			t.Errorf("audit events:\n got %s\nwant %s", got, want)
		}
		if n, err := s.DeleteTenant(ctx, "acme"); n != 4 || err != nil {
			t.Errorf("DeleteTenant = %d, %v; want 4", n, err)
		}
		if list, _ := s.List(ctx, "acme"); len(list) != 0 {
			t.Errorf("%d requests left after the tenant's deletion", len(list))
		}
	})
}

func TestRequestValidation(t *testing.T) {
	s, _, _ := newService(t, metadbtest.Open(t, metadb.SQLite))
	ctx := context.Background()
	for _, tc := range []struct {
		name, tenant, who, reason string
		d                         time.Duration
		want                      string
	}{
		{"no reason", "acme", "sam", "  ", time.Hour, "reason is required"},
		{"long reason", "acme", "sam", strings.Repeat("x", support.MaxReasonLen+1), time.Hour, "at most"},
		{"too long", "acme", "sam", "r", support.MaxDuration + time.Minute, "duration"},
		{"too short", "acme", "sam", "r", time.Minute, "duration"},
		{"no tenant", "", "sam", "r", time.Hour, "tenant"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Request(ctx, tc.tenant, tc.who, tc.reason, tc.d)
			if !errors.Is(err, support.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%v, want ErrInvalid naming %q", err, tc.want)
			}
		})
	}
}
