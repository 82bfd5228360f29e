package e2e

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-ai/ferry/controlplane/api"
	"github.com/ferry-ai/ferry/internal/devstack"
)

// TestSIGTERMMidJob stops the engine, then (in a second stack) the agent,
// with SIGTERM while a job is in flight. The process exits 0 within its
// shutdown budget; when the engine stopped, the job ends failed or
// cancelled with an error (never hangs, never succeeds with partial data);
// when the agent stopped, the job goes back to the queue for the agent's
// return (TestJobSurvivesRestart follows one to success). The engine purges
// the job's data and logs the attestation: "shutdown" when the engine
// stops, "cancelled" when the agent does (it asks the engine to purge
// before it exits).
func TestSIGTERMMidJob(t *testing.T) {
	for _, tc := range []struct {
		target string
		reason string
	}{
		{"engine", "shutdown"},
		{"agent", "cancelled"},
	} {
		t.Run(tc.target, func(t *testing.T) {
			s := startStack(t, copyDB(t))
			proc := map[string]*devstack.Proc{"engine": s.Engine, "agent": s.Agent}[tc.target]
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			jobID := catchInFlight(ctx, t, s, "preds_sigterm")
			if err := proc.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			waitExit(t, proc, 20*time.Second)
			if code := proc.Cmd.ProcessState.ExitCode(); code != 0 {
				t.Fatalf("%s exited %d after SIGTERM", tc.target, code)
			}
			t.Logf("%s exited 0, %v after SIGTERM", tc.target, time.Since(start).Round(time.Millisecond))

			if tc.target == "agent" {
				var d *api.JobDetail
				waitFor(t, 20*time.Second, "job "+jobID+" re-queued", func() bool {
					var err error
					d, err = s.Client.Get(ctx, jobID)
					return err == nil && d.State == api.StateQueued && d.Attempts == 1
				})
				last := d.History[len(d.History)-1]
				if !strings.Contains(last.Note, "re-queued: agent") {
					t.Errorf("job %s back in the queue with note %q", jobID, last.Note)
				}
				t.Logf("job re-queued: %s", last.Note)
			} else {
				d, err := s.Client.Wait(ctx, jobID, 50*time.Millisecond)
				if err != nil {
					t.Fatal(err)
				}
				checkEnded(t, jobID, tc.target, d)
			}

			// The engine purged the job, zeroing what it had received.
			waitFor(t, 20*time.Second, "the engine's purge of "+jobID, func() bool {
				_, ok := purgeLogged(t, s.Engine.LogPath, jobID)
				return ok
			})
			att, _ := purgeLogged(t, s.Engine.LogPath, jobID)
			if att.Reason != tc.reason || att.FilesWritten != 0 || att.BytesPurged < att.BytesReceived {
				t.Fatalf("purge of %s: %+v; want reason %s, no file, every received byte purged", jobID, att, tc.reason)
			}
		})
	}
}

// checkEnded checks a job ended failed or cancelled with an error.
func checkEnded(t *testing.T, jobID, target string, d *api.JobDetail) {
	t.Helper()
	if d.State != api.StateFailed && d.State != api.StateCancelled {
		t.Fatalf("job %s ended %s after the %s stopped mid-job", jobID, d.State, target)
	}
	if d.Error == nil || d.Error.Message == "" {
		t.Fatalf("job %s ended %s without an error", jobID, d.State)
	}
	t.Logf("job ended %s: %s: %s", d.State, d.Error.Stage, d.Error.Message)
}

type purgeLine struct {
	Msg           string `json:"msg"`
	JobID         string `json:"job_id"`
	Reason        string `json:"reason"`
	BytesReceived int64  `json:"bytes_received"`
	BytesPurged   int64  `json:"bytes_purged"`
	FilesWritten  int64  `json:"files_written"`
}

// purgeLogged finds the engine's purge attestation for a job in its log.
func purgeLogged(t *testing.T, logPath, jobID string) (purgeLine, bool) {
	t.Helper()
	data, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		var p purgeLine
		if json.Unmarshal([]byte(line), &p) == nil && p.Msg == "job purged" && p.JobID == jobID {
			return p, true
		}
	}
	return purgeLine{}, false
}

func waitExit(t *testing.T, p *devstack.Proc, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !p.Exited() {
		if time.Now().After(deadline) {
			t.Fatalf("%s still running %s after SIGTERM", p.Name, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
