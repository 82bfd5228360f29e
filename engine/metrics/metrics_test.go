package metrics

import (
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestMetrics(t *testing.T) {
	for _, tc := range []struct {
		name      string
		labels    []float32
		scores    []float64
		auroc, ap float64
		threshold float64
	}{
		{"perfect", []float32{0, 0, 1, 1}, []float64{0.1, 0.2, 0.8, 0.9}, 1, 1, 0.8},
		{"inverted", []float32{1, 1, 0, 0}, []float64{0.1, 0.2, 0.8, 0.9}, 0, 5.0 / 12, 0.1}, // AP = 1/2*1/3 + 1/2*2/4
		// One swapped pair out of four: AUROC 3/4. AP: ranks 0.8(1) 0.4(0) 0.35(1) 0.1(0):
		// 1/2*1 + 1/2*2/3 = 5/6.
		{"one swap", []float32{0, 1, 0, 1}, []float64{0.1, 0.35, 0.4, 0.8}, 0.75, 5.0 / 6, 0.35}, // F1 at 0.35 is 4/5, at 0.8 only 2/3
		// All scores tied: AUROC 0.5, AP = positive rate.
		{"all tied", []float32{0, 1, 0, 1, 0}, []float64{0.3, 0.3, 0.3, 0.3, 0.3}, 0.5, 0.4, 0.3},
		// A positive tied with a negative counts half.
		{"tie across classes", []float32{0, 1, 1}, []float64{0.5, 0.5, 0.9}, 0.75, 1.0/2*1 + 1.0/2*2/3, 0.5},
		// Ranks by score: 0.1(0)=1, 0.2(1)=2, 0.3(0)=3.5, 0.3(1)=3.5, 0.6(1)=5, 0.9(0)=6.
		// Positive rank sum 10.5; AUROC = (10.5 - 3*4/2) / (3*3) = 0.5.
		// AP from the top: 0.9 -> tp 0/1; 0.6 -> 1/2 (recall 1/3, precision 1/2);
		// 0.3 tie -> 2/4 (recall 2/3, precision 1/2); 0.2 -> 3/5 (recall 1, precision 3/5).
		// AP = 1/3*1/2 + 1/3*1/2 + 1/3*3/5 = 8/15. F1 = 2tp/(seen+3): 0.6 -> 2/5, 0.3 -> 4/7, 0.2 -> 6/8 (best), 0.1 -> 6/9.
		{"six with a tie", []float32{0, 1, 0, 1, 1, 0}, []float64{0.1, 0.2, 0.3, 0.3, 0.6, 0.9}, 0.5, 8.0 / 15, 0.2},
		// A NaN score ranks lowest.
		{"nan score", []float32{1, 0, 0}, []float64{0.9, math.NaN(), 0.5}, 1, 1, 0.9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := AUROC(tc.labels, tc.scores); math.Abs(got-tc.auroc) > 1e-12 {
				t.Errorf("AUROC = %v, want %v", got, tc.auroc)
			}
			if got := AveragePrecision(tc.labels, tc.scores); math.Abs(got-tc.ap) > 1e-12 {
				t.Errorf("AP = %v, want %v", got, tc.ap)
			}
			if got := BestF1Threshold(tc.labels, tc.scores); got != tc.threshold {
				t.Errorf("threshold = %v, want %v", got, tc.threshold)
			}
		})
	}
	for _, tc := range []struct {
		name   string
		labels []float32
		scores []float64
	}{
		{"only positives", []float32{1, 1}, []float64{0.1, 0.2}},
		{"only negatives", []float32{0, 0}, []float64{0.1, 0.2}},
		{"empty", nil, nil},
		{"length mismatch", []float32{0, 1}, []float64{0.1}},
	} {
		auc, ap := AUROC(tc.labels, tc.scores), AveragePrecision(tc.labels, tc.scores)
		if !math.IsNaN(auc) || (tc.name != "only positives" && !math.IsNaN(ap)) {
			t.Errorf("%s: AUROC %v, AP %v, want NaN", tc.name, auc, ap)
		}
		if tc.name != "only positives" && BestF1Threshold(tc.labels, tc.scores) != 0.5 {
			t.Errorf("%s: threshold %v, want 0.5", tc.name, BestF1Threshold(tc.labels, tc.scores))
		}
	}
}

