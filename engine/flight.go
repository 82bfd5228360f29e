package engine

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"time"

	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/util"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/ferry-ai/ferry/engine/jobstore"
	"github.com/ferry-ai/ferry/engine/train"
	"github.com/ferry-ai/ferry/internal/flightcodec"
	"github.com/ferry-ai/ferry/internal/link"
	"github.com/ferry-ai/ferry/internal/pki"
)

// flightService implements the Flight RPCs of the private link; the others
// answer Unimplemented.
type flightService struct {
	flight.BaseFlightServer
	s *Server
}

// peerID returns the verified client certificate's common name.
func peerID(ctx context.Context) (string, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return "", status.Error(codes.Unauthenticated, "no peer")
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return "", status.Error(codes.Unauthenticated, "not a TLS connection")
	}
	cn := pki.PeerCommonName(ti.State)
	if cn == "" {
		return "", status.Error(codes.Unauthenticated, "no verified client certificate")
	}
	return cn, nil
}

func storeErr(err error) error {
	switch {
	case errors.Is(err, jobstore.ErrUnknownJob):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, jobstore.ErrNotOwner):
		return status.Error(codes.PermissionDenied, err.Error())
	case errors.Is(err, jobstore.ErrJobExists):
		return status.Error(codes.AlreadyExists, err.Error())
	case errors.Is(err, jobstore.ErrOverQuota):
		return status.Error(codes.ResourceExhausted, err.Error())
	default:
		return status.Error(codes.InvalidArgument, err.Error())
	}
}

func sendJSON(stream flight.FlightService_DoActionServer, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return status.Errorf(codes.Internal, "encode result: %v", err)
	}
	return stream.Send(&flight.Result{Body: body})
}

// DoAction runs the job lifecycle actions.
func (f *flightService) DoAction(a *flight.Action, stream flight.FlightService_DoActionServer) error {
	ctx := stream.Context()
	owner, err := peerID(ctx)
	if err != nil {
		return err
	}
	switch a.Type {
	case link.ActionStartJob:
		var spec link.JobSpec
		if err := link.Decode("job spec", a.Body, &spec); err != nil {
			return status.Error(codes.InvalidArgument, err.Error())
		}
		if err := spec.Options.Validate(); err != nil {
			return status.Error(codes.InvalidArgument, err.Error())
		}
		_, err := f.s.store.Create(spec, owner)
		if errors.Is(err, jobstore.ErrJobExists) {
			// The same agent starts the job again: the control plane
			// re-assigned it after the agent's earlier attempt was
			// abandoned (the agent was killed, or lost the control plane).
			// That attempt's data is purged now, not at its TTL. Another
			// agent's job is refused by Purge (not its owner).
			att, perr := f.s.store.Purge(spec.JobID, owner, link.PurgeRestarted)
			if perr != nil {
				return storeErr(err)
			}
			f.s.purged(att)
			f.s.log.Info("job purged", "job_id", att.JobID, "reason", att.Reason, "bytes_received", att.BytesReceived,
				"bytes_purged", att.BytesPurged, "files_written", att.FilesWritten, "storage_write_bytes", att.StorageWriteBytes)
			_, err = f.s.store.Create(spec, owner)
		}
		if err != nil {
			return storeErr(err)
		}
		f.s.log.Info("job started", "job_id", spec.JobID, "agent", owner, "tables", len(spec.Tables))
		return sendJSON(stream, link.JobRef{JobID: spec.JobID})
	case link.ActionTrain:
		var ref link.JobRef
		if err := link.Decode("job ref", a.Body, &ref); err != nil {
			return status.Error(codes.InvalidArgument, err.Error())
		}
		res, err := f.s.train(ctx, ref.JobID, owner)
		if err != nil {
			return err
		}
		return sendJSON(stream, res)
	case link.ActionPurge:
		var ref link.JobRef
		if err := link.Decode("job ref", a.Body, &ref); err != nil {
			return status.Error(codes.InvalidArgument, err.Error())
		}
		reason := ref.Reason
		switch reason {
		case "":
			reason = link.PurgeCompleted
		case link.PurgeCompleted, link.PurgeFailed, link.PurgeCancelled:
		default:
			return status.Errorf(codes.InvalidArgument, "purge reason %q: want %s, %s or %s", ref.Reason, link.PurgeCompleted, link.PurgeFailed, link.PurgeCancelled)
		}
		att, err := f.s.store.Purge(ref.JobID, owner, reason)
		if err != nil {
			return storeErr(err)
		}
		f.s.purged(att)
		f.s.log.Info("job purged", "job_id", att.JobID, "reason", att.Reason, "bytes_received", att.BytesReceived,
			"bytes_purged", att.BytesPurged, "files_written", att.FilesWritten, "storage_write_bytes", att.StorageWriteBytes)
		return sendJSON(stream, att)
	default:
		return status.Errorf(codes.Unimplemented, "unknown action %q (known: %s, %s, %s)", a.Type, link.ActionStartJob, link.ActionTrain, link.ActionPurge)
	}
}

