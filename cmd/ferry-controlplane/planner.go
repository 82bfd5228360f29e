package main

import (
	"github.com/ferry-ai/ferry/engine/pql"
	"github.com/ferry-ai/ferry/internal/graph"
)

// pqlPlanner plans predictive queries with the engine's PQL parser: it
// parses the query (a *pql.SyntaxError names line and column), validates it
// against the agent's schema (a *graph.NotFoundError names the unknown table
// or column and the nearest valid one) and lists the tables the engine needs.
type pqlPlanner struct{}

// Plan implements controlplane.Planner.
func (pqlPlanner) Plan(query string, g *graph.Graph) ([]string, error) {
	q, err := pql.Parse(query)
	if err != nil {
		return nil, err
	}
	if err := q.Validate(g); err != nil {
		return nil, err
	}
	return pql.RequiredTables(q, g), nil
}
