package auth_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ferry-ai/ferry/controlplane/auth"
	"github.com/ferry-ai/ferry/controlplane/metadb"
	"github.com/ferry-ai/ferry/controlplane/metadb/metadbtest"
)

// TestSignIn signs users in through the real provider: their groups map to
// the highest role, or to none (refused, no user created); the session
// cookie works and is HttpOnly, Secure and SameSite=Lax; a second sign-in
// updates the same user's role from their new groups.
func TestSignIn(t *testing.T) {
	metadbtest.Each(t, func(t *testing.T, db *metadb.DB) {
		h := newHarness(t, db, nil)
		for _, tc := range []struct {
			user   string
			role   auth.Role // "" = refused
			reason string
		}{
			{user: "erin", role: auth.Editor},
			{user: "vic", role: auth.Viewer},
			{user: "ann", role: auth.Admin}, // viewers and admins: the highest wins
			{user: "nora", reason: "no mapped group"},
			{user: "gus", reason: "no mapped group"}, // no groups claim at all
		} {
			t.Run(tc.user, func(t *testing.T) {
				b := h.browser()
				cb, err := h.idp.Authorize(context.Background(), b, h.srv.URL+auth.LoginPath, tc.user)
				if err != nil {
					t.Fatal(err)
				}
				resp, err := b.Get(cb.String())
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if tc.role == "" {
					if resp.StatusCode != http.StatusForbidden {
						t.Fatalf("%s: got %d, want 403", tc.user, resp.StatusCode)
					}
					ev, _ := h.events.last(auth.ActionSignInFailed)
					if !strings.Contains(ev.Reason, tc.reason) || ev.Actor != h.idp.Subject(tc.user) || ev.Tenant != tenant {
						t.Fatalf("event %+v, want reason %q", ev, tc.reason)
					}
					if _, status := h.whoami(b, nil); status != http.StatusUnauthorized {
						t.Fatalf("a refused user got %d from the API", status)
					}
					return
				}
				if resp.StatusCode != http.StatusSeeOther {
					t.Fatalf("%s: got %d, want 303", tc.user, resp.StatusCode)
				}
				for _, c := range resp.Cookies() {
					if c.Name == auth.SessionCookie && (!c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteLaxMode || c.Path != "/") {
						t.Fatalf("session cookie attributes: %+v", c)
					}
				}
				p, status := h.whoami(b, nil)
				if status != http.StatusOK || p.Role != tc.role || p.Via != auth.ViaSession || p.Tenant != tenant || p.Email != tc.user+"@acme.example" {
					t.Fatalf("%s: whoami %d %+v, want role %s", tc.user, status, p, tc.role)
				}
				ev, _ := h.events.last(auth.ActionSignIn)
				if ev.Actor != p.UserID || ev.Outcome != auth.OutcomeSuccess || ev.Remote != "127.0.0.1" {
					t.Fatalf("event %+v", ev)
				}
			})
		}
		users, err := h.svc.ListUsers(context.Background(), tenant)
		if err != nil {
			t.Fatal(err)
		}
		if len(users) != 3 {
			t.Fatalf("%d users provisioned, want 3 (erin, vic, ann): %+v", len(users), users)
		}
		// erin's groups change at the provider: her next sign-in follows.
		if err := h.idp.SetGroups("erin", "ferry-viewers"); err != nil {
			t.Fatal(err)
		}
		before, _ := h.whoami(h.signIn("erin"), nil)
		if before.Role != auth.Viewer {
			t.Fatalf("after the group change erin is %s", before.Role)
		}
		u, err := h.svc.GetUser(context.Background(), tenant, before.UserID)
		if err != nil {
			t.Fatal(err)
		}
		if u.Subject != h.idp.Subject("erin") || u.Role != auth.Viewer || !u.Active || u.DisplayName != "Erin Editor" {
			t.Fatalf("user %+v", u)
		}
		if users2, _ := h.svc.ListUsers(context.Background(), tenant); len(users2) != 3 {
			t.Fatalf("a second sign-in made a second user: %d", len(users2))
		}
	})
}

