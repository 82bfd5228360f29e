// Package metrics computes model-evaluation figures for binary labels (a
// label > 0 is positive): AUROC, average precision and the F1-optimal
// threshold. Each function takes labels and scores of equal length and
// returns NaN (or a documented default) when the figure is undefined; a NaN
// score ranks below every other score.
//
// It also draws the plots the console shows, as aggregates fit to leave the
// engine: a binary classifier's ROC curve (ROCCurve) and a regression's
// residual histogram (ResidualHistogram), each refused below MinPlotRows
// test rows, with at least MinRowsPerStep rows between two points of a curve
// and per histogram bin on average (see the functions).
package metrics

import (
	"math"
	"sort"
)

type pair struct {
	s float64
	l float32
}

// sorted pairs labels with scores (NaN as -Inf) in score order.
func sorted(labels []float32, scores []float64, desc bool) []pair {
	ps := make([]pair, len(labels))
	for i := range labels {
		s := scores[i]
		if math.IsNaN(s) {
			s = math.Inf(-1)
		}
		ps[i] = pair{s, labels[i]}
	}
	sort.SliceStable(ps, func(i, j int) bool {
		if desc {
			return ps[i].s > ps[j].s
		}
		return ps[i].s < ps[j].s
	})
	return ps
}

// AUROC is the area under the ROC curve (the Mann–Whitney statistic; tied
// scores get their average rank). It is NaN when only one class is present
// or the lengths differ.
func AUROC(labels []float32, scores []float64) float64 {
	if len(labels) != len(scores) {
		return math.NaN()
	}
	ps := sorted(labels, scores, false)
	var pos, neg, rankSum float64
	for i := 0; i < len(ps); {
		j := i
		for j < len(ps) && ps[j].s == ps[i].s {
			j++
		}
		avg := float64(i+j+1) / 2 // ranks i+1..j
		for k := i; k < j; k++ {
			if ps[k].l > 0 {
				pos++
				rankSum += avg
			} else {
				neg++
			}
		}
		i = j
	}
	if pos == 0 || neg == 0 {
		return math.NaN()
	}
	return (rankSum - pos*(pos+1)/2) / (pos * neg)
}

// sweep visits the distinct thresholds from the highest score down, calling
// fn with the threshold, the positives and rows at or above it, and the total
// positives. It returns false when there is no positive.
func sweep(labels []float32, scores []float64, fn func(threshold, tp, seen, total float64)) bool {
	if len(labels) != len(scores) {
		return false
	}
	ps := sorted(labels, scores, true)
	var total float64
	for _, p := range ps {
		if p.l > 0 {
			total++
		}
	}
	if total == 0 {
		return false
	}
	var tp, seen float64
	for i := 0; i < len(ps); {
		j := i
		for j < len(ps) && ps[j].s == ps[i].s {
			if ps[j].l > 0 {
				tp++
			}
			seen++
			j++
		}
		fn(ps[i].s, tp, seen, total)
		i = j
	}
	return true
}

// AveragePrecision is the sum over distinct thresholds, from the highest
// score down, of the recall gained times the precision there (tied scores
// form one threshold). It is NaN when there is no positive or the lengths
// differ.
func AveragePrecision(labels []float32, scores []float64) float64 {
	var ap, prevRecall float64
	if !sweep(labels, scores, func(_, tp, seen, total float64) {
		recall := tp / total
		ap += (recall - prevRecall) * (tp / seen)
		prevRecall = recall
	}) {
		return math.NaN()
	}
	return ap
}

// BestF1Threshold returns the threshold t, one of the scores, that maximizes
// the F1 score of predicting positive when score >= t (the highest such t on
// a tie); 0.5 when there is no positive or the lengths differ.
func BestF1Threshold(labels []float32, scores []float64) float64 {
	best, bestT := -1.0, 0.5
	sweep(labels, scores, func(t, tp, seen, total float64) {
		if f1 := 2 * tp / (seen + total); f1 > best {
			best, bestT = f1, t
		}
	})
	return bestT
}
