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
