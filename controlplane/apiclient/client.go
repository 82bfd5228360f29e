// Package apiclient is a small Go client of the control plane's user API,
// used by the `ferry jobs` commands: submit a predictive query, list jobs,
// get one job with everything reported about it.
package apiclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ferry-ai/ferry/controlplane/api"
)

// maxResponseBytes bounds a response body the client reads.
const maxResponseBytes = 16 << 20

// Client calls the user API over HTTPS (TLS 1.3) with a bearer token. It is
// safe for concurrent use.
type Client struct {
	base  *url.URL
	token string
	hc    *http.Client
}

// New returns a client of the control plane at baseURL (https://host:port),
// authenticating with token and verifying the server against roots (nil
// means the system roots).
func New(baseURL, token string, roots *x509.CertPool) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("apiclient: base URL: %w", err)
	}
	if u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("apiclient: base URL %q must be https://host[:port]", baseURL)
	}
	if token == "" {
		return nil, errors.New("apiclient: token is empty")
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: roots}
	tr.Proxy = nil
	return &Client{base: u, token: token, hc: &http.Client{Transport: tr}}, nil
}

// StatusError is an error response of the API.
type StatusError struct {
	// StatusCode is the HTTP status, e.g. 400.
	StatusCode int
	// Message is the server's one-line explanation.
	Message string
}

// Error returns the server's message with the HTTP status.
func (e *StatusError) Error() string {
	return fmt.Sprintf("control plane: %s (HTTP %d)", e.Message, e.StatusCode)
}

// Submit queues a predictive query whose predictions go to outputTable.
func (c *Client) Submit(ctx context.Context, query, outputTable string) (*api.Job, error) {
	return c.SubmitRequest(ctx, api.SubmitRequest{Query: query, OutputTable: outputTable})
}

// SubmitRequest queues a job with all the request's fields, training
// options included.
func (c *Client) SubmitRequest(ctx context.Context, req api.SubmitRequest) (*api.Job, error) {
	var j api.Job
	if err := c.do(ctx, http.MethodPost, api.PathJobs, req, &j); err != nil {
		return nil, fmt.Errorf("submit job: %w", err)
	}
	return &j, nil
}

// Get returns a job with its state history, table statistics, model metrics,
// purge report and write report.
func (c *Client) Get(ctx context.Context, id string) (*api.JobDetail, error) {
	var d api.JobDetail
	if err := c.do(ctx, http.MethodGet, api.PathJobs+"/"+url.PathEscape(id), nil, &d); err != nil {
		return nil, fmt.Errorf("get job %s: %w", id, err)
	}
	return &d, nil
}

// List returns the most recent jobs, newest first.
func (c *Client) List(ctx context.Context) ([]api.Job, error) {
	var l api.JobList
	if err := c.do(ctx, http.MethodGet, api.PathJobs, nil, &l); err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	return l.Jobs, nil
}

// Cancel cancels a job: at once when it is queued, otherwise by asking its
// agent to stop (the job then ends in state cancelled).
func (c *Client) Cancel(ctx context.Context, id string) (*api.Job, error) {
	var j api.Job
	if err := c.do(ctx, http.MethodPost, api.PathJobs+"/"+url.PathEscape(id)+"/cancel", nil, &j); err != nil {
		return nil, fmt.Errorf("cancel job %s: %w", id, err)
	}
	return &j, nil
}

// Agents lists the agents the control plane knows.
func (c *Client) Agents(ctx context.Context) ([]api.Agent, error) {
	var l api.AgentList
	if err := c.do(ctx, http.MethodGet, api.PathAgents, nil, &l); err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	return l.Agents, nil
}

// CreateEnrollment issues a one-time enrollment token for an agent of a
// tenant, valid for ttl (0: the server's default).
func (c *Client) CreateEnrollment(ctx context.Context, agentID, tenant string, ttl time.Duration) (*api.Enrollment, error) {
	var e api.Enrollment
	req := api.EnrollmentRequest{AgentID: agentID, Tenant: tenant, TTLSeconds: int64(ttl / time.Second)}
	if err := c.do(ctx, http.MethodPost, api.PathEnrollments, req, &e); err != nil {
		return nil, fmt.Errorf("enrollment for agent %s: %w", agentID, err)
	}
	return &e, nil
}

// Revoke revokes an agent: its certificates are refused from its next
// connection on, by the control plane at once and by engines following the
// revocation list.
func (c *Client) Revoke(ctx context.Context, agentID, reason string) (*api.Revocation, error) {
	var r api.Revocation
	if err := c.do(ctx, http.MethodPost, api.PathAgents+"/"+url.PathEscape(agentID)+"/revoke", api.RevokeRequest{Reason: reason}, &r); err != nil {
		return nil, fmt.Errorf("revoke agent %s: %w", agentID, err)
	}
	return &r, nil
}

// CreateToken creates an API token of the caller's own (role at most the
// caller's); its secret is in the answer, this once.
func (c *Client) CreateToken(ctx context.Context, name, role, ttl string) (*api.CreatedToken, error) {
	var out api.CreatedToken
	if err := c.do(ctx, http.MethodPost, api.PathTokens, api.CreateTokenRequest{Name: name, Role: role, TTL: ttl}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Tokens lists the caller's API tokens (never the tokens themselves).
func (c *Client) Tokens(ctx context.Context) ([]map[string]any, error) {
	var out []map[string]any
	if err := c.do(ctx, http.MethodGet, api.PathTokens, nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// RevokeToken revokes an API token by its ID.
func (c *Client) RevokeToken(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, api.PathTokens+"/"+url.PathEscape(id), nil, nil)
}

// Do sends a JSON request to path (body may be nil) and decodes the answer
// into out (nil: ignore it): for the API's resources without a typed method.
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	return c.do(ctx, method, path, body, out)
}

// Wait polls a job every interval until it reaches a terminal state. When
// ctx ends first it returns the last detail it got with ctx's error.
func (c *Client) Wait(ctx context.Context, id string, interval time.Duration) (*api.JobDetail, error) {
	if interval <= 0 {
		interval = time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	var last *api.JobDetail
	for {
		d, err := c.Get(ctx, id)
		if err != nil {
			if ctx.Err() != nil {
				return last, fmt.Errorf("wait for job %s: %w", id, ctx.Err())
			}
			return last, err
		}
		if d.State.Terminal() {
			return d, nil
		}
		last = d
		select {
		case <-ctx.Done():
			return last, fmt.Errorf("wait for job %s: %w", id, ctx.Err())
		case <-t.C:
		}
	}
}

// do sends a request with an optional JSON body and decodes a JSON answer.
func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	u := *c.base
	u.Path += path
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return fmt.Errorf("request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return fmt.Errorf("read response: %w", err)
	}
	if resp.StatusCode >= 300 {
		var e api.Error
		msg := strings.TrimSpace(string(data))
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		if msg == "" || len(msg) > 512 {
			msg = http.StatusText(resp.StatusCode)
		}
		return &StatusError{StatusCode: resp.StatusCode, Message: msg}
	}
	if out == nil {
		return nil // an answer without a body (204) or one not wanted
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode response: %w", err)
	}
	return nil
}
