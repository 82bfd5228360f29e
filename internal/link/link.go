// Package link is the wire contract of the private link between the agent
// (customer zone) and the engine (provider zone): the Arrow Flight action
// names, descriptors and the JSON bodies they carry.
//
// The flow of one job, always opened by the agent:
//
//	DoAction(ActionStartJob, JobSpec)        engine allocates an in-memory job
//	DoPut(Descriptor{JobID, Table}) × tables  agent uploads each table; the
//	                                         engine acknowledges each batch
//	                                         and a broken upload resumes
//	                                         (Descriptor.FirstBatch)
//	DoAction(ActionTrain, JobRef)            engine trains, returns TrainResult
//	DoGet(Ticket{JobID, PredictionsStream})  engine streams predictions back
//	DoAction(ActionPurge, JobRef)            engine purges, returns PurgeAttestation
package link

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ferry-ai/ferry/internal/graph"
)

// ProtocolVersion is bumped on any incompatible change of this contract.
const ProtocolVersion = 1

// Flight action types.
const (
	ActionStartJob = "ferry.job.start"
	ActionTrain    = "ferry.job.train"
	ActionPurge    = "ferry.job.purge"
)

// PredictionsStream names the stream a DoGet ticket asks for.
const PredictionsStream = "predictions"

// Prediction columns the engine returns, after the entity key column (which
// keeps its source name and type).
const (
	ColAnchorTime     = "anchor_time"
	ColScore          = "score"
	ColPredictedClass = "predicted_class"
	// ColItem and ColRank are a recommendation's: the item (the type of the
	// target's column) and its rank, 1 to k.
	ColItem = "item"
	ColRank = "rank"
)

// JobSpec opens a job on the engine.
type JobSpec struct {
	JobID string `json:"job_id"`
	// Query is the predictive query text (PQL).
	Query string `json:"query"`
	// Tables describes every table the agent will upload, with keys and time
	// columns; the engine builds its graph from it.
	Tables []graph.Table `json:"tables"`
	// QuotaBytes caps the memory the job's data may take on the engine; 0
	// means the engine's default.
	QuotaBytes int64 `json:"quota_bytes,omitempty"`
	// Options tune training; the zero value uses the defaults.
	Options JobOptions `json:"options,omitzero"`
}

// JobOptions tune how the engine trains a job (metadata only). The zero
// value steps anchors back from the latest time by the target's window and
// trains with the default parameters.
type JobOptions struct {
	// ValidationStart and TestStart, when both set, split the anchors by
	// time as RelBench does: training anchors before ValidationStart,
	// validation anchors from it whose window closes by TestStart, test
	// anchors from TestStart; one score anchor at the latest time.
	ValidationStart time.Time `json:"validation_start,omitzero"`
	TestStart       time.Time `json:"test_start,omitzero"`
	// AnchorStepDays is the distance between those anchors (0: the target's
	// window); MaxEvalAnchors caps validation and test anchors each (0: no
	// cap).
	AnchorStepDays int `json:"anchor_step_days,omitempty"`
	MaxEvalAnchors int `json:"max_eval_anchors,omitempty"`
	// SearchBudgetSeconds is the time the hyperparameter search may take
	// (0: the default parameters only); SearchSets caps the parameter sets
	// it tries (0: as many as the budget allows), which makes the search
	// independent of the machine's speed.
	SearchBudgetSeconds float64 `json:"search_budget_seconds,omitempty"`
	SearchSets          int     `json:"search_sets,omitempty"`
}

