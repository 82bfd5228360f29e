package controlplane_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ferry-ai/ferry/controlplane/agentapi"
	"github.com/ferry-ai/ferry/controlplane/api"
)

// TestOperationalEndpoints: /healthz and /readyz answer without a token,
// /metrics only with the API token; after a job the metrics show it —
// jobs by state from the database, each transition, a duration for each
// running stage, the connected agent, the API requests by route pattern
// and a refused agent RPC — and no label carries the job ID, a table name
// or the output table.
func TestOperationalEndpoints(t *testing.T) {
	h := startHarness(t, harnessOptions{})
	if code, body := h.do(http.MethodGet, "/healthz", "", ""); code != http.StatusOK || strings.TrimSpace(body) != `{"status":"ok"}` {
		t.Errorf("healthz: %d %s", code, body)
	}
	code, body := h.do(http.MethodGet, "/readyz", "", "")
	var ready struct {
		Status string
		Checks map[string]string
	}
	if err := json.Unmarshal([]byte(body), &ready); err != nil || code != http.StatusOK || ready.Status != "ready" ||
		ready.Checks["metadata_db"] != "ok" || ready.Checks["agent_listener"] != "ok" {
		t.Errorf("readyz: %d %s", code, body)
	}
	for _, tok := range []string{"", "Bearer wrong-token"} {
		if code, _ := h.do(http.MethodGet, "/metrics", tok, ""); code != http.StatusUnauthorized {
			t.Errorf("metrics with token %q: %d, want 401", tok, code)
		}
	}

	// A refused Hello is an RPC error.
	bad := h.dialAgent("agent")
	bad.send(hello("agent-2"))
	_ = bad.recvErr()

	ctx := context.Background()
	a := h.connectAgent(true)
	j, err := h.client.Submit(ctx, testQuery, "churn_predictions")
	if err != nil {
		t.Fatal(err)
	}
	if asg := a.recv().GetAssignment(); asg.GetJobId() != j.ID {
		t.Fatalf("assignment = %v", asg)
	}
	for _, st := range []agentapi.JobState{agentapi.JobState_JOB_STATE_READING, agentapi.JobState_JOB_STATE_TRAINING,
		agentapi.JobState_JOB_STATE_WRITING, agentapi.JobState_JOB_STATE_SUCCEEDED} {
		time.Sleep(20 * time.Millisecond)
		a.event(j.ID, st, nil)
	}
	h.waitState(j.ID, api.StateSucceeded)

	code, metrics := h.do(http.MethodGet, "/metrics", "Bearer "+testToken, "")
	if code != http.StatusOK {
		t.Fatalf("metrics: %d %s", code, metrics)
	}
	for _, want := range []string{
		`ferry_controlplane_jobs{state="succeeded"} 1`,
		`ferry_controlplane_jobs{state="queued"} 0`,
		`ferry_controlplane_agents_connected 1`,
		`ferry_controlplane_job_transitions_total{from="queued",to="assigned"} 1`,
		`ferry_controlplane_job_transitions_total{from="writing",to="succeeded"} 1`,
		`ferry_controlplane_stage_duration_seconds_count{stage="reading"} 1`,
		`ferry_controlplane_stage_duration_seconds_count{stage="training"} 1`,
		`ferry_controlplane_stage_duration_seconds_count{stage="writing"} 1`,
		`ferry_controlplane_rpc_errors_total{code="PermissionDenied",method="/ferry.agent.v1.AgentService/Connect"} 1`,
		`ferry_controlplane_api_requests_total{code="201",route="/v1/jobs"} 1`,
		`ferry_controlplane_api_requests_total{code="200",route="/v1/jobs/{id}"}`,
		`ferry_controlplane_api_requests_total{code="401",route="/"} 2`,
		`ferry_controlplane_api_request_duration_seconds_count{route="/readyz"} 1`,
		`go_goroutines`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	for _, leak := range []string{j.ID, "customers", "churn_predictions", testAgentID, "agent-2", testToken} {
		if strings.Contains(metrics, leak) {
			t.Errorf("metrics carry %q", leak)
		}
	}

	// Every log line about the job names it as job_id.
	for _, line := range strings.Split(strings.TrimSpace(h.logs.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		msg, _ := rec["msg"].(string)
		if _, ok := rec["job"]; ok {
			t.Errorf("log line with the old key job: %s", line)
		}
		if strings.HasPrefix(msg, "job") && rec["job_id"] != j.ID {
			t.Errorf("log line about the job without its job_id: %s", line)
		}
	}
}
