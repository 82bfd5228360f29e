package controlplane_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ferry-ai/ferry/controlplane"
	"github.com/ferry-ai/ferry/controlplane/audit"
	"github.com/ferry-ai/ferry/controlplane/auth"
	"github.com/ferry-ai/ferry/controlplane/metadb"
)

// roleTokens mints an API token of each role through the API itself (the
// operator's token is an admin of the default tenant).
func roleTokens(t *testing.T, h *harness) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, role := range []string{"viewer", "editor", "admin"} {
		st, body := h.do("POST", "/v1/tokens", "Bearer "+testToken, fmt.Sprintf(`{"name":"walk-%s","role":%q,"ttl":"1h"}`, role, role))
		if st != http.StatusCreated {
			t.Fatalf("create a %s token: %d %s", role, st, body)
		}
		var ct struct{ Secret string }
		if err := json.Unmarshal([]byte(body), &ct); err != nil || !strings.HasPrefix(ct.Secret, "ferry_") {
			t.Fatalf("created token %s: %v", body, err)
		}
		out[role] = "Bearer " + ct.Secret
	}
	return out
}

// TestEveryEndpointEveryRole walks every route of the user API, read from
// the OpenAPI document the control plane serves (one table makes the mux,
// the role checks and the document), with no token, a wrong token and a
// token of each role: no token or a wrong one is 401, a role below the
// route's is 403, and the route's role or a higher one gets through. Every
// call, refusals included, is in the audit log, whose chain verifies.
func TestEveryEndpointEveryRole(t *testing.T) {
	h := startHarness(t, harnessOptions{})
	tokens := roleTokens(t, h)
	st, body := h.do("GET", "/openapi.json", "", "")
	if st != http.StatusOK {
		t.Fatalf("openapi.json: %d %s", st, body)
	}
	var doc struct {
		OpenAPI string                               `json:"openapi"`
		Paths   map[string]map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil || !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi.json is not an OpenAPI 3 document: %v", err)
	}
	rank := map[string]int{"viewer": 1, "editor": 2, "admin": 3}
	var walked []string
	for path, ops := range doc.Paths {
		for method, op := range ops {
			need, ok := op["x-ferry-role"].(string)
			if !ok {
				continue // a public endpoint
			}
			method = strings.ToUpper(method)
			p := strings.ReplaceAll(path, "{id}", "x-missing")
			reqBody := ""
			if method == "POST" {
				reqBody = "{}"
			}
			walked = append(walked, method+" "+path+" "+need)
			for _, tc := range []struct{ who, token string }{{"nobody", ""}, {"wrong token", "Bearer ferry_" + strings.Repeat("a", 52)}, {"not ours", "Bearer guess"}} {
				if st, body := h.do(method, p, tc.token, reqBody); st != http.StatusUnauthorized {
					t.Errorf("%s %s by %s: %d %s, want 401", method, path, tc.who, st, body)
				}
			}
			for role, tok := range tokens {
				st, body := h.do(method, p, tok, reqBody)
				switch {
				case rank[role] < rank[need] && st != http.StatusForbidden:
					t.Errorf("%s %s as %s (needs %s): %d %s, want 403", method, path, role, need, st, body)
				case st == http.StatusForbidden && (strings.Contains(body, "own tenant") || strings.Contains(body, "only support staff") || strings.Contains(body, "only the operator's token")):
					// Let through by role; the handler refuses another
					// tenant's account (TestDeleteTenant) or wants the
					// operator's token (TestSignInLink).
				case rank[role] >= rank[need] && (st == http.StatusForbidden || st == http.StatusUnauthorized):
					t.Errorf("%s %s as %s (needs %s): %d %s, want it let through", method, path, role, need, st, body)
				}
			}
		}
	}
	sort.Strings(walked)
	t.Logf("walked %d routes:\n%s", len(walked), strings.Join(walked, "\n"))
	for _, want := range []string{"POST /v1/jobs editor", "GET /v1/jobs viewer", "POST /v1/agents/enrollments admin", "GET /v1/audit admin", "POST /v1/agents/{id}/revoke admin"} {
		found := false
		for _, w := range walked {
			found = found || w == want
		}
		if !found {
			t.Errorf("the OpenAPI document lacks %q", want)
		}
	}

	// The audit log has the calls and the refusals, and its chain is
	// intact. The operator sees the provider-wide entries (requests
	// refused before any tenant was known) too.
	st, body = h.do("GET", "/v1/audit?limit=1000", "Bearer "+testToken, "")
	if st != http.StatusOK {
		t.Fatalf("audit: %d %s", st, body)
	}
	var entries []audit.Entry
	if err := json.Unmarshal([]byte(body), &entries); err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, e := range entries {
		count[e.Action+":"+string(e.Outcome)]++
	}
	for _, want := range []string{"agent.enroll_token:denied", "job.submit:denied", "api.unauthenticated:denied", "token.create:success", "job.list:success"} {
		if count[want] == 0 {
			t.Errorf("no %s in the audit log: %v\n%s", want, count, grepLines(h.logs.String(), "audit"))
		}
	}
	st, body = h.do("GET", "/v1/audit?action=api.", tokens["admin"], "")
	if st != http.StatusOK || strings.Contains(body, "api.unauthenticated") {
		t.Errorf("a tenant's admin sees provider-wide entries: %d %s", st, body)
	}
	if st, _ := h.do("GET", "/v1/audit", tokens["editor"], ""); st != http.StatusForbidden {
		t.Errorf("an editor read the audit log: %d", st)
	}
	h.stop()
	var db *metadb.DB
	var err error
	if u, ok := pgSchemas.Load(h.dataDir); ok {
		db, err = metadb.Open(context.Background(), u.(string))
	} else {
		db, err = metadb.Open(context.Background(), filepath.Join(h.dataDir, controlplane.DBFile))
	}
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	log, err := audit.Open(context.Background(), db, &audit.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := log.Verify(context.Background())
	if err != nil || !rep.OK() || rep.Entries < int64(len(walked)) {
		t.Errorf("audit chain: %+v %v", rep, err)
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestSCIMMounted: the identity provider provisions users at /scim/v2
// with a tenant admin's API token; other roles and no token are refused,
// and each request is in the audit log.
func TestSCIMMounted(t *testing.T) {
	h := startHarness(t, harnessOptions{})
	tokens := roleTokens(t, h)
	user := `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"ada@acme.example","active":true}`
	if st, body := h.do("POST", "/scim/v2/Users", "", user); st != http.StatusUnauthorized {
		t.Errorf("SCIM without a token: %d %s", st, body)
	}
	if st, body := h.do("POST", "/scim/v2/Users", tokens["editor"], user); st != http.StatusForbidden {
		t.Errorf("SCIM with an editor's token: %d %s", st, body)
	}
	st, body := h.do("POST", "/scim/v2/Users", tokens["admin"], user)
	if st != http.StatusCreated || !strings.Contains(body, `"userName":"ada@acme.example"`) {
		t.Fatalf("SCIM create: %d %s", st, body)
	}
	st, body = h.do("GET", `/scim/v2/Users?filter=userName%20eq%20%22ada%40acme.example%22`, tokens["admin"], "")
	if st != http.StatusOK || !strings.Contains(body, `"totalResults":1`) {
		t.Errorf("SCIM lookup: %d %s", st, body)
	}
	st, body = h.do("GET", "/v1/audit?action=scim.&limit=100", tokens["admin"], "")
	if st != http.StatusOK || strings.Count(body, `"scim.request"`) < 2 {
		t.Errorf("SCIM requests not audited: %d %s", st, body)
	}
}

// TestDeleteTenant: closing the default tenant's account deletes every job,
// agent, report, user and token at once and reports the counts; the file
// holds none of it afterwards (secure delete, WAL truncated); the audit
// chain still verifies with the tenant's entries redacted; a tenant's
// admin cannot close another tenant.
func TestDeleteTenant(t *testing.T) {
	h := startHarness(t, harnessOptions{sqlite: true})
	tokens := roleTokens(t, h)
	a := h.connectAgent(true)
	const marker = "churn_marker_7c1e"
	ctx := context.Background()
	j, err := h.client.Submit(ctx, testQuery, marker)
	if err != nil {
		t.Fatal(err)
	}
	a.recv()
	if st, body := h.do("POST", "/scim/v2/Users", tokens["admin"], `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"marker.user@acme.example"}`); st != http.StatusCreated {
		t.Fatalf("scim: %d %s", st, body)
	}
	if st, body := h.do("DELETE", "/v1/tenants/globex", tokens["admin"], ""); st != http.StatusForbidden {
		t.Errorf("an admin closed another tenant: %d %s", st, body)
	}
	st, body := h.do("DELETE", "/v1/tenants/default", "Bearer "+testToken, "")
	if st != http.StatusOK {
		t.Fatalf("delete tenant: %d %s", st, body)
	}
	var rep struct {
		Deleted       map[string]int64 `json:"deleted"`
		AuditRedacted int64            `json:"audit_redacted"`
	}
	if err := json.Unmarshal([]byte(body), &rep); err != nil {
		t.Fatal(err)
	}
	t.Logf("deleted %v, %d audit entries redacted", rep.Deleted, rep.AuditRedacted)
	if rep.Deleted["jobs"] != 1 || rep.Deleted["agents"] != 1 || rep.Deleted["job_events"] < 2 || rep.AuditRedacted == 0 {
		t.Errorf("deletion report %+v", rep)
	}
	// (Listed, not fetched: a fetch would audit the ID anew.)
	if jobs, err := h.client.List(ctx); err != nil || len(jobs) != 0 {
		t.Errorf("jobs after the deletion: %v %v", jobs, err)
	}
	if st, _ := h.do("GET", "/v1/jobs", tokens["viewer"], ""); st != http.StatusUnauthorized {
		t.Errorf("a token of the closed tenant still works: %d", st)
	}
	a.cancel()
	h.stop()
	raw := dbBytes(t, h.dataDir)
	for _, m := range []string{marker, "marker.user@acme.example", j.ID} {
		if strings.Contains(string(raw), m) {
			i := strings.Index(string(raw), m)
			t.Errorf("%q is still in the metadata database's files: …%q…", m, raw[max(0, i-200):min(len(raw), i+100)])
		}
	}
	db, err := metadb.Open(ctx, filepath.Join(h.dataDir, controlplane.DBFile))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	log, err := audit.Open(ctx, db, &audit.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := log.Verify(ctx); err != nil || !rep.OK() || rep.Redacted == 0 {
		t.Errorf("audit chain after the deletion: %+v %v", rep, err)
	}
}

// TestSupportAccess: a support engineer (a user of the support tenant) sees
// nothing of a customer's tenant without a grant; requests one; cannot
// approve it; once a customer admin approves, reads the tenant read-only
// until the grant is revoked; every step is in the customer's audit log.
func TestSupportAccess(t *testing.T) {
	h := startHarness(t, harnessOptions{})
	tokens := roleTokens(t, h)
	ctx := context.Background()
	svc := h.srv.Auth()
	sam, err := svc.UpsertUser(ctx, auth.User{Tenant: controlplane.DefaultSupportTenant, ExternalID: "sam", Email: "sam@ferry.example", Active: true, Role: auth.Admin})
	if err != nil {
		t.Fatal(err)
	}
	_, secret, err := svc.CreateToken(ctx, sam.Tenant, sam.ID, auth.Admin, "support", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	samTok := "Bearer " + secret.Reveal()
	as := func(method, path, body string) (int, string) {
		req, _ := http.NewRequest(method, h.apiURL+path, strings.NewReader(body))
		req.Header.Set("Authorization", samTok)
		req.Header.Set(controlplane.SupportHeader, controlplane.DefaultTenant)
		resp, err := h.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if st, body := as("GET", "/v1/jobs", ""); st != http.StatusForbidden || !strings.Contains(body, "no approved") {
		t.Fatalf("support without a grant: %d %s", st, body)
	}
	st, body := h.do("POST", "/v1/support/requests", samTok, `{"tenant":"default","reason":"ticket 4711","duration":"1h"}`)
	if st != http.StatusCreated {
		t.Fatalf("support request: %d %s", st, body)
	}
	var req struct{ ID string }
	_ = json.Unmarshal([]byte(body), &req)
	if st, body := h.do("POST", "/v1/support/requests/"+req.ID+"/approve", samTok, ""); st != http.StatusNotFound {
		t.Errorf("the requester approved in their own tenant: %d %s", st, body)
	}
	if st, body := as("POST", "/v1/support/requests/"+req.ID+"/approve", ""); st != http.StatusForbidden {
		t.Errorf("support approved its own request in the customer's tenant: %d %s", st, body)
	}
	if st, body := h.do("POST", "/v1/support/requests/"+req.ID+"/approve", tokens["admin"], ""); st != http.StatusOK {
		t.Fatalf("customer admin approves: %d %s", st, body)
	}
	if st, body := as("GET", "/v1/jobs", ""); st != http.StatusOK {
		t.Errorf("support with a grant: %d %s", st, body)
	}
	if st, body := as("POST", "/v1/jobs", `{"query":"x","output_table":"p"}`); st != http.StatusForbidden {
		t.Errorf("support wrote in the tenant: %d %s", st, body)
	}
	if st, body := h.do("POST", "/v1/support/requests/"+req.ID+"/revoke", tokens["admin"], ""); st != http.StatusOK {
		t.Fatalf("revoke: %d %s", st, body)
	}
	if st, _ := as("GET", "/v1/jobs", ""); st != http.StatusForbidden {
		t.Errorf("support after revocation: %d", st)
	}
	st, body = h.do("GET", "/v1/audit?action=support.&limit=100", tokens["admin"], "")
	for _, want := range []string{"support.request", "support.approve", "support.revoke", "support.access_denied"} {
		if st != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("no %s in the tenant's audit log: %d", want, st)
		}
	}
	// A support refusal is support.access_denied, not also an
	// unauthenticated call: the engineer was signed in.
	st, body = h.do("GET", "/v1/audit?action=api.unauthenticated&limit=100", "Bearer "+testToken, "")
	if st != http.StatusOK || strings.Contains(body, "/v1/jobs") {
		t.Errorf("support refusals audited as unauthenticated calls: %d %s", st, body)
	}
	if st, body := h.do("GET", "/v1/jobs", "Bearer "+testToken+"x", ""); st != http.StatusUnauthorized {
		t.Errorf("a wrong operator token: %d %s", st, body)
	}
}

// TestCatalogAPI: connections (admin writes, viewers read; a credential in
// a setting refused without echoing it) and saved queries (checked against
// the reported graph) through the API.
func TestCatalogAPI(t *testing.T) {
	h := startHarness(t, harnessOptions{})
	tokens := roleTokens(t, h)
	conn := `{"name":"warehouse","kind":"postgres","settings":{"host":"db.acme.internal","schema":"sales"},"vault_path":"database/creds/ferry-agent"}`
	if st, body := h.do("POST", "/v1/connections", tokens["editor"], conn); st != http.StatusForbidden {
		t.Errorf("an editor created a connection: %d %s", st, body)
	}
	st, body := h.do("POST", "/v1/connections", tokens["admin"], conn)
	if st != http.StatusCreated {
		t.Fatalf("create connection: %d %s", st, body)
	}
	const secret = "hunter2-not-a-setting"
	st, body = h.do("POST", "/v1/connections", tokens["admin"], `{"name":"leaky","kind":"postgres","settings":{"password":"`+secret+`"}}`)
	if st != http.StatusBadRequest || !strings.Contains(body, "credential") || strings.Contains(body, secret) {
		t.Errorf("a password setting: %d %s", st, body)
	}
	if st, body := h.do("GET", "/v1/connections", tokens["viewer"], ""); st != http.StatusOK || !strings.Contains(body, "db.acme.internal") || strings.Contains(body, secret) {
		t.Errorf("list connections: %d %s", st, body)
	}
	// Saved queries are checked against the reported graph.
	h.connectAgent(true)
	if st, body := h.do("POST", "/v1/queries", tokens["editor"], `{"name":"bad","pql":"PREDICT COUNT(ordrs.*, 0, 30, days) > 0 FOR EACH customers.customer_id","output_table":"p"}`); st != http.StatusBadRequest || !strings.Contains(body, "orders") {
		t.Errorf("an invalid query saved: %d %s", st, body)
	}
	st, body = h.do("POST", "/v1/queries", tokens["editor"], `{"name":"churn","pql":"`+testQuery+`","output_table":"churn_predictions"}`)
	if st != http.StatusCreated {
		t.Fatalf("save query: %d %s", st, body)
	}
	var q struct{ ID string }
	_ = json.Unmarshal([]byte(body), &q)
	if st, body := h.do("GET", "/v1/queries/"+q.ID, tokens["viewer"], ""); st != http.StatusOK || !strings.Contains(body, "churn_predictions") {
		t.Errorf("get query: %d %s", st, body)
	}
	if st, _ := h.do("DELETE", "/v1/queries/"+q.ID, tokens["viewer"], ""); st != http.StatusForbidden {
		t.Errorf("a viewer deleted a query: %d", st)
	}
	if st, _ := h.do("DELETE", "/v1/queries/"+q.ID, tokens["editor"], ""); st != http.StatusNoContent {
		t.Errorf("delete query: %d", st)
	}
}
