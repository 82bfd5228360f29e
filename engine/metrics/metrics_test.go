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
