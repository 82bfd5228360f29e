package metrics_test

import (
	"fmt"

	"github.com/ferry-ai/ferry/engine/metrics"
)

func ExampleAUROC() {
	labels := []float32{0, 0, 1, 1}
	scores := []float64{0.1, 0.4, 0.35, 0.8}
	fmt.Printf("AUROC %.2f, AP %.3f, threshold %.2f\n",
		metrics.AUROC(labels, scores), metrics.AveragePrecision(labels, scores), metrics.BestF1Threshold(labels, scores))
	// Output: AUROC 0.75, AP 0.833, threshold 0.35
}

func ExampleROCCurve() {
	// 200 test rows: every fourth a positive, scored higher on average.
	labels := make([]float32, 200)
	scores := make([]float64, 200)
	for i := range labels {
		scores[i] = float64(i%50) / 50
		if i%4 == 0 {
			labels[i] = 1
			scores[i] += 0.3
		}
	}
	pts, err := metrics.ROCCurve(labels, scores, metrics.MaxCurvePoints)
	if err != nil {
		fmt.Println(err)
		return
	}
	area := 0.0
	for i := 1; i < len(pts); i++ {
		area += (pts[i].FPR - pts[i-1].FPR) * (pts[i].TPR + pts[i-1].TPR) / 2
	}
	first, last := pts[0], pts[len(pts)-1]
	fmt.Printf("%d points from (%v,%v) to (%v,%v); area %.3f, AUROC %.3f\n",
		len(pts), first.FPR, first.TPR, last.FPR, last.TPR, area, metrics.AUROC(labels, scores))
	_, err = metrics.ROCCurve(labels[:20], scores[:20], metrics.MaxCurvePoints)
	fmt.Println(err)
	// Output:
	// 29 points from (0,0) to (1,1); area 0.744, AUROC 0.745
	// metrics: too few rows for a plot: 20 test rows, at least 50 needed
}

func ExampleResidualHistogram() {
	// 100 predictions off by -2..+2, and one far outlier: the bounds are
	// the residuals 5 rows in from each end, the outlier (and the residuals
	// of 2, the last bin including its upper bound) counted in the last bin.
	pred := make([]float64, 101)
	actual := make([]float32, 101)
	for i := range 100 {
		actual[i] = 10
		pred[i] = 10 + float64(i%5) - 2
	}
	pred[100] = 1e6
	bins, err := metrics.ResidualHistogram(pred, actual, 4)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, b := range bins {
		fmt.Printf("[%v, %v): %d\n", b.Lower, b.Upper, b.Count)
	}
	// Output:
	// [-2, -1): 20
	// [-1, 0): 20
	// [0, 1): 20
	// [1, 2): 41
}
