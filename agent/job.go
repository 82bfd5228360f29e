package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc"

	"github.com/ferry-ai/ferry/connectors"
	"github.com/ferry-ai/ferry/controlplane/agentapi"
	"github.com/ferry-ai/ferry/internal/graph"
	"github.com/ferry-ai/ferry/internal/link"
	"github.com/ferry-ai/ferry/writeback"
)

// stageError marks where a job failed.
type stageError struct {
	stage string
	err   error
}

func (e *stageError) Error() string { return e.stage + ": " + e.err.Error() }
func (e *stageError) Unwrap() error { return e.err }

func stage(name string, err error) error {
	if err == nil {
		return nil
	}
	return &stageError{stage: name, err: err}
}

// runJob runs one assignment end to end and reports its progress through
// send. It always asks the engine to purge the job's data, on success and on
// failure. It returns the job's final event (succeeded, failed or
// cancelled) unsent: the caller sends it once the agent is free for the
// next job, since the control plane assigns the next one as soon as it
// hears of the end.
func (a *Agent) runJob(ctx context.Context, asg *agentapi.JobAssignment, send func(*agentapi.JobEvent)) *agentapi.JobEvent {
	log := a.log.With("job_id", asg.JobId)
	// The control plane requires every event to carry the job's state; a
	// report (purge) carries the state the job is in when it is made.
	current := agentapi.JobState_JOB_STATE_ASSIGNED
	emit := func(ev *agentapi.JobEvent) {
		if ev.State == agentapi.JobState_JOB_STATE_UNSPECIFIED {
			ev.State = current
		}
		current = ev.State
		send(ev)
	}
	log.Info("job assigned", "tables", len(asg.Tables), "output_table", asg.OutputTable)
	started := time.Now()
	var scrub *scrubber
	err := func() (jobErr error) {
		emit(&agentapi.JobEvent{JobId: asg.JobId, State: agentapi.JobState_JOB_STATE_READING})
		stageStart := time.Now()
		w, err := a.openWarehouse(ctx, log)
		if err != nil {
			return stage("read", err)
		}
		// The job's connections close and its database users are revoked
		// when the job ends, whatever the outcome.
		defer func() {
			if err := w.Close(context.WithoutCancel(ctx)); err != nil {
				log.Warn("revoking the job's credentials", "error", err.Error())
			}
		}()
		wh, err := w.Conn(ctx)
		if err != nil {
			return stage("read", err)
		}
		all, err := wh.Tables(ctx)
		if err != nil {
			return stage("read", err)
		}
		var names []string
		for _, t := range all {
			names = append(names, t.Name)
			names = append(names, t.ColumnNames()...)
		}
		scrub = newScrubber(names)
		spec := link.JobSpec{JobID: asg.JobId, Query: asg.Query}
		if o := asg.GetOptionsJson(); o != "" {
			if err := link.Decode("job options", []byte(o), &spec.Options); err != nil {
				return stage("agent", err)
			}
		}
		for _, name := range asg.Tables {
			t, err := connectors.FindTable(all, name)
			if err != nil {
				return stage("read", err)
			}
			spec.Tables = append(spec.Tables, t.Table)
		}

		cc, err := a.egress.client(a.cfg.Engine, append(a.rpcOptions(), grpc.WithTransportCredentials(a.tls),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))...)
		if err != nil {
			return stage("stream", fmt.Errorf("dial engine %s: %w", a.cfg.Engine, err))
		}
		eng := flight.NewClientFromConn(cc, nil)
		if err != nil {
			return stage("stream", fmt.Errorf("dial engine %s: %w", a.cfg.Engine, err))
		}
		defer eng.Close()
		if err := doAction(ctx, eng, link.ActionStartJob, spec, nil); err != nil {
			return stage("stream", err)
		}
		defer func() {
			// Purge on every path; a fresh context so a cancelled job still purges.
			pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			reason := link.PurgeCompleted
			switch {
			case ctx.Err() != nil:
				reason = link.PurgeCancelled
			case jobErr != nil:
				reason = link.PurgeFailed
			}
			var att link.PurgeAttestation
			if err := doAction(pctx, eng, link.ActionPurge, link.JobRef{JobID: asg.JobId, Reason: reason}, &att); err != nil {
				log.Error("engine purge failed", "error", scrub.scrub(err.Error()))
				return
			}
			emit(&agentapi.JobEvent{JobId: asg.JobId, State: agentapi.JobState_JOB_STATE_UNSPECIFIED, Detail: &agentapi.JobEvent_Purge{Purge: &agentapi.PurgeReport{
				Reason: att.Reason, BytesReceived: att.BytesReceived, BytesPurged: att.BytesPurged, FilesWritten: att.FilesWritten,
				StorageWriteBytes: att.StorageWriteBytes, PurgedUnixNanos: att.PurgedAt.UnixNano(),
			}}})
			log.Info("engine purged job", "bytes_received", att.BytesReceived, "bytes_purged", att.BytesPurged, "files_written", att.FilesWritten)
		}()

		a.metrics.stage("read", time.Since(stageStart).Seconds())
		stageStart = time.Now()
		for _, t := range spec.Tables {
			st, err := a.upload(ctx, w, eng, asg.JobId, t)
			if err != nil {
				return stage("stream", err)
			}
			emit(&agentapi.JobEvent{JobId: asg.JobId, State: agentapi.JobState_JOB_STATE_READING, Detail: &agentapi.JobEvent_TableStats{TableStats: st}})
			log.Info("table streamed", "table", t.Name, "rows", st.Rows, "bytes", st.Bytes, "seconds", st.Seconds)
		}

		a.metrics.stage("stream", time.Since(stageStart).Seconds())
		emit(&agentapi.JobEvent{JobId: asg.JobId, State: agentapi.JobState_JOB_STATE_TRAINING})
		stageStart = time.Now()
		var res link.TrainResult
		if err := doAction(ctx, eng, link.ActionTrain, link.JobRef{JobID: asg.JobId}, &res); err != nil {
			return stage("train", err)
		}
		a.metrics.stage("train", time.Since(stageStart).Seconds())
		emit(&agentapi.JobEvent{JobId: asg.JobId, State: agentapi.JobState_JOB_STATE_TRAINING, Detail: &agentapi.JobEvent_Metrics{Metrics: metricsProto(&res)}})

		emit(&agentapi.JobEvent{JobId: asg.JobId, State: agentapi.JobState_JOB_STATE_WRITING})
		wstart := time.Now()
		n, err := a.writePredictions(ctx, eng, w, asg, res.ModelID)
		if err != nil {
			return stage("writeback", err)
		}
		emit(&agentapi.JobEvent{JobId: asg.JobId, State: agentapi.JobState_JOB_STATE_WRITING, Detail: &agentapi.JobEvent_Write{Write: &agentapi.WriteReport{
			Table: asg.OutputTable, Rows: n, Seconds: time.Since(wstart).Seconds()}}})
		a.metrics.stage("writeback", time.Since(wstart).Seconds())
		log.Info("predictions written", "table", asg.OutputTable, "rows", n)
		return nil
	}()
	if err != nil {
		st := "agent"
		var se *stageError
		if errors.As(err, &se) {
			st = se.stage
		}
		msg := scrub.scrub(err.Error())
		state, outcome := agentapi.JobState_JOB_STATE_FAILED, outcomeFailed
		if ctx.Err() != nil {
			state, outcome = agentapi.JobState_JOB_STATE_CANCELLED, outcomeCancelled
			msg = "cancelled: " + msg
		}
		a.metrics.jobEnded(outcome)
		log.Error("job failed", "stage", st, "error", msg)
		log.Debug("job failed (unscrubbed, local only)", "error", err.Error())
		return &agentapi.JobEvent{JobId: asg.JobId, State: state, Detail: &agentapi.JobEvent_Error{Error: &agentapi.JobError{Stage: st, Message: msg}}}
	}
	a.metrics.jobEnded(outcomeSucceeded)
	log.Info("job succeeded", "seconds", time.Since(started).Seconds())
	return &agentapi.JobEvent{JobId: asg.JobId, State: agentapi.JobState_JOB_STATE_SUCCEEDED}
}

