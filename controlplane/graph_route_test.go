package controlplane_test

import (
	"net/http"
	"testing"

	"github.com/ferry-ai/ferry/internal/graph"
)

// TestGraphRoute: GET /v1/graph is 404 until an agent reports its schema,
// then serves the tables with their columns, keys and time column.
func TestGraphRoute(t *testing.T) {
	h := startHarness(t, harnessOptions{})
	bearer := "Bearer " + testToken
	if st, body := h.do("GET", "/v1/graph", bearer, ""); st != http.StatusNotFound {
		t.Fatalf("before any agent: %d %s, want 404", st, body)
	}
	h.connectAgent(true)
	st, body := h.do("GET", "/v1/graph", bearer, "")
	if st != http.StatusOK {
		t.Fatalf("GET /v1/graph: %d %s", st, body)
	}
	doc := decodeJSON[struct {
		AgentID string        `json:"agent_id"`
		Tables  []graph.Table `json:"tables"`
	}](t, body)
	g := graph.Graph{Tables: doc.Tables}
	orders, ok := g.Table("orders")
	if doc.AgentID != testAgentID || len(doc.Tables) != 2 || !ok {
		t.Fatalf("graph = %s", body)
	}
	if len(orders.PrimaryKey) != 1 || orders.PrimaryKey[0] != "order_id" || orders.TimeColumn != "ordered_at" ||
		len(orders.ForeignKeys) != 1 || orders.ForeignKeys[0].RefTable != "customers" || len(orders.Columns) != 4 {
		t.Errorf("orders = %+v", orders)
	}
}