// train runs the trainer on a job's tables and keeps the predictions.
func (s *Server) train(ctx context.Context, jobID, owner string) (*link.TrainResult, error) {
	j, err := s.store.Get(jobID, owner)
	if err != nil {
		return nil, storeErr(err)
	}
	// Hold the job's data while training; a purge (TTL, shutdown) cancels
	// the training and waits for it before zeroing the buffers.
	release, err := j.Acquire()
	if err != nil {
		return nil, storeErr(err)
	}
	defer release()
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	defer context.AfterFunc(j.Context(), stop)()
	batches := j.Tables()
	in := train.Input{JobID: jobID, Query: j.Spec.Query, Tables: map[string]train.Table{}, Options: j.Spec.Options}
	for _, meta := range j.Spec.Tables {
		recs, ok := batches[meta.Name]
		if p := j.Progress(meta.Name); !ok || !p.Complete {
			return nil, status.Errorf(codes.FailedPrecondition, "job %s: table %q was declared but not uploaded completely (%d batches held)", jobID, meta.Name, p.Batches)
		}
		in.Tables[meta.Name] = train.Table{Meta: meta, Records: recs}
	}
	start := time.Now()
	out, err := train.Run(ctx, in, train.Options{Allocator: j.Alloc, Logger: s.log.With("job_id", jobID), NThread: s.cfg.Threads, MaxRounds: s.cfg.MaxRounds, Device: s.cfg.Device})
	if err != nil {
		if j.Context().Err() != nil {
			return nil, status.Errorf(codes.Aborted, "job %s: purged while training (expired or engine shutting down)", jobID)
		}
		if ctx.Err() != nil {
			return nil, status.Errorf(codes.Canceled, "job %s: training cancelled", jobID)
		}
		return nil, status.Errorf(codes.FailedPrecondition, "job %s: %v", jobID, err)
	}
	out.Result.JobID = jobID
	j.SetResult(&out.Result, out.Predictions)
	s.metrics.stages.Observe(out.Result.FeatureSeconds, "features")
	s.metrics.stages.Observe(out.Result.TrainSeconds, "train")
	s.metrics.stages.Observe(out.Result.ScoreSeconds, "score")
	s.log.Info("job trained", "job_id", jobID, "model_id", out.Result.ModelID, "seconds", time.Since(start).Seconds(),
		"test_auroc", out.Result.Test.AUROC, "prediction_rows", out.Result.PredictionRows)
	return &out.Result, nil
}

// DoPut receives one table of a job, or the rest of it after a broken
// upload. The first message's descriptor names the job, the table and the
// sequence number of the stream's first batch. The batches decoded from
// the messages alias their bodies without a copy (decompressed buffers come
// from the job's zeroing allocator); once a batch is decoded, the messages
// it came from are handed to the job (Job.Adopt), and purge zeroes them all. Each sequence number
// is kept once: a batch the job already holds (resent after a reconnect) is
// skipped. After each batch the engine sends a PutResult whose app metadata
// is a JSON PutAck with the table's totals, and a last one with Done set
// when the stream ends cleanly.
func (f *flightService) DoPut(stream flight.FlightService_DoPutServer) error {
	owner, err := peerID(stream.Context())
	if err != nil {
		return err
	}
	// Peek at the first message for the descriptor before choosing an allocator.
	first, err := stream.Recv()
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "do_put: no first message: %v", err)
	}
	if first.FlightDescriptor == nil || len(first.FlightDescriptor.Cmd) == 0 {
		return status.Error(codes.InvalidArgument, "do_put: first message has no descriptor command")
	}
	var d link.Descriptor
	if err := link.Decode("put descriptor", first.FlightDescriptor.Cmd, &d); err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	j, err := f.s.store.Get(d.JobID, owner)
	if err != nil {
		return storeErr(err)
	}
	declared := false
	for _, t := range j.Spec.Tables {
		declared = declared || t.Name == d.Table
	}
	if !declared {
		return status.Errorf(codes.InvalidArgument, "do_put: table %q is not declared in job %s", d.Table, d.JobID)
	}
	if held := j.Progress(d.Table).Batches; d.FirstBatch < 0 || d.FirstBatch > held {
		return status.Errorf(codes.FailedPrecondition, "do_put %s/%s: stream starts at batch %d but the engine holds %d batches (resume from at most %d)",
			d.JobID, d.Table, d.FirstBatch, held, held)
	}
	src := &adoptingStream{first: first, stream: stream, job: j, bodies: f.s.bodies}
	defer src.discard()
	r, err := flight.NewRecordReader(src, ipc.WithAllocator(j.Alloc), ipc.WithDelayReadSchema(false))
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "do_put %s/%s: read schema: %v", d.JobID, d.Table, err)
	}
	defer r.Release()
	seq := d.FirstBatch
	var skipped int64
	for r.Next() {
		rec := r.RecordBatch()
		// The batch is decoded: now its message bodies become the job's,
		// and a purge may zero them (it never does so mid-decode).
		if err := src.adopt(); err != nil {
			return storeErr(err)
		}
		if err := validateBatch(rec); err != nil {
			return status.Errorf(codes.InvalidArgument, "do_put %s/%s: batch %d is malformed: %v", d.JobID, d.Table, seq, err)
		}
		size := util.TotalRecordSize(rec)
		p, kept, err := j.AppendBatch(d.Table, seq, rec, size)
		if err != nil {
			return storeErr(err)
		}
		if kept {
			f.s.metrics.rows.Add(float64(rec.NumRows()))
			f.s.metrics.bytes.Add(float64(size))
			f.s.metrics.batches.Add(1)
		} else {
			skipped++
		}
		seq++
		if err := sendAck(stream, link.PutAck{Rows: p.Rows, Batches: p.Batches, Bytes: p.Bytes}); err != nil {
			return status.Errorf(codes.Unavailable, "do_put %s/%s: ack batch %d: %v", d.JobID, d.Table, seq-1, err)
		}
	}
	if err := r.Err(); err != nil && !errors.Is(err, io.EOF) {
		p := j.Progress(d.Table)
		f.s.log.Info("table upload broke", "job_id", d.JobID, "table", d.Table, "batches_held", p.Batches, "error", err.Error())
		return status.Errorf(codes.Aborted, "do_put %s/%s: stream broke with %d batches held (resume from there): %v", d.JobID, d.Table, p.Batches, err)
	}
	p := j.CompleteTable(d.Table)
	f.s.log.Info("table received", "job_id", d.JobID, "table", d.Table, "rows", p.Rows, "batches", p.Batches, "bytes", p.Bytes,
		"first_batch", d.FirstBatch, "resent_batches_skipped", skipped)
	return sendAck(stream, link.PutAck{Rows: p.Rows, Batches: p.Batches, Bytes: p.Bytes, Done: true})
}

