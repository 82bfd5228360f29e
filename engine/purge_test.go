package engine

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ferry-ai/ferry/internal/syncbuf"

	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ferry-ai/ferry/agent"
	"github.com/ferry-ai/ferry/internal/graph"
	"github.com/ferry-ai/ferry/internal/link"
	"github.com/ferry-ai/ferry/internal/syntable"
)

// TestJobEndPurges ends a job each way a job can end (completed, failed,
// cancelled, expired) and checks what is left: the buffers the job's data
// was in are zero, the attestation counts what was received and purged
// with no file written, and a DoGet for the job's predictions, served
// before the end, is refused after it.
func TestJobEndPurges(t *testing.T) {
	logs := &syncbuf.Buffer{}
	srv, dial := testEngine(t, func(c *Config) {
		c.JobTTL = 2 * time.Second
		c.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	})
	c := dial(srv.Addr().String())
	ctx := context.Background()
	for _, reason := range []string{link.PurgeCompleted, link.PurgeFailed, link.PurgeCancelled, link.PurgeExpired} {
		t.Run(reason, func(t *testing.T) {
			job := "purge-" + reason
			startJob(t, c, job)
			r := syntable.New(memory.DefaultAllocator, 100_000, 10_000)
			ack, err := agent.StreamTable(ctx, c, job, "events", r, agent.StreamOptions{})
			r.Release()
			if err != nil {
				t.Fatal(err)
			}
			// Stand-in predictions so DoGet has something to serve.
			j, err := srv.store.Get(job, "agent-resume")
			if err != nil {
				t.Fatal(err)
			}
			held := j.Tables()["events"]
			raw := held[0].Column(0).Data().Buffers()[1].Bytes() // the ids of the first batch
			preds := held[0].NewSlice(0, 10)
			j.SetResult(&link.TrainResult{JobID: job}, preds)
			if n, err := doGetRows(ctx, c, job); err != nil || n != 10 {
				t.Fatalf("DoGet before the end: %d rows, %v", n, err)
			}
			if nonZero(raw) < 0 {
				t.Fatal("control: the job's buffer is zero before purge")
			}

			var att link.PurgeAttestation
			if reason == link.PurgeExpired {
				// The janitor removes the job, purges it, then logs the
				// attestation: wait for the log line, the last step.
				waitUntil(t, 5*time.Second, func() bool { _, ok := loggedAttestation(logs.String(), job); return ok })
				att, _ = loggedAttestation(logs.String(), job)
				if _, err := srv.store.Get(job, "agent-resume"); err == nil {
					t.Fatal("the expired job is still in the store")
				}
			} else {
				att = purgeAction(t, c, job, reason)
			}
			if att.Reason != reason || att.BytesReceived != ack.Bytes || att.BytesPurged < att.BytesReceived || att.FilesWritten != 0 || att.PurgedAt.IsZero() {
				t.Fatalf("attestation %+v; want reason %s, %d bytes received, at least as many purged, no file", att, reason, ack.Bytes)
			}
			if i := nonZero(raw); i >= 0 {
				t.Fatalf("byte %d of the job's buffer is %#x after purge, want 0", i, raw[i])
			}
			_, err = doGetRows(ctx, c, job)
			if status.Code(err) != codes.NotFound {
				t.Fatalf("DoGet after purge: %v, want NotFound", err)
			}
		})
	}
	t.Run("unknown reason refused", func(t *testing.T) {
		startJob(t, c, "purge-odd")
		body, _ := json.Marshal(link.JobRef{JobID: "purge-odd", Reason: "because"})
		stream, err := c.DoAction(ctx, &flight.Action{Type: link.ActionPurge, Body: body})
		if err == nil {
			_, err = stream.Recv()
		}
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "because") {
			t.Fatalf("purge with an unknown reason: %v", err)
		}
		purgeAction(t, c, "purge-odd", link.PurgeCompleted)
	})
}

// TestQuotaFailsJobNotEngine: a job that sends more than its quota is
// failed with an error naming the quota; the engine keeps serving.
func TestQuotaFailsJobNotEngine(t *testing.T) {
	srv, dial := testEngine(t)
	c := dial(srv.Addr().String())
	ctx := context.Background()
	body, _ := json.Marshal(link.JobSpec{JobID: "small", QuotaBytes: 1 << 20, Tables: []graph.Table{{Name: "events"}}})
	stream, err := c.DoAction(ctx, &flight.Action{Type: link.ActionStartJob, Body: body})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	r := syntable.New(memory.DefaultAllocator, 1_000_000, 10_000)
	start := time.Now()
	_, err = agent.StreamTable(ctx, c, "small", "events", r, agent.StreamOptions{})
	r.Release()
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "quota") {
		t.Fatalf("over quota: %v; want ResourceExhausted naming the quota", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("the upload took %v to give up: an engine verdict must not be retried", d)
	}
	att := purgeAction(t, c, "small", link.PurgeFailed)
	if att.BytesPurged < att.BytesReceived || att.BytesReceived > 2<<20 {
		t.Fatalf("attestation %+v", att)
	}
	// The engine still serves other jobs.
	startJob(t, c, "after")
	r = syntable.New(memory.DefaultAllocator, 1000, 100)
	defer r.Release()
	if _, err := agent.StreamTable(ctx, c, "after", "events", r, agent.StreamOptions{}); err != nil {
		t.Fatalf("next job: %v", err)
	}
}

