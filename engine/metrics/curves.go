package metrics

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
)

// The plots (ROCCurve, ResidualHistogram) leave the engine as metadata, so
// they are aggregates by construction: no point or bin may stand for one
// test row.
const (
	// MinPlotRows is the smallest test split a plot is drawn from; with
	// fewer rows the functions return ErrTooFewRows and the engine reports
	// no plot (a curve over a handful of rows would list their scores).
	MinPlotRows = 50
	// MinRowsPerStep is the fewest test rows between two consecutive
	// points of a ROC curve (a point moves only after at least this many
	// more rows are predicted positive), and the fewest rows per bin of a
	// residual histogram on average (bins are capped at rows/MinRowsPerStep).
	MinRowsPerStep = 5
	// MaxCurvePoints is the most points the engine reports for a ROC curve.
	MaxCurvePoints = 101
	// HistogramBins is how many bins the engine reports for residuals (at
	// most; see ResidualHistogram).
	HistogramBins = 30
)

// Errors of the plot functions.
var (
	ErrTooFewRows = errors.New("metrics: too few rows for a plot")
	ErrOneClass   = errors.New("metrics: a ROC curve needs both classes")
	ErrNotFinite  = errors.New("metrics: a NaN or infinite value")
	ErrLength     = errors.New("metrics: lengths differ")
)

// CurvePoint is one point of a ROC curve: predicting positive when the score
// is at least Threshold gives false positive rate FPR and true positive rate
// TPR.
type CurvePoint struct {
	Threshold, FPR, TPR float64
}

// ROCCurve returns the ROC curve of scores against labels (a label > 0 is
// positive) with at most maxPoints points (at least 2), by falling
// threshold from (0,0) to (1,1). The first point's threshold is just above
// the highest score, the last's the lowest score; the others are test
// scores at which the curve is cut (quantiles of the score distribution).
//
// The exact curve has a vertex per distinct score (tied scores form one
// diagonal step, as in AUROC). Vertices are kept evenly by class-balanced
// rank, FPR+TPR, which runs from 0 to 2: a vertex is kept when that sum
// reaches the next multiple of 2/(maxPoints-1), and at least MinRowsPerStep
// rows lie between it and the previous point and the end. Each dropped
// stretch of the staircase lies in the box between two kept points, so the
// trapezoid area of the result differs from AUROC by at most half the sum of
// those boxes' areas: about 1/(2(maxPoints-1)) in the worst case, and far
// less on real scores.
//
// It returns ErrLength, ErrTooFewRows (fewer than MinPlotRows rows),
// ErrNotFinite (a NaN label or a NaN or infinite score) or ErrOneClass.
func ROCCurve(labels []float32, scores []float64, maxPoints int) ([]CurvePoint, error) {
	if len(labels) != len(scores) {
		return nil, fmt.Errorf("%w: %d labels, %d scores", ErrLength, len(labels), len(scores))
	}
	if len(labels) < MinPlotRows {
		return nil, fmt.Errorf("%w: %d test rows, at least %d needed", ErrTooFewRows, len(labels), MinPlotRows)
	}
	return rocCurve(labels, scores, maxPoints, MinRowsPerStep)
}

// rocCurve is ROCCurve without the floor on rows; minStep is the fewest rows
// between kept points.
func rocCurve(labels []float32, scores []float64, maxPoints, minStep int) ([]CurvePoint, error) {
	if len(labels) != len(scores) {
		return nil, fmt.Errorf("%w: %d labels, %d scores", ErrLength, len(labels), len(scores))
	}
	if maxPoints < 2 {
		return nil, fmt.Errorf("metrics: a ROC curve of at most %d points: need at least 2", maxPoints)
	}
	for i, s := range scores {
		if math.IsNaN(s) || math.IsInf(s, 0) || math.IsNaN(float64(labels[i])) {
			return nil, fmt.Errorf("%w: row %d", ErrNotFinite, i)
		}
	}
	ps := sorted(labels, scores, true)
	var pos, neg float64
	for _, p := range ps {
		if p.l > 0 {
			pos++
		} else {
			neg++
		}
	}
	if pos == 0 || neg == 0 {
		return nil, fmt.Errorf("%w: %v positive and %v negative rows", ErrOneClass, pos, neg)
	}
	n := len(ps)
	top := math.Nextafter(ps[0].s, math.Inf(1))
	if math.IsInf(top, 1) {
		top = ps[0].s
	}
	out := []CurvePoint{{Threshold: top}}
	segments := float64(maxPoints - 1)
	next := 1.0 // the multiple of 2/segments the next kept vertex must reach
	lastRows := 0
	var tp, fp float64
	for i := 0; i < n; {
		j := i
		for j < n && ps[j].s == ps[i].s {
			if ps[j].l > 0 {
				tp++
			} else {
				fp++
			}
			j++
		}
		if j == n {
			break // the last vertex, (1,1), is added below
		}
		fpr, tpr := fp/neg, tp/pos
		if arc := (fpr + tpr) * segments / 2; arc >= next && j-lastRows >= minStep && n-j >= minStep {
			out = append(out, CurvePoint{Threshold: ps[i].s, FPR: fpr, TPR: tpr})
			lastRows = j
			next = math.Floor(arc) + 1
		}
		i = j
	}
	return append(out, CurvePoint{Threshold: ps[n-1].s, FPR: 1, TPR: 1}), nil
}