// TestCallbackRefusals: a sign-in whose answer does not hold is refused,
// with an event saying why, and no session: tampered, replayed or foreign
// state, no flow cookie, a flow too old, the provider's error, a wrong
// nonce, and an ID token (really signed by the provider) issued to another
// client.
func TestCallbackRefusals(t *testing.T) {
	metadbtest.Each(t, func(t *testing.T, db *metadb.DB) {
		h := newHarness(t, db, nil)
		ctx := context.Background()
		authorize := func(b *http.Client, start *url.URL) *url.URL {
			t.Helper()
			cb, err := h.idp.Authorize(ctx, b, start.String(), "erin")
			if err != nil {
				t.Fatal(err)
			}
			return cb
		}
		withQuery := func(u *url.URL, k, v string) *url.URL {
			c := *u
			q := c.Query()
			q.Set(k, v)
			c.RawQuery = q.Encode()
			return &c
		}
		for _, tc := range []struct {
			name   string
			run    func(t *testing.T) (status int, b *http.Client)
			status int
			reason string
		}{
			{"tampered state", func(t *testing.T) (int, *http.Client) {
				b := h.browser()
				cb := authorize(b, h.loginURL(b))
				s, _ := h.callback(b, withQuery(cb, "state", cb.Query().Get("state")+"x"))
				return s, b
			}, http.StatusBadRequest, "unknown or used state"},
			{"replayed state", func(t *testing.T) (int, *http.Client) {
				b := h.browser()
				cb := authorize(b, h.loginURL(b))
				if s, body := h.callback(b, cb); s != http.StatusSeeOther {
					t.Fatalf("first use: %d %s", s, body)
				}
				b2 := h.browser()
				h.loginURL(b2) // a flow cookie of its own
				s, _ := h.callback(b2, cb)
				return s, b2
			}, http.StatusBadRequest, "unknown or used state"},
			{"state of another browser", func(t *testing.T) (int, *http.Client) {
				victim, attacker := h.browser(), h.browser()
				h.loginURL(victim)
				cb := authorize(attacker, h.loginURL(attacker))
				s, _ := h.callback(victim, cb) // login CSRF: the attacker's code in the victim's browser
				return s, victim
			}, http.StatusBadRequest, "not bound"},
			{"no flow cookie", func(t *testing.T) (int, *http.Client) {
				b := h.browser()
				cb := authorize(b, h.loginURL(b))
				fresh := h.browser()
				s, _ := h.callback(fresh, cb)
				return s, fresh
			}, http.StatusBadRequest, "no flow cookie"},
			{"flow expired", func(t *testing.T) (int, *http.Client) {
				b := h.browser()
				cb := authorize(b, h.loginURL(b))
				h.clock.Advance(auth.FlowTTL + time.Second)
				defer h.clock.Advance(-auth.FlowTTL - time.Second)
				s, _ := h.callback(b, cb)
				return s, b
			}, http.StatusBadRequest, "flow expired"},
			{"provider error", func(t *testing.T) (int, *http.Client) {
				b := h.browser()
				cb := authorize(b, h.loginURL(b))
				cb = withQuery(cb, "error", "access_denied")
				s, _ := h.callback(b, cb)
				return s, b
			}, http.StatusForbidden, "access_denied"},
			{"wrong nonce", func(t *testing.T) (int, *http.Client) {
				b := h.browser()
				start := withQuery(h.loginURL(b), "nonce", "an-attackers-nonce")
				s, _ := h.callback(b, authorize(b, start))
				return s, b
			}, http.StatusForbidden, "nonce"},
			{"ID token for another audience", func(t *testing.T) (int, *http.Client) {
				// The provider issues the code and the ID token to the other
				// client (right issuer, signature and nonce); the control
				// plane must refuse the audience.
				b := h.browser()
				start := withQuery(h.loginURL(b), "client_id", otherClient)
				cb := authorize(b, start)
				h.rw.asOther.Store(true)
				defer h.rw.asOther.Store(false)
				s, _ := h.callback(b, cb)
				return s, b
			}, http.StatusForbidden, "audience"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				failed := h.events.count(auth.ActionSignInFailed, auth.OutcomeFailure)
				status, b := tc.run(t)
				if status != tc.status {
					t.Fatalf("got %d, want %d", status, tc.status)
				}
				ev, _ := h.events.last(auth.ActionSignInFailed)
				if h.events.count(auth.ActionSignInFailed, auth.OutcomeFailure) != failed+1 || !strings.Contains(ev.Reason, tc.reason) {
					t.Fatalf("event %+v, want reason %q", ev, tc.reason)
				}
				if _, status := h.whoami(b, nil); status != http.StatusUnauthorized {
					t.Fatalf("refused sign-in left a session: %d", status)
				}
			})
		}
		// After all that, a plain sign-in works.
		if _, status := h.whoami(h.signIn("erin"), nil); status != http.StatusOK {
			t.Fatal(status)
		}
	})
}