// adoptingStream hands the already-received first message back to the IPC
// reader, then continues with the stream. The messages it returns stay
// pending until adopt gives their bytes to the job, after the reader has
// decoded the batch built on them: the batches alias those bytes, purge
// zeroes them, and a purge never zeroes bytes mid-decode. Bytes never
// adopted are zeroed by discard.
type adoptingStream struct {
	first   *flight.FlightData
	stream  flight.FlightService_DoPutServer
	job     *jobstore.Job
	bodies  *flightcodec.BodyPool
	pending []*flight.FlightData
}

func (a *adoptingStream) Recv() (*flight.FlightData, error) {
	m := a.first
	a.first = nil
	if m == nil {
		var err error
		if m, err = a.stream.Recv(); err != nil {
			return m, err
		}
	}
	a.pending = append(a.pending, m)
	return m, nil
}

// adopt hands the pending messages' bytes to the job; after a purge the job
// zeroes them at once and adopt fails.
func (a *adoptingStream) adopt() error {
	var first error
	for _, m := range a.pending {
		for i, b := range [][]byte{m.DataBody, m.DataHeader, m.AppMetadata} {
			if len(b) == 0 {
				continue
			}
			var release func([]byte)
			if i == 0 {
				release = a.bodies.Put // the codec took the body from this pool
			}
			if err := a.job.Adopt(b, release); err != nil && first == nil {
				first = err
			}
		}
	}
	a.pending = a.pending[:0]
	return first
}

// discard zeroes the bytes of messages never adopted (a stream that broke
// mid-batch, the end-of-stream marker).
func (a *adoptingStream) discard() {
	for _, m := range a.pending {
		clear(m.DataBody)
		clear(m.DataHeader)
		clear(m.AppMetadata)
		if len(m.DataBody) > 0 {
			a.bodies.Put(m.DataBody)
		}
	}
	a.pending = nil
}

func sendAck(stream flight.FlightService_DoPutServer, ack link.PutAck) error {
	body, _ := json.Marshal(ack)
	return stream.Send(&flight.PutResult{AppMetadata: body})
}

// DoGet streams a job's predictions.
func (f *flightService) DoGet(tkt *flight.Ticket, stream flight.FlightService_DoGetServer) error {
	owner, err := peerID(stream.Context())
	if err != nil {
		return err
	}
	var t link.Ticket
	if err := link.Decode("ticket", tkt.Ticket, &t); err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	if t.Stream != link.PredictionsStream {
		return status.Errorf(codes.InvalidArgument, "do_get: unknown stream %q (known: %s)", t.Stream, link.PredictionsStream)
	}
	j, err := f.s.store.Get(t.JobID, owner)
	if err != nil {
		return storeErr(err)
	}
	preds := j.Predictions()
	if preds == nil {
		return status.Errorf(codes.FailedPrecondition, "do_get: job %s has no predictions yet (train first)", t.JobID)
	}
	defer func() {
		for _, p := range preds {
			p.Release()
		}
	}()
	w := flight.NewRecordWriter(stream, ipc.WithSchema(preds[0].Schema()), ipc.WithAllocator(j.Alloc))
	defer w.Close()
	const chunk = 64 * 1024
	for _, p := range preds {
		for off := int64(0); off < p.NumRows(); off += chunk {
			s := p.NewSlice(off, min(off+chunk, p.NumRows()))
			err := w.Write(s)
			s.Release()
			if err != nil {
				return status.Errorf(codes.Unavailable, "do_get %s: %v", t.JobID, err)
			}
		}
	}
	return nil
}
