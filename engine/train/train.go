// Package train turns a job's in-memory tables into a trained model and
// predictions for a predictive query (package pql). It computes features in
// Go directly on the Arrow columns and trains XGBoost (package xgboost).
//
// # Time
//
// Let T be the latest time in the target table and W the end of the target
// window (30 days for COUNT(orders.*, 0, 30, days)). Predictions are made at
// the scoring anchor T; the test anchor is T−W, the validation anchor T−2W
// and the training anchors T−2W−kW for k = 1…8, as long as an anchor leaves a
// year of history (the longest feature window, or a longer WHERE window)
// after the data begins; with less data, the anchors that leave at least W
// and the WHERE windows are used. The label of an entity at anchor t comes
// from the target table's rows with time in (t+start, t+end]; every feature
// and every WHERE condition uses only rows with time at or before t, so
// nothing leaks from the future. An entity is eligible at t when its own
// time (if its table has one) is at or before t and every WHERE condition
// holds.
//
// # Features
//
// Per (entity, anchor): the entity table's numeric and boolean columns and
// its string columns with few distinct values (as category codes), the days
// since the entity's own time, and for every table with a time column and a
// foreign key to the entity table: row counts over the last 7, 30, 90 and 365
// days and all time, days since the last and the first row, the ratio of the
// 30-day to the 90-day count (and to a 30-day share of the 365-day count),
// and for each numeric non-key column its sum and mean over 30 and 90 days
// and all time. Names come from table and column names only, never from
// values: orders.count_30d, orders.amount_sum_90d, returns.days_since_last.
// Missing values are NaN.
//
// # Retention
//
// Run works in memory only: it writes no file and never saves a model. The
// intermediate indexes, matrices and scores live in Go slices that are
// zeroed with clear() before Run returns, whether it succeeds or fails. The
// copies XGBoost makes (its matrices, the model, its prediction cache) live
// in XGBoost's C++ heap and are freed before Run returns, with the booster's
// thread; XGBoost does not zero them. The caller owns the input batches and
// the returned predictions (0-day retention is the job store's to finish).
package train

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"math"
	"slices"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferry-ai/ferry/engine/metrics"
	"github.com/ferry-ai/ferry/engine/pql"
	"github.com/ferry-ai/ferry/internal/graph"
	"github.com/ferry-ai/ferry/internal/link"
)

// Table is one uploaded table: its metadata and record batches. The batches
// are owned by the caller; Run neither retains nor releases them.
type Table struct {
	Meta    graph.Table
	Records []arrow.RecordBatch
}

// Input is what a job trains on: its query and its tables by name.
type Input struct {
	JobID  string
	Query  string
	Tables map[string]Table
}

// Options tune a run; the zero value is usable.
type Options struct {
	// Allocator allocates the predictions batch; nil means
	// memory.DefaultAllocator.
	Allocator memory.Allocator
	// Logger receives progress as metadata only (counts, timings); nil
	// discards it.
	Logger *slog.Logger
	// Seed seeds XGBoost's row and column sampling; 0 means 1.
	Seed uint64
	// NThread is XGBoost's thread count; 0 means 2.
	NThread int
	// MaxRounds caps boosting rounds; 0 means 300. Training stops earlier
	// when the validation AUROC has not improved for 20 rounds.
	MaxRounds int
}

// Output is a run's result. The caller releases Predictions.
type Output struct {
	Result link.TrainResult
	// Predictions has one row per entity eligible at the scoring anchor: the
	// entity's primary key (same name and type as in its table),
	// link.ColAnchorTime, link.ColScore and link.ColPredictedClass.
	Predictions arrow.RecordBatch
}

// ErrNoData is returned (wrapped) when the tables hold too little history or
// too few labelled examples to train and evaluate a model.
var ErrNoData = errors.New("not enough data")

// Anchor schedule.
const (
	maxTrainAnchors = 8
	// featureHistory is the longest past feature window.
	featureHistory = 365 * dayMicros
)

