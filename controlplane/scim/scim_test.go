package scim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-ai/ferry/controlplane/scim"
)

// memDir is an in-memory scim.Directory: the storage the protocol tests
// drive (the control plane's own Directory is tested with its store).
type memDir struct {
	mu     sync.Mutex
	n      int
	users  map[string]map[string]scim.User // tenant -> id -> user
	groups map[string]map[string]scim.Group
}

func newMemDir() *memDir {
	return &memDir{users: map[string]map[string]scim.User{}, groups: map[string]map[string]scim.Group{}}
}

func (d *memDir) id() string { d.n++; return fmt.Sprintf("id-%03d", d.n) }

func (d *memDir) CreateUser(_ context.Context, t string, u scim.User) (scim.User, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, o := range d.users[t] {
		if strings.EqualFold(o.UserName, u.UserName) {
			return scim.User{}, fmt.Errorf("user %q: %w", u.UserName, scim.ErrConflict)
		}
	}
	if d.users[t] == nil {
		d.users[t] = map[string]scim.User{}
	}
	u.ID, u.Created, u.Modified = d.id(), time.Now(), time.Now()
	d.users[t][u.ID] = u
	return u, nil
}

func (d *memDir) GetUser(_ context.Context, t, id string) (scim.User, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	u, ok := d.users[t][id]
	if !ok {
		return scim.User{}, fmt.Errorf("user %s: %w", id, scim.ErrNotFound)
	}
	for _, g := range d.groups[t] {
		for _, m := range g.Members {
			if m.Value == id {
				u.Groups = append(u.Groups, scim.Member{Value: g.ID, Display: g.DisplayName})
			}
		}
	}
	return u, nil
}

func (d *memDir) ListUsers(_ context.Context, t string, f scim.Filter, off, count int) ([]scim.User, int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var all []scim.User
	for _, u := range d.users[t] {
		v := map[string]string{"userName": u.UserName, "externalId": u.ExternalID, "emails.value": u.Email, "displayName": u.DisplayName}[f.Attr]
		if f.Attr == "" || strings.EqualFold(v, f.Value) {
			all = append(all, u)
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].ID < all[j].ID })
	total := len(all)
	all = all[min(off, total):min(off+count, total)]
	return all, total, nil
}

func (d *memDir) ReplaceUser(_ context.Context, t string, u scim.User) (scim.User, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	old, ok := d.users[t][u.ID]
	if !ok {
		return scim.User{}, fmt.Errorf("user %s: %w", u.ID, scim.ErrNotFound)
	}
	u.Created, u.Modified, u.Groups = old.Created, time.Now(), nil
	d.users[t][u.ID] = u
	return u, nil
}

func (d *memDir) DeleteUser(_ context.Context, t, id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.users[t][id]; !ok {
		return fmt.Errorf("user %s: %w", id, scim.ErrNotFound)
	}
	delete(d.users[t], id)
	return nil
}

func (d *memDir) CreateGroup(_ context.Context, t string, g scim.Group) (scim.Group, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.groups[t] == nil {
		d.groups[t] = map[string]scim.Group{}
	}
	g.ID, g.Created, g.Modified = d.id(), time.Now(), time.Now()
	d.groups[t][g.ID] = g
	return g, nil
}

func (d *memDir) GetGroup(_ context.Context, t, id string) (scim.Group, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	g, ok := d.groups[t][id]
	if !ok {
		return scim.Group{}, fmt.Errorf("group %s: %w", id, scim.ErrNotFound)
	}
	return g, nil
}

func (d *memDir) ListGroups(_ context.Context, t string, f scim.Filter, off, count int) ([]scim.Group, int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var all []scim.Group
	for _, g := range d.groups[t] {
		if f.Attr == "" || (f.Attr == "displayName" && g.DisplayName == f.Value) || (f.Attr == "externalId" && g.ExternalID == f.Value) {
			all = append(all, g)
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].ID < all[j].ID })
	total := len(all)
	return all[min(off, total):min(off+count, total)], total, nil
}

func (d *memDir) ReplaceGroup(_ context.Context, t string, g scim.Group) (scim.Group, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	old, ok := d.groups[t][g.ID]
	if !ok {
		return scim.Group{}, fmt.Errorf("group %s: %w", g.ID, scim.ErrNotFound)
	}
	g.Created, g.Modified = old.Created, time.Now()
	d.groups[t][g.ID] = g
	return g, nil
}

func (d *memDir) DeleteGroup(_ context.Context, t, id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.groups[t][id]; !ok {
		return fmt.Errorf("group %s: %w", id, scim.ErrNotFound)
	}
	delete(d.groups[t], id)
	return nil
}

