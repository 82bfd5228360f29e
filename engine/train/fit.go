package train

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/ferry-ai/ferry/engine/pql"
	"github.com/ferry-ai/ferry/engine/xgboost"
)

// earlyStop is the number of rounds without a better validation metric
// after which training stops.
const earlyStop = 20

// topFeatures is how many features the result reports importance for.
const topFeatures = 20

// model is a trained booster and what training found.
type model struct {
	booster   *xgboost.Booster
	task      string
	classes   int     // multiclass: the number of classes
	best      int     // best round (0-based); predictions use rounds [0, best]
	bestScore float64 // validation metric at best
	metric    string  // the validation metric: auc, mae or mlogloss
	rounds    int     // rounds trained
	tried     int     // parameter sets tried
	params    map[string]string
	// importance is the gain of the top features.
	importance map[string]float64
}

func (m *model) close() { _ = m.booster.Close() }

// predict scores s with the trees of rounds [0, best]: one value per row (a
// probability, or a number), or for multiclass classes values per row.
func (m *model) predict(s *split, cols int) ([]float64, error) {
	if s.rows == 0 {
		return nil, nil
	}
	d, err := xgboost.NewDMatrix(s.x, s.rows, cols, nil)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	p, err := m.booster.Predict(d, 0, m.best+1)
	if err != nil {
		return nil, err
	}
	out := make([]float64, len(p))
	for i, v := range p {
		out[i] = float64(v)
	}
	clear(p)
	return out, nil
}

// objective returns the task's objective parameters and its validation
// metric, and whether a larger metric is better.
func objective(task string, classes, topK int) (map[string]string, string, bool) {
	switch task {
	case pql.TaskRecommendation:
		m := fmt.Sprintf("map@%d", topK)
		return map[string]string{"objective": "rank:pairwise", "eval_metric": m}, m, true
	case pql.TaskRegression:
		return map[string]string{"objective": "reg:squarederror", "eval_metric": "mae"}, "mae", false
	case pql.TaskMulticlassClassification:
		return map[string]string{"objective": "multi:softprob", "num_class": strconv.Itoa(classes), "eval_metric": "mlogloss"}, "mlogloss", false
	}
	return map[string]string{"objective": "binary:logistic", "eval_metric": "auc"}, "auc", true
}

// searchSpace is the hyperparameter search, in the order it is tried: the
// first set is the default. Regression also tries an absolute-error
// objective, which suits MAE.
func searchSpace(task string) []map[string]string {
	sets := []map[string]string{
		{"max_depth": "6", "eta": "0.1", "min_child_weight": "1", "colsample_bytree": "0.8"},
		{"max_depth": "4", "eta": "0.1", "min_child_weight": "5", "colsample_bytree": "0.8"},
		{"max_depth": "8", "eta": "0.05", "min_child_weight": "1", "colsample_bytree": "0.6"},
		{"max_depth": "3", "eta": "0.1", "min_child_weight": "10", "colsample_bytree": "0.8"},
		{"max_depth": "6", "eta": "0.03", "min_child_weight": "5", "colsample_bytree": "0.5"},
		{"max_depth": "10", "eta": "0.05", "min_child_weight": "20", "colsample_bytree": "0.8"},
	}
	if task == pql.TaskRegression {
		var out []map[string]string
		for _, s := range sets {
			out = append(out, s)
			abs := maps.Clone(s)
			abs["objective"] = "reg:absoluteerror"
			out = append(out, abs)
		}
		return out
	}
	return sets
}

