package controlplane

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ferry-ai/ferry/controlplane/agentapi"
	"github.com/ferry-ai/ferry/controlplane/api"
	"github.com/ferry-ai/ferry/controlplane/console"
	"github.com/ferry-ai/ferry/internal/graph"
	"github.com/ferry-ai/ferry/internal/telemetry"
	"github.com/ferry-ai/ferry/secrets"
)

// Limits of the user API.
const (
	maxBodyBytes      = 64 << 10
	maxQueryBytes     = 16 << 10
	maxOutputTableLen = 128
	defaultListLimit  = 100
	maxListLimit      = 1000
)

// apiHandler returns the user API: the probes, enrollment and the
// revocation list without a token, sign-in under /auth/, and every other
// route behind authentication, roles and the audit log (access.go).
func (s *Server) apiHandler() http.Handler {
	root := http.NewServeMux()
	root.HandleFunc(api.PathHealthz, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			methodNotAllowed(w, http.MethodGet, http.MethodHead)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	root.Handle(telemetry.PathReadyz, s.metrics.reg.ReadyzHandler())
	// An enrolling agent's token is its credential; a revocation list is
	// public and signed.
	root.HandleFunc(api.PathEnroll, s.handleEnroll)
	root.HandleFunc(api.PathCRL, s.handleCRL)
	root.HandleFunc("GET "+api.PathOpenAPI, s.handleOpenAPI)
	root.Handle("/auth/", s.auth.Handler())
	root.Handle(console.Prefix, console.Handler())
	root.Handle(api.PathSCIM+"/", s.scimHandler())
	root.Handle("/", s.accessHandler())
	return s.logRequests(root)
}

// statusRecorder remembers the status code a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

// logRequests logs method, path, status and duration of every request; never
// a header or a body.
func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		var route string
		r = r.WithContext(context.WithValue(r.Context(), routeKey{}, &route))
		next.ServeHTTP(rec, r)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		s.observeRequest(r, rec.status, time.Since(start))
		level := slog.LevelInfo
		if quietPath(r.URL.Path) {
			level = slog.LevelDebug
		}
		s.log.LogAttrs(r.Context(), level, "api request",
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Int("status", rec.status),
			slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000), slog.String("remote", r.RemoteAddr))
	})
}

func (s *Server) handleJobs(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodPost:
		s.submitJob(w, r)
	case http.MethodGet, http.MethodHead:
		s.listJobs(w, r)
	default:
		methodNotAllowed(w, http.MethodGet, http.MethodHead, http.MethodPost)
	}
}

func (s *Server) handleJob(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, http.MethodGet, http.MethodHead)
		return
	}
	d, err := s.store.jobDetail(r.Context(), principal(r).Tenant, r.PathValue("id"))
	if s.storeError(w, r, err) {
		return
	}
	writeJSON(w, http.StatusOK, d)
}

func (s *Server) handleAgents(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, http.MethodGet, http.MethodHead)
		return
	}
	agents, err := s.store.listAgents(r.Context(), principal(r).Tenant)
	if s.storeError(w, r, err) {
		return
	}
	s.mu.Lock()
	for i := range agents {
		if ss := s.sessions[agents[i].ID]; ss != nil {
			agents[i].RunningJob = ss.job
		}
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, api.AgentList{Agents: agents})
}

func (s *Server) listJobs(w http.ResponseWriter, r *http.Request) {
	limit := defaultListLimit
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxListLimit {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit must be a whole number from 1 to %d", maxListLimit))
			return
		}
		limit = n
	}
	jobs, err := s.store.listJobs(r.Context(), principal(r).Tenant, limit)
	if s.storeError(w, r, err) {
		return
	}
	writeJSON(w, http.StatusOK, api.JobList{Jobs: jobs})
}