// idp sends SCIM requests as an identity provider does, with the tenant's
// bearer token.
type idp struct {
	t     *testing.T
	srv   *httptest.Server
	token string
}

func (c *idp) do(method, path string, body any) (int, map[string]any) {
	c.t.Helper()
	var rd io.Reader
	if s, ok := body.(string); ok {
		rd = strings.NewReader(s)
	} else if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, c.srv.URL+"/scim/v2"+path, rd)
	req.Header.Set("Content-Type", "application/scim+json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.srv.Client().Do(req)
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
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/scim+json") {
			c.t.Errorf("%s %s: Content-Type %q", method, path, ct)
		}
	}
	return resp.StatusCode, out
}

func newIDP(t *testing.T) (*idp, *memDir) {
	dir := newMemDir()
	tokens := map[string]string{"acme-token": "acme", "globex-token": "globex"}
	h := scim.Handler("/scim/v2", dir, func(r *http.Request) string {
		return tokens[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
	}, nil)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &idp{t: t, srv: srv, token: "acme-token"}, dir
}

func expect(t *testing.T, what string, status, want int, body map[string]any) {
	t.Helper()
	if status != want {
		t.Fatalf("%s: status %d, want %d: %v", what, status, want, body)
	}
}

// TestOktaSequence replays the requests Okta's SCIM 2.0 provisioning sends:
// look the user up by userName, create, read, replace the profile,
// deactivate with a path-less replace, and push a group (create, add a
// member, remove it with a member filter, rename, delete).
func TestOktaSequence(t *testing.T) {
	c, dir := newIDP(t)
	st, body := c.do("GET", `/Users?filter=userName%20eq%20%22jdoe%40acme.com%22&startIndex=1&count=100`, nil)
	expect(t, "lookup", st, 200, body)
	if body["totalResults"].(float64) != 0 || len(body["Resources"].([]any)) != 0 {
		t.Fatalf("lookup of a new user: %v", body)
	}
	st, body = c.do("POST", "/Users", map[string]any{
		"schemas": []string{scim.SchemaUser}, "userName": "jdoe@acme.com", "externalId": "00u1",
		"name":        map[string]string{"givenName": "John", "familyName": "Doe"},
		"emails":      []map[string]any{{"primary": true, "value": "jdoe@acme.com", "type": "work"}},
		"displayName": "John Doe", "locale": "en-US", "groups": []any{}, "password": "never-stored", "active": true,
	})
	expect(t, "create", st, 201, body)
	uid := body["id"].(string)
	if body["meta"].(map[string]any)["location"] != "/scim/v2/Users/"+uid || body["active"] != true {
		t.Errorf("created user: %v", body)
	}
	if u := dir.users["acme"][uid]; u.Email != "jdoe@acme.com" || u.GivenName != "John" || u.ExternalID != "00u1" {
		t.Errorf("stored user %+v", u)
	}
	st, body = c.do("POST", "/Users", map[string]any{"schemas": []string{scim.SchemaUser}, "userName": "JDOE@acme.com"})
	expect(t, "duplicate", st, 409, body)
	if body["scimType"] != "uniqueness" || body["schemas"].([]any)[0] != scim.SchemaError {
		t.Errorf("duplicate: %v", body)
	}
	st, body = c.do("GET", "/Users/"+uid, nil)
	expect(t, "get", st, 200, body)
	st, body = c.do("PUT", "/Users/"+uid, map[string]any{
		"schemas": []string{scim.SchemaUser}, "id": uid, "userName": "jdoe@acme.com", "active": true,
		"name":   map[string]string{"givenName": "Johnny", "familyName": "Doe"},
		"emails": []map[string]any{{"primary": true, "value": "johnny@acme.com", "type": "work"}},
	})
	expect(t, "replace", st, 200, body)
	if u := dir.users["acme"][uid]; u.GivenName != "Johnny" || u.Email != "johnny@acme.com" {
		t.Errorf("replaced user %+v", u)
	}
	st, body = c.do("PATCH", "/Users/"+uid, map[string]any{"schemas": []string{scim.SchemaPatch},
		"Operations": []map[string]any{{"op": "replace", "value": map[string]any{"active": false}}}})
	expect(t, "deactivate", st, 200, body)
	if dir.users["acme"][uid].Active || body["active"] != false {
		t.Errorf("deactivated user still active: %v", body)
	}

	st, body = c.do("POST", "/Groups", map[string]any{"schemas": []string{scim.SchemaGroup}, "displayName": "ferry-editors", "members": []any{}})
	expect(t, "create group", st, 201, body)
	gid := body["id"].(string)
	st, body = c.do("PATCH", "/Groups/"+gid, map[string]any{"schemas": []string{scim.SchemaPatch},
		"Operations": []map[string]any{{"op": "add", "path": "members", "value": []map[string]string{{"value": uid, "display": "jdoe@acme.com"}}}}})
	expect(t, "add member", st, 200, body)
	if m := dir.groups["acme"][gid].Members; len(m) != 1 || m[0].Value != uid {
		t.Fatalf("members %+v", m)
	}
	_, body = c.do("GET", "/Users/"+uid, nil)
	if g := body["groups"].([]any); len(g) != 1 || g[0].(map[string]any)["display"] != "ferry-editors" {
		t.Errorf("the user's groups: %v", body["groups"])
	}
	st, body = c.do("PATCH", "/Groups/"+gid, map[string]any{"schemas": []string{scim.SchemaPatch},
		"Operations": []map[string]any{{"op": "remove", "path": `members[value eq "` + uid + `"]`}}})
	expect(t, "remove member", st, 200, body)
	if m := dir.groups["acme"][gid].Members; len(m) != 0 {
		t.Errorf("members after remove %+v", m)
	}
	st, body = c.do("PATCH", "/Groups/"+gid, map[string]any{"schemas": []string{scim.SchemaPatch},
		"Operations": []map[string]any{{"op": "replace", "value": map[string]any{"id": gid, "displayName": "ferry-admins"}}}})
	expect(t, "rename", st, 200, body)
	st, body = c.do("GET", `/Groups?filter=displayName%20eq%20%22ferry-admins%22&excludedAttributes=members`, nil)
	expect(t, "group lookup", st, 200, body)
	if body["totalResults"].(float64) != 1 {
		t.Errorf("group lookup: %v", body)
	}
	st, _ = c.do("DELETE", "/Groups/"+gid, nil)
	expect(t, "delete group", st, 204, nil)
	st, body = c.do("GET", "/Groups/"+gid, nil)
	expect(t, "deleted group", st, 404, body)
}

// TestEntraSequence replays Microsoft Entra ID's: its capitalised ops, the
// string "False", attribute paths with a value filter, attributes Ferry
// does not keep, member add/remove with a value list, and user deletion.
func TestEntraSequence(t *testing.T) {
	c, dir := newIDP(t)
	st, body := c.do("POST", "/Users", map[string]any{
		"schemas":    []string{scim.SchemaUser, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"},
		"externalId": "alias", "userName": "ada@globex.com", "active": true, "displayName": "Ada",
		"emails": []map[string]any{{"primary": true, "type": "work", "value": "ada@globex.com"}},
		"name":   map[string]string{"formatted": "Ada L", "familyName": "L", "givenName": "Ada"},
	})
	expect(t, "create", st, 201, body)
	uid := body["id"].(string)
	st, body = c.do("GET", `/Users?filter=userName+eq+%22ada%40globex.com%22`, nil)
	expect(t, "lookup", st, 200, body)
	if body["totalResults"].(float64) != 1 {
		t.Fatalf("lookup: %v", body)
	}
	st, body = c.do("PATCH", "/Users/"+uid, map[string]any{"schemas": []string{scim.SchemaPatch}, "Operations": []map[string]any{
		{"op": "Replace", "path": "active", "value": "False"},
		{"op": "Add", "path": "displayName", "value": "Ada Lovelace"},
		{"op": "Replace", "path": `emails[type eq "work"].value`, "value": "ada.l@globex.com"},
		{"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "Analytics"},
		{"op": "Replace", "path": "name.familyName", "value": "Lovelace"},
	}})
	expect(t, "patch", st, 200, body)
	u := dir.users["acme"][uid]
	if u.Active || u.DisplayName != "Ada Lovelace" || u.Email != "ada.l@globex.com" || u.FamilyName != "Lovelace" {
		t.Errorf("patched user %+v", u)
	}
	st, body = c.do("POST", "/Groups", map[string]any{"schemas": []string{scim.SchemaGroup}, "displayName": "ferry-viewers", "externalId": "g1"})
	expect(t, "create group", st, 201, body)
	gid := body["id"].(string)
	for _, op := range []string{"Add", "Remove"} {
		st, body = c.do("PATCH", "/Groups/"+gid, map[string]any{"schemas": []string{scim.SchemaPatch},
			"Operations": []map[string]any{{"op": op, "path": "members", "value": []map[string]string{{"value": uid}}}}})
		expect(t, op+" member", st, 200, body)
	}
	if m := dir.groups["acme"][gid].Members; len(m) != 0 {
		t.Errorf("members after add and remove: %+v", m)
	}
	st, _ = c.do("DELETE", "/Users/"+uid, nil)
	expect(t, "delete", st, 204, nil)
	st, body = c.do("GET", "/Users/"+uid, nil)
	expect(t, "deleted user", st, 404, body)
}

// TestErrorsAndTenancy: every refusal is a SCIM error naming what is wrong,
// and a tenant's token sees only that tenant's users.
func TestErrorsAndTenancy(t *testing.T) {
	c, _ := newIDP(t)
	st, body := c.do("POST", "/Users", map[string]any{"schemas": []string{scim.SchemaUser}, "userName": "x@acme.com"})
	expect(t, "create", st, 201, body)
	uid := body["id"].(string)
	for _, tc := range []struct {
		name, method, path string
		body               any
		status             int
		scimType, detail   string
	}{
		{"no userName", "POST", "/Users", map[string]any{"schemas": []string{scim.SchemaUser}}, 400, "invalidValue", "userName is required"},
		{"malformed JSON", "POST", "/Users", `{"userName":`, 400, "invalidSyntax", "request body"},
		{"unknown user", "GET", "/Users/nope", nil, 404, "", "nope"},
		{"filter operator", "GET", `/Users?filter=userName%20co%20%22x%22`, nil, 400, "invalidFilter", "only the eq operator"},
		{"filter attribute", "GET", `/Users?filter=password%20eq%20%22x%22`, nil, 400, "invalidFilter", "cannot be filtered"},
		{"filter value", "GET", `/Users?filter=userName%20eq%20x`, nil, 400, "invalidFilter", "quoted string"},
		{"bad op", "PATCH", "/Users/" + uid, map[string]any{"Operations": []map[string]any{{"op": "move", "path": "active", "value": true}}}, 400, "invalidSyntax", `op "move"`},
		{"no ops", "PATCH", "/Users/" + uid, map[string]any{"Operations": []any{}}, 400, "invalidSyntax", "Operations"},
		{"active not a bool", "PATCH", "/Users/" + uid, map[string]any{"Operations": []map[string]any{{"op": "replace", "path": "active", "value": "maybe"}}}, 400, "invalidValue", "not a boolean"},
		{"remove userName", "PATCH", "/Users/" + uid, map[string]any{"Operations": []map[string]any{{"op": "remove", "path": "userName"}}}, 400, "invalidValue", "userName cannot be removed"},
		{"no endpoint", "GET", "/Bulk", nil, 404, "", "no SCIM endpoint"},
		{"count not a number", "GET", "/Users?count=ten", nil, 400, "invalidValue", "count"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, body := c.do(tc.method, tc.path, tc.body)
			if st != tc.status || body["status"] != fmt.Sprint(tc.status) || !strings.Contains(fmt.Sprint(body["detail"]), tc.detail) {
				t.Errorf("status %d body %v; want %d with %q", st, body, tc.status, tc.detail)
			}
			if tc.scimType != "" && body["scimType"] != tc.scimType {
				t.Errorf("scimType %v, want %s", body["scimType"], tc.scimType)
			}
		})
	}
	other := &idp{t: t, srv: c.srv, token: "globex-token"}
	if st, body := other.do("GET", "/Users/"+uid, nil); st != 404 {
		t.Errorf("another tenant read the user: %d %v", st, body)
	}
	if _, body := other.do("GET", "/Users", nil); body["totalResults"].(float64) != 0 {
		t.Errorf("another tenant lists %v", body)
	}
	none := &idp{t: t, srv: c.srv}
	if st, body := none.do("GET", "/Users", nil); st != 401 || body["status"] != "401" {
		t.Errorf("no token: %d %v", st, body)
	}
	wrong := &idp{t: t, srv: c.srv, token: "guess"}
	if st, _ := wrong.do("GET", "/ServiceProviderConfig", nil); st != 401 {
		t.Errorf("a wrong token: %d", st)
	}
	if st, body := c.do("GET", "/ServiceProviderConfig", nil); st != 200 || body["patch"].(map[string]any)["supported"] != true {
		t.Errorf("service provider config: %d %v", st, body)
	}
	// Paging: startIndex is 1-based, count bounded.
	for i := range 4 {
		c.do("POST", "/Users", map[string]any{"schemas": []string{scim.SchemaUser}, "userName": fmt.Sprintf("u%d@acme.com", i)})
	}
	_, body = c.do("GET", "/Users?startIndex=2&count=2", nil)
	if body["totalResults"].(float64) != 5 || body["startIndex"].(float64) != 2 || len(body["Resources"].([]any)) != 2 {
		t.Errorf("page: %v", body)
	}
}