// Validate checks the options, naming the first wrong one.
func (o JobOptions) Validate() error {
	switch {
	case o.ValidationStart.IsZero() != o.TestStart.IsZero():
		return errors.New("options: validation_start and test_start go together")
	case !o.ValidationStart.IsZero() && !o.ValidationStart.Before(o.TestStart):
		return fmt.Errorf("options: validation_start %s is not before test_start %s", o.ValidationStart.Format(time.DateOnly), o.TestStart.Format(time.DateOnly))
	case o.AnchorStepDays < 0 || o.AnchorStepDays > 36600:
		return fmt.Errorf("options: anchor_step_days %d must be between 0 and 36600", o.AnchorStepDays)
	case o.MaxEvalAnchors < 0 || o.MaxEvalAnchors > 10000:
		return fmt.Errorf("options: max_eval_anchors %d must be between 0 and 10000", o.MaxEvalAnchors)
	case o.SearchBudgetSeconds < 0 || o.SearchBudgetSeconds > 86400 || o.SearchBudgetSeconds != o.SearchBudgetSeconds:
		return fmt.Errorf("options: search_budget_seconds %v must be between 0 and 86400", o.SearchBudgetSeconds)
	case o.SearchSets < 0 || o.SearchSets > 100:
		return fmt.Errorf("options: search_sets %d must be between 0 and 100", o.SearchSets)
	}
	return nil
}

// JobRef names a job in an action body.
type JobRef struct {
	JobID string `json:"job_id"`
	// Reason says why a purge is asked for: PurgeCompleted (the default),
	// PurgeFailed or PurgeCancelled. It goes into the attestation.
	Reason string `json:"reason,omitempty"`
}

// Purge reasons. The engine purges on its own with PurgeExpired (the job
// outlived its TTL), PurgeShutdown (the engine is stopping) and
// PurgeRestarted (the agent that opened the job started it again: an
// attempt it abandoned, say when it was killed, gives way to the next).
const (
	PurgeCompleted = "completed"
	PurgeFailed    = "failed"
	PurgeCancelled = "cancelled"
	PurgeExpired   = "expired"
	PurgeShutdown  = "shutdown"
	PurgeRestarted = "restarted"
)

// Descriptor is the JSON in a DoPut FlightDescriptor's Cmd.
type Descriptor struct {
	JobID string `json:"job_id"`
	Table string `json:"table"`
	// FirstBatch is the sequence number (0-based, counted within the table)
	// of the stream's first batch. A first upload starts at 0; an upload
	// resumed after a broken connection starts at the oldest batch the
	// engine had not acknowledged. The engine keeps each sequence number
	// once: batches it already holds are skipped, and a stream that would
	// leave a gap is refused.
	FirstBatch int64 `json:"first_batch,omitempty"`
}

// Ticket is the JSON in a DoGet ticket.
type Ticket struct {
	JobID  string `json:"job_id"`
	Stream string `json:"stream"`
}

// Metrics are evaluation figures on the held-out test window.
type Metrics struct {
	// AUROC and AveragePrecision rank binary predictions.
	AUROC            float64 `json:"auroc"`
	AveragePrecision float64 `json:"average_precision"`
	// Accuracy is the share of correct classes (binary: at the threshold).
	Accuracy float64 `json:"accuracy,omitempty"`
	// MAE and RMSE measure a regression's errors.
	MAE  float64 `json:"mae,omitempty"`
	RMSE float64 `json:"rmse,omitempty"`
	// MAPAtK is a recommendation's mean average precision of the top k.
	MAPAtK float64 `json:"map_at_k,omitempty"`
}

// CurvePoint is one point of a ROC curve: predicting positive when the score
// is at least Threshold gives these rates.
type CurvePoint struct {
	Threshold         float64 `json:"threshold"`
	FalsePositiveRate float64 `json:"false_positive_rate"`
	TruePositiveRate  float64 `json:"true_positive_rate"`
}

// HistogramBin counts the values in [Lower, Upper) (the last bin of a
// histogram includes Upper).
type HistogramBin struct {
	Lower float64 `json:"lower"`
	Upper float64 `json:"upper"`
	Count int64   `json:"count"`
}

