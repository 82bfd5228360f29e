package auth_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/ferry-ai/ferry/controlplane/auth"
	"github.com/ferry-ai/ferry/controlplane/metadb"
	"github.com/ferry-ai/ferry/controlplane/metadb/metadbtest"
	"github.com/ferry-ai/ferry/internal/oidctest"
	"github.com/ferry-ai/ferry/secrets"
)

// TestUsers: UpsertUser creates and updates by ID, external ID or subject,
// per tenant; a user provisioned beforehand with the provider's subject as
// external ID is the one who signs in; with NoJIT a user not provisioned
// is refused.
func TestUsers(t *testing.T) {
	metadbtest.Each(t, func(t *testing.T, db *metadb.DB) {
		h := newHarness(t, db, func(c *auth.Config) { c.IdPs[0].NoJIT = true })
		ctx := context.Background()

		pre, err := h.svc.UpsertUser(ctx, auth.User{Tenant: tenant, ExternalID: h.idp.Subject("erin"), Email: "erin@old.example", Active: true, Role: auth.Viewer})
		if err != nil {
			t.Fatal(err)
		}
		if pre.ID == "" || pre.CreatedAt.IsZero() {
			t.Fatalf("created %+v", pre)
		}
		same, err := h.svc.UpsertUser(ctx, auth.User{Tenant: tenant, ExternalID: h.idp.Subject("erin"), Email: "erin@acme.example", DisplayName: "Erin", Active: true})
		if err != nil || same.ID != pre.ID || !same.CreatedAt.Equal(pre.CreatedAt) {
			t.Fatalf("update by external ID: %+v %v", same, err)
		}
		for _, tc := range []struct {
			name string
			u    auth.User
			want error
		}{
			{"no tenant", auth.User{Email: "x@y"}, auth.ErrInvalid},
			{"bad role", auth.User{Tenant: tenant, Role: "root"}, auth.ErrInvalid},
			{"unknown ID", auth.User{Tenant: tenant, ID: "u_unknown"}, auth.ErrNotFound},
			{"ID of another tenant", auth.User{Tenant: "globex", ID: pre.ID}, auth.ErrNotFound},
		} {
			if _, err := h.svc.UpsertUser(ctx, tc.u); !errors.Is(err, tc.want) {
				t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
			}
		}
		if _, err := h.svc.GetUser(ctx, "globex", pre.ID); !errors.Is(err, auth.ErrNotFound) {
			t.Fatalf("a user read from another tenant: %v", err)
		}
		if us, _ := h.svc.ListUsers(ctx, "globex"); len(us) != 0 {
			t.Fatalf("another tenant lists %d users", len(us))
		}

		// erin was provisioned: she signs in as that user, with her groups'
		// role; vic was not, and just-in-time provisioning is off.
		p, status := h.whoami(h.signIn("erin"), nil)
		if status != http.StatusOK || p.UserID != pre.ID || p.Role != auth.Editor {
			t.Fatalf("provisioned user signed in as %+v (%d), want %s", p, status, pre.ID)
		}
		u, _ := h.svc.GetUser(ctx, tenant, pre.ID)
		if u.Subject != h.idp.Subject("erin") || u.ExternalID != h.idp.Subject("erin") {
			t.Fatalf("user %+v", u)
		}
		resp, err := h.idp.SignIn(ctx, h.browser(), h.srv.URL+auth.LoginPath, "vic")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("an unprovisioned user signed in with NoJIT: %d", resp.StatusCode)
		}
		if ev, _ := h.events.last(auth.ActionSignInFailed); ev.Reason != "user not provisioned (just-in-time provisioning is off)" {
			t.Fatalf("event %+v", ev)
		}
		if us, _ := h.svc.ListUsers(ctx, tenant); len(us) != 1 {
			t.Fatalf("%d users", len(us))
		}
	})
}

// TestTenants: two tenants, each with its own provider; /auth/login picks
// the tenant's, users and sessions are the tenant's, and without ?tenant=
// the login is refused.
func TestTenants(t *testing.T) {
	metadbtest.Each(t, func(t *testing.T, db *metadb.DB) {
		var globex *oidctest.Provider
		h := newHarness(t, db, func(c *auth.Config) {
			redirect := c.IdPs[0].RedirectURL
			globex = oidctest.Start(t, oidctest.Options{
				Users:   []oidctest.User{{Username: "erin", Email: "erin@globex.example", Groups: []string{"globex-admins"}}},
				Clients: []oidctest.Client{{ID: "ferry-globex", Secret: "globex-secret", RedirectURIs: []string{redirect}}},
			})
			c.IdPs = append(c.IdPs, auth.IdPConfig{Tenant: "globex", Issuer: globex.Issuer, ClientID: "ferry-globex",
				ClientSecret: secrets.New("globex-secret"), RedirectURL: redirect, Roles: map[string]auth.Role{"globex-admins": auth.Admin}})
		})
		ctx := context.Background()
		if status, _ := h.do(h.browser(), http.MethodGet, auth.LoginPath, nil); status != http.StatusNotFound {
			t.Fatalf("login without a tenant among two: %d", status)
		}
		if status, _ := h.do(h.browser(), http.MethodGet, auth.LoginPath+"?tenant=initech", nil); status != http.StatusNotFound {
			t.Fatalf("login of an unknown tenant: %d", status)
		}
		signIn := func(p *oidctest.Provider, tenant string) auth.Principal {
			t.Helper()
			b := h.browser()
			resp, err := p.SignIn(ctx, b, h.srv.URL+auth.LoginPath+"?tenant="+tenant+"&return_to=/jobs", "erin")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/jobs" {
				t.Fatalf("sign-in to %s: %d to %q", tenant, resp.StatusCode, resp.Header.Get("Location"))
			}
			pr, _ := h.whoami(b, nil)
			return pr
		}
		a, g := signIn(h.idp, tenant), signIn(globex, "globex")
		if a.Tenant != tenant || a.Role != auth.Editor || g.Tenant != "globex" || g.Role != auth.Admin || g.Email != "erin@globex.example" || a.UserID == g.UserID {
			t.Fatalf("acme %+v, globex %+v", a, g)
		}
		if _, err := h.svc.GetUser(ctx, tenant, g.UserID); !errors.Is(err, auth.ErrNotFound) {
			t.Fatal("globex's user is visible in acme")
		}
	})
}
