// Package train turns a job's in-memory tables into a trained model and
// predictions for a predictive query (package pql).
//
// Run plans the query's training table (package plan), runs the plan's SQL
// in an in-memory DuckDB that cannot spill to disk (package memdb) over the
// uploaded Arrow batches, trains gradient-boosted trees with XGBoost
// (package xgboost) — binary:logistic for conditions, reg:squarederror or
// reg:absoluteerror for numbers, multi:softprob for strings — with early
// stopping and a small hyperparameter search on the validation anchors only,
// evaluates on the test anchors beside simple baselines, and scores every
// entity at the scoring anchor.
//
// # Anchors
//
// Unless the caller gives them, anchors step back from the latest time T
// of the target's tables by the target's window W: the scoring anchor T,
// the test anchor T−W, the validation anchor T−2W and up to eight training
// anchors T−2W−kW that leave a year of history (or the longest WHERE
// window) after the data begins; with less data, those that leave at least
// W. The plan's examples at each anchor use only data at or before it for
// features and WHERE, and the window after it for labels.
//
// # Static targets
//
// A target that reads the entity's own column (customers.segment) does not
// move with time: its examples are the entities whose value is known at the
// latest time T, split into training, validation and test sets (70, 15 and
// 15 %) by a hash of their key, with features at T; every entity is scored
// at T. The target's column is never a feature.
//
// # Retention
//
// Run works in memory only: it writes no file and never saves a model. The
// in-memory database is closed, and the intermediate matrices and scores are
// zeroed with clear(), before Run returns, whether it succeeds or fails. The
// copies XGBoost and DuckDB make live in their C++ heaps and are freed with
// them (they do not zero them). The caller owns the input batches and the
// returned predictions (0-day retention is the job store's to finish).
package train

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferry-ai/ferry/engine/memdb"
	"github.com/ferry-ai/ferry/engine/plan"
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
	// Anchors, when set, replace the schedule (see the package doc); they
	// need training, validation and test anchors, and at most one score
	// anchor.
	Anchors []plan.Anchor
	// Options tune the schedule (a split by dates) and the search.
	Options link.JobOptions
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
	// NThread is XGBoost's and DuckDB's thread count; 0 means every CPU.
	NThread int
	// MaxRounds caps boosting rounds; 0 means 300. Training stops earlier
	// when the validation metric has not improved for 20 rounds.
	MaxRounds int
	// SearchBudget is the time the hyperparameter search may take, and
	// SearchSets the most parameter sets it tries; both 0 means the
	// default parameters only. The search tries parameter sets in a fixed
	// order, each judged on the validation anchors only, and keeps the
	// best; it stops starting new ones when the budget is spent or
	// SearchSets have run (with SearchSets alone, the search does not
	// depend on the machine's speed).
	SearchBudget time.Duration
	SearchSets   int
	// MemoryLimitBytes bounds the in-memory database; 0 means 4 GiB. A
	// plan that needs more fails (DuckDB cannot spill).
	MemoryLimitBytes int64
	// Device is "cpu" (default) or "cuda" (a GPU build of XGBoost).
	Device string
}

// Output is a run's result. The caller releases Predictions.
type Output struct {
	Result link.TrainResult
	// Predictions has one row per entity eligible at the scoring anchor: the
	// entity's primary key (same name and type as in its table),
	// link.ColAnchorTime and link.ColScore (the probability of the
	// positive class, the predicted number, or the probability of the
	// predicted class), and link.ColPredictedClass (a boolean for binary
	// classification, the class for multiclass; none for regression).
	Predictions arrow.RecordBatch
	// TrainingSQL is the plan's SQL the run executed (DuckDB dialect): the
	// query's text and names, no row value. Benchmarks run it elsewhere.
	TrainingSQL string
}

// ErrNoData is returned (wrapped) when the tables hold too little history or
// too few labelled examples to train and evaluate a model.
var ErrNoData = errors.New("not enough data")

// ErrUnsupported is returned (wrapped) for a valid query whose task this
// trainer does not handle yet.
var ErrUnsupported = errors.New("not supported by this trainer yet")