// Run trains a model for in.Query on in.Tables, evaluates it on the test
// anchor and scores the entities eligible at the scoring anchor.
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
	q, err := pql.Parse(in.Query)
	if err != nil {
		return nil, err
	}
	g := &graph.Graph{}
	names := make([]string, 0, len(in.Tables))
	for n, t := range in.Tables {
		if t.Meta.Name != n {
			return nil, fmt.Errorf("table %q is described as %q", n, t.Meta.Name)
		}
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		g.Tables = append(g.Tables, in.Tables[n].Meta)
	}
	task, err := q.Task(g)
	if err != nil {
		return nil, err
	}
	form, err := formOf(q)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	// Index the entities and every related table.
	featStart := time.Now()
	ents, err := indexEntities(in.Tables[q.Entity.Table], q.Entity.Column)
	if err != nil {
		return nil, fmt.Errorf("entity table: %w", err)
	}
	defer ents.purge()
	var related []*events
	defer func() {
		for _, ev := range related {
			ev.purge()
		}
	}()
	var target *events
	for _, n := range names {
		t := in.Tables[n]
		if n == q.Entity.Table || t.Meta.TimeColumn == "" {
			continue
		}
		lc, ok := pql.LinkColumn(g, n, q.Entity.Table)
		if !ok {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		ev, err := buildEvents(t, lc, ents)
		if err != nil {
			return nil, fmt.Errorf("table %s: %w", n, err)
		}
		related = append(related, ev)
		if n == form.target.table {
			target = ev
		}
	}
	if target == nil || !target.hasTime {
		return nil, fmt.Errorf("target table %s has no rows with a time: %w", form.target.table, ErrNoData)
	}

	// Anchors.
	sch, err := schedule(form, target.maxTime, dataBegins(related))
	if err != nil {
		return nil, err
	}
	opts.Logger.Info("anchors chosen", "training_anchors", len(sch.train), "short_history", sch.short)

	fb, err := newFeatureBuilder(form, ents, related, target)
	if err != nil {
		return nil, err
	}
	var train, val, test, score *matrix
	defer func() {
		for _, m := range []*matrix{train, val, test, score} {
			m.purge()
		}
	}()
	train = fb.build(ctx, sch.train, true)
	val = fb.build(ctx, []int64{sch.val}, true)
	test = fb.build(ctx, []int64{sch.test}, true)
	score = fb.build(ctx, []int64{sch.score}, false)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	featureSecs := time.Since(featStart).Seconds()
	for _, s := range []struct {
		name string
		m    *matrix
	}{{"training", train}, {"validation", val}, {"test", test}} {
		pos := s.m.positives()
		if s.m.rows == 0 {
			return nil, fmt.Errorf("no entity is eligible at the %s anchor: %w", s.name, ErrNoData)
		}
		if pos == 0 || pos == s.m.rows {
			return nil, fmt.Errorf("every %s label is %v (%d rows), so a model cannot be trained and evaluated: %w",
				s.name, pos > 0, s.m.rows, ErrNoData)
		}
	}
	opts.Logger.Info("training table built", "train_rows", train.rows, "validation_rows", val.rows, "test_rows", test.rows,
		"score_rows", score.rows, "features", len(fb.names), "seconds", featureSecs)

	trainStart := time.Now()
	model, err := fit(ctx, train, val, fb.names, opts)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	defer model.close()
	trainSecs := time.Since(trainStart).Seconds()
	opts.Logger.Info("model trained", "rounds", model.rounds, "best_iteration", model.best, "validation_auroc", model.bestAUC, "seconds", trainSecs)
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	scoreStart := time.Now()
	var valPred, testPred, scorePred, constant []float64
	defer func() {
		clear(valPred)
		clear(testPred)
		clear(scorePred)
		clear(constant)
	}()
	if valPred, err = model.predict(val); err != nil {
		return nil, fmt.Errorf("score validation: %w", err)
	}
	if testPred, err = model.predict(test); err != nil {
		return nil, fmt.Errorf("score test: %w", err)
	}
	if scorePred, err = model.predict(score); err != nil {
		return nil, fmt.Errorf("score: %w", err)
	}
	threshold := metrics.BestF1Threshold(val.labels, valPred)
	rate := float64(train.positives()) / float64(train.rows)
	constant = make([]float64, test.rows)
	for i := range constant {
		constant[i] = rate
	}
	res := link.TrainResult{
		JobID:               in.JobID,
		TaskType:            task,
		Test:                evaluate(test.labels, testPred),
		BaselineLabelRate:   evaluate(test.labels, constant),
		BaselineRecentCount: evaluate(test.labels, test.baseline),
		TrainRows:           train.rows,
		ValidationRows:      val.rows,
		TestRows:            test.rows,
		TrainPositives:      train.positives(),
		TestPositiveRate:    float64(test.positives()) / float64(test.rows),
		NumFeatures:         len(fb.names),
		Anchors:             len(sch.train) + 2,
		BestIteration:       model.best,
		Threshold:           threshold,
		PredictionRows:      score.rows,
		ScoringAnchor:       time.UnixMicro(sch.score).UTC(),
		FeatureImportance:   model.importance,
		FeatureSeconds:      featureSecs,
		TrainSeconds:        trainSecs,
		ModelID:             modelID(in.JobID, sch, fb.names, train, val),
	}
	preds, err := predictions(opts.Allocator, ents, q.Entity.Column, score, scorePred, threshold, sch.score)
	if err != nil {
		return nil, err
	}
	res.ScoreSeconds = time.Since(scoreStart).Seconds()
	opts.Logger.Info("scored", "prediction_rows", score.rows, "test_auroc", res.Test.AUROC, "seconds", res.ScoreSeconds)
	return &Output{Result: res, Predictions: preds}, nil
}