// area is the trapezoid area under a curve.
func area(pts []CurvePoint) float64 {
	a := 0.0
	for i := 1; i < len(pts); i++ {
		a += (pts[i].FPR - pts[i-1].FPR) * (pts[i].TPR + pts[i-1].TPR) / 2
	}
	return a
}

// checkCurve checks what every ROC curve must be: from (0,0) to (1,1), rates
// non-decreasing and thresholds non-increasing, at most maxPoints points.
func checkCurve(t *testing.T, pts []CurvePoint, maxPoints int) {
	t.Helper()
	if len(pts) < 2 || len(pts) > maxPoints {
		t.Fatalf("%d points, want 2..%d", len(pts), maxPoints)
	}
	if first, last := pts[0], pts[len(pts)-1]; first.FPR != 0 || first.TPR != 0 || last.FPR != 1 || last.TPR != 1 {
		t.Fatalf("curve runs from (%v,%v) to (%v,%v), want (0,0) to (1,1)", first.FPR, first.TPR, last.FPR, last.TPR)
	}
	for i := 1; i < len(pts); i++ {
		p, q := pts[i-1], pts[i]
		if q.FPR < p.FPR || q.TPR < p.TPR || q.Threshold > p.Threshold {
			t.Fatalf("point %d %+v after %+v: rates must not fall nor the threshold rise", i, q, p)
		}
		if math.IsNaN(q.Threshold) || math.IsInf(q.Threshold, 0) {
			t.Fatalf("point %d: threshold %v", i, q.Threshold)
		}
	}
}

func TestROCCurveExact(t *testing.T) {
	// The "six with a tie" case of TestMetrics, by falling score: 0.9(0),
	// 0.6(1), 0.3(0 and 1, one diagonal step), 0.2(1), 0.1(0); 3 positives,
	// 3 negatives, AUROC 1/2.
	labels := []float32{0, 1, 0, 1, 1, 0}
	scores := []float64{0.1, 0.2, 0.3, 0.3, 0.6, 0.9}
	top := math.Nextafter(0.9, 2)
	for _, tc := range []struct {
		name               string
		maxPoints, minStep int
		want               []CurvePoint
	}{
		{"every vertex", 101, 1, []CurvePoint{{top, 0, 0}, {0.9, 1. / 3, 0}, {0.6, 1. / 3, 1. / 3}, {0.3, 2. / 3, 2. / 3}, {0.2, 2. / 3, 1}, {0.1, 1, 1}}},
		// Three points: one cut where FPR+TPR first reaches 1.
		{"three points", 3, 1, []CurvePoint{{top, 0, 0}, {0.3, 2. / 3, 2. / 3}, {0.1, 1, 1}}},
		// Two rows at least between points: the cuts after 0.6 (2 rows) and 0.3 (4 rows).
		{"two rows a step", 101, 2, []CurvePoint{{top, 0, 0}, {0.6, 1. / 3, 1. / 3}, {0.3, 2. / 3, 2. / 3}, {0.1, 1, 1}}},
		{"endpoints only", 2, 1, []CurvePoint{{top, 0, 0}, {0.1, 1, 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := rocCurve(labels, scores, tc.maxPoints, tc.minStep)
			if err != nil {
				t.Fatal(err)
			}
			checkCurve(t, got, tc.maxPoints)
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for i := range got {
				if math.Abs(got[i].FPR-tc.want[i].FPR) > 1e-15 || math.Abs(got[i].TPR-tc.want[i].TPR) > 1e-15 || got[i].Threshold != tc.want[i].Threshold {
					t.Fatalf("point %d: got %+v, want %+v", i, got[i], tc.want[i])
				}
			}
			if tc.name != "endpoints only" && math.Abs(area(got)-0.5) > 1e-15 {
				t.Errorf("area %v, want AUROC 0.5", area(got))
			}
		})
	}
	// Below MinPlotRows the exported function refuses.
	if _, err := ROCCurve(labels, scores, MaxCurvePoints); !errors.Is(err, ErrTooFewRows) {
		t.Errorf("6 rows: err %v, want ErrTooFewRows", err)
	}
}

func TestROCCurveRandom(t *testing.T) {
	for _, tc := range []struct {
		name   string
		n      int
		rate   float64 // positive rate
		signal float64 // how far positives' scores are shifted up
		round  float64 // scores rounded to multiples of this (ties); 0: none
	}{
		{"minimum rows", MinPlotRows, 0.3, 1, 0},
		{"two hundred", 200, 0.5, 0.5, 0},
		{"thousand weak", 1000, 0.2, 0.2, 0},
		{"thousand strong", 1000, 0.4, 3, 0},
		{"rare positives", 20000, 0.02, 1.5, 0},
		{"no signal", 5000, 0.5, 0, 0},
		{"heavy ties", 5000, 0.3, 1, 0.5},
		{"inverted", 3000, 0.3, -1, 0},
		{"perfect", 3000, 0.3, 100, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(tc.n), 7))
			labels := make([]float32, tc.n)
			scores := make([]float64, tc.n)
			for i := range labels {
				s := rng.NormFloat64()
				if rng.Float64() < tc.rate {
					labels[i] = 1
					s += tc.signal
				}
				if tc.round > 0 {
					s = math.Round(s/tc.round) * tc.round
				}
				scores[i] = 1 / (1 + math.Exp(-s))
			}
			labels[0], labels[1] = 0, 1 // both classes
			pts, err := ROCCurve(labels, scores, MaxCurvePoints)
			if err != nil {
				t.Fatal(err)
			}
			checkCurve(t, pts, MaxCurvePoints)
			auc := AUROC(labels, scores)
			if d := math.Abs(area(pts) - auc); d > 0.005 {
				t.Errorf("trapezoid area %.5f, AUROC %.5f: off by %.5f", area(pts), auc, d)
			}
			if tc.n >= 1000 && tc.round == 0 && tc.signal < 100 && len(pts) < 60 {
				t.Errorf("only %d points from %d distinct scores", len(pts), tc.n)
			}
			// No point stands for fewer than MinRowsPerStep rows.
			prev := 0
			for i, p := range pts[1:] {
				above := 0
				for _, s := range scores {
					if s >= p.Threshold {
						above++
					}
				}
				if above-prev < MinRowsPerStep {
					t.Errorf("point %d (threshold %v) adds %d rows to the previous, fewer than %d", i+1, p.Threshold, above-prev, MinRowsPerStep)
				}
				prev = above
			}
			t.Logf("%d points, area %.5f, AUROC %.5f", len(pts), area(pts), auc)
		})
	}
}

