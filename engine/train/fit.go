package train

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"

	"github.com/ferry-ai/ferry/engine/metrics"
	"github.com/ferry-ai/ferry/engine/xgboost"
)

// earlyStop is the number of rounds without validation improvement after
// which training stops.
const earlyStop = 20

type model struct {
	booster    *xgboost.Booster
	best       int // best iteration (0-based)
	importance map[string]float64
}

func (m *model) close() { _ = m.booster.Close() }

func (m *model) predict(x *matrix) ([]float64, error) {
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

// fit trains gradient-boosted trees on train with early stopping on the
// validation set's AUROC.
func fit(ctx context.Context, train, val *matrix, names []string, opts Options) (*model, error) {
	dtrain, err := xgboost.NewDMatrix(train.data, train.rows, train.cols, train.labels)
	if err != nil {
		return nil, fmt.Errorf("train matrix: %w", err)
	}
	defer dtrain.Close()
	dval, err := xgboost.NewDMatrix(val.data, val.rows, val.cols, val.labels)
	if err != nil {
		return nil, fmt.Errorf("validation matrix: %w", err)
	}
	defer dval.Close()
	params := map[string]string{
		"objective":   "binary:logistic",
		"tree_method": "hist",
		"max_depth":   "6",
		"eta":         "0.1",
		// Row subsampling stays off: XGBoost 1.7 draws it from a process-wide
		// RNG that a new booster does not reseed, so re-running a job would
		// not reproduce its model. Column sampling is reproducible.
		"subsample":        "1",
		"colsample_bytree": "0.8",
		"min_child_weight": "2",
		"seed":             strconv.FormatUint(opts.Seed, 10),
		"nthread":          strconv.Itoa(opts.NThread),
		"verbosity":        "0",
	}
	b, err := xgboost.NewBooster(dtrain, params)
	if err != nil {
		return nil, fmt.Errorf("booster: %w", err)
	}
	m := &model{booster: b}
	bestAUC := math.Inf(-1)
	for it := 0; it < opts.MaxRounds; it++ {
		if err := ctx.Err(); err != nil {
			b.Close()
			return nil, err
		}
		if err := b.UpdateOneIter(it, dtrain); err != nil {
			b.Close()
			return nil, fmt.Errorf("boosting round %d: %w", it, err)
		}
		p, err := b.Predict(dval, 0, it+1)
		if err != nil {
			b.Close()
			return nil, err
		}
		scores := make([]float64, len(p))
		for i, v := range p {
			scores[i] = float64(v)
		}
		auc := metrics.AUROC(val.labels, scores)
		if math.IsNaN(auc) {
			auc = 0.5 // a one-class validation set cannot steer: keep the latest round
		}
		if auc > bestAUC+1e-6 {
			bestAUC, m.best = auc, it
		} else if it-m.best >= earlyStop {
			break
		}
	}
	imp, err := b.FeatureImportance(names, "gain")
	if err == nil {
		m.importance = top(imp, 20)
	}
	return m, nil
}

func top(m map[string]float64, n int) map[string]float64 {
	type kv struct {
		k string
		v float64
	}
	all := make([]kv, 0, len(m))
	for k, v := range m {
		all = append(all, kv{k, v})
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].v != all[j].v {
			return all[i].v > all[j].v
		}
		return all[i].k < all[j].k
	})
	out := map[string]float64{}
	for i := 0; i < len(all) && i < n; i++ {
		out[all[i].k] = all[i].v
	}
	return out
}
