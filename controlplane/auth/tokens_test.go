package auth_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ferry-ai/ferry/controlplane/auth"
	"github.com/ferry-ai/ferry/controlplane/metadb"
	"github.com/ferry-ai/ferry/controlplane/metadb/metadbtest"
)

// TestAPITokens: a token is made once (ferry_ + base32), works as a
// bearer with its role (no CSRF token needed), never exceeds its user's
// role (neither when made nor after the user's role drops), lists without
// its secret, and stops working when revoked or expired.
func TestAPITokens(t *testing.T) {
	metadbtest.Each(t, func(t *testing.T, db *metadb.DB) {
		h := newHarness(t, db, nil)
		ctx := context.Background()
		erin, _ := h.whoami(h.signIn("erin"), nil)
		api := h.browser()

		// The principal making the token is the actor of the event.
		made, secret, err := h.svc.CreateToken(auth.NewContext(ctx, erin), tenant, erin.UserID, auth.Editor, "ci pipeline", 0)
		if err != nil {
			t.Fatal(err)
		}
		tok := secret.Reveal()
		if !regexp.MustCompile(`^ferry_[a-z2-7]{52}$`).MatchString(tok) {
			t.Fatalf("token format: %d characters, prefix %q", len(tok), tok[:6])
		}
		if got := secret.String(); got != "[redacted]" {
			t.Fatalf("the returned secret prints as %q", got)
		}
		if ev, _ := h.events.last(auth.ActionTokenCreate); ev.Target != made.ID || ev.Actor != erin.UserID || ev.Outcome != auth.OutcomeSuccess {
			t.Fatalf("event %+v", ev)
		}
		if want := h.clock.Now().Add(auth.DefaultTokenTTL); made.ExpiresAt.Sub(want).Abs() > time.Minute {
			t.Fatalf("expires %v, want about %v", made.ExpiresAt, want)
		}

		p, status := h.whoami(api, bearer(tok))
		if status != http.StatusOK || p.Via != auth.ViaToken || p.Role != auth.Editor || p.UserID != erin.UserID || p.TokenID != made.ID {
			t.Fatalf("whoami with the token: %d %+v", status, p)
		}
		for _, tc := range []struct {
			method, path string
			hdr          map[string]string
			want         int
		}{
			{http.MethodPost, "/api/jobs", bearer(tok), http.StatusOK}, // editor: no CSRF token needed
			{http.MethodPost, "/api/jobs", map[string]string{"Authorization": "Bearer " + tok, "Origin": "https://evil.example"}, http.StatusOK},
			{http.MethodDelete, "/api/users/x", bearer(tok), http.StatusForbidden},
			{http.MethodGet, "/api/whoami", bearer("ferry_" + strings.Repeat("a", 52)), http.StatusUnauthorized},
			{http.MethodGet, "/api/whoami", bearer("not-a-ferry-token"), http.StatusUnauthorized},
			{http.MethodGet, "/api/whoami", map[string]string{"Authorization": "Basic " + tok}, http.StatusUnauthorized},
			{http.MethodGet, "/api/whoami", bearer(strings.ToUpper(tok)), http.StatusUnauthorized},
		} {
			if status, body := h.do(api, tc.method, tc.path, tc.hdr); status != tc.want {
				t.Errorf("%s %s %v: %d %s, want %d", tc.method, tc.path, tc.hdr["Origin"], status, body, tc.want)
			}
		}

		// Not above the user's role; valid arguments only.
		if _, _, err := h.svc.CreateToken(ctx, tenant, erin.UserID, auth.Admin, "escalate", time.Hour); !errors.Is(err, auth.ErrRoleTooHigh) {
			t.Fatalf("an editor made an admin token: %v", err)
		}
		if ev, _ := h.events.last(auth.ActionTokenCreate); ev.Outcome != auth.OutcomeFailure {
			t.Fatalf("refused token creation not reported: %+v", ev)
		}
		for _, bad := range []struct {
			role auth.Role
			name string
			ttl  time.Duration
		}{
			{"root", "x", time.Hour},
			{auth.Viewer, "", time.Hour},
			{auth.Viewer, "x", -time.Hour},
			{auth.Viewer, "x", auth.DefaultMaxTokenTTL + time.Hour},
		} {
			if _, _, err := h.svc.CreateToken(ctx, tenant, erin.UserID, bad.role, bad.name, bad.ttl); !errors.Is(err, auth.ErrInvalid) {
				t.Errorf("CreateToken(%q, %q, %v): %v, want ErrInvalid", bad.role, bad.name, bad.ttl, err)
			}
		}
		if _, _, err := h.svc.CreateToken(ctx, "globex", erin.UserID, auth.Viewer, "x", time.Hour); !errors.Is(err, auth.ErrNotFound) {
			t.Fatalf("a token for a user of another tenant: %v", err)
		}

		viewer, vsecret, err := h.svc.CreateToken(ctx, tenant, erin.UserID, auth.Viewer, "read only", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if status, _ := h.do(api, http.MethodPost, "/api/jobs", bearer(vsecret.Reveal())); status != http.StatusForbidden {
			t.Fatalf("a viewer token posted a job: %d", status)
		}

		// Listing shows no secret (none is kept) and no hash.
		list, err := h.svc.ListTokens(ctx, tenant, erin.UserID)
		if err != nil {
			t.Fatal(err)
		}
		js, _ := json.Marshal(list)
		if len(list) != 2 || list[0].ID != viewer.ID || strings.Contains(string(js), "ferry_") || strings.Contains(string(js), "hash") {
			t.Fatalf("list: %s", js)
		}
		if list[1].LastUsedAt.IsZero() {
			t.Fatal("the used token has no last use")
		}

		// The user's role drops to viewer: the editor token acts as a viewer.
		if err := h.idp.SetGroups("erin", "ferry-viewers"); err != nil {
			t.Fatal(err)
		}
		h.signIn("erin")
		if p, _ := h.whoami(api, bearer(tok)); p.Role != auth.Viewer {
			t.Fatalf("the token acts as %s after its user became a viewer", p.Role)
		}
		if status, _ := h.do(api, http.MethodPost, "/api/jobs", bearer(tok)); status != http.StatusForbidden {
			t.Fatalf("downgraded token posted a job: %d", status)
		}

		// Revoked: refused at once; revoking again is fine; another tenant
		// cannot revoke it.
		if err := h.svc.RevokeToken(ctx, "globex", made.ID); !errors.Is(err, auth.ErrNotFound) {
			t.Fatalf("revoke from another tenant: %v", err)
		}
		if err := h.svc.RevokeToken(ctx, tenant, made.ID); err != nil {
			t.Fatal(err)
		}
		if _, status := h.whoami(api, bearer(tok)); status != http.StatusUnauthorized {
			t.Fatalf("revoked token: %d", status)
		}
		if err := h.svc.RevokeToken(ctx, tenant, made.ID); err != nil {
			t.Fatalf("revoking twice: %v", err)
		}
		if list, _ := h.svc.ListTokens(ctx, tenant, ""); list[1].RevokedAt.IsZero() || !list[0].RevokedAt.IsZero() {
			t.Fatalf("revocation not listed: %+v", list)
		}

		// Expired: the viewer token lived an hour.
		if _, status := h.whoami(api, bearer(vsecret.Reveal())); status != http.StatusOK {
			t.Fatalf("viewer token: %d", status)
		}
		h.clock.Advance(time.Hour + time.Second)
		if _, status := h.whoami(api, bearer(vsecret.Reveal())); status != http.StatusUnauthorized {
			t.Fatalf("expired token: %d", status)
		}
	})
}

// TestDeactivateUser: deactivating a user ends their sessions and revokes
// their tokens at once, and they cannot sign in again; UpsertUser with
// Active false does the same.
func TestDeactivateUser(t *testing.T) {
	metadbtest.Each(t, func(t *testing.T, db *metadb.DB) {
		h := newHarness(t, db, nil)
		ctx := context.Background()
		b1, b2 := h.signIn("erin"), h.signIn("erin") // two browsers
		erin, _ := h.whoami(b1, nil)
		_, secret, err := h.svc.CreateToken(ctx, tenant, erin.UserID, auth.Editor, "ci", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		api := h.browser()
		if _, status := h.whoami(api, bearer(secret.Reveal())); status != http.StatusOK {
			t.Fatal(status)
		}
		vic := h.signIn("vic")

		if err := h.svc.DeactivateUser(ctx, tenant, erin.UserID); err != nil {
			t.Fatal(err)
		}
		for name, c := range map[string]struct {
			b   any
			hdr map[string]string
		}{"session 1": {b1, nil}, "session 2": {b2, nil}, "token": {api, bearer(secret.Reveal())}} {
			if _, status := h.whoami(c.b.(*http.Client), c.hdr); status != http.StatusUnauthorized {
				t.Errorf("%s after deactivation: %d", name, status)
			}
		}
		if _, status := h.whoami(vic, nil); status != http.StatusOK {
			t.Fatalf("another user's session ended too: %d", status)
		}
		ev, _ := h.events.last(auth.ActionUserDeactivate)
		if ev.Target != erin.UserID || ev.Reason != "2 sessions ended, 1 tokens revoked" {
			t.Fatalf("event %+v", ev)
		}
		u, err := h.svc.GetUser(ctx, tenant, erin.UserID)
		if err != nil || u.Active {
			t.Fatalf("user %+v %v", u, err)
		}
		if list, _ := h.svc.ListTokens(ctx, tenant, erin.UserID); list[0].RevokedAt.IsZero() {
			t.Fatal("the token is not listed as revoked")
		}
		// The provider still knows erin, the control plane refuses her.
		b := h.browser()
		resp, err := h.idp.SignIn(ctx, b, h.srv.URL+auth.LoginPath, "erin")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("a deactivated user signed in: %d", resp.StatusCode)
		}
		if ev, _ := h.events.last(auth.ActionSignInFailed); ev.Reason != "user deactivated" || ev.Actor != erin.UserID {
			t.Fatalf("event %+v", ev)
		}
		if _, _, err := h.svc.CreateToken(ctx, tenant, erin.UserID, auth.Viewer, "x", time.Hour); !errors.Is(err, auth.ErrInactive) {
			t.Fatalf("a token for a deactivated user: %v", err)
		}

		// Deactivating through UpsertUser (as SCIM's PATCH active=false).
		v, _ := h.whoami(vic, nil)
		vu, err := h.svc.GetUser(ctx, tenant, v.UserID)
		if err != nil {
			t.Fatal(err)
		}
		vu.Active = false
		if _, err := h.svc.UpsertUser(ctx, vu); err != nil {
			t.Fatal(err)
		}
		if _, status := h.whoami(vic, nil); status != http.StatusUnauthorized {
			t.Fatalf("upserted inactive, the session lives: %d", status)
		}
		if err := h.svc.DeactivateUser(ctx, tenant, "u_nobody"); !errors.Is(err, auth.ErrNotFound) {
			t.Fatalf("deactivating nobody: %v", err)
		}
	})
}
