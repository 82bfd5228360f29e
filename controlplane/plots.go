package controlplane

import (
	"math"

	"github.com/ferry-ai/ferry/controlplane/agentapi"
	"github.com/ferry-ai/ferry/controlplane/api"
)

// The plots a model report may carry: the engine draws them from at least
// minPlotRows test rows (engine/metrics), a ROC curve of at most
// maxCurvePoints points and a histogram of at most maxHistogramBins bins.
const (
	minPlotRows      = 50
	maxCurvePoints   = 101
	maxHistogramBins = 100
)

// rocFromProto returns a report's ROC curve, nil when there is none or it is
// not one the engine draws (too many points, too few test rows, a rate
// outside [0, 1] or falling, a non-finite threshold): the plot is dropped,
// the rest of the report kept.
func rocFromProto(m *agentapi.TrainMetrics) []api.CurvePoint {
	pts := m.GetRoc()
	if len(pts) == 0 || len(pts) > maxCurvePoints || m.GetTestRows() < minPlotRows {
		return nil
	}
	out := make([]api.CurvePoint, len(pts))
	for i, p := range pts {
		c := api.CurvePoint{Threshold: p.GetThreshold(), FalsePositiveRate: p.GetFalsePositiveRate(), TruePositiveRate: p.GetTruePositiveRate()}
		if math.IsNaN(c.Threshold) || math.IsInf(c.Threshold, 0) || !(c.FalsePositiveRate >= 0 && c.FalsePositiveRate <= 1) ||
			!(c.TruePositiveRate >= 0 && c.TruePositiveRate <= 1) ||
			(i > 0 && (c.FalsePositiveRate < out[i-1].FalsePositiveRate || c.TruePositiveRate < out[i-1].TruePositiveRate)) {
			return nil
		}
		out[i] = c
	}
	return out
}

// residualsFromProto returns a report's residual histogram, nil when there
// is none or it is not one the engine draws (too many bins, too few test
// rows, a non-finite or reversed bound, a negative count).
func residualsFromProto(m *agentapi.TrainMetrics) []api.HistogramBin {
	bins := m.GetResiduals()
	if len(bins) == 0 || len(bins) > maxHistogramBins || m.GetTestRows() < minPlotRows {
		return nil
	}
	out := make([]api.HistogramBin, len(bins))
	for i, b := range bins {
		h := api.HistogramBin{Lower: b.GetLower(), Upper: b.GetUpper(), Count: b.GetCount()}
		if math.IsNaN(h.Lower) || math.IsInf(h.Lower, 0) || math.IsNaN(h.Upper) || math.IsInf(h.Upper, 0) || h.Upper < h.Lower || h.Count < 0 {
			return nil
		}
		out[i] = h
	}
	return out
}