func purgeAction(t testing.TB, c flight.Client, job, reason string) link.PurgeAttestation {
	t.Helper()
	body, _ := json.Marshal(link.JobRef{JobID: job, Reason: reason})
	stream, err := c.DoAction(context.Background(), &flight.Action{Type: link.ActionPurge, Body: body})
	if err != nil {
		t.Fatal(err)
	}
	res, err := stream.Recv()
	if err != nil {
		t.Fatalf("purge %s: %v", job, err)
	}
	var att link.PurgeAttestation
	if err := json.Unmarshal(res.Body, &att); err != nil {
		t.Fatal(err)
	}
	return att
}

func doGetRows(ctx context.Context, c flight.Client, job string) (int64, error) {
	tkt, _ := json.Marshal(link.Ticket{JobID: job, Stream: link.PredictionsStream})
	stream, err := c.DoGet(ctx, &flight.Ticket{Ticket: tkt})
	if err != nil {
		return 0, err
	}
	r, err := flight.NewRecordReader(stream)
	if err != nil {
		return 0, err
	}
	defer r.Release()
	var n int64
	for r.Next() {
		n += r.RecordBatch().NumRows()
	}
	if err := r.Err(); err != nil && !errors.Is(err, io.EOF) {
		return n, err
	}
	return n, nil
}

// loggedAttestation finds the purge the engine logged for a job.
func loggedAttestation(logs, job string) (link.PurgeAttestation, bool) {
	for _, line := range strings.Split(logs, "\n") {
		var e struct {
			Msg           string    `json:"msg"`
			JobID         string    `json:"job_id"`
			Reason        string    `json:"reason"`
			BytesReceived int64     `json:"bytes_received"`
			BytesPurged   int64     `json:"bytes_purged"`
			FilesWritten  int64     `json:"files_written"`
			Time          time.Time `json:"time"`
		}
		if json.Unmarshal([]byte(line), &e) == nil && e.Msg == "job purged" && e.JobID == job {
			return link.PurgeAttestation{JobID: job, Reason: e.Reason, BytesReceived: e.BytesReceived, BytesPurged: e.BytesPurged, FilesWritten: e.FilesWritten, PurgedAt: e.Time}, true
		}
	}
	return link.PurgeAttestation{}, false
}

func waitUntil(t *testing.T, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s", d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// nonZero returns the index of the first non-zero byte of b, or -1.
func nonZero(b []byte) int {
	for i, v := range b {
		if v != 0 {
			return i
		}
	}
	return -1
}

// TestStartAgainPurgesAbandonedAttempt: the agent that opened a job starts
// it again (the control plane re-assigned it after the agent was killed
// mid-job). The abandoned attempt's data is purged at once, attested with
// reason "restarted" and zeroed, and the new attempt starts empty. A job
// another agent opened is not touched: starting it is refused.
func TestStartAgainPurgesAbandonedAttempt(t *testing.T) {
	logs := &syncbuf.Buffer{}
	srv, dial := testEngine(t, func(c *Config) { c.Logger = slog.New(slog.NewJSONHandler(logs, nil)) })
	c := dial(srv.Addr().String())
	ctx := context.Background()
	const job = "again"
	startJob(t, c, job)
	r := syntable.New(memory.DefaultAllocator, 50_000, 5_000)
	ack, err := agent.StreamTable(ctx, c, job, "events", r, agent.StreamOptions{})
	r.Release()
	if err != nil {
		t.Fatal(err)
	}
	first, err := srv.store.Get(job, "agent-resume")
	if err != nil {
		t.Fatal(err)
	}
	raw := first.Tables()["events"][0].Column(0).Data().Buffers()[1].Bytes()
	if nonZero(raw) < 0 {
		t.Fatal("control: the first attempt's buffer is zero before the restart")
	}

	startJob(t, c, job)
	att, ok := loggedAttestation(logs.String(), job)
	if !ok || att.Reason != link.PurgeRestarted || att.BytesReceived != ack.Bytes || att.BytesPurged < att.BytesReceived || att.FilesWritten != 0 {
		t.Fatalf("attestation %+v (logged %v); want reason %s, %d bytes received and purged", att, ok, link.PurgeRestarted, ack.Bytes)
	}
	if i := nonZero(raw); i >= 0 {
		t.Fatalf("the abandoned attempt's buffer is not zero at byte %d", i)
	}
	second, err := srv.store.Get(job, "agent-resume")
	if err != nil || second == first || len(second.Tables()) != 0 {
		t.Fatalf("second attempt: %v, same job %v, tables %d; want a new, empty job", err, second == first, len(second.Tables()))
	}
	r = syntable.New(memory.DefaultAllocator, 1000, 100)
	defer r.Release()
	if _, err := agent.StreamTable(ctx, c, job, "events", r, agent.StreamOptions{}); err != nil {
		t.Fatalf("stream into the second attempt: %v", err)
	}

	// Another agent's job of the same ID is refused, not purged.
	if _, err := srv.store.Create(link.JobSpec{JobID: "theirs"}, "agent-other"); err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(link.JobSpec{JobID: "theirs", Tables: []graph.Table{{Name: "events"}}})
	stream, err := c.DoAction(ctx, &flight.Action{Type: link.ActionStartJob, Body: body})
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.AlreadyExists {
		t.Errorf("starting another agent's job: %v, want AlreadyExists", err)
	}
	if _, err := srv.store.Get("theirs", "agent-other"); err != nil {
		t.Errorf("another agent's job was touched: %v", err)
	}
}