// Run trains a model for in.Query on in.Tables, evaluates it on the test
// anchors and scores the entities eligible at the scoring anchor.
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
		opts.NThread = runtime.NumCPU()
	}
	if opts.MaxRounds <= 0 {
		opts.MaxRounds = 300
	}
	if opts.MemoryLimitBytes <= 0 {
		opts.MemoryLimitBytes = 4 << 30
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
	static := !targetAggregates(q)
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	featStart := time.Now()
	db, err := memdb.Open(ctx, memdb.Options{MemoryLimitBytes: opts.MemoryLimitBytes, Threads: opts.NThread})
	if err != nil {
		return nil, err
	}
	defer db.Close()
	for _, n := range pql.RequiredTables(q, g) {
		t := in.Tables[n]
		if len(t.Records) == 0 {
			return nil, fmt.Errorf("table %s: no record batches", n)
		}
		if err := db.Register(ctx, n, t.Records[0].Schema(), t.Records); err != nil {
			return nil, err
		}
	}
	if err := checkKeys(ctx, db, q, g); err != nil {
		return nil, err
	}
	if err := in.Options.Validate(); err != nil {
		return nil, err
	}
	if in.Options.SearchBudgetSeconds > 0 {
		opts.SearchBudget = time.Duration(in.Options.SearchBudgetSeconds * float64(time.Second))
	}
	if in.Options.SearchSets > 0 {
		opts.SearchSets = in.Options.SearchSets
	}
	anchors := in.Anchors
	switch {
	case static:
		if anchors, err = staticAnchors(ctx, db, q, g); err != nil {
			return nil, err
		}
	case len(anchors) == 0:
		if anchors, err = scheduleAnchors(ctx, db, q, g, in.Options); err != nil {
			return nil, err
		}
	}
	if !static {
		if err := checkAnchors(anchors); err != nil {
			return nil, err
		}
	}
	p, err := plan.New(q, g, anchors, plan.Options{})
	if err != nil {
		return nil, err
	}
	if task == pql.TaskRecommendation {
		return recommend(ctx, db, p, in, opts, featStart)
	}
	query, err := p.TrainingSQL(plan.DuckDB{})
	if err != nil {
		return nil, err
	}
	tt, err := readTable(ctx, db, query, p, opts.Allocator)
	if err != nil {
		return nil, fmt.Errorf("training table: %w", err)
	}
	defer tt.purge()
	if static {
		tt.splitByEntity()
	}
	// The database's copies of the data are no longer needed.
	if err := db.Close(); err != nil {
		return nil, err
	}
	featureSecs := time.Since(featStart).Seconds()
	for _, s := range []*split{tt.train, tt.val, tt.test} {
		if s.rows == 0 {
			return nil, fmt.Errorf("no example at the %s anchors: %w", s.name, ErrNoData)
		}
	}
	if err := tt.checkLabels(); err != nil {
		return nil, err
	}
	opts.Logger.Info("training table built", "train_rows", tt.train.rows, "validation_rows", tt.val.rows, "test_rows", tt.test.rows,
		"score_rows", tt.score.rows, "features", len(tt.names), "anchors", len(anchors), "seconds", featureSecs)

	trainStart := time.Now()
	m, err := search(ctx, tt, opts)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	defer m.close()
	trainSecs := time.Since(trainStart).Seconds()
	opts.Logger.Info("model trained", "rounds", m.rounds, "best_iteration", m.best, "validation_"+m.metric, m.bestScore,
		"parameter_sets", m.tried, "seconds", trainSecs)
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	scoreStart := time.Now()
	keyField, ok := in.Tables[q.Entity.Table].Records[0].Schema().FieldsByName(q.Entity.Column)
	if !ok {
		return nil, fmt.Errorf("entity table %s has no column %s", q.Entity.Table, q.Entity.Column)
	}
	res, preds, err := evaluateAndScore(tt, m, q.Entity.Column, keyField[0].Type, opts.Allocator)
	if err != nil {
		return nil, err
	}
	res.JobID = in.JobID
	res.TaskType = task
	res.Anchors = len(anchors)
	res.FeatureSeconds = featureSecs
	res.TrainSeconds = trainSecs
	res.ScoreSeconds = time.Since(scoreStart).Seconds()
	res.ModelID = modelID(in.JobID, anchors, tt, m)
	opts.Logger.Info("scored", "prediction_rows", res.PredictionRows, "seconds", res.ScoreSeconds)
	return &Output{Result: res, Predictions: preds, TrainingSQL: query}, nil
}

// targetAggregates reports whether the target holds an aggregation (a
// static target does not).
func targetAggregates(q *pql.Query) bool {
	found := false
	pql.Walk(q.Target.Expr, func(e pql.Expr) {
		if _, ok := e.(*pql.Aggregation); ok {
			found = true
		}
	})
	return found
}