func TestROCCurveDegenerate(t *testing.T) {
	n := MinPlotRows
	alternating := func() []float32 { // labels 0, 1, 0, 1, ...
		l := make([]float32, n)
		for i := range l {
			l[i] = float32(i % 2)
		}
		return l
	}
	ones := slices.Repeat([]float32{1}, n)
	nanScore, infScore, nanLabel := make([]float64, n), make([]float64, n), alternating()
	nanScore[7], infScore[3], nanLabel[9] = math.NaN(), math.Inf(1), float32(math.NaN())
	for _, tc := range []struct {
		name   string
		labels []float32
		scores []float64
		err    error
	}{
		{"length mismatch", make([]float32, n), make([]float64, n+1), ErrLength},
		{"too few rows", make([]float32, n-1), make([]float64, n-1), ErrTooFewRows},
		{"empty", nil, nil, ErrTooFewRows},
		{"only negatives", make([]float32, n), make([]float64, n), ErrOneClass},
		{"only positives", ones, make([]float64, n), ErrOneClass},
		{"NaN score", alternating(), nanScore, ErrNotFinite},
		{"infinite score", alternating(), infScore, ErrNotFinite},
		{"NaN label", nanLabel, make([]float64, n), ErrNotFinite},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pts, err := ROCCurve(tc.labels, tc.scores, MaxCurvePoints)
			if !errors.Is(err, tc.err) || pts != nil {
				t.Fatalf("got %v, %v; want error %v", pts, err, tc.err)
			}
			t.Log(err)
		})
	}
	scores := make([]float64, n)
	for i := range scores {
		scores[i] = float64(i)
	}
	if _, err := ROCCurve(alternating(), scores, 1); err == nil {
		t.Error("a curve of 1 point: no error")
	}
	// Constant predictions: one diagonal step, area 1/2 like AUROC.
	constant := slices.Repeat([]float64{0.25}, n)
	pts, err := ROCCurve(alternating(), constant, MaxCurvePoints)
	if err != nil {
		t.Fatal(err)
	}
	checkCurve(t, pts, MaxCurvePoints)
	if len(pts) != 2 || area(pts) != 0.5 || AUROC(alternating(), constant) != 0.5 {
		t.Errorf("constant scores: %v (area %v), want the diagonal", pts, area(pts))
	}
}