// TestSessionExpiry moves the injected clock: a session unused for the
// idle TTL ends; one used all along ends at the absolute TTL.
func TestSessionExpiry(t *testing.T) {
	metadbtest.Each(t, func(t *testing.T, db *metadb.DB) {
		h := newHarness(t, db, nil)
		t.Run("idle", func(t *testing.T) {
			h.clock.Reset()
			b := h.signIn("erin")
			for range 3 { // used every 29 minutes: alive
				h.clock.Advance(29 * time.Minute)
				if _, status := h.whoami(b, nil); status != http.StatusOK {
					t.Fatalf("active session refused: %d", status)
				}
			}
			h.clock.Advance(auth.DefaultSessionIdleTTL + time.Second)
			if _, status := h.whoami(b, nil); status != http.StatusUnauthorized {
				t.Fatalf("idle session: %d, want 401", status)
			}
		})
		t.Run("absolute", func(t *testing.T) {
			h.clock.Reset()
			b := h.signIn("erin")
			var used time.Duration
			for used+25*time.Minute < auth.DefaultSessionAbsoluteTTL {
				h.clock.Advance(25 * time.Minute)
				used += 25 * time.Minute
				if _, status := h.whoami(b, nil); status != http.StatusOK {
					t.Fatalf("session refused after %v: %d", used, status)
				}
			}
			h.clock.Advance(25 * time.Minute)
			if _, status := h.whoami(b, nil); status != http.StatusUnauthorized {
				t.Fatalf("session past its absolute TTL: %d, want 401", status)
			}
		})
	})
}

// TestLogout: logout needs the CSRF token, then ends the session for good
// (the old cookie value, replayed, is refused).
func TestLogout(t *testing.T) {
	metadbtest.Each(t, func(t *testing.T, db *metadb.DB) {
		h := newHarness(t, db, nil)
		b := h.signIn("erin")
		sid := h.cookie(b, auth.SessionCookie)
		if status, _ := h.do(b, http.MethodPost, auth.LogoutPath, nil); status != http.StatusForbidden {
			t.Fatalf("logout without the CSRF token: %d, want 403", status)
		}
		if _, status := h.whoami(b, nil); status != http.StatusOK {
			t.Fatal("a refused logout ended the session")
		}
		if status, body := h.do(b, http.MethodPost, auth.LogoutPath, h.csrf(b)); status != http.StatusOK || !strings.Contains(body, `"signed_out":true`) {
			t.Fatalf("logout: %d %s", status, body)
		}
		if _, status := h.whoami(b, nil); status != http.StatusUnauthorized {
			t.Fatalf("after logout: %d", status)
		}
		replay := h.browser()
		if _, status := h.whoami(replay, map[string]string{"Cookie": auth.SessionCookie + "=" + sid}); status != http.StatusUnauthorized {
			t.Fatalf("the old session ID still works: %d", status)
		}
		if ev, ok := h.events.last(auth.ActionSignOut); !ok || ev.Outcome != auth.OutcomeSuccess {
			t.Fatalf("no sign-out event: %+v", ev)
		}
	})
}
