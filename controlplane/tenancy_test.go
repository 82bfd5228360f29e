package controlplane_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ferry-ai/ferry/controlplane/agentapi"
	"github.com/ferry-ai/ferry/controlplane/api"
	"github.com/ferry-ai/ferry/controlplane/apiclient"
	"github.com/ferry-ai/ferry/controlplane/auth"
	"github.com/ferry-ai/ferry/internal/pki"
)

// enrollAgent enrolls an agent of a tenant through the API as a real agent
// does (the operator issues a one-time token, the agent sends it with a
// certificate request) and returns the agent's client TLS configuration.
func (h *harness) enrollAgent(tenant, agentID string) *tls.Config {
	h.t.Helper()
	code, body := h.do("POST", api.PathEnrollments, "Bearer "+testToken, fmt.Sprintf(`{"agent_id":%q,"tenant":%q}`, agentID, tenant))
	if code != http.StatusCreated {
		h.t.Fatalf("enrollment of %s/%s: %d %s", tenant, agentID, code, body)
	}
	var e api.Enrollment
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		h.t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		h.t.Fatal(err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		h.t.Fatal(err)
	}
	req, _ := json.Marshal(api.EnrollRequest{Token: e.Token, CSR: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}))})
	code, body = h.do("POST", api.PathEnroll, "", string(req))
	if code != http.StatusOK {
		h.t.Fatalf("enroll %s/%s: %d %s", tenant, agentID, code, body)
	}
	var resp api.EnrollResponse
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		h.t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		h.t.Fatal(err)
	}
	cert, err := tls.X509KeyPair([]byte(resp.Certificate), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		h.t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(resp.CA)) {
		h.t.Fatal("enroll: no CA certificate in the answer")
	}
	return &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}, RootCAs: pool}
}

// connectAs dials with cfg, says Hello as agentID and expects Welcome.
func (h *harness) connectAs(cfg *tls.Config, agentID string) *testAgent {
	h.t.Helper()
	a := h.dialAgentTLS(cfg)
	a.send(hello(agentID))
	if m := a.recv(); m.GetWelcome() == nil {
		h.t.Fatalf("agent %s: first control message = %v, want Welcome", agentID, m)
	}
	a.heartbeat()
	return a
}

// tenantUser makes a user of a tenant with a role and returns an API
// client and the raw Authorization header for their token.
func (h *harness) tenantUser(tenant, name string, role auth.Role) (*apiclient.Client, string) {
	h.t.Helper()
	ctx := context.Background()
	u, err := h.srv.Auth().UpsertUser(ctx, auth.User{Tenant: tenant, ExternalID: name, DisplayName: name, Active: true, Role: role})
	if err != nil {
		h.t.Fatal(err)
	}
	_, secret, err := h.srv.Auth().CreateToken(ctx, tenant, u.ID, role, name, time.Hour)
	if err != nil {
		h.t.Fatal(err)
	}
	pool, err := pki.LoadCAPool(pki.DevFiles(h.certDir, "controlplane").CA)
	if err != nil {
		h.t.Fatal(err)
	}
	c, err := apiclient.New(h.apiURL, secret.Reveal(), pool)
	if err != nil {
		h.t.Fatal(err)
	}
	return c, "Bearer " + secret.Reveal()
}

