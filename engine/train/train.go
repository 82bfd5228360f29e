// Package train turns a job's in-memory tables into a trained model and
// predictions, for a predictive query (package pql). It works on Arrow
// columns directly, in memory only: no file is written, no spill, and the
// intermediate matrices are cleared before Run returns (0-day retention).
//
// For anchor times t stepping back from the latest event, the label of an
// entity at t comes from the target table's rows in (t+start, t+end], and
// every feature from rows at or before t, so nothing leaks from the future.
// The last full window is the test set, the one before it the validation
// set (early stopping, threshold), the earlier ones training. Predictions
// are made for the entities eligible at the latest event time.
package train

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferry-ai/ferry/engine/metrics"
	"github.com/ferry-ai/ferry/engine/pql"
	"github.com/ferry-ai/ferry/internal/graph"
	"github.com/ferry-ai/ferry/internal/link"
)

// Table is one uploaded table: its metadata and record batches (owned by the
// caller, not released here).
type Table struct {
	Meta    graph.Table
	Records []arrow.RecordBatch
}

// Input is what a job trains on.
type Input struct {
	JobID  string
	Query  string
	Tables map[string]Table
}

// Options tune a run.
type Options struct {
	// Allocator for the predictions batch; nil means memory.DefaultAllocator.
	Allocator memory.Allocator
	Logger    *slog.Logger
	// Seed of XGBoost's sampling (0 means 1).
	Seed uint64
	// NThread is XGBoost's thread count (0 means 2).
	NThread int
	// MaxRounds caps boosting rounds (0 means 300); training stops early when
	// validation AUROC has not improved for 20 rounds.
	MaxRounds int
	// MaxTrainAnchors caps the training anchors (0 means 8).
	MaxTrainAnchors int
}

// Output is a run's result. The caller releases Predictions.
type Output struct {
	Result      link.TrainResult
	Predictions arrow.RecordBatch
}

// ErrNoData is returned when the tables hold too little history to build the
// train, validation and test sets.
var ErrNoData = errors.New("not enough data")

// past feature windows, in days.
var countWindows = []int{7, 30, 90, 365}
var sumWindows = []int{30, 90}

