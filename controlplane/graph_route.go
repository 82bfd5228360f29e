package controlplane

import (
	"errors"
	"net/http"

	"github.com/ferry-ai/ferry/internal/graph"
)

// pathGraph serves the schema graph the scheduler plans against.
const pathGraph = "/v1/graph"

// graphDocument is the body of GET /v1/graph: the schema an agent last
// reported (tables, columns with their types, primary and foreign keys,
// time columns), the one queries are planned against. Metadata only.
type graphDocument struct {
	// AgentID is the agent that reported it (a connected one first, then
	// the most recent).
	AgentID string        `json:"agent_id"`
	Tables  []graph.Table `json:"tables"`
}

// handleGraph answers GET /v1/graph: 404 before any agent reported a
// schema, 503 when the schema is sealed under a key that cannot open it.
func (s *Server) handleGraph(w http.ResponseWriter, r *http.Request) {
	g, agentID, err := s.store.latestGraph(r.Context(), principal(r).Tenant)
	if errors.Is(err, errNoGraph) {
		writeError(w, http.StatusNotFound, err.Error())
		return
	}
	if s.storeError(w, r, err) {
		return
	}
	tables := g.Tables
	if tables == nil {
		tables = []graph.Table{}
	}
	writeJSON(w, http.StatusOK, graphDocument{AgentID: agentID, Tables: tables})
}