// search trains one model per parameter set while the budget lasts (the
// first set always) and keeps the one with the best validation metric.
func search(ctx context.Context, tt *trainingTable, opts Options) (*model, error) {
	device, err := xgboost.DeviceParams(cmp.Or(opts.Device, "cpu"))
	if err != nil {
		return nil, err
	}
	train, err := xgboost.NewDMatrix(tt.train.x, tt.train.rows, tt.cols, tt.train.y)
	if err != nil {
		return nil, fmt.Errorf("training matrix: %w", err)
	}
	defer train.Close()
	if tt.train.groups != nil {
		if err := train.SetGroups(tt.train.groups); err != nil {
			return nil, fmt.Errorf("training groups: %w", err)
		}
	}
	// Validation examples of a class the training examples lack cannot be
	// scored by the objective: they are left out of early stopping.
	vx, vy := tt.val.x, tt.val.y
	if tt.task == pql.TaskMulticlassClassification {
		vx, vy = nil, nil
		for i, y := range tt.val.y {
			if y >= 0 {
				vx = append(vx, tt.val.x[i*tt.cols:(i+1)*tt.cols]...)
				vy = append(vy, y)
			}
		}
		defer clear(vx)
		if len(vy) == 0 {
			return nil, fmt.Errorf("no validation example has a class seen in training: %w", ErrNoData)
		}
	}
	val, err := xgboost.NewDMatrix(vx, len(vy), tt.cols, vy)
	if err != nil {
		return nil, fmt.Errorf("validation matrix: %w", err)
	}
	defer val.Close()
	if tt.val.groups != nil {
		if err := val.SetGroups(tt.val.groups); err != nil {
			return nil, fmt.Errorf("validation groups: %w", err)
		}
	}
	start := time.Now()
	var best *model
	space := searchSpace(tt.task)
	sets := 1
	switch {
	case opts.SearchSets > 0:
		sets = min(opts.SearchSets, len(space))
	case opts.SearchBudget > 0:
		sets = len(space)
	}
	for i, set := range space[:sets] {
		if i > 0 && opts.SearchBudget > 0 && time.Since(start) >= opts.SearchBudget {
			break
		}
		params, metric, larger := objective(tt.task, len(tt.classes), tt.topK)
		maps.Copy(params, map[string]string{
			"tree_method": "hist", "subsample": "0.8",
			"seed": strconv.FormatUint(opts.Seed, 10),
			// XGBoost's sampler state is per OS thread: reseeding it every
			// round makes a run reproducible whatever ran on that thread.
			"seed_per_iteration": "1",
			"nthread":            strconv.Itoa(opts.NThread),
			"verbosity":          "0",
		})
		maps.Copy(params, set)
		maps.Copy(params, device)
		m, err := fit(ctx, train, val, params, metric, larger, opts.MaxRounds)
		if err != nil {
			if best != nil {
				best.close()
			}
			return nil, err
		}
		m.task, m.classes = tt.task, len(tt.classes)
		if best == nil || better(m.bestScore, best.bestScore, larger) {
			if best != nil {
				best.close()
			}
			best = m
		} else {
			m.close()
		}
		best.tried = i + 1
	}
	imp, err := best.booster.FeatureImportance(tt.names, "gain")
	if err != nil {
		best.close()
		return nil, fmt.Errorf("feature importance: %w", err)
	}
	best.importance = top(imp, topFeatures)
	return best, nil
}

func better(a, b float64, larger bool) bool {
	if larger {
		return a > b+1e-9
	}
	return a < b-1e-9
}

// fit trains a booster, stopping when the validation metric has not
// improved for earlyStop rounds, and checks ctx between rounds.
func fit(ctx context.Context, train, val *xgboost.DMatrix, params map[string]string, metric string, larger bool, maxRounds int) (*model, error) {
	b, err := xgboost.NewBooster(train, params)
	if err != nil {
		return nil, fmt.Errorf("booster: %w", err)
	}
	m := &model{booster: b, metric: metric, params: params, bestScore: math.Inf(1)}
	if larger {
		m.bestScore = math.Inf(-1)
	}
	ok := false
	defer func() {
		if !ok {
			m.close()
		}
	}()
	key := "valid-" + metric
	for it := 0; it < maxRounds; it++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := b.UpdateOneIter(it, train); err != nil {
			return nil, fmt.Errorf("boosting round %d: %w", it, err)
		}
		m.rounds = it + 1
		ev, err := b.EvalOneIter(it, xgboost.EvalSet{Name: "valid", Matrix: val})
		if err != nil {
			return nil, fmt.Errorf("evaluating round %d: %w", it, err)
		}
		v, found := ev[key]
		if !found {
			return nil, fmt.Errorf("evaluating round %d: no %s in %v", it, key, ev)
		}
		if better(v, m.bestScore, larger) {
			m.bestScore, m.best = v, it
		} else if it-m.best >= earlyStop {
			break
		}
	}
	ok = true
	return m, nil
}

// top keeps the n largest entries (ties broken by name).
func top(m map[string]float64, n int) map[string]float64 {
	type kv struct {
		k string
		v float64
	}
	all := make([]kv, 0, len(m))
	for k, v := range m {
		all = append(all, kv{k, v})
	}
	slices.SortFunc(all, func(a, b kv) int {
		if c := cmp.Compare(b.v, a.v); c != 0 {
			return c
		}
		return cmp.Compare(a.k, b.k)
	})
	out := make(map[string]float64, min(n, len(all)))
	for i := 0; i < len(all) && i < n; i++ {
		out[all[i].k] = all[i].v
	}
	return out
}
