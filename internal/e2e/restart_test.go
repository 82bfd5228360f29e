package e2e

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ferry-ai/ferry/controlplane/api"
	"github.com/ferry-ai/ferry/internal/devstack"
)

// TestJobSurvivesRestart kills (SIGKILL: no goodbye, no purge request) the
// agent, then in a second stack the control plane, while a job is on the
// engine, and starts the process again. The job goes back to the queue with
// a note naming why, is assigned again once the agent is connected, and
// succeeds on its second attempt; its predictions table holds each eligible
// customer exactly once (the writeback replaces the table: no row of the
// first attempt is left or doubled).
func TestJobSurvivesRestart(t *testing.T) {
	for _, tc := range []struct {
		kill string
		note string
	}{
		{"ferry-agent", "disconnected while the job was"},
		{"ferry-controlplane", "the control plane restarted while the job was"},
	} {
		t.Run(tc.kill, func(t *testing.T) {
			db := copyDB(t)
			s := startStack(t, db)
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
			defer cancel()
			j := catchInFlight(ctx, t, s, "preds_restart")
			proc := map[string]*devstack.Proc{"ferry-agent": s.Agent, "ferry-controlplane": s.ControlPlane}[tc.kill]
			if err := proc.Cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			waitExit(t, proc, 10*time.Second)
			if err := s.Restart(ctx, tc.kill); err != nil {
				t.Fatal(err)
			}
			d, err := s.Client.Wait(ctx, j, 100*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			if d.State != api.StateSucceeded || d.Attempts != 2 {
				t.Fatalf("job %s ended %s after %d attempts (error %+v); want succeeded on the second", j, d.State, d.Attempts, d.Error)
			}
			requeued := ""
			for _, c := range d.History {
				if c.State == api.StateQueued && c.Note != "" {
					requeued = c.Note
				}
			}
			if !strings.Contains(requeued, tc.note) || !strings.Contains(requeued, "attempt 1 of 3") {
				t.Errorf("re-queue note %q; want it to say %q and attempt 1 of 3", requeued, tc.note)
			}
			t.Logf("re-queued: %s", requeued)
			// The first attempt's data left the engine: purged when the
			// agent started the job again (killed, it could not ask), or
			// when it stopped the job as its stream to the killed control
			// plane broke.
			want := map[string]string{"ferry-agent": `"reason":"restarted"`, "ferry-controlplane": `"reason":"cancelled"`}[tc.kill]
			if logs, _ := os.ReadFile(s.Engine.LogPath); !strings.Contains(string(logs), want) {
				t.Errorf("the engine logged no purge with %s of the first attempt", want)
			}

			// Exactly the eligible customers, once each.
			s.Agent.Cmd.Process.Kill() // release DuckDB's lock on the warehouse
			waitExit(t, s.Agent, 10*time.Second)
			wh := openDB(t, db)
			var rows, distinct int
			if err := wh.QueryRow(`SELECT count(*), count(DISTINCT customer_id) FROM preds_restart`).Scan(&rows, &distinct); err != nil {
				t.Fatal(err)
			}
			if want := eligibleCustomers(t, wh); rows != want || distinct != want {
				t.Errorf("predictions table: %d rows, %d customers; want %d once each", rows, distinct, want)
			}
			if d.Write == nil || int(d.Write.Rows) != rows {
				t.Errorf("write report %+v, table holds %d rows", d.Write, rows)
			}
			wh.Close() // DuckDB's lock, for the agent again
			// The agent was killed on purpose: it may not stop "cleanly".
			if err := s.Restart(ctx, "ferry-agent"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// catchInFlight submits the demo query until a job is caught on the engine
// (a table streamed, not yet writing back) and returns its ID.
func catchInFlight(ctx context.Context, t *testing.T, s *devstack.Stack, output string) string {
	t.Helper()
	for attempt := 0; attempt < 8; attempt++ {
		j, err := s.Client.Submit(ctx, demoQuery, output)
		if err != nil {
			t.Fatal(err)
		}
		for {
			d, err := s.Client.Get(ctx, j.ID)
			if err != nil {
				t.Fatal(err)
			}
			if (d.State == api.StateReading || d.State == api.StateTraining) && len(d.TableStats) > 0 {
				return j.ID
			}
			if d.State.Terminal() {
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	t.Fatal("no job was caught in flight in 8 attempts")
	return ""
}
