package xgboost

import (
	"errors"
	"math"
	"math/rand/v2"
	"sort"
	"testing"
)

// newMatrix makes a matrix closed at the end of the test.
func newMatrix(t *testing.T, x []float32, rows, cols int, y []float32) *DMatrix {
	t.Helper()
	d, err := NewDMatrix(x, rows, cols, y)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// train runs rounds rounds on d and returns the booster, closed at the end
// of the test, and XGBoost's figures on valid after the last round.
func train(t *testing.T, d, valid *DMatrix, rounds int, p map[string]string) (*Booster, map[string]float64) {
	t.Helper()
	b, err := NewBooster(d, p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	for i := 0; i < rounds; i++ {
		if err := b.UpdateOneIter(i, d); err != nil {
			t.Fatal(err)
		}
	}
	ev, err := b.EvalOneIter(rounds-1, EvalSet{"valid", valid})
	if err != nil {
		t.Fatal(err)
	}
	return b, ev
}

// uniform returns n rows of cols features uniform in [0, 1).
func uniform(r *rand.Rand, n, cols int) []float32 {
	x := make([]float32, n*cols)
	for i := range x {
		x[i] = float32(r.Float64())
	}
	return x
}

// classes returns n rows of 5 features and a class in {0, 1, 2}: the index of
// the largest of x0, x1, x2, with 5% of the classes drawn at random.
func classes(n int, seed uint64) ([]float32, []float32) {
	r := rand.New(rand.NewPCG(seed, 2))
	x := uniform(r, n, 5)
	y := make([]float32, n)
	for i := range y {
		row := x[i*5 : i*5+3]
		for j := range row {
			if row[j] > row[int(y[i])] {
				y[i] = float32(j)
			}
		}
		if r.Float64() < 0.05 {
			y[i] = float32(r.IntN(3))
		}
	}
	return x, y
}

// TestMultiClass trains multi:softprob with 3 classes. Predict returns
// rows×3 probabilities, row-major: each row sums to 1, PredictMatrix cuts
// the same values into rows, and the classification error of the per-row
// argmax equals XGBoost's own merror (which a class-major layout would not
// give); the held-out accuracy is far above chance.
func TestMultiClass(t *testing.T) {
	const k = 3
	xt, yt := classes(1500, 1)
	xv, yv := classes(600, 2)
	d, valid := newMatrix(t, xt, 1500, 5, yt), newMatrix(t, xv, 600, 5, yv)
	b, ev := train(t, d, valid, 20, params("objective", "multi:softprob", "num_class", "3", "eval_metric", "merror"))
	flat, err := b.Predict(valid, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(flat) != valid.Rows()*k {
		t.Fatalf("%d predictions for %d rows of %d classes", len(flat), valid.Rows(), k)
	}
	rows, err := b.PredictMatrix(valid, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != valid.Rows() {
		t.Fatalf("PredictMatrix: %d rows, want %d", len(rows), valid.Rows())
	}
	wrong := 0
	for i, row := range rows {
		if len(row) != k {
			t.Fatalf("row %d has %d probabilities, want %d", i, len(row), k)
		}
		sum, best := 0.0, 0
		for j, p := range row {
			if p != flat[i*k+j] {
				t.Fatalf("PredictMatrix[%d][%d] = %v, Predict[%d] = %v", i, j, p, i*k+j, flat[i*k+j])
			}
			sum += float64(p)
			if p > row[best] {
				best = j
			}
		}
		if math.Abs(sum-1) > 1e-5 {
			t.Fatalf("row %d: probabilities %v sum to %v", i, row, sum)
		}
		if best != int(yv[i]) {
			wrong++
		}
	}
	ours := float64(wrong) / float64(len(rows))
	if math.Abs(ours-ev["valid-merror"]) > 1e-6 {
		t.Errorf("argmax error %v, XGBoost's merror %v: the layout is not row-major", ours, ev["valid-merror"])
	}
	if ours > 0.15 {
		t.Errorf("held-out error %v, want at most 0.15 (chance is 0.67)", ours)
	}
	// A one-output objective gives rows of length 1.
	one, _ := train(t, d, valid, 2, params("objective", "reg:squarederror", "eval_metric", "rmse"))
	if m, err := one.PredictMatrix(valid, 0, 0); err != nil || len(m) != valid.Rows() || len(m[0]) != 1 {
		t.Errorf("PredictMatrix of a one-output model: %d rows, err %v", len(m), err)
	}
}

// regression returns n rows of 5 features and y = 3 sin(2π x0) + 2 x1² +
// noise of standard deviation 0.3.
func regression(n int, seed uint64) ([]float32, []float32) {
	r := rand.New(rand.NewPCG(seed, 3))
	x := uniform(r, n, 5)
	y := make([]float32, n)
	for i := range y {
		x0, x1 := float64(x[i*5]), float64(x[i*5+1])
		y[i] = float32(3*math.Sin(2*math.Pi*x0) + 2*x1*x1 + 0.3*r.NormFloat64())
	}
	return x, y
}

func rmse(y []float32, pred func(i int) float64) float64 {
	s := 0.0
	for i := range y {
		e := float64(y[i]) - pred(i)
		s += e * e
	}
	return math.Sqrt(s / float64(len(y)))
}

// TestRegression trains reg:squarederror: the held-out RMSE is well below
// that of predicting the training mean, and equals XGBoost's own rmse.
func TestRegression(t *testing.T) {
	xt, yt := regression(2000, 1)
	xv, yv := regression(800, 2)
	d, valid := newMatrix(t, xt, 2000, 5, yt), newMatrix(t, xv, 800, 5, yv)
	b, ev := train(t, d, valid, 40, params("objective", "reg:squarederror", "eval_metric", "rmse"))
	p, err := b.Predict(valid, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	mean := 0.0
	for _, v := range yt {
		mean += float64(v)
	}
	mean /= float64(len(yt))
	model := rmse(yv, func(i int) float64 { return float64(p[i]) })
	baseline := rmse(yv, func(int) float64 { return mean })
	if model > 0.3*baseline {
		t.Errorf("held-out RMSE %v, predicting the mean %v: want at most 30%% of it", model, baseline)
	}
	if math.Abs(model-ev["valid-rmse"]) > 1e-4*baseline {
		t.Errorf("RMSE %v, XGBoost's %v", model, ev["valid-rmse"])
	}
}

// ranking returns the rows of groups query groups of 5 to 30 rows each, 5
// features, and a relevance grade 0..3 from x0 and x1 plus noise; every
// group has a relevant row.
func ranking(groups int, seed uint64) (x, rel []float32, sizes []uint32) {
	r := rand.New(rand.NewPCG(seed, 4))
	for len(sizes) < groups {
		n := 5 + r.IntN(26)
		gx := uniform(r, n, 5)
		g := make([]float32, n)
		top := 0
		for i := range g {
			s := 0.6*float64(gx[i*5]) + 0.4*float64(gx[i*5+1]) + 0.15*r.NormFloat64()
			g[i] = float32(min(3, max(0, math.Floor(4*s))))
			top = max(top, int(g[i]))
		}
		if top == 0 {
			continue
		}
		x, rel, sizes = append(x, gx...), append(rel, g...), append(sizes, uint32(n))
	}
	return x, rel, sizes
}

// ndcgAt is the mean over groups of NDCG@k of the order by decreasing score,
// with gain 2^rel - 1, as XGBoost computes it.
func ndcgAt(k int, rel []float32, sizes []uint32, score func(i int) float64) float64 {
	dcg := func(rels []float64) float64 {
		s := 0.0
		for i, r := range rels[:min(k, len(rels))] {
			s += (math.Exp2(r) - 1) / math.Log2(float64(i)+2)
		}
		return s
	}
	total, start := 0.0, 0
	for _, n := range sizes {
		idx := make([]int, n)
		for i := range idx {
			idx[i] = start + i
		}
		sort.SliceStable(idx, func(a, b int) bool { return score(idx[a]) > score(idx[b]) })
		got, ideal := make([]float64, n), make([]float64, n)
		for i, j := range idx {
			got[i], ideal[i] = float64(rel[j]), float64(rel[j])
		}
		sort.Sort(sort.Reverse(sort.Float64Slice(ideal)))
		total += dcg(got) / dcg(ideal)
		start += int(n)
	}
	return total / float64(len(sizes))
}

// TestRanking trains rankers on query groups (SetGroups): on held-out groups
// their NDCG@10 clearly beats that of random orders, and equals XGBoost's
// own ndcg@10, which it computes per group.
func TestRanking(t *testing.T) {
	xt, rt, st := ranking(120, 1)
	xv, rv, sv := ranking(60, 2)
	d, valid := newMatrix(t, xt, len(rt), 5, rt), newMatrix(t, xv, len(rv), 5, rv)
	for _, m := range []*DMatrix{d, valid} {
		sizes := st
		if m == valid {
			sizes = sv
		}
		if err := m.SetGroups(sizes); err != nil {
			t.Fatal(err)
		}
	}
	r := rand.New(rand.NewPCG(9, 9))
	random := 0.0
	const shuffles = 20
	for range shuffles {
		s := make([]float64, len(rv))
		for i := range s {
			s[i] = r.Float64()
		}
		random += ndcgAt(10, rv, sv, func(i int) float64 { return s[i] }) / shuffles
	}
	for _, objective := range []string{"rank:pairwise", "rank:ndcg"} {
		t.Run(objective, func(t *testing.T) {
			b, ev := train(t, d, valid, 30, params("objective", objective, "eval_metric", "ndcg@10"))
			p, err := b.Predict(valid, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			model := ndcgAt(10, rv, sv, func(i int) float64 { return float64(p[i]) })
			if model < random+0.15 {
				t.Errorf("held-out NDCG@10 %v, random orders %v: want at least 0.15 more", model, random)
			}
			if math.Abs(model-ev["valid-ndcg@10"]) > 1e-4 {
				t.Errorf("NDCG@10 %v, XGBoost's %v", model, ev["valid-ndcg@10"])
			}
			t.Logf("NDCG@10 %.3f, random orders %.3f", model, random)
		})
	}
}

// TestWeights trains on every row twice, once labelled 0 and once 1: the
// squared-error model predicts the weighted mean of the labels, so weights
// move its predictions from 0.5 to 0.75 or 0.25.
func TestWeights(t *testing.T) {
	const n = 500
	r := rand.New(rand.NewPCG(5, 5))
	half := uniform(r, n, 5)
	x := append(append([]float32{}, half...), half...)
	y := make([]float32, 2*n)
	for i := n; i < 2*n; i++ {
		y[i] = 1
	}
	for _, tc := range []struct {
		name         string
		w0, w1, want float64 // weights of the rows labelled 0 and 1; the mean prediction
	}{
		{"no weights", 0, 0, 0.5},
		{"ones weigh 3", 1, 3, 0.75},
		{"zeros weigh 3", 3, 1, 0.25},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newMatrix(t, x, 2*n, 5, y)
			if tc.w0 > 0 {
				w := make([]float32, 2*n)
				for i := range w {
					w[i] = float32(tc.w0)
					if i >= n {
						w[i] = float32(tc.w1)
					}
				}
				if err := d.SetWeights(w); err != nil {
					t.Fatal(err)
				}
			}
			b, _ := train(t, d, d, 30, params("objective", "reg:squarederror", "eval_metric", "rmse"))
			p, err := b.Predict(d, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			mean := 0.0
			for _, v := range p {
				mean += float64(v) / float64(len(p))
			}
			if math.Abs(mean-tc.want) > 0.01 {
				t.Errorf("mean prediction %v, want %v", mean, tc.want)
			}
		})
	}
}

// TestGroupsAndWeightsBadInput checks that bad groups and weights are
// refused with an error, as is setting them on a closed matrix.
func TestGroupsAndWeightsBadInput(t *testing.T) {
	x := make([]float32, 6*2)
	for _, tc := range []struct {
		name    string
		groups  []uint32 // set first when not nil
		weights []float32
		bad     string // "groups" or "weights": the call that must fail
	}{
		{"no group", []uint32{}, nil, "groups"},
		{"empty group", []uint32{3, 0, 3}, nil, "groups"},
		{"groups short of the rows", []uint32{2, 3}, nil, "groups"},
		{"groups beyond the rows", []uint32{4, 3}, nil, "groups"},
		{"weights short of the rows", nil, []float32{1, 1}, "weights"},
		{"negative weight", nil, []float32{1, 1, -1, 1, 1, 1}, "weights"},
		{"NaN weight", nil, []float32{1, 1, float32(math.NaN()), 1, 1, 1}, "weights"},
		{"infinite weight", nil, []float32{1, 1, float32(math.Inf(1)), 1, 1, 1}, "weights"},
		{"row weights with groups", []uint32{3, 3}, []float32{1, 1, 1, 1, 1, 1}, "weights"},
		{"group weights", []uint32{3, 3}, []float32{1, 2}, ""},
		{"row weights", nil, []float32{0, 1, 2, 3, 4, 5}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newMatrix(t, x, 6, 2, nil)
			if tc.groups != nil {
				err := d.SetGroups(tc.groups)
				if (err != nil) != (tc.bad == "groups") {
					t.Fatalf("SetGroups(%v): %v", tc.groups, err)
				}
			}
			if tc.weights != nil {
				err := d.SetWeights(tc.weights)
				if (err != nil) != (tc.bad == "weights") {
					t.Fatalf("SetWeights(%v): %v", tc.weights, err)
				}
			}
		})
	}
	// Row weights, then groups of another count, are refused too.
	d := newMatrix(t, x, 6, 2, nil)
	if err := d.SetWeights([]float32{1, 1, 1, 1, 1, 1}); err != nil {
		t.Fatal(err)
	}
	if err := d.SetGroups([]uint32{2, 4}); err == nil {
		t.Error("groups after row weights accepted")
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.SetGroups([]uint32{6}); !errors.Is(err, ErrClosed) {
		t.Errorf("SetGroups on a closed matrix: %v, want ErrClosed", err)
	}
	if err := d.SetWeights(make([]float32, 6)); !errors.Is(err, ErrClosed) {
		t.Errorf("SetWeights on a closed matrix: %v, want ErrClosed", err)
	}
}
