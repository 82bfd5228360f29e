package metrics

import (
	"math"
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
	if !math.IsNaN(AUROC([]float32{1, 1}, []float64{0.1, 0.2})) || !math.IsNaN(AveragePrecision([]float32{0, 0}, []float64{0.1, 0.2})) {
		t.Error("one-class input must give NaN")
	}
}