func (s *Server) submitJob(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var req api.SubmitRequest
	if status, err := decodeBody(w, r, &req); err != nil {
		writeError(w, status, err.Error())
		return
	}
	req.Query = strings.TrimSpace(req.Query)
	switch {
	case req.Query == "":
		writeError(w, http.StatusBadRequest, "query is empty")
		return
	case len(req.Query) > maxQueryBytes:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("query is longer than %d bytes", maxQueryBytes))
		return
	}
	if err := checkOutputTable(req.OutputTable); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := req.Options.Validate(); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	tenant := principal(r).Tenant
	g, agentID, err := s.store.latestGraph(ctx, tenant)
	if errors.Is(err, errNoGraph) {
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	if s.storeError(w, r, err) {
		return
	}
	// The planner's error (a syntax error with line and column, an
	// unknown table or column with a suggestion) is the user's answer.
	tables, err := s.plan(req.Query, g)
	switch {
	case err != nil:
		writeError(w, http.StatusBadRequest, oneLine(err.Error()))
		return
	case len(tables) == 0:
		s.log.LogAttrs(ctx, slog.LevelError, "planner returned no tables")
		writeError(w, http.StatusInternalServerError, "the planner returned no tables for this query")
		return
	}
	id, err := newJobID()
	if err != nil {
		s.log.LogAttrs(ctx, slog.LevelError, "job id", slog.String("error", err.Error()))
		writeError(w, http.StatusInternalServerError, "internal error")
		return
	}
	nj := newJob{ID: id, Tenant: tenant, Query: req.Query, OutputTable: req.OutputTable, Tables: tables, Options: req.Options, Created: time.Now().UTC()}
	if err := s.store.insertJob(ctx, nj); s.storeError(w, r, err) {
		return
	}
	// The query text is the user's, not row data, but it may quote filter
	// literals: log its size only.
	s.log.LogAttrs(ctx, slog.LevelInfo, "job queued", slog.String("job_id", id), slog.String("output_table", req.OutputTable),
		slog.Any("tables", tables), slog.Int("query_bytes", len(req.Query)), slog.String("planned_against", agentID))
	s.wake()
	j, err := s.store.job(ctx, tenant, id)
	if s.storeError(w, r, err) {
		return
	}
	w.Header().Set("Location", api.PathJobs+"/"+id)
	writeJSON(w, http.StatusCreated, j)
}

// plan runs the planner, turning a panic into an error so that a planner
// bug refuses one request instead of crashing the process.
func (s *Server) plan(query string, g *graph.Graph) (tables []string, err error) {
	defer func() {
		if p := recover(); p != nil {
			s.log.LogAttrs(context.Background(), slog.LevelError, "planner panicked", slog.String("panic", fmt.Sprint(p)))
			tables, err = nil, errors.New("the query planner failed on this query (internal error)")
		}
	}()
	return s.cfg.Planner.Plan(query, g)
}

func (s *Server) handleCancel(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		methodNotAllowed(w, http.MethodPost)
		return
	}
	ctx := r.Context()
	id := r.PathValue("id")
	tenant := principal(r).Tenant
	// Another tenant's job is not found before anything changes.
	if _, err := s.store.job(ctx, tenant, id); s.storeError(w, r, err) {
		return
	}
	ok, err := s.store.cancelQueued(ctx, id, time.Now())
	if s.storeError(w, r, err) {
		return
	}
	j, err := s.store.job(ctx, tenant, id)
	if s.storeError(w, r, err) {
		return
	}
	if ok {
		s.metrics.transitions.Inc(string(api.StateQueued), string(api.StateCancelled))
		s.log.LogAttrs(ctx, slog.LevelInfo, "job cancelled before assignment", slog.String("job_id", id))
		writeJSON(w, http.StatusOK, j)
		return
	}
	if j.State.Terminal() {
		writeError(w, http.StatusConflict, fmt.Sprintf("job %s already %s", id, j.State))
		return
	}
	s.mu.Lock()
	ss := s.sessions[j.AgentID]
	if ss != nil && ss.job == id {
		s.send(ss, &agentapi.ControlMessage{Msg: &agentapi.ControlMessage_Cancel{Cancel: &agentapi.CancelJob{JobId: id}}})
	} else {
		ss = nil
	}
	s.mu.Unlock()
	if ss == nil {
		writeError(w, http.StatusConflict, fmt.Sprintf("job %s is %s but its agent is not connected", id, j.State))
		return
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "job cancellation sent to agent", slog.String("job_id", id), slog.String("agent", j.AgentID))
	writeJSON(w, http.StatusAccepted, j)
}

