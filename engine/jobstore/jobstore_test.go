package jobstore

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/ferry-ai/ferry/internal/link"
)

func batch(t *testing.T, j *Job, n int, secret int64) (arrow.RecordBatch, []byte) {
	t.Helper()
	s := arrow.NewSchema([]arrow.Field{{Name: "v", Type: arrow.PrimitiveTypes.Int64}}, nil)
	b := array.NewRecordBuilder(j.Alloc, s)
	defer b.Release()
	for i := 0; i < n; i++ {
		b.Field(0).(*array.Int64Builder).Append(secret)
	}
	rec := b.NewRecordBatch()
	return rec, rec.Column(0).Data().Buffers()[1].Bytes()
}

func TestPurgeZeroesAndForgets(t *testing.T) {
	dir := t.TempDir()
	s := New(Config{WatchDirs: []string{dir}})
	j, err := s.Create(link.JobSpec{JobID: "j1"}, "agent-a")
	if err != nil {
		t.Fatal(err)
	}
	rec, raw := batch(t, j, 1000, 0x5EC12E7)
	if _, _, err := j.AppendBatch("t", 0, rec, 8000); err != nil {
		t.Fatal(err)
	}
	rec.Release()
	if _, err := s.Get("j1", "agent-b"); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("other agent: got %v, want ErrNotOwner", err)
	}
	att, err := s.Purge("j1", "agent-a", "completed")
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range raw {
		if b != 0 {
			t.Fatalf("byte %d of a purged buffer is %#x, want 0", i, b)
		}
	}
	if att.BytesReceived != 8000 || att.BytesPurged < 8000 || att.FilesWritten != 0 || att.Reason != "completed" {
		t.Fatalf("attestation %+v", att)
	}
	if j.Alloc.CurrentBytes() != 0 {
		t.Fatalf("%d bytes still held after purge", j.Alloc.CurrentBytes())
	}
	if _, err := s.Get("j1", "agent-a"); !errors.Is(err, ErrUnknownJob) {
		t.Fatalf("after purge: got %v, want ErrUnknownJob", err)
	}
}

