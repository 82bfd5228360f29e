// Package jobstore holds each engine job's data in memory only, under a byte
// quota, and purges it when the job ends.
//
// Every Arrow buffer of a job comes from the job's own allocator, which
// zeroes a buffer before releasing it and counts the bytes it zeroed. Purge
// releases everything the job holds and returns an attestation (bytes
// received, bytes purged, files written, storage write bytes) that is
// metadata and travels to the control plane. After a purge the job's id is
// unknown: any later request for its data is refused.
package jobstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/ferry-ai/ferry/internal/link"
)

// Errors returned by the store.
var (
	ErrUnknownJob = errors.New("unknown job (never started, or purged)")
	ErrJobExists  = errors.New("job already exists")
	ErrOverQuota  = errors.New("job is over its memory quota")
	ErrNotOwner   = errors.New("job belongs to another agent")
)

// Config configures a Store.
type Config struct {
	// DefaultQuota caps a job's bytes when its spec sets none.
	DefaultQuota int64
	// MaxQuota caps what a spec may ask for.
	MaxQuota int64
	// TTL bounds a job's life; the janitor purges it after that.
	TTL time.Duration
	// WatchDirs are checked for files written during a job (the engine's
	// working directory and TMPDIR); the count goes into the attestation.
	WatchDirs []string
}

// Store is the set of live jobs. It is safe for concurrent use.
type Store struct {
	cfg  Config
	mu   sync.Mutex
	jobs map[string]*Job
	now  func() time.Time
}

// New returns an empty store.
func New(cfg Config) *Store {
	if cfg.DefaultQuota <= 0 {
		cfg.DefaultQuota = 4 << 30
	}
	if cfg.MaxQuota <= 0 {
		cfg.MaxQuota = cfg.DefaultQuota
	}
	if cfg.TTL <= 0 {
		cfg.TTL = time.Hour
	}
	return &Store{cfg: cfg, jobs: map[string]*Job{}, now: time.Now}
}

// Job is one job's in-memory data.
type Job struct {
	Spec  link.JobSpec
	Owner string // the agent identity that opened the job
	Alloc *ZeroingAllocator

	created    time.Time
	quota      int64
	ioStart    int64
	received   atomic.Int64
	mu         sync.Mutex
	purged     bool
	users      int        // readers of the job's data (Acquire)
	idle       *sync.Cond // signalled when users drops to 0
	ctx        context.Context
	cancel     context.CancelFunc
	adopted    []adoptedBytes // message bodies batches alias, zeroed at purge
	adoptedN   int64
	tables     map[string][]arrow.RecordBatch
	progress   map[string]Progress
	results    []arrow.RecordBatch
	resultInfo *link.TrainResult
}

// Create opens a job.
func (s *Store) Create(spec link.JobSpec, owner string) (*Job, error) {
	if spec.JobID == "" {
		return nil, errors.New("job spec has no job_id")
	}
	quota := spec.QuotaBytes
	if quota <= 0 {
		quota = s.cfg.DefaultQuota
	}
	if quota > s.cfg.MaxQuota {
		return nil, fmt.Errorf("job %s asks for a quota of %d bytes; the engine allows at most %d", spec.JobID, quota, s.cfg.MaxQuota)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.jobs[spec.JobID]; ok {
		return nil, fmt.Errorf("job %s: %w", spec.JobID, ErrJobExists)
	}
	j := &Job{
		Spec: spec, Owner: owner, Alloc: NewZeroingAllocator(),
		created: s.now(), quota: quota, ioStart: StorageWriteBytes(),
		tables: map[string][]arrow.RecordBatch{}, progress: map[string]Progress{},
	}
	j.idle = sync.NewCond(&j.mu)
	j.ctx, j.cancel = context.WithCancel(context.Background())
	s.jobs[spec.JobID] = j
	return j, nil
}

// Get returns a live job opened by owner.
func (s *Store) Get(id, owner string) (*Job, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.jobs[id]
	if !ok {
		return nil, fmt.Errorf("job %s: %w", id, ErrUnknownJob)
	}
	if j.Owner != owner {
		return nil, fmt.Errorf("job %s: %w", id, ErrNotOwner)
	}
	return j, nil
}

// Len returns the number of live jobs.
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.jobs)
}