// upload streams one table from the warehouse to the engine.
func (a *Agent) upload(ctx context.Context, w *warehouse, eng flight.Client, jobID string, t graph.Table) (*agentapi.TableStats, error) {
	start := time.Now()
	r, err := w.read(ctx, t, connectors.ReadOptions{BatchSize: a.cfg.BatchRows})
	if err != nil {
		return nil, err
	}
	defer r.Release()
	// Column statistics as the batches pass (see colstats.go): nothing is
	// kept of a batch but aggregates.
	sr, cs := withColumnStats(r, t)
	ack, err := StreamTable(ctx, eng, jobID, t.Name, a.metrics.countRows(sr), StreamOptions{
		Compression: a.cfg.Compression, WindowBatches: a.cfg.WindowBatches, WindowBytes: a.cfg.WindowBytes,
		ResumeTimeout: a.cfg.ResumeTimeout,
		Logger:        a.log.With("job_id", jobID),
		Sent:          a.metrics.sent,
	})
	if err != nil {
		return nil, err
	}
	st := &agentapi.TableStats{Table: t.Name, Rows: ack.Rows, Bytes: ack.Bytes, Batches: ack.Batches, Seconds: time.Since(start).Seconds()}
	for _, c := range t.Columns {
		st.Columns = append(st.Columns, &agentapi.Column{Name: c.Name, Type: c.Type, Nullable: c.Nullable})
	}
	st.ColumnStats = cs.result()
	return st, nil
}