// checkAnchors requires training, validation and test anchors and at most
// one score anchor, the latest.
func checkAnchors(anchors []plan.Anchor) error {
	n := map[plan.Split]int{}
	var latest time.Time
	for _, a := range anchors {
		n[a.Split]++
		if a.Time.After(latest) {
			latest = a.Time
		}
	}
	for _, s := range []plan.Split{plan.Train, plan.Validation, plan.Test} {
		if n[s] == 0 {
			return fmt.Errorf("no %s anchor: %w", s, ErrNoData)
		}
	}
	if n[plan.Score] > 1 {
		return fmt.Errorf("%d score anchors; at most one", n[plan.Score])
	}
	for _, a := range anchors {
		if a.Split == plan.Score && !a.Time.Equal(latest) {
			return fmt.Errorf("the score anchor %s is not the latest anchor", a.Time.Format(time.RFC3339))
		}
	}
	return nil
}

// checkKeys refuses an entity table whose primary key repeats and a linked
// table whose foreign key is not of the key's kind (both integers or both
// strings), each with a clear error rather than a wrong join.
func checkKeys(ctx context.Context, db *memdb.DB, q *pql.Query, g *graph.Graph) error {
	et, _ := g.Table(q.Entity.Table)
	pk := q.Entity.Column
	r, err := db.Query(ctx, fmt.Sprintf(`SELECT count(*) - count(DISTINCT %s) FROM %s`, memdb.QuoteIdent(pk), memdb.QuoteIdent(et.Name)))
	if err != nil {
		return fmt.Errorf("checking the primary key of %s: %w", et.Name, err)
	}
	defer r.Release()
	for r.Next() {
		if n, ok := num(r.RecordBatch().Column(0), 0); ok && n > 0 {
			return fmt.Errorf("entity table %s: primary key %s is not unique (%d repeated rows)", et.Name, pk, int64(n))
		}
	}
	pc, _ := et.Column(pk)
	for _, n := range pql.RequiredTables(q, g) {
		t, _ := g.Table(n)
		link, ok := pql.LinkColumn(g, n, et.Name)
		if !ok || n == et.Name {
			continue
		}
		fc, _ := t.Column(link)
		if keyClass(fc.Type) != keyClass(pc.Type) {
			return fmt.Errorf("table %s: %s (%s) does not match the entity key type %s of %s.%s", n, link, fc.Type, pc.Type, et.Name, pk)
		}
	}
	return nil
}

// keyClass groups key types that compare with each other.
func keyClass(typ string) string {
	t := strings.ToLower(typ)
	switch {
	case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "uint"):
		return "integer"
	case strings.Contains(t, "utf8"), strings.Contains(t, "string"):
		return "string"
	}
	return t
}

// recommend trains and scores a recommendation (see recommend.go).
func recommend(ctx context.Context, db *memdb.DB, p *plan.Plan, in Input, opts Options, featStart time.Time) (*Output, error) {
	q := p.Query
	ct, err := readCandidates(ctx, db, p, q.Target.TopK, opts.Allocator)
	if err != nil {
		return nil, fmt.Errorf("candidates: %w", err)
	}
	defer ct.purge()
	if err := db.Close(); err != nil {
		return nil, err
	}
	tt := ct.tt
	tt.topK = q.Target.TopK
	featureSecs := time.Since(featStart).Seconds()
	for _, s := range []*split{tt.train, tt.val, tt.test} {
		pos := 0
		for _, y := range s.y {
			if y > 0 {
				pos++
			}
		}
		if len(ct.groups[s]) == 0 || pos == 0 {
			return nil, fmt.Errorf("no %s example with an item among its candidates: %w", s.name, ErrNoData)
		}
	}
	opts.Logger.Info("candidates built", "train_examples", len(ct.groups[tt.train]), "train_pairs", tt.train.rows,
		"validation_examples", len(ct.groups[tt.val]), "test_examples", len(ct.groups[tt.test]), "score_examples", len(ct.groups[tt.score]),
		"seconds", featureSecs)
	trainStart := time.Now()
	m, err := search(ctx, tt, opts)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	defer m.close()
	trainSecs := time.Since(trainStart).Seconds()
	scoreStart := time.Now()
	keyField, ok := in.Tables[q.Entity.Table].Records[0].Schema().FieldsByName(q.Entity.Column)
	if !ok {
		return nil, fmt.Errorf("entity table %s has no column %s", q.Entity.Table, q.Entity.Column)
	}
	res, preds, err := recommendResult(ct, m, tt.topK, q.Entity.Column, keyField[0].Type, opts.Allocator)
	if err != nil {
		return nil, err
	}
	res.JobID, res.TaskType, res.Anchors = in.JobID, p.Task, len(p.Anchors)
	res.FeatureSeconds, res.TrainSeconds, res.ScoreSeconds = featureSecs, trainSecs, time.Since(scoreStart).Seconds()
	res.ModelID = modelID(in.JobID, p.Anchors, tt, m)
	return &Output{Result: res, Predictions: preds}, nil
}
