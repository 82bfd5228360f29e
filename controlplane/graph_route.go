package controlplane

import (
	"errors"
	"net/http"

	"github.com/ferry-ai/ferry/controlplane/api"
	"github.com/ferry-ai/ferry/internal/graph"
)

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
	writeJSON(w, http.StatusOK, api.Graph{AgentID: agentID, Tables: tables})
}