// Run trains a model for the query on the tables and scores the entities.
func Run(ctx context.Context, in Input, opts Options) (*Output, error) {
	if opts.Allocator == nil {
		opts.Allocator = memory.DefaultAllocator
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Seed == 0 {
		opts.Seed = 1
	}
	if opts.NThread <= 0 {
		opts.NThread = 2
	}
	if opts.MaxRounds <= 0 {
		opts.MaxRounds = 300
	}
	if opts.MaxTrainAnchors <= 0 {
		opts.MaxTrainAnchors = 8
	}
	q, err := pql.Parse(in.Query)
	if err != nil {
		return nil, err
	}
	g := &graph.Graph{}
	names := make([]string, 0, len(in.Tables))
	for n := range in.Tables {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		g.Tables = append(g.Tables, in.Tables[n].Meta)
	}
	if err := q.Validate(g); err != nil {
		return nil, err
	}

	featStart := time.Now()
	ents, err := indexEntities(in.Tables[q.Entity.Table], q.Entity.Column)
	if err != nil {
		return nil, fmt.Errorf("entity table: %w", err)
	}
	// Related tables: every table with a time column and a foreign key to the
	// entity table, in name order.
	evs := map[string]*events{}
	var related []*events
	for _, n := range names {
		t := in.Tables[n]
		if n == q.Entity.Table || t.Meta.TimeColumn == "" {
			continue
		}
		lc, ok := pql.LinkColumn(g, n, q.Entity.Table)
		if !ok {
			continue
		}
		ev, err := buildEvents(t, lc, ents)
		if err != nil {
			return nil, fmt.Errorf("table %s: %w", n, err)
		}
		evs[n] = ev
		related = append(related, ev)
	}
	defer func() {
		for _, ev := range related {
			ev.purge()
		}
	}()
	target := evs[q.Target.Agg.Table]
	if target == nil || len(target.times) == 0 {
		return nil, fmt.Errorf("target table %s has no rows linked to %s: %w", q.Target.Agg.Table, q.Entity.Table, ErrNoData)
	}

	// Anchors.
	tStart, tEnd := q.Target.Agg.Window()
	step := (tEnd - tStart).Microseconds()
	latest := target.maxTime
	testT := latest - tEnd.Microseconds()
	valT := testT - step
	minHistory := int64(30 * dayMicros)
	var trainTs []int64
	for k := 1; k <= opts.MaxTrainAnchors; k++ {
		t := valT - int64(k)*step
		if t < target.minTime+minHistory {
			break
		}
		trainTs = append(trainTs, t)
	}
	if len(trainTs) == 0 {
		return nil, fmt.Errorf("the data spans %s to %s: too short for a training window of %s before validation and test: %w",
			time.UnixMicro(target.minTime).UTC().Format(time.DateOnly), time.UnixMicro(latest).UTC().Format(time.DateOnly), tEnd-tStart, ErrNoData)
	}

	fb := newFeatureBuilder(q, ents, related, target)
	train := fb.build(ctx, trainTs, true)
	val := fb.build(ctx, []int64{valT}, true)
	test := fb.build(ctx, []int64{testT}, true)
	score := fb.build(ctx, []int64{latest}, false)
	defer func() {
		for _, s := range []*matrix{train, val, test, score} {
			s.purge()
		}
	}()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	featureSecs := time.Since(featStart).Seconds()
	if train.rows == 0 || val.rows == 0 || test.rows == 0 {
		return nil, fmt.Errorf("no eligible entities in the train (%d), validation (%d) or test (%d) window: %w", train.rows, val.rows, test.rows, ErrNoData)
	}
	if pos := train.positives(); pos == 0 || pos == train.rows {
		return nil, fmt.Errorf("the training labels are all %v (%d rows): nothing to learn: %w", pos > 0, train.rows, ErrNoData)
	}
	opts.Logger.Info("training table built", "train_rows", train.rows, "validation_rows", val.rows, "test_rows", test.rows,
		"features", len(fb.names), "anchors", len(trainTs)+2, "seconds", featureSecs)

	// Train with early stopping on validation AUROC.
	trainStart := time.Now()
	model, err := fit(ctx, train, val, fb.names, opts)
	if err != nil {
		return nil, err
	}
	defer model.close()
	trainSecs := time.Since(trainStart).Seconds()

	scoreStart := time.Now()
	valPred, err := model.predict(val)
	if err != nil {
		return nil, err
	}
	testPred, err := model.predict(test)
	if err != nil {
		return nil, err
	}
	var scorePred []float64
	if score.rows > 0 {
		if scorePred, err = model.predict(score); err != nil {
			return nil, err
		}
	}
	threshold := metrics.BestF1Threshold(val.labels, valPred)
	rate := float64(train.positives()) / float64(train.rows)
	constant := make([]float64, test.rows)
	for i := range constant {
		constant[i] = rate
	}
	res := link.TrainResult{
		JobID:               in.JobID,
		TaskType:            q.TaskType(),
		Test:                link.Metrics{AUROC: metrics.AUROC(test.labels, testPred), AveragePrecision: metrics.AveragePrecision(test.labels, testPred)},
		BaselineLabelRate:   link.Metrics{AUROC: metrics.AUROC(test.labels, constant), AveragePrecision: metrics.AveragePrecision(test.labels, constant)},
		BaselineRecentCount: link.Metrics{AUROC: metrics.AUROC(test.labels, test.baseline), AveragePrecision: metrics.AveragePrecision(test.labels, test.baseline)},
		TrainRows:           train.rows,
		ValidationRows:      val.rows,
		TestRows:            test.rows,
		TrainPositives:      train.positives(),
		TestPositiveRate:    float64(test.positives()) / float64(test.rows),
		NumFeatures:         len(fb.names),
		Anchors:             len(trainTs) + 2,
		BestIteration:       model.best,
		Threshold:           threshold,
		PredictionRows:      score.rows,
		ScoringAnchor:       time.UnixMicro(latest).UTC(),
		FeatureImportance:   model.importance,
		FeatureSeconds:      featureSecs,
		TrainSeconds:        trainSecs,
	}
	res.ModelID = modelID(in.JobID, latest, train, fb.names)
	preds, err := predictions(opts.Allocator, ents, q.Entity.Column, score, scorePred, threshold, latest)
	if err != nil {
		return nil, err
	}
	res.ScoreSeconds = time.Since(scoreStart).Seconds()
	clear(valPred)
	clear(testPred)
	clear(scorePred)
	clear(constant)
	return &Output{Result: res, Predictions: preds}, nil
}

func modelID(jobID string, latest int64, train *matrix, names []string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s|%d|%d|%d|%s", jobID, latest, train.rows, train.positives(), strings.Join(names, ","))
	return "m-" + hex.EncodeToString(h.Sum(nil))[:12]
}

// predictions builds the output batch: entity key, anchor time, score,
// predicted class.
func predictions(mem memory.Allocator, ents *entities, keyName string, score *matrix, p []float64, threshold float64, anchor int64) (arrow.RecordBatch, error) {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: keyName, Type: ents.pk.typ},
		{Name: link.ColAnchorTime, Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}},
		{Name: link.ColScore, Type: arrow.PrimitiveTypes.Float64},
		{Name: link.ColPredictedClass, Type: arrow.FixedWidthTypes.Boolean},
	}, nil)
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	// Map entity rows to their chunk for key copying.
	locate := func(row int) (arrow.Array, int) {
		k := sort.Search(len(ents.pk.starts), func(i int) bool { return ents.pk.starts[i] > row }) - 1
		return ents.pk.chunks[k], row - ents.pk.starts[k]
	}
	kb := b.Field(0)
	ab := b.Field(1).(*array.TimestampBuilder)
	sb := b.Field(2).(*array.Float64Builder)
	cb := b.Field(3).(*array.BooleanBuilder)
	for i, e := range score.entity {
		a, j := locate(int(e))
		if err := kb.AppendValueFromString(a.ValueStr(j)); err != nil {
			return nil, fmt.Errorf("copy entity key: %w", err)
		}
		ab.Append(arrow.Timestamp(anchor))
		sb.Append(p[i])
		cb.Append(p[i] >= threshold)
	}
	return b.NewRecordBatch(), nil
}