// writePredictions fetches the predictions with DoGet and writes them back
// on the connection of the job's current credentials.
func (a *Agent) writePredictions(ctx context.Context, eng flight.Client, w *warehouse, asg *agentapi.JobAssignment, modelID string) (int64, error) {
	wh, err := w.Conn(ctx)
	if err != nil {
		return 0, err
	}
	tkt, _ := json.Marshal(link.Ticket{JobID: asg.JobId, Stream: link.PredictionsStream})
	stream, err := eng.DoGet(ctx, &flight.Ticket{Ticket: tkt})
	if err != nil {
		return 0, fmt.Errorf("do_get predictions: %w", err)
	}
	r, err := flight.NewRecordReader(stream)
	if err != nil {
		return 0, fmt.Errorf("do_get predictions: %w", err)
	}
	defer r.Release()
	meta := writeback.Meta{JobID: asg.JobId, ModelID: modelID, CreatedAt: time.Unix(0, asg.CreatedUnixNanos).UTC()}
	return writeback.Write(ctx, wh, asg.OutputTable, r, meta, memory.DefaultAllocator)
}

// doAction runs a Flight action with a JSON body and decodes its one result
// into out (if not nil).
func doAction(ctx context.Context, eng flight.Client, typ string, body, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("%s: %w", typ, err)
	}
	stream, err := eng.DoAction(ctx, &flight.Action{Type: typ, Body: b})
	if err != nil {
		return fmt.Errorf("%s: %w", typ, err)
	}
	res, err := stream.Recv()
	if err != nil {
		return fmt.Errorf("%s: %w", typ, err)
	}
	for {
		if _, err := stream.Recv(); err != nil {
			if !errors.Is(err, io.EOF) {
				return fmt.Errorf("%s: %w", typ, err)
			}
			break
		}
	}
	if out == nil {
		return nil
	}
	return link.Decode(typ+" result", res.Body, out)
}

func metricProto(m link.Metrics) *agentapi.Metric {
	return &agentapi.Metric{Auroc: m.AUROC, AveragePrecision: m.AveragePrecision, Accuracy: m.Accuracy, Mae: m.MAE, Rmse: m.RMSE, MapAtK: m.MAPAtK}
}

func metricsProto(r *link.TrainResult) *agentapi.TrainMetrics {
	// The ROC curve and residual histogram are the engine's aggregates of
	// the test split (engine/metrics), passed on as they are.
	roc := make([]*agentapi.CurvePoint, len(r.ROC))
	for i, p := range r.ROC {
		roc[i] = &agentapi.CurvePoint{Threshold: p.Threshold, FalsePositiveRate: p.FalsePositiveRate, TruePositiveRate: p.TruePositiveRate}
	}
	residuals := make([]*agentapi.HistogramBin, len(r.Residuals))
	for i, b := range r.Residuals {
		residuals[i] = &agentapi.HistogramBin{Lower: b.Lower, Upper: b.Upper, Count: b.Count}
	}
	return &agentapi.TrainMetrics{
		ModelId: r.ModelID, TaskType: r.TaskType,
		Test:                metricProto(r.Test),
		Validation:          metricProto(r.Validation),
		BaselineLabelRate:   metricProto(r.BaselineLabelRate),
		BaselineRecentCount: metricProto(r.BaselineRecentCount),
		Classes:             int64(r.Classes), ParameterSets: int64(r.ParameterSets), TopK: int64(r.TopK),
		TrainRows: int64(r.TrainRows), ValidationRows: int64(r.ValidationRows), TestRows: int64(r.TestRows),
		NumFeatures: int64(r.NumFeatures), Anchors: int64(r.Anchors), BestIteration: int64(r.BestIteration),
		PredictionRows: int64(r.PredictionRows), FeatureSeconds: r.FeatureSeconds, TrainSeconds: r.TrainSeconds,
		ScoreSeconds: r.ScoreSeconds, TestPositiveRate: r.TestPositiveRate, ScoringAnchorUnixNanos: r.ScoringAnchor.UnixNano(),
		FeatureImportance: r.FeatureImportance, Roc: roc, Residuals: residuals,
	}
}
