package xgboost

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/ferry-ai/ferry/engine/metrics"
)

// synthetic: label = x0 + x1 > 1 (with 5% noise); x2..x4 are noise; some
// values missing.
func synthetic(n int, seed uint64) ([]float32, []float32) {
	r := rand.New(rand.NewPCG(seed, 1))
	x := make([]float32, n*5)
	y := make([]float32, n)
	for i := 0; i < n; i++ {
		for j := 0; j < 5; j++ {
			x[i*5+j] = float32(r.Float64())
		}
		if x[i*5]+x[i*5+1] > 1 {
			y[i] = 1
		}
		if r.Float64() < 0.05 {
			y[i] = 1 - y[i]
		}
		if r.Float64() < 0.05 {
			x[i*5+4] = float32(math.NaN())
		}
	}
	return x, y
}

var params = map[string]string{"objective": "binary:logistic", "tree_method": "hist", "max_depth": "4", "eta": "0.3", "nthread": "2", "seed": "1", "verbosity": "0"}

func train(t *testing.T, rounds int) (*Booster, *DMatrix, []float32) {
	t.Helper()
	x, y := synthetic(2000, 1)
	d, err := NewDMatrix(x, 2000, 5, y)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	b, err := NewBooster(d, params)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	for i := 0; i < rounds; i++ {
		if err := b.UpdateOneIter(i, d); err != nil {
			t.Fatal(err)
		}
	}
	xt, yt := synthetic(1000, 2)
	dt, err := NewDMatrix(xt, 1000, 5, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dt.Close() })
	return b, dt, yt
}

func TestTrainPredict(t *testing.T) {
	b, dt, yt := train(t, 30)
	p, err := b.Predict(dt, 0)
	if err != nil {
		t.Fatal(err)
	}
	scores := make([]float64, len(p))
	for i, v := range p {
		if v < 0 || v > 1 {
			t.Fatalf("prediction %v outside [0,1]", v)
		}
		scores[i] = float64(v)
	}
	if auc := metrics.AUROC(yt, scores); auc < 0.9 {
		t.Fatalf("held-out AUROC %.3f, want > 0.9", auc)
	}
	p1, err := b.Predict(dt, 1)
	if err != nil {
		t.Fatal(err)
	}
	same := true
	for i := range p {
		same = same && p[i] == p1[i]
	}
	if same {
		t.Error("predicting with one tree equals predicting with all")
	}
	imp, err := b.FeatureImportance([]string{"x0", "x1", "x2", "x3", "x4"}, "gain")
	if err != nil {
		t.Fatal(err)
	}
	if imp["x0"] <= imp["x2"] || imp["x1"] <= imp["x3"] {
		t.Errorf("importance does not rank the informative features first: %v", imp)
	}
	// Determinism: the same training again gives identical predictions.
	b2, dt2, _ := train(t, 30)
	p2, _ := b2.Predict(dt2, 0)
	for i := range p {
		if p[i] != p2[i] {
			t.Fatalf("prediction %d differs between identical trainings: %v vs %v", i, p[i], p2[i])
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if _, err := b.Predict(dt, 0); err == nil {
		t.Error("predict after close succeeded")
	}
	if !strings.HasPrefix(Version(), "1.") && !strings.HasPrefix(Version(), "2.") {
		t.Errorf("version %q", Version())
	}
}

func TestBadShapes(t *testing.T) {
	for _, tc := range []struct {
		data   []float32
		rows   int
		cols   int
		labels []float32
	}{
		{make([]float32, 5), 2, 3, nil},
		{make([]float32, 6), 2, 3, []float32{1}},
		{nil, 0, 3, nil},
	} {
		if d, err := NewDMatrix(tc.data, tc.rows, tc.cols, tc.labels); err == nil {
			d.Close()
			t.Errorf("NewDMatrix(%d values, %d×%d, %d labels) accepted", len(tc.data), tc.rows, tc.cols, len(tc.labels))
		}
	}
	d, _ := NewDMatrix(make([]float32, 6), 2, 3, []float32{0, 1})
	defer d.Close()
	// XGBoost checks parameters when it configures, at the first round.
	b, err := NewBooster(d, map[string]string{"objective": "no:such"})
	if err == nil {
		defer b.Close()
		err = b.UpdateOneIter(0, d)
	}
	if err == nil {
		t.Error("unknown objective accepted")
	} else if !strings.Contains(err.Error(), "xgboost") {
		t.Errorf("error %q does not say where it came from", err)
	}
}