// checkHistogram checks counts sum to n and bins are contiguous.
func checkHistogram(t *testing.T, bins []Bin, n int) {
	t.Helper()
	var sum int64
	for i, b := range bins {
		sum += b.Count
		if b.Count < 0 || !(b.Upper >= b.Lower) || math.IsInf(b.Lower, 0) || math.IsInf(b.Upper, 0) {
			t.Fatalf("bin %d: %+v", i, b)
		}
		if i > 0 && bins[i-1].Upper != b.Lower {
			t.Fatalf("bin %d starts at %v, the previous ends at %v", i, b.Lower, bins[i-1].Upper)
		}
	}
	if sum != int64(n) {
		t.Fatalf("counts sum to %d, want %d", sum, n)
	}
}

func TestResidualHistogram(t *testing.T) {
	t.Run("hand", func(t *testing.T) {
		// Residuals 0, 1, 2, 3 in 3 bins of width 1 over [min, max] (no
		// rows kept beyond the bounds): [0,1) 1, [1,2) 1, [2,3] 2.
		got, err := residualHistogram([]float64{1, 2, 3, 4}, []float32{1, 1, 1, 1}, 3, 0)
		if err != nil {
			t.Fatal(err)
		}
		want := []Bin{{0, 1, 1}, {1, 2, 1}, {2, 3, 2}}
		if !slices.Equal(got, want) {
			t.Fatalf("got %v, want %v", got, want)
		}
	})
	for _, tc := range []struct {
		name     string
		n, bins  int
		wantBins int
		gen      func(rng *rand.Rand, i int) (pred float64, actual float32)
		check    func(t *testing.T, bins []Bin)
	}{
		{"normal", 10000, HistogramBins, HistogramBins, func(rng *rand.Rand, i int) (float64, float32) {
			a := float32(rng.Float64() * 100)
			return float64(a) + 2*rng.NormFloat64() + 1, a
		}, func(t *testing.T, b []Bin) {
			// The bounds are about the 1st and 99th percentiles of N(1, 2):
			// 1 ∓ 2·2.326.
			if lo, hi := b[0].Lower, b[len(b)-1].Upper; math.Abs(lo-(1-4.65)) > 0.3 || math.Abs(hi-(1+4.65)) > 0.3 {
				t.Errorf("bounds [%v, %v], want about [-3.65, 5.65]", lo, hi)
			}
		}},
		{"fewest rows", MinPlotRows, HistogramBins, MinPlotRows / MinRowsPerStep, func(rng *rand.Rand, i int) (float64, float32) {
			return rng.NormFloat64(), 0
		}, nil},
		{"outliers folded", 1000, HistogramBins, HistogramBins, func(rng *rand.Rand, i int) (float64, float32) {
			if i < 3 {
				return 1e9, 0
			}
			return rng.Float64(), 0
		}, func(t *testing.T, b []Bin) {
			if last := b[len(b)-1]; last.Upper > 1 || last.Count < 3 {
				t.Errorf("last bin %+v: want the outliers folded in below 1", last)
			}
		}},
		{"constant predictions", 500, HistogramBins, HistogramBins, func(rng *rand.Rand, i int) (float64, float32) {
			return 3, float32(i % 10)
		}, nil},
		{"all residuals equal", 500, HistogramBins, 1, func(rng *rand.Rand, i int) (float64, float32) {
			return float64(i) + 0.5, float32(i)
		}, func(t *testing.T, b []Bin) {
			if b[0].Lower != 0.5 || b[0].Upper != 0.5 {
				t.Errorf("bin %+v, want [0.5, 0.5]", b[0])
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(tc.n), 3))
			pred, actual := make([]float64, tc.n), make([]float32, tc.n)
			for i := range pred {
				pred[i], actual[i] = tc.gen(rng, i)
			}
			bins, err := ResidualHistogram(pred, actual, tc.bins)
			if err != nil {
				t.Fatal(err)
			}
			checkHistogram(t, bins, tc.n)
			if len(bins) != tc.wantBins {
				t.Errorf("%d bins, want %d", len(bins), tc.wantBins)
			}
			if len(bins) > 1 {
				w := bins[0].Upper - bins[0].Lower
				for i, b := range bins {
					if math.Abs((b.Upper-b.Lower)-w) > 1e-9*math.Max(1, math.Abs(w)) {
						t.Errorf("bin %d width %v, bin 0 %v", i, b.Upper-b.Lower, w)
					}
				}
			}
			if tc.check != nil {
				tc.check(t, bins)
			}
		})
	}
	for _, tc := range []struct {
		name   string
		pred   []float64
		actual []float32
		bins   int
		err    error
	}{
		{"length mismatch", make([]float64, 60), make([]float32, 61), 30, ErrLength},
		{"too few rows", make([]float64, MinPlotRows-1), make([]float32, MinPlotRows-1), 30, ErrTooFewRows},
		{"NaN prediction", append(make([]float64, 59), math.NaN()), make([]float32, 60), 30, ErrNotFinite},
		{"NaN actual", make([]float64, 60), append(make([]float32, 59), float32(math.NaN())), 30, ErrNotFinite},
		{"infinite prediction", append(make([]float64, 59), math.Inf(-1)), make([]float32, 60), 30, ErrNotFinite},
		{"overflowing range", append(slices.Repeat([]float64{-math.MaxFloat64}, 30), slices.Repeat([]float64{math.MaxFloat64}, 30)...),
			make([]float32, 60), 30, ErrNotFinite},
		{"no bins", make([]float64, 60), make([]float32, 60), 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bins, err := ResidualHistogram(tc.pred, tc.actual, tc.bins)
			if err == nil || bins != nil || (tc.err != nil && !errors.Is(err, tc.err)) {
				t.Fatalf("got %v, %v; want error %v", bins, err, tc.err)
			}
			t.Log(err)
		})
	}
}