// waitFor polls a job through c until it is in state want.
func waitFor(t *testing.T, c *apiclient.Client, id string, want api.JobState) *api.JobDetail {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		d, err := c.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if d.State == want {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s is %s, want %s; detail %+v", id, d.State, want, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestTenantsIsolated: two tenants' agents (their tenant named by the
// certificate enrollment gave them) and users share one control plane. A
// job runs only on its tenant's agent, even when another tenant's agent
// with the same tables is idle and first in turn; each tenant sees only its
// own jobs, agents, schema and audit entries, and another tenant's job or
// agent is not found; an admin enrolls and revokes only their own tenant's
// agents; an agent ID is one tenant's; closing a tenant ends its agents'
// sessions and refuses their next connection while the other tenant runs on.
func TestTenantsIsolated(t *testing.T) {
	h := startHarness(t, harnessOptions{enroll: true})
	ctx := context.Background()
	acmeCfg := h.enrollAgent("acme", "z-acme")
	// Sorts first, so the scheduler's turn would give it the next job if
	// tenants did not count.
	globexCfg := h.enrollAgent("globex", "a-globex")
	acmeAgent := h.connectAs(acmeCfg, "z-acme")
	globexAgent := h.connectAs(globexCfg, "a-globex")
	acme, _ := h.tenantUser("acme", "alice", auth.Editor)
	globex, globexBearer := h.tenantUser("globex", "gus", auth.Admin)
	_, acmeAdmin := h.tenantUser("acme", "ann", auth.Admin)

	j, err := acme.Submit(ctx, testQuery, "acme_out")
	if err != nil {
		t.Fatal(err)
	}
	if j.Tenant != "acme" {
		t.Errorf("job tenant = %q, want acme", j.Tenant)
	}
	if got := acmeAgent.recv().GetAssignment().GetJobId(); got != j.ID {
		t.Fatalf("acme's agent got %q, want acme's job %s", got, j.ID)
	}
	select {
	case m := <-globexAgent.in:
		t.Fatalf("globex's agent was sent %v", m)
	case <-time.After(300 * time.Millisecond):
	}
	// Another tenant's agent may not report on the job.
	globexAgent.event(j.ID, agentapi.JobState_JOB_STATE_READING, nil)
	acmeAgent.event(j.ID, agentapi.JobState_JOB_STATE_READING, nil)
	d := waitFor(t, acme, j.ID, api.StateReading)
	if d.AgentID != "z-acme" || d.Attempts != 1 {
		t.Errorf("job agent %q attempts %d, want z-acme and 1", d.AgentID, d.Attempts)
	}

	// Each tenant sees its own; another tenant's job and agent are not found.
	if list, err := globex.List(ctx); err != nil || len(list) != 0 {
		t.Errorf("globex's job list = %+v, %v; want empty", list, err)
	}
	if list, err := acme.List(ctx); err != nil || len(list) != 1 || list[0].ID != j.ID {
		t.Errorf("acme's job list = %+v, %v; want its job", list, err)
	}
	for _, req := range []struct{ method, path, bearer string }{
		{"GET", api.PathJobs + "/" + j.ID, globexBearer},
		{"POST", api.PathJobs + "/" + j.ID + "/cancel", globexBearer},
		{"GET", api.PathJobs + "/" + j.ID, "Bearer " + testToken}, // the operator is the default tenant's admin
		{"POST", api.PathAgents + "/z-acme/revoke", globexBearer},
	} {
		if code, body := h.do(req.method, req.path, req.bearer, "{}"); code != http.StatusNotFound {
			t.Errorf("%s %s as another tenant: %d %s, want 404", req.method, req.path, code, body)
		}
	}
	if agents, err := globex.Agents(ctx); err != nil || len(agents) != 1 || agents[0].ID != "a-globex" {
		t.Errorf("globex's agents = %+v, %v", agents, err)
	}
	if agents, err := h.client.Agents(ctx); err != nil || len(agents) != 0 {
		t.Errorf("the default tenant's agents = %+v, %v; want none", agents, err)
	}
	// The default tenant has no agent, so no schema to plan against.
	if _, err := h.client.Submit(ctx, testQuery, "p"); !isStatus(err, http.StatusServiceUnavailable) {
		t.Errorf("submit in a tenant without agents: %v, want 503", err)
	}
	code, body := h.do("GET", api.PathAudit+"?action=agent.connect", acmeAdmin, "")
	if code != http.StatusOK || !strings.Contains(body, "z-acme") || strings.Contains(body, "a-globex") {
		t.Errorf("acme's audit of agent connects: %d %s; want z-acme's only", code, body)
	}

	// Enrollment and revocation stay within the admin's tenant.
	if code, body := h.do("POST", api.PathEnrollments, globexBearer, `{"agent_id":"spy","tenant":"acme"}`); code != http.StatusForbidden {
		t.Errorf("globex's admin enrolls for acme: %d %s, want 403", code, body)
	}
	if code, body := h.do("POST", api.PathEnrollments, globexBearer, `{"agent_id":"g-2"}`); code != http.StatusCreated || !strings.Contains(body, `"tenant":"globex"`) {
		t.Errorf("globex's admin enrolls without naming a tenant: %d %s, want 201 for globex", code, body)
	}
	if code, body := h.do("POST", api.PathEnrollments, "Bearer "+testToken, `{"agent_id":"z-acme","tenant":"globex"}`); code != http.StatusConflict {
		t.Errorf("enrolling acme's agent ID for globex: %d %s, want 409", code, body)
	}

	// Closing acme ends its agent's session and refuses it afterwards;
	// globex's agent runs on.
	if code, body := h.do("DELETE", api.PathTenants+"/acme", "Bearer "+testToken, ""); code != http.StatusOK || !strings.Contains(body, `"jobs":1`) || !strings.Contains(body, `"agents":1`) {
		t.Errorf("closing acme: %d %s", code, body)
	}
	if err := acmeAgent.recvErr(); status.Code(err) != codes.Aborted {
		t.Errorf("acme's agent stream after closure: %v, want Aborted", err)
	}
	again := h.dialAgentTLS(acmeCfg)
	_ = again.stream.Send(hello("z-acme")) // the refusal may come first
	if err := again.recvErr(); status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "closed or unknown") {
		t.Errorf("closed tenant's agent reconnects: %v, want PermissionDenied", err)
	}
	g, err := globex.Submit(ctx, testQuery, "globex_out")
	if err != nil {
		t.Fatal(err)
	}
	if got := globexAgent.recv().GetAssignment().GetJobId(); got != g.ID {
		t.Fatalf("globex's agent got %q, want %s", got, g.ID)
	}
	globexAgent.succeed(g.ID)
	waitFor(t, globex, g.ID, api.StateSucceeded)
}

// TestFileConnectionsDisabled: a control plane configured for customer
// warehouses only (disable_file_connections) refuses a connection of a
// file kind and an agent whose warehouse is a file, and accepts the rest.
func TestFileConnectionsDisabled(t *testing.T) {
	for _, tc := range []struct {
		name    string
		noFiles bool
	}{{"files allowed", false}, {"files disabled", true}} {
		t.Run(tc.name, func(t *testing.T) {
			h := startHarness(t, harnessOptions{noFiles: tc.noFiles})
			bearer := "Bearer " + testToken
			for _, kind := range []string{"duckdb", "parquet", "postgres"} {
				code, body := h.do("POST", "/v1/connections", bearer, `{"name":"c-`+kind+`","kind":"`+kind+`","settings":{"host":"db.example"}}`)
				refused := tc.noFiles && kind != "postgres"
				switch {
				case refused && (code != http.StatusBadRequest || !strings.Contains(body, "customer warehouses only")):
					t.Errorf("%s connection with files disabled: %d %s, want 400", kind, code, body)
				case !refused && code != http.StatusCreated:
					t.Errorf("%s connection: %d %s, want 201", kind, code, body)
				}
			}
			a := h.dialAgent("agent")
			m := hello(testAgentID)
			m.GetHello().WarehouseKind = "duckdb"
			a.send(m)
			if tc.noFiles {
				if err := a.recvErr(); status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "duckdb file") {
					t.Errorf("an agent on a DuckDB file with files disabled: %v, want PermissionDenied", err)
				}
				a = h.dialAgent("agent")
				m = hello(testAgentID)
				m.GetHello().WarehouseKind = "postgres"
				a.send(m)
			}
			if w := a.recv(); w.GetWelcome() == nil {
				t.Errorf("agent: got %v, want Welcome", w)
			}
		})
	}
}