// Bin counts values in [Lower, Upper); the last bin of a histogram includes
// Upper.
type Bin struct {
	Lower, Upper float64
	Count        int64
}

// ResidualHistogram returns the histogram of residuals, pred[i] minus
// actual[i], in at most bins equal-width bins (fewer when there are fewer
// than MinRowsPerStep rows per bin on average).
//
// The bins span robust bounds, not the extreme residuals: the residuals of
// rank k from either end, k being 1 % of the rows but at least
// MinRowsPerStep (for 1,000 rows or more, about the 1st and 99th
// percentiles). Residuals beyond the bounds are counted in the end bins, so
// the counts sum to the rows and no single outlier's value is shown. When
// the bounds coincide (nearly every residual is the same), the histogram is
// one bin [v, v] holding every row.
//
// It returns ErrLength, ErrTooFewRows (fewer than MinPlotRows rows) or
// ErrNotFinite (a NaN or infinite prediction or actual).
func ResidualHistogram(pred []float64, actual []float32, bins int) ([]Bin, error) {
	if len(pred) != len(actual) {
		return nil, fmt.Errorf("%w: %d predictions, %d actual values", ErrLength, len(pred), len(actual))
	}
	if len(pred) < MinPlotRows {
		return nil, fmt.Errorf("%w: %d test rows, at least %d needed", ErrTooFewRows, len(pred), MinPlotRows)
	}
	return residualHistogram(pred, actual, bins, MinRowsPerStep)
}

// residualHistogram is ResidualHistogram without the floor on rows; minStep
// is the fewest rows per bin on average and beyond each bound.
func residualHistogram(pred []float64, actual []float32, bins, minStep int) ([]Bin, error) {
	if len(pred) != len(actual) {
		return nil, fmt.Errorf("%w: %d predictions, %d actual values", ErrLength, len(pred), len(actual))
	}
	if bins < 1 {
		return nil, fmt.Errorf("metrics: a histogram of %d bins: need at least 1", bins)
	}
	n := len(pred)
	if n == 0 {
		return nil, fmt.Errorf("%w: no rows", ErrTooFewRows)
	}
	r := make([]float64, n)
	for i, p := range pred {
		r[i] = p - float64(actual[i])
		if math.IsNaN(r[i]) || math.IsInf(r[i], 0) {
			return nil, fmt.Errorf("%w: row %d", ErrNotFinite, i)
		}
	}
	sorted := slices.Clone(r)
	sort.Float64s(sorted)
	k := min(max(n/100, minStep), (n-1)/2)
	lo, hi := sorted[k], sorted[n-1-k]
	clear(sorted)
	if minStep > 0 {
		bins = max(1, min(bins, n/minStep))
	}
	if !(hi > lo) {
		return []Bin{{Lower: lo, Upper: lo, Count: int64(n)}}, nil
	}
	width := (hi - lo) / float64(bins)
	if math.IsInf(hi-lo, 0) {
		return nil, fmt.Errorf("%w: the residuals' range overflows", ErrNotFinite)
	}
	out := make([]Bin, bins)
	for j := range out {
		out[j].Lower = lo + float64(j)*width
		out[j].Upper = lo + float64(j+1)*width
	}
	out[bins-1].Upper = hi
	for _, v := range r {
		f := math.Floor((v - lo) / width)
		j := bins - 1
		if f < float64(bins-1) {
			j = max(0, int(max(f, -1)))
		}
		out[j].Count++
	}
	clear(r)
	return out, nil
}