// floats decodes data as 9-byte records: a label byte and a float64.
func floats(data []byte) ([]float32, []float64) {
	var labels []float32
	var values []float64
	for len(data) >= 9 {
		labels = append(labels, float32(data[0]%3)-0.5) // -0.5, 0.5, 1.5
		values = append(values, math.Float64frombits(binary.LittleEndian.Uint64(data[1:9])))
		data = data[9:]
	}
	return labels, values
}

func FuzzROCCurve(f *testing.F) {
	f.Add([]byte{}, 101, 1)
	f.Add(slices.Concat([]byte{0}, binary.LittleEndian.AppendUint64(nil, math.Float64bits(0.2)),
		[]byte{1}, binary.LittleEndian.AppendUint64(nil, math.Float64bits(0.7)),
		[]byte{1}, binary.LittleEndian.AppendUint64(nil, math.Float64bits(0.7))), 3, 1)
	f.Fuzz(func(t *testing.T, data []byte, maxPoints, minStep int) {
		labels, scores := floats(data)
		minStep = max(0, minStep%8)
		maxPoints %= 200
		pts, err := rocCurve(labels, scores, maxPoints, minStep)
		if err != nil {
			if pts != nil {
				t.Fatalf("points with an error: %v", err)
			}
			return
		}
		checkCurve(t, pts, maxPoints)
		if a := area(pts); a < -1e-12 || a > 1+1e-12 {
			t.Fatalf("area %v", a)
		}
		// With 2n segments every vertex moves FPR+TPR by at least one
		// segment's 2/(2n), so each is kept: the exact curve.
		if maxPoints > 2*len(scores) && minStep <= 1 && math.Abs(area(pts)-AUROC(labels, scores)) > 1e-9 {
			t.Fatalf("every vertex kept, yet area %v differs from AUROC %v", area(pts), AUROC(labels, scores))
		}
	})
}

func FuzzResidualHistogram(f *testing.F) {
	f.Add([]byte{}, 30, 5)
	f.Add(slices.Concat([]byte{0}, binary.LittleEndian.AppendUint64(nil, math.Float64bits(2)),
		[]byte{1}, binary.LittleEndian.AppendUint64(nil, math.Float64bits(-1e300))), 3, 0)
	f.Fuzz(func(t *testing.T, data []byte, bins, minStep int) {
		actual, pred := floats(data)
		minStep = max(0, minStep%8)
		bins %= 100
		hist, err := residualHistogram(pred, actual, bins, minStep)
		if err != nil {
			if hist != nil {
				t.Fatalf("bins with an error: %v", err)
			}
			return
		}
		checkHistogram(t, hist, len(pred))
		if len(hist) > max(1, bins) {
			t.Fatalf("%d bins, at most %d asked", len(hist), bins)
		}
	})
}
