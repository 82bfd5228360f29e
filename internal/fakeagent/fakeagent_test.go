package fakeagent

import (
	"testing"
	"time"

	"github.com/ferry-ai/ferry/controlplane/agentapi"
)

// TestScript: the events of a successful job in ferry-agent's order, the
// waits adding up to the job's time, the purge covering every byte read.
func TestScript(t *testing.T) {
	asg := &agentapi.JobAssignment{JobId: "j-1", Tables: []string{"customers", "orders"}, OutputTable: "out"}
	tables := []*agentapi.TableMeta{{Name: "orders", Columns: []*agentapi.Column{{Name: "order_id", Type: "int64"}}}}
	steps := Script(asg, tables, time.Second)
	var states []agentapi.JobState
	var total time.Duration
	var read, purged int64
	metrics := false
	for _, st := range steps {
		if st.Event.GetJobId() != "j-1" {
			t.Errorf("event for job %q", st.Event.GetJobId())
		}
		states = append(states, st.Event.GetState())
		total += st.Wait
		read += st.Event.GetTableStats().GetBytes()
		purged += st.Event.GetPurge().GetBytesPurged()
		metrics = metrics || st.Event.GetMetrics() != nil
		if ts := st.Event.GetTableStats(); ts.GetTable() == "orders" && len(ts.GetColumns()) != 1 {
			t.Errorf("orders' stats lack its columns: %v", ts)
		}
	}
	const (
		r = agentapi.JobState_JOB_STATE_READING
		m = agentapi.JobState_JOB_STATE_TRAINING
		w = agentapi.JobState_JOB_STATE_WRITING
		s = agentapi.JobState_JOB_STATE_SUCCEEDED
	)
	want := []agentapi.JobState{r, r, r, m, m, w, w, w, s}
	if len(states) != len(want) {
		t.Fatalf("states %v, want %v", states, want)
	}
	for i := range want {
		if states[i] != want[i] {
			t.Fatalf("states %v, want %v", states, want)
		}
	}
	if total != time.Second {
		t.Errorf("waits add up to %v, want 1s", total)
	}
	if read == 0 || purged != read {
		t.Errorf("read %d bytes, purged %d", read, purged)
	}
	if !metrics {
		t.Error("no metrics event")
	}
}
