package auth_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ferry-ai/ferry/controlplane/auth"
	"github.com/ferry-ai/ferry/controlplane/metadb"
	"github.com/ferry-ai/ferry/controlplane/metadb/metadbtest"
	"github.com/ferry-ai/ferry/controlplane/scim"
	"github.com/ferry-ai/ferry/internal/oidctest"
	"github.com/ferry-ai/ferry/secrets"
)

// scimTokens are the identity providers' SCIM bearer tokens and the
// tenants they name.
var scimTokens = map[string]string{"acme-scim-token": tenant, "globex-scim-token": "globex"}

func tenantFromToken(r *http.Request) string {
	return scimTokens[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
}

// scimIdP sends SCIM requests as an identity provider does, with its
// tenant's bearer token.
type scimIdP struct {
	t     *testing.T
	url   string
	token string
}

// newSCIM serves the service's Directory over SCIM and returns acme's and
// globex's provisioning clients.
func newSCIM(t *testing.T, svc *auth.Service) (acme, globex *scimIdP) {
	srv := httptest.NewServer(scim.Handler("/scim/v2", svc.Directory(), tenantFromToken, nil))
	t.Cleanup(srv.Close)
	return &scimIdP{t: t, url: srv.URL, token: "acme-scim-token"}, &scimIdP{t: t, url: srv.URL, token: "globex-scim-token"}
}

func (c *scimIdP) do(method, path string, body any) (int, map[string]any) {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			c.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.url+"/scim/v2"+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/scim+json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			c.t.Fatalf("%s %s: answer is not JSON: %s", method, path, raw)
		}
	}
	return resp.StatusCode, out
}

// must sends a request and fails the test unless it answers want.
func (c *scimIdP) must(want int, method, path string, body any) map[string]any {
	c.t.Helper()
	status, out := c.do(method, path, body)
	if status != want {
		c.t.Fatalf("%s %s: status %d, want %d: %v", method, path, status, want, out)
	}
	return out
}

func patchOp(ops ...map[string]any) map[string]any {
	return map[string]any{"schemas": []string{scim.SchemaPatch}, "Operations": ops}
}

func total(body map[string]any) int { n, _ := body["totalResults"].(float64); return int(n) }

// roleOf returns the role stored on the user.
func roleOf(t *testing.T, svc *auth.Service, tenant, id string) auth.Role {
	t.Helper()
	u, err := svc.GetUser(context.Background(), tenant, id)
	if err != nil {
		t.Fatal(err)
	}
	return u.Role
}

