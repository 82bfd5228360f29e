package fakeagent

import (
	"math"

	"github.com/ferry-ai/ferry/controlplane/agentapi"
)

// rocCurve is a plausible ROC curve of AUROC about auroc in 41 points, the
// binormal model's: scores of negatives N(0,1), of positives N(d,1), with
// d = √2·Φ⁻¹(auroc), so TPR = Φ(d + Φ⁻¹(FPR)); the threshold is a
// probability falling from 1 to 0.
func rocCurve(auroc float64) []*agentapi.CurvePoint {
	const n = 40
	phi := func(z float64) float64 { return 0.5 * (1 + math.Erf(z/math.Sqrt2)) }
	probit := func(p float64) float64 { return math.Sqrt2 * math.Erfinv(2*p-1) }
	d := math.Sqrt2 * probit(auroc)
	pts := make([]*agentapi.CurvePoint, 0, n+1)
	for i := 0; i <= n; i++ {
		fpr := float64(i) / n
		tpr := fpr // 0 and 1 at the ends
		if i > 0 && i < n {
			tpr = phi(d + probit(fpr))
		}
		pts = append(pts, &agentapi.CurvePoint{Threshold: 1 - fpr, FalsePositiveRate: fpr, TruePositiveRate: tpr})
	}
	return pts
}