// Acquire registers a reader of the job's data (training): purge cancels
// Context and then waits for every reader to call the returned release
// before it zeroes the buffers, so no reader ever sees them change. It
// fails after purge.
func (j *Job) Acquire() (release func(), err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.purged {
		return nil, fmt.Errorf("job %s: %w", j.Spec.JobID, ErrUnknownJob)
	}
	j.users++
	var once sync.Once
	return func() {
		once.Do(func() {
			j.mu.Lock()
			j.users--
			if j.users == 0 {
				j.idle.Broadcast()
			}
			j.mu.Unlock()
		})
	}, nil
}

// Context is cancelled when the job is purged; readers stop on it.
func (j *Job) Context() context.Context { return j.ctx }

// Progress is what a job holds of one table.
type Progress struct {
	Batches, Rows, Bytes int64
	// Complete is set when the table's upload ended cleanly.
	Complete bool
}

// Progress returns what the job holds of a table.
func (j *Job) Progress(table string) Progress {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.progress[table]
}

// AppendBatch keeps batch seq (0-based, in upload order) of a table and
// returns the table's progress. A batch the job already holds (seq below
// the table's batch count: a batch resent after a reconnect) is not kept
// again and kept is false; a seq beyond the count would leave a gap and is
// refused, as is a batch for a table already complete or a job already
// purged. The batch's buffers must come from j.Alloc or from bodies given
// to Adopt, so that purge zeroes them; the job takes its own reference when
// it keeps it. size is the batch's size in bytes. A
// batch that takes the job over its quota fails with ErrOverQuota.
func (j *Job) AppendBatch(table string, seq int64, rec arrow.RecordBatch, size int64) (p Progress, kept bool, err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	p = j.progress[table]
	switch {
	case j.purged:
		return p, false, fmt.Errorf("job %s: %w", j.Spec.JobID, ErrUnknownJob)
	case seq < p.Batches:
		return p, false, nil
	case p.Complete:
		return p, false, fmt.Errorf("job %s: table %q is complete with %d batches; batch %d is one too many", j.Spec.JobID, table, p.Batches, seq)
	case seq > p.Batches:
		return p, false, fmt.Errorf("job %s: table %q: batch %d would leave a gap after batch %d", j.Spec.JobID, table, seq, p.Batches-1)
	}
	if used := j.held(); used > j.quota {
		return p, false, fmt.Errorf("job %s: table %q: %d bytes held, quota %d: %w", j.Spec.JobID, table, used, j.quota, ErrOverQuota)
	}
	rec.Retain()
	j.tables[table] = append(j.tables[table], rec)
	p.Batches++
	p.Rows += rec.NumRows()
	p.Bytes += size
	j.progress[table] = p
	j.received.Add(size)
	return p, true, nil
}

type adoptedBytes struct {
	b       []byte
	release func([]byte)
}

// Adopt makes b part of the job's data: batches may alias it (the engine
// keeps received Arrow bodies without copying them), it counts against the
// quota, and purge zeroes it and then hands it to release (nil: to the
// garbage collector), e.g. to return it to a pool. It fails, zeroing b at
// once, after purge.
func (j *Job) Adopt(b []byte, release func([]byte)) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.purged {
		clear(b)
		if release != nil {
			release(b)
		}
		return fmt.Errorf("job %s: %w", j.Spec.JobID, ErrUnknownJob)
	}
	j.adopted = append(j.adopted, adoptedBytes{b, release})
	j.adoptedN += int64(len(b))
	return nil
}

// held is the memory the job's data takes; j.mu must be held.
func (j *Job) held() int64 { return j.Alloc.CurrentBytes() + j.adoptedN }

// CompleteTable marks a table's upload complete (its stream ended cleanly)
// and returns its progress; later batches for it are refused.
func (j *Job) CompleteTable(table string) Progress {
	j.mu.Lock()
	defer j.mu.Unlock()
	p := j.progress[table]
	p.Complete = true
	j.progress[table] = p
	return p
}

// Tables returns the batches received per table. The caller must not release
// them; they live until purge.
func (j *Job) Tables() map[string][]arrow.RecordBatch {
	j.mu.Lock()
	defer j.mu.Unlock()
	out := make(map[string][]arrow.RecordBatch, len(j.tables))
	for k, v := range j.tables {
		out[k] = v
	}
	return out
}

