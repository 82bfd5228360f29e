package xgboost

import (
	"errors"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	"github.com/ferry-ai/ferry/engine/metrics"
)

// synthetic returns n rows of 5 features and labels: label = x0 + x1 > 1
// with 5% flipped; x2..x4 are noise; 5% of x4 is missing (NaN).
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

func matrix(t *testing.T, n int, seed uint64, withLabels bool) (*DMatrix, []float32) {
	t.Helper()
	x, y := synthetic(n, seed)
	var labels []float32
	if withLabels {
		labels = y
	}
	d, err := NewDMatrix(x, n, 5, labels)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d, y
}

func params(extra ...string) map[string]string {
	p := map[string]string{"objective": "binary:logistic", "tree_method": "hist", "max_depth": "4", "eta": "0.3",
		"nthread": "2", "seed": "1", "verbosity": "0", "eval_metric": "auc"}
	for i := 0; i+1 < len(extra); i += 2 {
		p[extra[i]] = extra[i+1]
	}
	return p
}

// fit trains rounds rounds on d and returns the booster with the validation
// AUC XGBoost reported after each round.
func fit(t *testing.T, d, valid *DMatrix, rounds int, p map[string]string) (*Booster, []float64) {
	t.Helper()
	b, err := NewBooster(d, p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	var aucs []float64
	for i := 0; i < rounds; i++ {
		if err := b.UpdateOneIter(i, d); err != nil {
			t.Fatal(err)
		}
		ev, err := b.EvalOneIter(i, EvalSet{"train", d}, EvalSet{"valid", valid})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := ev["train-auc"]; !ok {
			t.Fatalf("evaluation %v has no train-auc", ev)
		}
		aucs = append(aucs, ev["valid-auc"])
	}
	return b, aucs
}

func toF64(p []float32) []float64 {
	out := make([]float64, len(p))
	for i, v := range p {
		out[i] = float64(v)
	}
	return out
}

func TestTrainEvalPredict(t *testing.T) {
	d, _ := matrix(t, 2000, 1, true)
	valid, yv := matrix(t, 1000, 2, true)
	b, aucs := fit(t, d, valid, 30, params())
	if aucs[len(aucs)-1] < 0.9 || aucs[len(aucs)-1] < aucs[0] {
		t.Fatalf("validation AUC per round %v: want it to rise above 0.9", aucs)
	}
	all, err := b.Predict(valid, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range all {
		if v < 0 || v > 1 {
			t.Fatalf("prediction %v outside [0,1]", v)
		}
	}
	// XGBoost's AUC and ours agree on the same predictions.
	if ours := metrics.AUROC(yv, toF64(all)); math.Abs(ours-aucs[len(aucs)-1]) > 1e-4 {
		t.Errorf("AUROC %v, XGBoost says %v", ours, aucs[len(aucs)-1])
	}
	// Iteration ranges.
	for _, tc := range []struct {
		name       string
		begin, end int
		sameAsAll  bool
	}{
		{"all rounds explicitly", 0, 30, true},
		{"first round", 0, 1, false},
		{"first ten", 0, 10, false},
		{"skip the first", 1, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := b.Predict(valid, tc.begin, tc.end)
			if err != nil {
				t.Fatal(err)
			}
			same := true
			for i := range p {
				same = same && p[i] == all[i]
			}
			if same != tc.sameAsAll {
				t.Errorf("predictions over [%d, %d) equal to all rounds: %v, want %v", tc.begin, tc.end, same, tc.sameAsAll)
			}
		})
	}
	// The AUC after round 10 (XGBoost's) equals ours on trees [0, 10).
	p10, _ := b.Predict(valid, 0, 10)
	if ours := metrics.AUROC(yv, toF64(p10)); math.Abs(ours-aucs[9]) > 1e-4 {
		t.Errorf("AUROC of 10 rounds %v, XGBoost said %v", ours, aucs[9])
	}
	imp, err := b.FeatureImportance([]string{"x0", "x1", "x2", "x3", "x4"}, "gain")
	if err != nil {
		t.Fatal(err)
	}
	if imp["x0"] <= imp["x2"] || imp["x1"] <= imp["x3"] || imp["x0"] <= imp["x4"] {
		t.Errorf("gain does not rank the informative features first: %v", imp)
	}
}

// onNewThread runs f on a fresh OS thread, which ends with it.
func onNewThread(f func()) {
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		defer close(done)
		f()
	}()
	<-done
}