// signInStatus runs username's sign-in and returns the control plane's
// answer.
func (h *harness) signInStatus(username string) int {
	h.t.Helper()
	resp, err := h.idp.SignIn(context.Background(), h.browser(), h.srv.URL+auth.LoginPath, username)
	if err != nil {
		h.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestSCIMOkta replays Okta's provisioning against the auth tables: look
// the user up, create them (externalId = their OpenID subject), refuse a
// duplicate, read, replace the profile; push the group ferry-editors and
// add the user (editor at once, before any sign-in), remove them (no
// role), rename the group to an unmapped name and to ferry-admins (roles
// recomputed); sign-in then links to the provisioned user and the group
// claim wins; a later group change applies to the live session at once;
// the path-less deactivation cuts the session and an API token off.
func TestSCIMOkta(t *testing.T) {
	metadbtest.Each(t, func(t *testing.T, db *metadb.DB) {
		h := newHarness(t, db, nil)
		okta, _ := newSCIM(t, h.svc)
		ctx := context.Background()
		sub := h.idp.Subject("erin")

		body := okta.must(200, "GET", `/Users?filter=userName%20eq%20%22erin%40acme.example%22&startIndex=1&count=100`, nil)
		if total(body) != 0 {
			t.Fatalf("lookup of a new user: %v", body)
		}
		body = okta.must(201, "POST", "/Users", map[string]any{
			"schemas": []string{scim.SchemaUser}, "userName": "erin@acme.example", "externalId": sub,
			"name":        map[string]string{"givenName": "Erin", "familyName": "Editor"},
			"emails":      []map[string]any{{"primary": true, "value": "erin@acme.example", "type": "work"}},
			"displayName": "Erin Editor", "locale": "en-US", "groups": []any{}, "password": "never-stored", "active": true,
		})
		uid := body["id"].(string)
		if body["meta"].(map[string]any)["location"] != "/scim/v2/Users/"+uid || body["active"] != true {
			t.Errorf("created user: %v", body)
		}
		u, err := h.svc.GetUser(ctx, tenant, uid)
		if err != nil || u.ExternalID != sub || u.Email != "erin@acme.example" || u.DisplayName != "Erin Editor" || !u.Active || u.Role != "" {
			t.Fatalf("stored user %+v %v: want active, no role before any group", u, err)
		}
		body = okta.must(409, "POST", "/Users", map[string]any{"schemas": []string{scim.SchemaUser}, "userName": "ERIN@acme.example"})
		if body["scimType"] != "uniqueness" {
			t.Errorf("duplicate userName: %v", body)
		}
		okta.must(409, "POST", "/Users", map[string]any{"schemas": []string{scim.SchemaUser}, "userName": "other@acme.example", "externalId": sub})
		body = okta.must(200, "GET", "/Users/"+uid, nil)
		if body["userName"] != "erin@acme.example" || body["name"].(map[string]any)["givenName"] != "Erin" {
			t.Errorf("read user: %v", body)
		}
		okta.must(200, "PUT", "/Users/"+uid, map[string]any{
			"schemas": []string{scim.SchemaUser}, "id": uid, "userName": "erin@acme.example", "active": true,
			"name":   map[string]string{"givenName": "Erin", "familyName": "Edwards"},
			"emails": []map[string]any{{"primary": true, "value": "erin.edwards@acme.example", "type": "work"}},
		})
		if u, _ := h.svc.GetUser(ctx, tenant, uid); u.Email != "erin.edwards@acme.example" || u.ExternalID != sub {
			t.Errorf("replaced user %+v: want the new email and the external ID kept", u)
		}

		// Group push: membership gives the role at once.
		body = okta.must(201, "POST", "/Groups", map[string]any{"schemas": []string{scim.SchemaGroup}, "displayName": "ferry-editors", "members": []any{}})
		gid := body["id"].(string)
		addErin := patchOp(map[string]any{"op": "add", "path": "members", "value": []map[string]string{{"value": uid, "display": "erin@acme.example"}}})
		okta.must(200, "PATCH", "/Groups/"+gid, addErin)
		if r := roleOf(t, h.svc, tenant, uid); r != auth.Editor {
			t.Fatalf("added to ferry-editors: role %q, want editor", r)
		}
		if ev, _ := h.events.last(auth.ActionRoleChange); ev.Target != uid || !strings.Contains(ev.Reason, "none → editor") {
			t.Errorf("role change event %+v", ev)
		}
		body = okta.must(200, "GET", "/Users/"+uid, nil)
		if g, _ := body["groups"].([]any); len(g) != 1 || g[0].(map[string]any)["display"] != "ferry-editors" || g[0].(map[string]any)["value"] != gid {
			t.Errorf("the user's groups: %v", body["groups"])
		}
		okta.must(200, "PATCH", "/Groups/"+gid, patchOp(map[string]any{"op": "remove", "path": `members[value eq "` + uid + `"]`}))
		if r := roleOf(t, h.svc, tenant, uid); r != "" {
			t.Fatalf("removed from ferry-editors: role %q, want none", r)
		}
		okta.must(200, "PATCH", "/Groups/"+gid, addErin)
		rename := func(name string) {
			t.Helper()
			okta.must(200, "PATCH", "/Groups/"+gid, patchOp(map[string]any{"op": "replace", "value": map[string]any{"id": gid, "displayName": name}}))
		}
		rename("acme-staff")
		if r := roleOf(t, h.svc, tenant, uid); r != "" {
			t.Fatalf("group renamed to an unmapped name: role %q, want none", r)
		}
		rename("ferry-admins")
		if r := roleOf(t, h.svc, tenant, uid); r != auth.Admin {
			t.Fatalf("group renamed to ferry-admins: role %q, want admin", r)
		}
		body = okta.must(200, "GET", `/Groups?filter=displayName%20eq%20%22ferry-admins%22&excludedAttributes=members`, nil)
		if total(body) != 1 {
			t.Errorf("group lookup: %v", body)
		}

		// Sign-in finds the provisioned user by externalId = subject; the
		// group claim (ferry-editors, staff) wins over the SCIM groups.
		b := h.signIn("erin")
		p, status := h.whoami(b, nil)
		if status != http.StatusOK || p.UserID != uid || p.Role != auth.Editor {
			t.Fatalf("sign-in of the provisioned user: %d %+v, want %s as editor", status, p, uid)
		}
		// A SCIM change after sign-in applies to the live session at once.
		okta.must(200, "PATCH", "/Groups/"+gid, patchOp(map[string]any{"op": "remove", "path": `members[value eq "` + uid + `"]`}))
		if _, status := h.whoami(b, nil); status != http.StatusForbidden {
			t.Fatalf("session of a user left with no role: %d, want 403", status)
		}
		okta.must(200, "PATCH", "/Groups/"+gid, addErin)
		if p, status := h.whoami(b, nil); status != http.StatusOK || p.Role != auth.Admin {
			t.Fatalf("session after the group came back: %d %+v, want admin", status, p)
		}

		// Okta's deactivation: a path-less replace of active.
		_, tok, err := h.svc.CreateToken(ctx, tenant, uid, auth.Viewer, "okta test", 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, status := h.whoami(h.browser(), bearer(tok.Reveal())); status != http.StatusOK {
			t.Fatalf("token before deactivation: %d", status)
		}
		body = okta.must(200, "PATCH", "/Users/"+uid, patchOp(map[string]any{"op": "replace", "value": map[string]any{"active": false}}))
		if body["active"] != false {
			t.Errorf("deactivated user: %v", body)
		}
		if _, status := h.whoami(b, nil); status != http.StatusUnauthorized {
			t.Errorf("session after deactivation: %d, want 401", status)
		}
		if _, status := h.whoami(h.browser(), bearer(tok.Reveal())); status != http.StatusUnauthorized {
			t.Errorf("token after deactivation: %d, want 401", status)
		}
		if status := h.signInStatus("erin"); status != http.StatusForbidden {
			t.Errorf("sign-in of a deactivated user: %d, want 403", status)
		}

		okta.must(204, "DELETE", "/Groups/"+gid, nil)
		okta.must(404, "GET", "/Groups/"+gid, nil)
		if r := roleOf(t, h.svc, tenant, uid); r != "" {
			t.Errorf("group deleted: role %q, want none", r)
		}
	})
}

// TestSCIMEntra replays Microsoft Entra ID's provisioning: the enterprise
// extension, capitalised ops, "False"/"True", a value-filtered email path,
// a group known by its object ID (externalId, which the tenant's role
// mapping names), member add and remove with value lists, and user
// deletion; the deleted user's later sign-in makes a new user just in
// time, as the tenant allows it.
func TestSCIMEntra(t *testing.T) {
	metadbtest.Each(t, func(t *testing.T, db *metadb.DB) {
		const objectID = "5c1e6f1a-0d3b-4b8e-9d6e-2f0a7c4e1b90"
		h := newHarness(t, db, func(c *auth.Config) {
			c.IdPs[0].Roles = maps.Clone(roles)
			c.IdPs[0].Roles[objectID] = auth.Admin
		})
		entra, _ := newSCIM(t, h.svc)

		body := entra.must(201, "POST", "/Users", map[string]any{
			"schemas":    []string{scim.SchemaUser, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"},
			"externalId": h.idp.Subject("vic"), "userName": "vic@acme.example", "active": true, "displayName": "Vic",
			"emails": []map[string]any{{"primary": true, "type": "work", "value": "vic@acme.example"}},
			"name":   map[string]string{"formatted": "Vic V", "familyName": "V", "givenName": "Vic"},
		})
		uid := body["id"].(string)
		for _, q := range []string{`userName+eq+%22vic%40acme.example%22`, `userName+eq+%22VIC%40Acme.Example%22`, `emails.value+eq+%22Vic%40ACME.example%22`} {
			if body := entra.must(200, "GET", "/Users?filter="+q, nil); total(body) != 1 {
				t.Errorf("lookup %s: %v", q, body)
			}
		}
		entra.must(200, "PATCH", "/Users/"+uid, patchOp(
			map[string]any{"op": "Replace", "path": "active", "value": "False"},
			map[string]any{"op": "Add", "path": "displayName", "value": "Vic Viewer"},
			map[string]any{"op": "Replace", "path": `emails[type eq "work"].value`, "value": "vic.v@acme.example"},
			map[string]any{"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "Analytics"},
			map[string]any{"op": "Replace", "path": "name.familyName", "value": "Viewer"},
		))
		body = entra.must(200, "GET", "/Users/"+uid, nil)
		if body["active"] != false || body["displayName"] != "Vic Viewer" || body["emails"].([]any)[0].(map[string]any)["value"] != "vic.v@acme.example" ||
			body["name"].(map[string]any)["familyName"] != "Viewer" {
			t.Errorf("patched user %v", body)
		}
		entra.must(200, "PATCH", "/Users/"+uid, patchOp(map[string]any{"op": "Replace", "path": "active", "value": "True"}))

		body = entra.must(201, "POST", "/Groups", map[string]any{"schemas": []string{scim.SchemaGroup}, "displayName": "Ferry Administrators", "externalId": objectID})
		gid := body["id"].(string)
		entra.must(409, "POST", "/Groups", map[string]any{"schemas": []string{scim.SchemaGroup}, "displayName": "Another", "externalId": objectID})
		members := func(op string) {
			t.Helper()
			entra.must(200, "PATCH", "/Groups/"+gid, patchOp(map[string]any{"op": op, "path": "members", "value": []map[string]string{{"value": uid}}}))
		}
		members("Add")
		if r := roleOf(t, h.svc, tenant, uid); r != auth.Admin {
			t.Fatalf("in the group mapped by its object ID: role %q, want admin", r)
		}
		members("Remove")
		if r := roleOf(t, h.svc, tenant, uid); r != "" {
			t.Fatalf("removed: role %q, want none", r)
		}
		members("Add")

		entra.must(204, "DELETE", "/Users/"+uid, nil)
		entra.must(404, "GET", "/Users/"+uid, nil)
		entra.must(404, "DELETE", "/Users/"+uid, nil)
		if body := entra.must(200, "GET", "/Groups/"+gid, nil); len(body["members"].([]any)) != 0 {
			t.Errorf("the deleted user is still a member: %v", body["members"])
		}
		if ev, _ := h.events.last(auth.ActionUserDelete); ev.Target != uid || !strings.Contains(ev.Reason, "left 1 groups") {
			t.Errorf("delete event %+v", ev)
		}
		// The tenant allows just-in-time users: vic comes back as a new
		// user, with the role of his group claim.
		p, status := h.whoami(h.signIn("vic"), nil)
		if status != http.StatusOK || p.UserID == uid || p.Role != auth.Viewer {
			t.Fatalf("sign-in after deletion: %d %+v", status, p)
		}
	})
}

// TestSCIMDeprovision: PUT active=false, PATCH active=false (Entra's
// "False") and DELETE each end the user's session (a real cookie from a
// real sign-in) and stop their API token at once: the next requests with
// them get 401. The tenant has no_jit: a later sign-in is refused.
func TestSCIMDeprovision(t *testing.T) {
	metadbtest.Each(t, func(t *testing.T, db *metadb.DB) {
		h := newHarness(t, db, func(c *auth.Config) { c.IdPs[0].NoJIT = true })
		idp, _ := newSCIM(t, h.svc)
		ctx := context.Background()
		body := idp.must(201, "POST", "/Groups", map[string]any{"schemas": []string{scim.SchemaGroup}, "displayName": "ferry-viewers"})
		gid := body["id"].(string)
		for _, tc := range []struct {
			name, user  string
			deprovision func(uid string)
			reason      string // of the refused sign-in afterwards
			deleted     bool
		}{
			{"PUT active false", "ann", func(uid string) {
				idp.must(200, "PUT", "/Users/"+uid, map[string]any{"schemas": []string{scim.SchemaUser}, "userName": "ann@acme.example", "active": false})
			}, "user deactivated", false},
			{"PATCH active False", "erin", func(uid string) {
				idp.must(200, "PATCH", "/Users/"+uid, patchOp(map[string]any{"op": "Replace", "path": "active", "value": "False"}))
			}, "user deactivated", false},
			{"DELETE", "vic", func(uid string) { idp.must(204, "DELETE", "/Users/"+uid, nil) },
				"user not provisioned (just-in-time provisioning is off)", true},
		} {
			t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
				body := idp.must(201, "POST", "/Users", map[string]any{"schemas": []string{scim.SchemaUser},
					"userName": tc.user + "@acme.example", "externalId": h.idp.Subject(tc.user)})
				uid := body["id"].(string)
				idp.must(200, "PATCH", "/Groups/"+gid, patchOp(map[string]any{"op": "add", "path": "members", "value": []map[string]string{{"value": uid}}}))
				b := h.signIn(tc.user)
				if p, status := h.whoami(b, nil); status != http.StatusOK || p.UserID != uid {
					t.Fatalf("session: %d %+v", status, p)
				}
				made, tok, err := h.svc.CreateToken(ctx, tenant, uid, auth.Viewer, "automation", 0)
				if err != nil {
					t.Fatal(err)
				}
				api := h.browser()
				if _, status := h.whoami(api, bearer(tok.Reveal())); status != http.StatusOK {
					t.Fatalf("token: %d", status)
				}

				tc.deprovision(uid)

				if _, status := h.whoami(b, nil); status != http.StatusUnauthorized {
					t.Errorf("session right after: %d, want 401", status)
				}
				if _, status := h.whoami(api, bearer(tok.Reveal())); status != http.StatusUnauthorized {
					t.Errorf("token right after: %d, want 401", status)
				}
				toks, err := h.svc.ListTokens(ctx, tenant, uid)
				switch {
				case err != nil:
					t.Fatal(err)
				case tc.deleted && len(toks) != 0:
					t.Errorf("a deleted user's tokens remain: %+v", toks)
				case !tc.deleted && (len(toks) != 1 || toks[0].ID != made.ID || toks[0].RevokedAt.IsZero()):
					t.Errorf("tokens %+v, want %s revoked", toks, made.ID)
				}
				if tc.deleted {
					if _, err := h.svc.GetUser(ctx, tenant, uid); !errors.Is(err, auth.ErrNotFound) {
						t.Errorf("deleted user: %v", err)
					}
					if body := idp.must(200, "GET", "/Groups/"+gid, nil); strings.Contains(fmt.Sprint(body["members"]), uid) {
						t.Errorf("the deleted user is still a member: %v", body["members"])
					}
				} else if ev, _ := h.events.last(auth.ActionUserDeactivate); ev.Target != uid || ev.Reason != "deactivated by SCIM: 1 sessions ended, 1 tokens revoked" {
					t.Errorf("event %+v", ev)
				}
				if status := h.signInStatus(tc.user); status != http.StatusForbidden {
					t.Errorf("sign-in afterwards: %d, want 403", status)
				}
				if ev, _ := h.events.last(auth.ActionSignInFailed); ev.Reason != tc.reason {
					t.Errorf("refusal %q, want %q", ev.Reason, tc.reason)
				}
			})
		}
	})
}

// TestSCIMListsAndTenants: filters (userName and email case-insensitive),
// stable paging with totals, a user who signed in before SCIM knew them
// found by their email as userName, refusals (unknown member, unknown
// IDs), and another tenant's token seeing and touching nothing of acme.
func TestSCIMListsAndTenants(t *testing.T) {
	metadbtest.Each(t, func(t *testing.T, db *metadb.DB) {
		h := newHarness(t, db, nil)
		acme, globex := newSCIM(t, h.svc)

		// ann signs in before provisioning: just in time, no userName.
		ann, _ := h.whoami(h.signIn("ann"), nil)
		var ids []string
		for i := range 4 {
			body := acme.must(201, "POST", "/Users", map[string]any{"schemas": []string{scim.SchemaUser}, "userName": fmt.Sprintf("User%d@acme.example", i),
				"externalId": fmt.Sprintf("ext-%d", i), "displayName": fmt.Sprintf("User %d", i),
				"emails": []map[string]any{{"value": fmt.Sprintf("mail%d@acme.example", i)}}})
			ids = append(ids, body["id"].(string))
		}
		body := acme.must(200, "GET", "/Users?startIndex=2&count=2", nil)
		res := body["Resources"].([]any)
		if total(body) != 5 || body["startIndex"].(float64) != 2 || len(res) != 2 ||
			res[0].(map[string]any)["id"] != ids[0] || res[1].(map[string]any)["id"] != ids[1] {
			t.Errorf("page 2 of 2: %v", body)
		}
		if body := acme.must(200, "GET", "/Users?startIndex=5&count=10", nil); total(body) != 5 || len(body["Resources"].([]any)) != 1 {
			t.Errorf("last page: %v", body)
		}
		if body := acme.must(200, "GET", "/Users?startIndex=9", nil); total(body) != 5 || len(body["Resources"].([]any)) != 0 {
			t.Errorf("past the end: %v", body)
		}
		for _, tc := range []struct {
			filter string
			want   string
		}{
			{`userName eq "user2@ACME.example"`, ids[2]},
			{`emails.value eq "MAIL3@acme.example"`, ids[3]},
			{`externalId eq "ext-1"`, ids[1]},
			{`displayName eq "User 0"`, ids[0]},
			{`userName eq "ANN@acme.example"`, ann.UserID}, // her email stands for her userName
		} {
			body := acme.must(200, "GET", "/Users?filter="+strings.ReplaceAll(tc.filter, " ", "%20"), nil)
			if res, _ := body["Resources"].([]any); total(body) != 1 || len(res) != 1 || res[0].(map[string]any)["id"] != tc.want {
				t.Errorf("%s: %v, want %s", tc.filter, body, tc.want)
			}
		}
		for _, f := range []string{`externalId eq "EXT-1"`, `displayName eq "user 0"`, `externalId eq ""`} {
			if body := acme.must(200, "GET", "/Users?filter="+strings.ReplaceAll(f, " ", "%20"), nil); total(body) != 0 {
				t.Errorf("%s matched: %v", f, body)
			}
		}
		acme.must(409, "POST", "/Users", map[string]any{"schemas": []string{scim.SchemaUser}, "userName": "ann@ACME.example"})
		acme.must(409, "PUT", "/Users/"+ids[0], map[string]any{"schemas": []string{scim.SchemaUser}, "userName": "user1@acme.example"})
		acme.must(404, "PUT", "/Users/u_nobody", map[string]any{"schemas": []string{scim.SchemaUser}, "userName": "x@acme.example"})
		acme.must(404, "POST", "/Groups", map[string]any{"schemas": []string{scim.SchemaGroup}, "displayName": "g", "members": []map[string]string{{"value": "u_nobody"}}})
		body = acme.must(201, "POST", "/Groups", map[string]any{"schemas": []string{scim.SchemaGroup}, "displayName": "ferry-viewers",
			"members": []map[string]string{{"value": ids[0]}, {"value": ids[1]}}})
		gid := body["id"].(string)
		if ms := body["members"].([]any); len(ms) != 2 || ms[0].(map[string]any)["display"] != "User0@acme.example" {
			t.Errorf("members %v", ms)
		}
		if body := acme.must(200, "GET", "/Groups?filter=externalId%20eq%20%22none%22", nil); total(body) != 0 {
			t.Errorf("group filter: %v", body)
		}

		// globex sees nothing of acme's and changes nothing.
		if body := globex.must(200, "GET", "/Users", nil); total(body) != 0 {
			t.Errorf("globex lists %v", body)
		}
		if body := globex.must(200, "GET", "/Groups", nil); total(body) != 0 {
			t.Errorf("globex lists %v", body)
		}
		globex.must(404, "GET", "/Users/"+ids[0], nil)
		globex.must(404, "GET", "/Users/"+ann.UserID, nil)
		globex.must(404, "GET", "/Groups/"+gid, nil)
		globex.must(404, "PATCH", "/Users/"+ids[0], patchOp(map[string]any{"op": "replace", "path": "active", "value": false}))
		globex.must(404, "PATCH", "/Groups/"+gid, patchOp(map[string]any{"op": "replace", "path": "displayName", "value": "x"}))
		globex.must(404, "DELETE", "/Users/"+ids[0], nil)
		globex.must(404, "DELETE", "/Groups/"+gid, nil)
		globex.must(404, "POST", "/Groups", map[string]any{"schemas": []string{scim.SchemaGroup}, "displayName": "ferry-admins", "members": []map[string]string{{"value": ids[0]}}})
		globex.must(201, "POST", "/Users", map[string]any{"schemas": []string{scim.SchemaUser}, "userName": "user0@acme.example", "externalId": "ext-0"})
		if body := acme.must(200, "GET", "/Users/"+ids[0], nil); body["active"] != true || len(body["groups"].([]any)) != 1 {
			t.Errorf("acme's user after globex's tries: %v", body)
		}
		if r := roleOf(t, h.svc, tenant, ids[0]); r != auth.Viewer {
			t.Errorf("acme's user role %q", r)
		}
		none := &scimIdP{t: t, url: acme.url}
		none.must(401, "GET", "/Users", nil)
	})
}

// authTables are the tables of the auth component, every row of one
// tenant.
var authTables = []string{"auth_users", "auth_sessions", "auth_tokens", "auth_flows", "auth_groups", "auth_group_members", "auth_signin_links"}

func countRows(t *testing.T, db *metadb.DB, tenant string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, table := range authTables {
		var n int64
		if err := db.QueryRow(context.Background(), `SELECT COUNT(*) FROM `+table+` WHERE tenant = ?`, tenant).Scan(&n); err != nil {
			t.Fatal(err)
		}
		out[table] = n
	}
	return out
}

// TestDeleteTenant: account closure deletes every row of the tenant in
// every auth table, in one call reporting the rows per table, and leaves
// the other tenant's rows as they were.
func TestDeleteTenant(t *testing.T) {
	metadbtest.Each(t, func(t *testing.T, db *metadb.DB) {
		var globexIdP *oidctest.Provider
		h := newHarness(t, db, func(c *auth.Config) {
			redirect := c.IdPs[0].RedirectURL
			globexIdP = oidctest.Start(t, oidctest.Options{
				Users:   []oidctest.User{{Username: "erin", Email: "erin@globex.example", Groups: []string{"globex-admins"}}},
				Clients: []oidctest.Client{{ID: "ferry-globex", Secret: "globex-secret", RedirectURIs: []string{redirect}}},
			})
			c.IdPs = append(c.IdPs, auth.IdPConfig{Tenant: "globex", Issuer: globexIdP.Issuer, ClientID: "ferry-globex",
				ClientSecret: secrets.New("globex-secret"), RedirectURL: redirect, Roles: map[string]auth.Role{"globex-admins": auth.Admin}})
			c.SignInLinks = true
		})
		ctx := context.Background()
		acme, globex := newSCIM(t, h.svc)
		fill := func(p *oidctest.Provider, tn string, c *scimIdP) *http.Client {
			t.Helper()
			b := h.browser()
			resp, err := p.SignIn(ctx, b, h.srv.URL+auth.LoginPath+"?tenant="+tn, "erin")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			pr, status := h.whoami(b, nil)
			if status != http.StatusOK {
				t.Fatalf("sign-in to %s: %d", tn, status)
			}
			if _, _, err := h.svc.CreateToken(ctx, tn, pr.UserID, auth.Viewer, "ci", 0); err != nil {
				t.Fatal(err)
			}
			if _, _, err := h.svc.CreateSignInLink(ctx, tn, pr.UserID, 0); err != nil {
				t.Fatal(err)
			}
			uid := c.must(201, "POST", "/Users", map[string]any{"schemas": []string{scim.SchemaUser}, "userName": "p@" + tn + ".example"})["id"].(string)
			c.must(201, "POST", "/Groups", map[string]any{"schemas": []string{scim.SchemaGroup}, "displayName": "staff",
				"members": []map[string]string{{"value": uid}, {"value": pr.UserID}}})
			// A sign-in started and never finished leaves its flow.
			if status, _ := h.do(h.browser(), http.MethodGet, auth.LoginPath+"?tenant="+tn, nil); status != http.StatusFound {
				t.Fatalf("login of %s: %d", tn, status)
			}
			return b
		}
		acmeBrowser := fill(h.idp, tenant, acme)
		fill(globexIdP, "globex", globex)
		before, otherBefore := countRows(t, db, tenant), countRows(t, db, "globex")
		for _, table := range authTables {
			if before[table] == 0 || otherBefore[table] == 0 {
				t.Fatalf("%s: acme has %d rows, globex %d: want some of each", table, before[table], otherBefore[table])
			}
		}

		deleted, err := h.svc.DeleteTenant(ctx, tenant)
		if err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(deleted, before) {
			t.Errorf("DeleteTenant reported %v, want %v", deleted, before)
		}
		if after := countRows(t, db, tenant); !maps.Equal(after, map[string]int64{"auth_users": 0, "auth_sessions": 0, "auth_tokens": 0, "auth_flows": 0,
			"auth_groups": 0, "auth_group_members": 0, "auth_signin_links": 0}) {
			t.Errorf("rows of acme left: %v", after)
		}
		if other := countRows(t, db, "globex"); !maps.Equal(other, otherBefore) {
			t.Errorf("globex's rows changed: %v, were %v", other, otherBefore)
		}
		if _, status := h.whoami(acmeBrowser, nil); status != http.StatusUnauthorized {
			t.Errorf("acme's session after closure: %d", status)
		}
		if body := acme.must(200, "GET", "/Users", nil); total(body) != 0 {
			t.Errorf("acme's directory after closure: %v", body)
		}
		if ev, _ := h.events.last(auth.ActionTenantDelete); ev.Tenant != tenant {
			t.Errorf("event %+v", ev)
		}
		if _, err := h.svc.DeleteTenant(ctx, ""); !errors.Is(err, auth.ErrInvalid) {
			t.Errorf("DeleteTenant of no tenant: %v", err)
		}
	})
}
