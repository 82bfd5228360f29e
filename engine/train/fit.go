package train

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/ferry-ai/ferry/engine/xgboost"
)

// earlyStop is the number of rounds without a better validation AUROC after
// which training stops.
const earlyStop = 20

// topFeatures is how many features the result reports importance for.
const topFeatures = 20

// model is a trained booster and what training found.
type model struct {
	booster    *xgboost.Booster
	best       int     // best round (0-based); predictions use rounds [0, best]
	bestAUC    float64 // validation AUROC at best
	rounds     int     // rounds trained
	importance map[string]float64
}

func (m *model) close() { _ = m.booster.Close() }

// predict scores x with the trees of rounds [0, best].
func (m *model) predict(x *matrix) ([]float64, error) {
	if x.rows == 0 {
		return nil, nil
	}
	d, err := xgboost.NewDMatrix(x.data, x.rows, x.cols, nil)
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

// boosterParams are the training parameters.
func boosterParams(opts Options) map[string]string {
	return map[string]string{
		"objective":        "binary:logistic",
		"tree_method":      "hist",
		"max_depth":        "6",
		"eta":              "0.1",
		"subsample":        "0.8",
		"colsample_bytree": "0.8",
		"eval_metric":      "auc",
		"seed":             strconv.FormatUint(opts.Seed, 10),
		// XGBoost's sampler state is per OS thread: reseeding it every round
		// makes a run reproducible whatever ran on that thread before.
		"seed_per_iteration": "1",
		"nthread":            strconv.Itoa(opts.NThread),
		"verbosity":          "0",
	}
}

// fit trains gradient-boosted trees on train, stopping when the validation
// AUROC has not improved for earlyStop rounds, and checks ctx between rounds.
func fit(ctx context.Context, train, val *matrix, names []string, opts Options) (*model, error) {
	dtrain, err := xgboost.NewDMatrix(train.data, train.rows, train.cols, train.labels)
	if err != nil {
		return nil, fmt.Errorf("training matrix: %w", err)
	}
	defer dtrain.Close()
	dval, err := xgboost.NewDMatrix(val.data, val.rows, val.cols, val.labels)
	if err != nil {
		return nil, fmt.Errorf("validation matrix: %w", err)
	}
	defer dval.Close()
	b, err := xgboost.NewBooster(dtrain, boosterParams(opts))
	if err != nil {
		return nil, fmt.Errorf("booster: %w", err)
	}
	m := &model{booster: b, bestAUC: math.Inf(-1)}
	ok := false
	defer func() {
		if !ok {
			m.close()
		}
	}()
	for it := 0; it < opts.MaxRounds; it++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := b.UpdateOneIter(it, dtrain); err != nil {
			return nil, fmt.Errorf("boosting round %d: %w", it, err)
		}
		m.rounds = it + 1
		ev, err := b.EvalOneIter(it, xgboost.EvalSet{Name: "valid", Matrix: dval})
		if err != nil {
			return nil, fmt.Errorf("evaluating round %d: %w", it, err)
		}
		auc, found := ev["valid-auc"]
		if !found {
			return nil, fmt.Errorf("evaluating round %d: no valid-auc in %v", it, ev)
		}
		if auc > m.bestAUC+1e-7 {
			m.bestAUC, m.best = auc, it
		} else if it-m.best >= earlyStop {
			break
		}
	}
	imp, err := b.FeatureImportance(names, "gain")
	if err != nil {
		return nil, fmt.Errorf("feature importance: %w", err)
	}
	m.importance = top(imp, topFeatures)
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