// SetResult keeps the trained result and predictions (the job takes the
// reference to preds).
func (j *Job) SetResult(res *link.TrainResult, preds arrow.RecordBatch) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.purged {
		preds.Release() // zeroed now: the job is gone
		return
	}
	for _, r := range j.results {
		r.Release()
	}
	j.results = []arrow.RecordBatch{preds}
	j.resultInfo = res
}

// Predictions returns the predictions, or nil before training finished. The
// caller must Release the returned batches.
func (j *Job) Predictions() []arrow.RecordBatch {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.resultInfo == nil {
		return nil
	}
	out := make([]arrow.RecordBatch, len(j.results))
	for i, r := range j.results {
		r.Retain()
		out[i] = r
	}
	return out
}

// BytesReceived is the number of bytes of table data the job has kept.
func (j *Job) BytesReceived() int64 { return j.received.Load() }

// Purge removes a job, releases (and so zeroes) all its buffers and returns
// the attestation.
func (s *Store) Purge(id, owner, reason string) (link.PurgeAttestation, error) {
	s.mu.Lock()
	j, ok := s.jobs[id]
	if ok && owner != "" && j.Owner != owner {
		s.mu.Unlock()
		return link.PurgeAttestation{}, fmt.Errorf("job %s: %w", id, ErrNotOwner)
	}
	delete(s.jobs, id)
	s.mu.Unlock()
	if !ok {
		return link.PurgeAttestation{}, fmt.Errorf("job %s: %w", id, ErrUnknownJob)
	}
	return s.purge(j, reason), nil
}

func (s *Store) purge(j *Job, reason string) link.PurgeAttestation {
	j.mu.Lock()
	j.purged = true
	j.cancel()
	for j.users > 0 {
		j.idle.Wait() // a reader stops on the cancelled context
	}
	for name, recs := range j.tables {
		for _, r := range recs {
			r.Release()
		}
		delete(j.tables, name)
	}
	for _, r := range j.results {
		r.Release()
	}
	j.results = nil
	j.resultInfo = nil
	var adopted int64
	for _, a := range j.adopted {
		clear(a.b)
		adopted += int64(len(a.b))
		if a.release != nil {
			a.release(a.b)
		}
	}
	j.adopted, j.adoptedN = nil, 0
	j.mu.Unlock()

	att := link.PurgeAttestation{
		JobID:         j.Spec.JobID,
		Reason:        reason,
		BytesReceived: j.received.Load(),
		BytesPurged:   j.Alloc.ZeroedBytes() + adopted,
		FilesWritten:  filesWrittenSince(s.cfg.WatchDirs, j.created),
		PurgedAt:      s.now().UTC(),
	}
	if end := StorageWriteBytes(); end >= 0 && j.ioStart >= 0 {
		att.StorageWriteBytes = end - j.ioStart
	} else {
		att.StorageWriteBytes = -1
	}
	return att
}

// Expire purges every job older than the TTL and returns their attestations.
func (s *Store) Expire() []link.PurgeAttestation {
	cutoff := s.now().Add(-s.cfg.TTL)
	s.mu.Lock()
	var old []*Job
	for id, j := range s.jobs {
		if j.created.Before(cutoff) {
			old = append(old, j)
			delete(s.jobs, id)
		}
	}
	s.mu.Unlock()
	out := make([]link.PurgeAttestation, 0, len(old))
	for _, j := range old {
		out = append(out, s.purge(j, "expired"))
	}
	return out
}

// PurgeAll purges every job (at shutdown) with the given reason.
func (s *Store) PurgeAll(reason string) []link.PurgeAttestation {
	s.mu.Lock()
	all := make([]*Job, 0, len(s.jobs))
	for id, j := range s.jobs {
		all = append(all, j)
		delete(s.jobs, id)
	}
	s.mu.Unlock()
	out := make([]link.PurgeAttestation, 0, len(all))
	for _, j := range all {
		out = append(out, s.purge(j, reason))
	}
	return out
}

// filesWrittenSince counts regular files under dirs modified at or after t.
func filesWrittenSince(dirs []string, t time.Time) int64 {
	var n int64
	for _, d := range dirs {
		_ = filepath.WalkDir(d, func(path string, e os.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return nil
			}
			if info, err := e.Info(); err == nil && !info.ModTime().Before(t.Add(-time.Second)) {
				n++
			}
			return nil
		})
	}
	return n
}
