package controlplane_test

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"testing"

	"github.com/ferry-ai/ferry/controlplane/agentapi"
	"github.com/ferry-ai/ferry/controlplane/api"
	"github.com/ferry-ai/ferry/controlplane/metadb"
	"github.com/ferry-ai/ferry/controlplane/metadb/metadbtest"
)

// TestColumnStatsRoundTrip: the column statistics of a TableStats event
// come back with each column of the job's table statistics in GET
// /v1/jobs/{id}, on the suite's database (SQLite, or PostgreSQL with
// FERRY_TEST_METADB=postgres) in plaintext, and sealed under a customer key
// on SQLite (whose file then holds none of them in clear). Statistics that
// cannot be true (counts outside the table's rows, a fraction outside
// [0, 1], an infinite or reversed range) are brought within bounds or
// dropped; statistics of a column the table does not have are ignored.
func TestColumnStatsRoundTrip(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	orders := &agentapi.TableStats{Table: "orders", Rows: 1000, Bytes: 64000, Batches: 2, Seconds: 0.5,
		Columns: testTables()[1].Columns,
		ColumnStats: []*agentapi.ColumnStats{
			{Name: "order_id", DistinctEstimate: 1000},
			{Name: "customer_id", DistinctEstimate: 97},
			{Name: "amount", Nulls: 25, NullFraction: 0.025, HasRange: true, Min: -12.5, Max: 4731.0625, DistinctEstimate: 811},
			{Name: "ordered_at", Nulls: 0, DistinctEstimate: 1003}, // more than the rows: capped
			{Name: "ghost", Nulls: 3, NullFraction: 0.003, DistinctEstimate: 2},
		}}
	customers := &agentapi.TableStats{Table: "customers", Rows: 100, Bytes: 1600, Batches: 1, Seconds: 0.1,
		Columns: testTables()[0].Columns,
		ColumnStats: []*agentapi.ColumnStats{
			{Name: "customer_id", HasRange: true, Min: math.Inf(-1), Max: 100, DistinctEstimate: -4},
			{Name: "churned", Nulls: 250, NullFraction: math.NaN(), HasRange: true, Min: 1, Max: 0, DistinctEstimate: 2},
		}}
	want := map[string]map[string]*api.ColumnStats{
		"orders": {
			"order_id":    {DistinctEstimate: 1000},
			"customer_id": {DistinctEstimate: 97},
			"amount":      {Nulls: 25, NullFraction: 0.025, Min: f(-12.5), Max: f(4731.0625), DistinctEstimate: 811},
			"ordered_at":  {DistinctEstimate: 1000},
		},
		"customers": {
			"customer_id": {},
			"churned":     {Nulls: 100, NullFraction: 1},
		},
	}

	for _, sealed := range []bool{false, true} {
		name, opts := "plaintext", harnessOptions{}
		if sealed {
			name, opts.sealer, opts.sqlite = "sealed", newGCMSealer(t), true
		}
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			h := startHarness(t, opts)
			a := h.connectAgent(true)
			j, err := h.client.Submit(ctx, testQuery, "stats_predictions")
			if err != nil {
				t.Fatal(err)
			}
			if asg := a.recv().GetAssignment(); asg.GetJobId() != j.ID {
				t.Fatalf("assignment %v, want job %s", asg, j.ID)
			}
			h.waitState(j.ID, api.StateAssigned)
			a.event(j.ID, agentapi.JobState_JOB_STATE_READING, nil)
			for _, ts := range []*agentapi.TableStats{orders, customers} {
				a.event(j.ID, agentapi.JobState_JOB_STATE_READING, func(ev *agentapi.JobEvent) { ev.Detail = &agentapi.JobEvent_TableStats{TableStats: ts} })
			}
			a.event(j.ID, agentapi.JobState_JOB_STATE_FAILED, func(ev *agentapi.JobEvent) {
				ev.Detail = &agentapi.JobEvent_Error{Error: &agentapi.JobError{Stage: "train", Message: "stopped by the test"}}
			})
			d := h.waitState(j.ID, api.StateFailed)
			if d.Unreadable != nil || len(d.TableStats) != 2 {
				t.Fatalf("table stats %+v (unreadable %+v), want orders and customers", d.TableStats, d.Unreadable)
			}
			for _, ts := range d.TableStats {
				w := want[ts.Table]
				if len(ts.Columns) != len(w) {
					t.Errorf("%s: %d columns, want %d", ts.Table, len(ts.Columns), len(w))
				}
				for _, c := range ts.Columns {
					if !sameStats(c.Stats, w[c.Name]) {
						t.Errorf("%s.%s: stats %s, want %s", ts.Table, c.Name, statsString(c.Stats), statsString(w[c.Name]))
					}
				}
			}
			if !sealed && metadbtest.FromEnv() == metadb.SQLite && !bytes.Contains(dbBytes(t, h.dataDir), []byte(`"null_fraction":0.025`)) {
				t.Error("the plaintext database file holds no column statistics: the search below would prove nothing")
			}
			if sealed {
				for _, s := range []string{`"null_fraction"`, `"distinct_estimate"`, "4731.0625"} {
					if bytes.Contains(dbBytes(t, h.dataDir), []byte(s)) {
						t.Errorf("the sealed database file holds %s in clear", s)
					}
				}
			}
		})
	}
}

func sameStats(a, b *api.ColumnStats) bool {
	if a == nil || b == nil {
		return a == b
	}
	eq := func(x, y *float64) bool { return (x == nil && y == nil) || (x != nil && y != nil && *x == *y) }
	return a.Nulls == b.Nulls && a.NullFraction == b.NullFraction && a.DistinctEstimate == b.DistinctEstimate && eq(a.Min, b.Min) && eq(a.Max, b.Max)
}

func statsString(s *api.ColumnStats) string {
	if s == nil {
		return "none"
	}
	r := func(p *float64) any {
		if p == nil {
			return "-"
		}
		return *p
	}
	return fmt.Sprint("nulls ", s.Nulls, " (", s.NullFraction, ") range ", r(s.Min), "..", r(s.Max), " distinct ", s.DistinctEstimate)
}