// evaluate computes the test metrics; both classes are present (Run checks).
func evaluate(labels []float32, scores []float64) link.Metrics {
	return link.Metrics{AUROC: metrics.AUROC(labels, scores), AveragePrecision: metrics.AveragePrecision(labels, scores)}
}

// anchors are the times a run labels and scores at, in microseconds.
type anchors struct {
	score, test, val int64
	train            []int64 // latest first
	short            bool    // fewer than a year of history before the training anchors
}

// dataBegins returns the earliest time in the related tables.
func dataBegins(related []*events) int64 {
	begin := int64(math.MaxInt64)
	for _, ev := range related {
		if ev.hasTime {
			begin = min(begin, ev.minTime)
		}
	}
	return begin
}

// schedule picks the anchors for latest time T and the time data begins.
func schedule(form countForm, latest, begin int64) (anchors, error) {
	end := form.target.hi
	w := end.Microseconds()
	a := anchors{score: latest, test: latest - w, val: latest - 2*w}
	// History an anchor needs: the longest past window of a feature or a
	// WHERE condition.
	var where int64
	for _, f := range form.filters {
		where = max(where, -f.lo.Microseconds())
	}
	for _, need := range []int64{max(featureHistory, where), max(w, where)} {
		a.train = a.train[:0]
		for k := int64(1); k <= maxTrainAnchors; k++ {
			t := a.val - k*w
			if t < begin+need {
				break
			}
			a.train = append(a.train, t)
		}
		if len(a.train) > 0 {
			return a, nil
		}
		a.short = true
	}
	return a, fmt.Errorf("the data spans %s to %s, too short for a training anchor with %s of history before validation and test anchors %s apart: %w",
		time.UnixMicro(begin).UTC().Format(time.DateOnly), time.UnixMicro(latest).UTC().Format(time.DateOnly),
		time.Duration(max(w, where))*time.Microsecond, end, ErrNoData)
}

// modelID derives a stable model identifier from the job, the anchors, the
// feature names and the training and validation data (a fingerprint of the
// inputs the model is a function of).
func modelID(jobID string, a anchors, names []string, train, val *matrix) string {
	h := sha256.New()
	writeStr := func(s string) {
		_ = binary.Write(h, binary.LittleEndian, int64(len(s)))
		h.Write([]byte(s))
	}
	writeStr(jobID)
	_ = binary.Write(h, binary.LittleEndian, []int64{a.score, a.test, a.val})
	_ = binary.Write(h, binary.LittleEndian, a.train)
	for _, n := range names {
		writeStr(n)
	}
	for _, m := range []*matrix{train, val} {
		hashFloats(h, m.data)
		hashFloats(h, m.labels)
	}
	return "m-" + hex.EncodeToString(h.Sum(nil))[:12]
}

// hashFloats writes the bits of v to h (NaN payloads included).
func hashFloats(h hash.Hash, v []float32) {
	var buf [4096]byte
	n := 0
	for _, f := range v {
		binary.LittleEndian.PutUint32(buf[n:], math.Float32bits(f))
		n += 4
		if n == len(buf) {
			h.Write(buf[:n])
			n = 0
		}
	}
	h.Write(buf[:n])
	clear(buf[:])
}

// predictions builds the output batch: entity key, anchor time, score,
// predicted class (score >= threshold).
func predictions(mem memory.Allocator, ents *entities, keyName string, score *matrix, p []float64, threshold float64, anchor int64) (arrow.RecordBatch, error) {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: keyName, Type: ents.pk.typ},
		{Name: link.ColAnchorTime, Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}},
		{Name: link.ColScore, Type: arrow.PrimitiveTypes.Float64},
		{Name: link.ColPredictedClass, Type: arrow.FixedWidthTypes.Boolean},
	}, nil)
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	b.Reserve(score.rows)
	kb := b.Field(0)
	ab := b.Field(1).(*array.TimestampBuilder)
	sb := b.Field(2).(*array.Float64Builder)
	cb := b.Field(3).(*array.BooleanBuilder)
	for i, e := range score.entity {
		a, j := ents.pk.at(int(e))
		if err := appendKey(kb, a, j); err != nil {
			return nil, fmt.Errorf("predictions: %w", err)
		}
		ab.Append(arrow.Timestamp(anchor))
		sb.Append(p[i])
		cb.Append(p[i] >= threshold)
	}
	return b.NewRecordBatch(), nil
}