// TrainResult is what the engine reports after training and scoring: metadata
// only (no entity key, no row value).
type TrainResult struct {
	JobID   string `json:"job_id"`
	ModelID string `json:"model_id"`
	// TaskType is binary_classification, regression or
	// multiclass_classification (package pql).
	TaskType string `json:"task_type"`
	// Test holds the model's metrics on the test anchors, Validation on the
	// validation anchors (which the search tuned on).
	Test       Metrics `json:"test"`
	Validation Metrics `json:"validation"`
	// BaselineLabelRate predicts a constant from the training labels: the
	// positive rate, the mean, or the most frequent class; for a
	// recommendation, the most popular items.
	BaselineLabelRate Metrics `json:"baseline_label_rate"`
	// BaselineRecentCount predicts the target's value over the window just
	// before the anchor ("same as last time"), the constant where it has
	// none; for a recommendation, the entity's own past items.
	BaselineRecentCount Metrics `json:"baseline_recent_count"`
	// Classes is the number of classes of a multiclass target.
	Classes int `json:"classes,omitempty"`
	// ParameterSets is how many hyperparameter sets the search tried.
	ParameterSets int `json:"parameter_sets,omitempty"`
	// TopK is a recommendation's k (RANK TOP k).
	TopK int `json:"top_k,omitempty"`
	// ROC is a binary classifier's ROC curve on the test split (at most
	// 101 points by falling threshold, from (0,0) to (1,1)); Residuals a
	// regression's histogram of test residuals, prediction minus actual.
	// Both are aggregates (engine/metrics): omitted when the test split
	// has fewer than 50 rows, and never drawn for other tasks.
	ROC       []CurvePoint   `json:"roc,omitempty"`
	Residuals []HistogramBin `json:"residuals,omitempty"`

	TrainRows        int     `json:"train_rows"`
	ValidationRows   int     `json:"validation_rows"`
	TestRows         int     `json:"test_rows"`
	TrainPositives   int     `json:"train_positives"`
	TestPositiveRate float64 `json:"test_positive_rate"`
	NumFeatures      int     `json:"num_features"`
	Anchors          int     `json:"anchors"`
	BestIteration    int     `json:"best_iteration"`
	Threshold        float64 `json:"threshold"`
	PredictionRows   int     `json:"prediction_rows"`
	// ScoringAnchor is the anchor time predictions are made at.
	ScoringAnchor time.Time `json:"scoring_anchor"`
	// FeatureImportance maps feature names (derived from column names, never
	// values) to gain.
	FeatureImportance map[string]float64 `json:"feature_importance,omitempty"`
	FeatureSeconds    float64            `json:"feature_seconds"`
	TrainSeconds      float64            `json:"train_seconds"`
	ScoreSeconds      float64            `json:"score_seconds"`
}

// PurgeAttestation is the engine's statement that a job's data is gone.
type PurgeAttestation struct {
	JobID         string `json:"job_id"`
	Reason        string `json:"reason"` // "completed", "failed", "cancelled", "expired", "shutdown"
	BytesReceived int64  `json:"bytes_received"`
	BytesPurged   int64  `json:"bytes_purged"`
	FilesWritten  int64  `json:"files_written"`
	// StorageWriteBytes is the growth of the engine process's write_bytes
	// (/proc/self/io) while the job lived; -1 where the platform has none.
	StorageWriteBytes int64     `json:"storage_write_bytes"`
	PurgedAt          time.Time `json:"purged_at"`
}

// Decode unmarshals a JSON body strictly (unknown fields refused), naming what
// it was decoding in the error.
func Decode(what string, body []byte, v any) error {
	if len(body) == 0 {
		return fmt.Errorf("decode %s: empty body", what)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decode %s: %w", what, err)
	}
	return nil
}

// PutAck is the app metadata of the PutResults the engine sends during a
// DoPut: one after every batch it has kept (or skipped as already held),
// and a last one with Done set when the stream ended cleanly and the table
// is complete. The counts are the table's totals held so far, so an ack
// with Batches = n acknowledges every batch with a sequence number below n.
type PutAck struct {
	Rows    int64 `json:"rows"`
	Batches int64 `json:"batches"`
	Bytes   int64 `json:"bytes"`
	Done    bool  `json:"done,omitempty"`
}
