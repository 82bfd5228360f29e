package controlplane

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/ferry-ai/ferry/controlplane/api"
	"github.com/ferry-ai/ferry/controlplane/auth"
	"github.com/ferry-ai/ferry/controlplane/catalog"
)

// catalogRoutes are the tenant's connections and saved queries.
func (s *Server) catalogRoutes() []route {
	return []route{
		{"GET", api.PathConnections, auth.Viewer, "connection.list", "The tenant's warehouse connections (kind, non-secret settings, Vault path)", s.handleListConnections},
		{"POST", api.PathConnections, auth.Admin, "connection.create", "Add a connection; a setting named or shaped like a credential is refused", s.handleCreateConnection},
		{"GET", api.PathConnections + "/{id}", auth.Viewer, "connection.get", "A connection", s.handleGetConnection},
		{"PUT", api.PathConnections + "/{id}", auth.Admin, "connection.update", "Replace a connection's kind, settings and Vault path", s.handleUpdateConnection},
		{"DELETE", api.PathConnections + "/{id}", auth.Admin, "connection.delete", "Remove a connection", s.handleDeleteConnection},
		{"GET", api.PathQueries, auth.Viewer, "query.list", "The tenant's saved predictive queries", s.handleListQueries},
		{"POST", api.PathQueries, auth.Editor, "query.save", "Save a predictive query (checked against the latest graph)", s.handleSaveQuery},
		{"GET", api.PathQueries + "/{id}", auth.Viewer, "query.get", "A saved query", s.handleGetQuery},
		{"DELETE", api.PathQueries + "/{id}", auth.Editor, "query.delete", "Remove a saved query", s.handleDeleteQuery},
	}
}

// catalogError answers a catalog error with its status.
func catalogError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, catalog.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, catalog.ErrExists):
		writeError(w, http.StatusConflict, err.Error())
	case errors.Is(err, catalog.ErrInvalid):
		writeError(w, http.StatusBadRequest, err.Error())
	default:
		writeError(w, http.StatusInternalServerError, "the catalog failed; see the control plane's log")
	}
}

func principal(r *http.Request) auth.Principal { p, _ := auth.FromContext(r.Context()); return p }

func (s *Server) handleListConnections(w http.ResponseWriter, r *http.Request) {
	list, err := s.catalog.Connections(r.Context(), principal(r).Tenant)
	if err != nil {
		catalogError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *Server) handleGetConnection(w http.ResponseWriter, r *http.Request) {
	c, err := s.catalog.Connection(r.Context(), principal(r).Tenant, r.PathValue("id"))
	if err != nil {
		catalogError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

func (s *Server) readConnection(w http.ResponseWriter, r *http.Request) (catalog.Connection, bool) {
	var c catalog.Connection
	if status, err := decodeBody(w, r, &c); err != nil {
		writeError(w, status, err.Error())
		return c, false
	}
	p := principal(r)
	c.Tenant, c.CreatedBy = p.Tenant, p.UserID
	if s.cfg.DisableFileConnections && catalog.IsFileKind(c.Kind) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("connection kind %q reads files, and this control plane accepts customer warehouses only (disable_file_connections)", c.Kind))
		return c, false
	}
	return c, true
}

func (s *Server) handleCreateConnection(w http.ResponseWriter, r *http.Request) {
	c, ok := s.readConnection(w, r)
	if !ok {
		return
	}
	c.ID = ""
	out, err := s.catalog.CreateConnection(r.Context(), c)
	if err != nil {
		catalogError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, out)
}

func (s *Server) handleUpdateConnection(w http.ResponseWriter, r *http.Request) {
	c, ok := s.readConnection(w, r)
	if !ok {
		return
	}
	c.ID = r.PathValue("id")
	out, err := s.catalog.UpdateConnection(r.Context(), c)
	if err != nil {
		catalogError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleDeleteConnection(w http.ResponseWriter, r *http.Request) {
	if err := s.catalog.DeleteConnection(r.Context(), principal(r).Tenant, r.PathValue("id")); err != nil {
		catalogError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleListQueries(w http.ResponseWriter, r *http.Request) {
	list, err := s.catalog.Queries(r.Context(), principal(r).Tenant)
	if err != nil {
		catalogError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *Server) handleGetQuery(w http.ResponseWriter, r *http.Request) {
	q, err := s.catalog.Query(r.Context(), principal(r).Tenant, r.PathValue("id"))
	if err != nil {
		catalogError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, q)
}

// handleSaveQuery saves a query once the planner accepts it against the
// latest reported graph, so a saved query is one that can run.
func (s *Server) handleSaveQuery(w http.ResponseWriter, r *http.Request) {
	var q catalog.Query
	if status, err := decodeBody(w, r, &q); err != nil {
		writeError(w, status, err.Error())
		return
	}
	g, _, err := s.store.latestGraph(r.Context(), principal(r).Tenant)
	if err != nil {
		writeError(w, http.StatusConflict, err.Error())
		return
	}
	if _, err := s.cfg.Planner.Plan(q.PQL, g); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("query: %v", oneLine(err.Error())))
		return
	}
	p := principal(r)
	q.ID, q.Tenant, q.CreatedBy = "", p.Tenant, p.UserID
	out, err := s.catalog.SaveQuery(r.Context(), q)
	if err != nil {
		catalogError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, out)
}

func (s *Server) handleDeleteQuery(w http.ResponseWriter, r *http.Request) {
	if err := s.catalog.DeleteQuery(r.Context(), principal(r).Tenant, r.PathValue("id")); err != nil {
		catalogError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