// TestDeterministic trains the same model twice with row and column
// sampling: once from the test goroutine, once calling every round from a
// different OS thread with another model's rounds in between. XGBoost keeps
// the prediction cache and the sampler per thread; the booster's own thread
// makes the calling thread irrelevant (before it, calls from a new thread
// failed with "0 feature is supplied"), so predictions are identical.
func TestDeterministic(t *testing.T) {
	d, _ := matrix(t, 1500, 3, true)
	valid, _ := matrix(t, 500, 4, true)
	p := params("subsample", "0.8", "colsample_bytree", "0.8", "seed_per_iteration", "1")
	var bs []*Booster
	for _, p := range []map[string]string{p, p, params("subsample", "0.5", "seed", "99")} {
		b, err := NewBooster(d, p)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		bs = append(bs, b)
	}
	b1, b2, other := bs[0], bs[1], bs[2]
	for i := 0; i < 15; i++ {
		if err := b1.UpdateOneIter(i, d); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 15; i++ {
		var err error
		onNewThread(func() { err = other.UpdateOneIter(i, d) })
		if err != nil {
			t.Fatal(err)
		}
		onNewThread(func() {
			if err = b2.UpdateOneIter(i, d); err == nil {
				_, err = b2.EvalOneIter(i, EvalSet{"valid", valid})
			}
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	p1, err := b1.Predict(valid, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := b2.Predict(valid, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range p1 {
		if p1[i] != p2[i] {
			t.Fatalf("prediction %d differs between identical trainings: %v vs %v", i, p1[i], p2[i])
		}
	}
}

func TestClose(t *testing.T) {
	d, _ := matrix(t, 200, 5, true)
	b, _ := fit(t, d, d, 2, params())
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if _, err := b.Predict(d, 0, 0); !errors.Is(err, ErrClosed) {
		t.Errorf("predict after close: %v, want ErrClosed", err)
	}
	if err := b.UpdateOneIter(3, d); !errors.Is(err, ErrClosed) {
		t.Errorf("round after close: %v, want ErrClosed", err)
	}
	if _, err := b.FeatureImportance([]string{"a", "b", "c", "d", "e"}, "gain"); !errors.Is(err, ErrClosed) {
		t.Errorf("importance after close: %v, want ErrClosed", err)
	}
	d2, _ := matrix(t, 200, 6, true)
	b2, _ := fit(t, d2, d2, 1, params())
	if err := d2.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d2.Close(); err != nil {
		t.Fatalf("second matrix close: %v", err)
	}
	if _, err := b2.Predict(d2, 0, 0); !errors.Is(err, ErrClosed) {
		t.Errorf("predict on a closed matrix: %v, want ErrClosed", err)
	}
	if _, err := b2.EvalOneIter(1, EvalSet{"v", d2}); !errors.Is(err, ErrClosed) {
		t.Errorf("evaluate on a closed matrix: %v, want ErrClosed", err)
	}
	if _, err := NewBooster(d2, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("booster on a closed matrix: %v, want ErrClosed", err)
	}
}

func TestBadInput(t *testing.T) {
	for _, tc := range []struct {
		name   string
		data   []float32
		rows   int
		cols   int
		labels []float32
	}{
		{"too few values", make([]float32, 5), 2, 3, nil},
		{"too many values", make([]float32, 7), 2, 3, nil},
		{"too few labels", make([]float32, 6), 2, 3, []float32{1}},
		{"no rows", nil, 0, 3, nil},
		{"no columns", nil, 3, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if d, err := NewDMatrix(tc.data, tc.rows, tc.cols, tc.labels); err == nil {
				_ = d.Close()
				t.Errorf("NewDMatrix(%d values, %d×%d, %d labels) accepted", len(tc.data), tc.rows, tc.cols, len(tc.labels))
			}
		})
	}
	d, _ := matrix(t, 100, 7, true)
	// XGBoost checks parameters when it configures, at the first round; the
	// C error comes back as a Go error.
	b, err := NewBooster(d, map[string]string{"objective": "no:such"})
	if err == nil {
		defer b.Close()
		err = b.UpdateOneIter(0, d)
	}
	if err == nil || !strings.Contains(err.Error(), "xgboost: round 0: ") || !strings.Contains(err.Error(), "no:such") {
		t.Errorf("unknown objective: %v, want an xgboost error naming it", err)
	}
	b, _ = fit(t, d, d, 2, params())
	for _, r := range [][2]int{{-1, 0}, {2, 1}, {1, 1}} {
		if _, err := b.Predict(d, r[0], r[1]); err == nil {
			t.Errorf("Predict over [%d, %d) accepted", r[0], r[1])
		}
	}
	for _, name := range []string{"", "a b", "x:y"} {
		if _, err := b.EvalOneIter(1, EvalSet{name, d}); err == nil {
			t.Errorf("EvalOneIter with set name %q accepted", name)
		}
	}
	if _, err := b.EvalOneIter(1); err == nil {
		t.Error("EvalOneIter without a set accepted")
	}
	if err := b.SetParam("max_depth", "not a number"); err == nil {
		if err = b.UpdateOneIter(2, d); err == nil {
			t.Error("bad max_depth accepted")
		}
	}
}

func TestParseEval(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    map[string]float64
		wantErr bool
	}{
		{"[0]\ttrain-auc:0.5\tvalid-auc:0.75", map[string]float64{"train-auc": 0.5, "valid-auc": 0.75}, false},
		{"[12]\tvalid-logloss:0.123456\tvalid-error@0.6:0.1", map[string]float64{"valid-logloss": 0.123456, "valid-error@0.6": 0.1}, false},
		{"[3]", map[string]float64{}, false},
		{"[1]\tvalid-auc:nan", map[string]float64{"valid-auc": math.NaN()}, false},
		{"", nil, true},
		{"valid-auc:0.5", nil, true},
		{"[1]\tvalid-auc", nil, true},
		{"[1]\tvalid-auc:high", nil, true},
	} {
		got, err := ParseEval(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("ParseEval(%q) error %v, want error %v", tc.in, err, tc.wantErr)
			continue
		}
		if len(got) != len(tc.want) {
			t.Errorf("ParseEval(%q) = %v, want %v", tc.in, got, tc.want)
		}
		for k, v := range tc.want {
			if g, ok := got[k]; !ok || (g != v && !(math.IsNaN(g) && math.IsNaN(v))) {
				t.Errorf("ParseEval(%q)[%q] = %v, want %v", tc.in, k, g, v)
			}
		}
	}
}

func TestVersion(t *testing.T) {
	if v := Version(); !strings.HasPrefix(v, "1.") && !strings.HasPrefix(v, "2.") {
		t.Errorf("version %q", v)
	}
}