func TestFilesWrittenCounted(t *testing.T) {
	dir := t.TempDir()
	s := New(Config{WatchDirs: []string{dir}})
	if _, err := s.Create(link.JobSpec{JobID: "j"}, "a"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "spill"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	att, err := s.Purge("j", "a", "completed")
	if err != nil {
		t.Fatal(err)
	}
	if att.FilesWritten != 1 {
		t.Fatalf("files written = %d, want 1", att.FilesWritten)
	}
}

func TestQuotaAndTTL(t *testing.T) {
	s := New(Config{DefaultQuota: 4096, MaxQuota: 1 << 20, TTL: time.Minute})
	if _, err := s.Create(link.JobSpec{JobID: "big", QuotaBytes: 2 << 20}, "a"); err == nil {
		t.Fatal("quota above the maximum accepted")
	}
	j, err := s.Create(link.JobSpec{JobID: "j"}, "a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(link.JobSpec{JobID: "j"}, "a"); !errors.Is(err, ErrJobExists) {
		t.Fatalf("duplicate: %v", err)
	}
	rec, _ := batch(t, j, 10000, 1)
	_, _, err = j.AppendBatch("t", 0, rec, 80000)
	rec.Release()
	if !errors.Is(err, ErrOverQuota) {
		t.Fatalf("got %v, want ErrOverQuota", err)
	}
	s.now = func() time.Time { return time.Now().Add(2 * time.Minute) }
	atts := s.Expire()
	if len(atts) != 1 || atts[0].Reason != "expired" || s.Len() != 0 {
		t.Fatalf("expire: %+v, %d jobs left", atts, s.Len())
	}
}

// TestAppendBatchSequence: each sequence number of a table is kept once, in
// order; a resent batch is skipped, a gap and a batch after completion are
// refused, and nothing is kept after purge.
func TestAppendBatchSequence(t *testing.T) {
	s := New(Config{WatchDirs: []string{t.TempDir()}})
	j, err := s.Create(link.JobSpec{JobID: "j"}, "a")
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name     string
		table    string
		seq      int64
		complete bool // complete the table before this step
		kept     bool
		err      string
		batches  int64
	}{
		{name: "first", table: "t", seq: 0, kept: true, batches: 1},
		{name: "second", table: "t", seq: 1, kept: true, batches: 2},
		{name: "resent first", table: "t", seq: 0, batches: 2},
		{name: "resent second", table: "t", seq: 1, batches: 2},
		{name: "gap", table: "t", seq: 3, err: "gap", batches: 2},
		{name: "third", table: "t", seq: 2, kept: true, batches: 3},
		{name: "other table starts at 0", table: "u", seq: 0, kept: true, batches: 1},
		{name: "after complete", table: "t", seq: 3, complete: true, err: "complete", batches: 3},
		{name: "resent after complete", table: "t", seq: 2, batches: 3},
	}
	for _, st := range steps {
		if st.complete {
			j.CompleteTable(st.table)
		}
		rec, _ := batch(t, j, 10, st.seq)
		p, kept, err := j.AppendBatch(st.table, st.seq, rec, 80)
		rec.Release()
		if st.err == "" && err != nil || st.err != "" && (err == nil || !strings.Contains(err.Error(), st.err)) {
			t.Fatalf("%s: error %v, want %q", st.name, err, st.err)
		}
		if kept != st.kept || p.Batches != st.batches || p.Rows != 10*st.batches {
			t.Fatalf("%s: kept %v, progress %+v; want kept %v, %d batches", st.name, kept, p, st.kept, st.batches)
		}
	}
	if got := len(j.Tables()["t"]); got != 3 {
		t.Fatalf("table t holds %d batches, want 3", got)
	}
	if _, err := s.Purge("j", "a", "completed"); err != nil {
		t.Fatal(err)
	}
	rec, _ := batch(t, j, 10, 9)
	defer rec.Release()
	if _, _, err := j.AppendBatch("v", 0, rec, 80); !errors.Is(err, ErrUnknownJob) {
		t.Fatalf("append after purge: %v, want ErrUnknownJob", err)
	}
	if n := len(j.Tables()); n != 0 {
		t.Fatalf("%d tables held after purge", n)
	}
}

// TestPurgeWaitsForReaders: a purge (say the TTL janitor while the job
// trains) cancels the job's context and waits for its readers before it
// zeroes anything, so a reader never sees its buffers change under it; a
// reader cannot join a purged job.
func TestPurgeWaitsForReaders(t *testing.T) {
	s := New(Config{WatchDirs: []string{t.TempDir()}})
	j, err := s.Create(link.JobSpec{JobID: "j"}, "a")
	if err != nil {
		t.Fatal(err)
	}
	rec, raw := batch(t, j, 1000, 42)
	if _, _, err := j.AppendBatch("t", 0, rec, 8000); err != nil {
		t.Fatal(err)
	}
	rec.Release()
	release, err := j.Acquire()
	if err != nil {
		t.Fatal(err)
	}
	purged := make(chan link.PurgeAttestation)
	go func() {
		att, _ := s.Purge("j", "a", "expired")
		purged <- att
	}()
	select {
	case <-j.Context().Done():
	case <-time.After(2 * time.Second):
		t.Fatal("purge did not cancel the job's context")
	}
	time.Sleep(50 * time.Millisecond)
	select {
	case <-purged:
		t.Fatal("purge went on while a reader held the job")
	default:
	}
	for i, b := range raw {
		if b == 0 && i%8 == 0 {
			t.Fatalf("byte %d zeroed while a reader held the job", i)
		}
	}
	release()
	release() // twice is harmless
	select {
	case att := <-purged:
		if att.Reason != "expired" {
			t.Fatalf("attestation %+v", att)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("purge did not finish after the reader left")
	}
	for i, b := range raw {
		if b != 0 {
			t.Fatalf("byte %d not zeroed after purge", i)
		}
	}
	if _, err := j.Acquire(); !errors.Is(err, ErrUnknownJob) {
		t.Fatalf("acquire after purge: %v", err)
	}
}
