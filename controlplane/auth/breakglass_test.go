package auth_test

import (
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/ferry-ai/ferry/controlplane/auth"
	"github.com/ferry-ai/ferry/controlplane/metadb"
	"github.com/ferry-ai/ferry/controlplane/metadb/metadbtest"
)

// cheapHash is an argon2id PHC string of password with small parameters
// (made here, not by the package: any conforming PHC string verifies).
func cheapHash(password string) string {
	salt := []byte("0123456789abcdef")
	key := argon2.IDKey([]byte(password), salt, 1, 1024, 1, 32)
	enc := base64.RawStdEncoding
	return "$argon2id$v=19$m=1024,t=1,p=1$" + enc.EncodeToString(salt) + "$" + enc.EncodeToString(key)
}

func withBreakGlass(cfg *auth.Config) {
	cfg.BreakGlass = auth.BreakGlassConfig{Enabled: true, Tenant: tenant, Username: "root-ops", PasswordHash: cheapHash(breakGlassPW)}
}

// breakGlass posts credentials as a form (or JSON) and returns the status.
func (h *harness) breakGlass(b *http.Client, user, password string, asJSON bool) int {
	h.t.Helper()
	var body io.Reader
	ct := "application/x-www-form-urlencoded"
	if asJSON {
		ct = "application/json"
		body = strings.NewReader(`{"username":"` + user + `","password":"` + password + `"}`)
	} else {
		body = strings.NewReader(url.Values{"username": {user}, "password": {password}}.Encode())
	}
	resp, err := b.Post(h.srv.URL+auth.BreakGlassPath, ct, body)
	if err != nil {
		h.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestBreakGlass: disabled, the endpoint is not there; enabled, wrong
// credentials are refused, five tries a minute per address are allowed
// (the right password too is refused past them), the right password gives
// an admin session of at most an hour, and every try is an event.
func TestBreakGlass(t *testing.T) {
	metadbtest.Each(t, func(t *testing.T, db *metadb.DB) {
		t.Run("disabled", func(t *testing.T) {
			h := newHarness(t, db, nil)
			if status := h.breakGlass(h.browser(), "root-ops", breakGlassPW, false); status != http.StatusNotFound {
				t.Fatalf("disabled break-glass: %d, want 404", status)
			}
			if len(h.events.all()) != 0 {
				t.Fatalf("events: %+v", h.events.all())
			}
		})
		t.Run("enabled", func(t *testing.T) {
			h := newHarness(t, db, withBreakGlass)
			b := h.browser()
			for i, tc := range []struct {
				user, password string
				json           bool
				want           int
				outcome, actor string
			}{
				{"root-ops", "wrong password", false, http.StatusUnauthorized, auth.OutcomeFailure, "root-ops"},
				{"someone", breakGlassPW, false, http.StatusUnauthorized, auth.OutcomeFailure, ""}, // an unknown name is not recorded
				{"root-ops", breakGlassPW, false, http.StatusOK, auth.OutcomeSuccess, "root-ops"},
				{"root-ops", breakGlassPW, true, http.StatusOK, auth.OutcomeSuccess, "root-ops"},
				{"root-ops", "wrong again", true, http.StatusUnauthorized, auth.OutcomeFailure, "root-ops"},
				{"root-ops", breakGlassPW, false, http.StatusTooManyRequests, auth.OutcomeRateLimited, ""}, // sixth try in the minute
			} {
				if got := h.breakGlass(b, tc.user, tc.password, tc.json); got != tc.want {
					t.Fatalf("try %d: %d, want %d", i+1, got, tc.want)
				}
				ev, _ := h.events.last(auth.ActionBreakGlass)
				if ev.Outcome != tc.outcome || ev.Actor != tc.actor || ev.Tenant != tenant || ev.Remote != "127.0.0.1" {
					t.Fatalf("try %d: event %+v", i+1, ev)
				}
			}
			if n := len(h.events.all()); n != 6 {
				t.Fatalf("%d events for 6 tries", n)
			}
			p, status := h.whoami(b, nil)
			if status != http.StatusOK || p.Via != auth.ViaBreakGlass || p.Role != auth.Admin || p.UserID != auth.BreakGlassUserID || p.Tenant != tenant {
				t.Fatalf("break-glass session: %d %+v", status, p)
			}
			if status, _ := h.do(b, http.MethodDelete, "/api/users/x", h.csrf(b)); status != http.StatusOK {
				t.Fatalf("break-glass admin refused an admin action: %d", status)
			}
			// A minute later the address may try again.
			h.clock.Advance(auth.BreakGlassWindow + time.Second)
			b2 := h.browser()
			if got := h.breakGlass(b2, "root-ops", breakGlassPW, false); got != http.StatusOK {
				t.Fatalf("after the window: %d", got)
			}
			// The session lasts an hour at most, used or not.
			for range 2 {
				h.clock.Advance(25 * time.Minute)
				if _, status := h.whoami(b2, nil); status != http.StatusOK {
					t.Fatalf("break-glass session ended early: %d", status)
				}
			}
			h.clock.Advance(15 * time.Minute)
			if _, status := h.whoami(b2, nil); status != http.StatusUnauthorized {
				t.Fatalf("break-glass session past an hour: %d", status)
			}
		})
	})
}