// storeError writes the response for a store error and reports whether there
// was one.
func (s *Server) storeError(w http.ResponseWriter, r *http.Request, err error) bool {
	var (
		uerr *unreadableError
		serr *sealError
	)
	switch {
	case err == nil:
		return false
	case errors.Is(err, errJobNotFound):
		writeError(w, http.StatusNotFound, "job not found")
	case errors.As(err, &uerr):
		writeError(w, http.StatusServiceUnavailable, uerr.Error())
	case errors.As(err, &serr):
		s.log.LogAttrs(r.Context(), slog.LevelError, "metadata db", slog.String("path", r.URL.Path), slog.String("error", err.Error()))
		writeError(w, http.StatusServiceUnavailable, "the customer-managed key cannot seal this data: "+sealFailure(serr))
	default:
		s.log.LogAttrs(r.Context(), slog.LevelError, "metadata db", slog.String("path", r.URL.Path), slog.String("error", err.Error()))
		writeError(w, http.StatusInternalServerError, "internal error")
	}
	return true
}

// sealFailure says why sealing failed without Vault's address or paths.
func sealFailure(err error) string {
	switch {
	case errors.Is(err, secrets.ErrUnavailable):
		return "Vault is unreachable"
	case errors.Is(err, secrets.ErrDenied):
		return "Vault's policy refuses (the key may have been revoked)"
	}
	return "Vault refused (the key may have been deleted)"
}

// decodeBody decodes a JSON request body of at most maxBodyBytes into v,
// refusing unknown fields and trailing data. It returns the status to answer
// with on error.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) (int, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return http.StatusUnsupportedMediaType, errors.New("Content-Type must be application/json")
		}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return http.StatusRequestEntityTooLarge, fmt.Errorf("request body is larger than %d bytes", maxBodyBytes)
		}
		if errors.Is(err, io.EOF) {
			return http.StatusBadRequest, errors.New("request body is empty: want a JSON object")
		}
		return http.StatusBadRequest, fmt.Errorf("invalid request body: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return http.StatusBadRequest, errors.New("invalid request body: unexpected data after the JSON object")
	}
	return 0, nil
}

// checkOutputTable accepts ASCII letters, digits and underscores, not
// starting with a digit.
func checkOutputTable(name string) error {
	if name == "" {
		return errors.New("output_table is empty")
	}
	if len(name) > maxOutputTableLen {
		return fmt.Errorf("output_table is longer than %d characters", maxOutputTableLen)
	}
	pos := 0
	for _, c := range name {
		pos++
		switch {
		case c == '_', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case '0' <= c && c <= '9':
			if pos == 1 {
				return fmt.Errorf("output_table %q must not start with a digit", name)
			}
		default:
			return fmt.Errorf("output_table %q may hold only ASCII letters, digits and underscores (%q at character %d)", name, c, pos)
		}
	}
	return nil
}

// newJobID returns "j-" and 16 random hex digits.
func newJobID() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("job id: %w", err)
	}
	return "j-" + hex.EncodeToString(b[:]), nil
}

func methodNotAllowed(w http.ResponseWriter, allowed ...string) {
	w.Header().Set("Allow", strings.Join(allowed, ", "))
	writeError(w, http.StatusMethodNotAllowed, "method not allowed; allowed: "+strings.Join(allowed, ", "))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, api.Error{Error: msg})
}
