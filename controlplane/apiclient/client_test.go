package apiclient_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-ai/ferry/controlplane/api"
	"github.com/ferry-ai/ferry/controlplane/apiclient"
)

func TestNew(t *testing.T) {
	tests := []struct {
		name, url, token, wantErr string
	}{
		{"valid", "https://localhost:8443", "t", ""},
		{"trailing slash", "https://localhost:8443/", "t", ""},
		{"http refused", "http://localhost:8443", "t", "must be https"},
		{"no host", "https://", "t", "must be https"},
		{"no token", "https://localhost:8443", "", "token is empty"},
	}
	for _, tt := range tests {
		_, err := apiclient.New(tt.url, tt.token, nil)
		if (tt.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("%s: New = %v, want error %q", tt.name, err, tt.wantErr)
		}
	}
}

// fakeAPI serves canned answers and records what it received.
func fakeAPI(t *testing.T, handler http.HandlerFunc) *apiclient.Client {
	t.Helper()
	ts := httptest.NewTLSServer(handler)
	t.Cleanup(ts.Close)
	pool := x509.NewCertPool()
	pool.AddCert(ts.Certificate())
	c, err := apiclient.New(ts.URL, "tok", pool)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRequests(t *testing.T) {
	var got struct {
		method, path, auth, contentType string
		body                            api.SubmitRequest
	}
	c := fakeAPI(t, func(w http.ResponseWriter, r *http.Request) {
		got.method, got.path, got.auth, got.contentType = r.Method, r.URL.Path, r.Header.Get("Authorization"), r.Header.Get("Content-Type")
		if r.Method == http.MethodPost && r.URL.Path == api.PathJobs {
			json.NewDecoder(r.Body).Decode(&got.body)
			w.WriteHeader(http.StatusCreated)
			json.NewEncoder(w).Encode(api.Job{ID: "j-1", State: api.StateQueued})
			return
		}
		switch r.URL.Path {
		case api.PathJobs:
			json.NewEncoder(w).Encode(api.JobList{Jobs: []api.Job{{ID: "j-2"}, {ID: "j-1"}}})
		case api.PathJobs + "/j-1":
			json.NewEncoder(w).Encode(api.JobDetail{Job: api.Job{ID: "j-1", State: api.StateSucceeded}, Model: &api.Model{ModelID: "m"}})
		case api.PathAgents:
			json.NewEncoder(w).Encode(api.AgentList{Agents: []api.Agent{{ID: "a"}}})
		default:
			w.WriteHeader(http.StatusNotFound)
			json.NewEncoder(w).Encode(api.Error{Error: "job not found"})
		}
	})
	ctx := context.Background()

	j, err := c.Submit(ctx, "PREDICT x", "out")
	if err != nil || j.ID != "j-1" {
		t.Fatalf("Submit = %+v, %v", j, err)
	}
	if got.method != http.MethodPost || got.auth != "Bearer tok" || got.contentType != "application/json" ||
		got.body != (api.SubmitRequest{Query: "PREDICT x", OutputTable: "out"}) {
		t.Errorf("submit request = %+v", got)
	}
	jobs, err := c.List(ctx)
	if err != nil || len(jobs) != 2 || jobs[0].ID != "j-2" {
		t.Errorf("List = %+v, %v", jobs, err)
	}
	d, err := c.Get(ctx, "j-1")
	if err != nil || d.Model == nil || d.Model.ModelID != "m" {
		t.Errorf("Get = %+v, %v", d, err)
	}
	agents, err := c.Agents(ctx)
	if err != nil || len(agents) != 1 {
		t.Errorf("Agents = %+v, %v", agents, err)
	}
	_, err = c.Get(ctx, "j-9")
	var se *apiclient.StatusError
	if !errors.As(err, &se) || se.StatusCode != http.StatusNotFound || se.Message != "job not found" {
		t.Errorf("Get unknown = %v, want StatusError 404 job not found", err)
	}
	if d, err := c.Wait(ctx, "j-1", time.Millisecond); err != nil || d.State != api.StateSucceeded {
		t.Errorf("Wait = %+v, %v", d, err)
	}
}

func TestErrorBodies(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		want   string
	}{
		{"json error", 400, `{"error": "table \"ordrs\" not found"}`, `table "ordrs" not found`},
		{"plain text", 502, "bad gateway\n", "bad gateway"},
		{"empty", 503, "", "Service Unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fakeAPI(t, func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				w.Write([]byte(tt.body))
			})
			_, err := c.List(context.Background())
			var se *apiclient.StatusError
			if !errors.As(err, &se) || se.StatusCode != tt.status || se.Message != tt.want {
				t.Fatalf("err = %#v, want status %d message %q", err, tt.status, tt.want)
			}
		})
	}
}

func TestWaitHonoursContext(t *testing.T) {
	var calls atomic.Int32
	c := fakeAPI(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		json.NewEncoder(w).Encode(api.JobDetail{Job: api.Job{ID: "j-1", State: api.StateTraining}})
	})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	d, err := c.Wait(ctx, "j-1", 10*time.Millisecond)
	if !errors.Is(err, context.DeadlineExceeded) || d == nil || d.State != api.StateTraining {
		t.Errorf("Wait = %+v, %v; want the last detail and DeadlineExceeded", d, err)
	}
	if calls.Load() < 2 {
		t.Errorf("polled %d times", calls.Load())
	}
}

func TestRefusesUnknownCA(t *testing.T) {
	ts := httptest.NewUnstartedServer(http.NotFoundHandler())
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake
	ts.StartTLS()
	defer ts.Close()
	c, err := apiclient.New(ts.URL, "tok", x509.NewCertPool())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.List(context.Background()); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("List against an untrusted server = %v, want a certificate error", err)
	}
}
