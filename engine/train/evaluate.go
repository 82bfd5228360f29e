package train

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"math"
	"slices"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferry-ai/ferry/engine/metrics"
	"github.com/ferry-ai/ferry/engine/plan"
	"github.com/ferry-ai/ferry/engine/pql"
	"github.com/ferry-ai/ferry/internal/link"
)

// evaluateAndScore computes the validation and test metrics of the model
// and of the baselines, and the predictions at the scoring anchor.
func evaluateAndScore(tt *trainingTable, m *model, keyName string, keyType arrow.DataType, mem memory.Allocator) (link.TrainResult, arrow.RecordBatch, error) {
	res := link.TrainResult{
		TrainRows: tt.train.rows, ValidationRows: tt.val.rows, TestRows: tt.test.rows,
		NumFeatures: tt.cols, BestIteration: m.best, FeatureImportance: m.importance,
		PredictionRows: tt.score.rows, Classes: len(tt.classes), ParameterSets: m.tried,
	}
	var pv, pt, ps []float64
	defer func() { clear(pv); clear(pt); clear(ps) }()
	var err error
	if pv, err = m.predict(tt.val, tt.cols); err != nil {
		return res, nil, fmt.Errorf("score validation: %w", err)
	}
	if pt, err = m.predict(tt.test, tt.cols); err != nil {
		return res, nil, fmt.Errorf("score test: %w", err)
	}
	if ps, err = m.predict(tt.score, tt.cols); err != nil {
		return res, nil, fmt.Errorf("score: %w", err)
	}
	if len(ps) > 0 {
		res.ScoringAnchor = time.UnixMicro(tt.score.anchor[0]).UTC()
	}
	switch tt.task {
	case pql.TaskBinaryClassification:
		rate := 0.0
		for _, y := range tt.train.y {
			rate += float64(y)
		}
		res.TrainPositives = int(rate)
		rate /= float64(tt.train.rows)
		res.Threshold = metrics.BestF1Threshold(tt.val.y, pv)
		res.Validation = binaryMetrics(tt.val.y, pv, res.Threshold)
		res.Test = binaryMetrics(tt.test.y, pt, res.Threshold)
		constant := make([]float64, tt.test.rows)
		for i := range constant {
			constant[i] = rate
		}
		res.BaselineLabelRate = binaryMetrics(tt.test.y, constant, 0.5)
		res.BaselineRecentCount = binaryMetrics(tt.test.y, orElse(tt.test.base, rate), 0.5)
		pos := 0.0
		for _, y := range tt.test.y {
			pos += float64(y)
		}
		res.TestPositiveRate = pos / float64(tt.test.rows)
		res.ROC = rocCurve(tt.test.y, pt)
	case pql.TaskRegression:
		mean := 0.0
		for _, y := range tt.train.y {
			mean += float64(y)
		}
		mean /= float64(tt.train.rows)
		res.Validation = regressionMetrics(tt.val.y, pv)
		res.Test = regressionMetrics(tt.test.y, pt)
		res.Residuals = residualHistogram(tt.test.y, pt)
		constant := make([]float64, tt.test.rows)
		for i := range constant {
			constant[i] = mean
		}
		res.BaselineLabelRate = regressionMetrics(tt.test.y, constant)
		res.BaselineRecentCount = regressionMetrics(tt.test.y, orElse(tt.test.base, mean))
	case pql.TaskMulticlassClassification:
		k := len(tt.classes)
		counts := make([]int, k)
		for _, y := range tt.train.y {
			counts[int(y)]++
		}
		majority := float64(slices.Index(counts, slices.Max(counts)))
		res.Validation = metricsAccuracy(tt.val.y, argmax(pv, k))
		res.Test = metricsAccuracy(tt.test.y, argmax(pt, k))
		constant := make([]float64, tt.test.rows)
		for i := range constant {
			constant[i] = majority
		}
		res.BaselineLabelRate = metricsAccuracy(tt.test.y, constant)
		res.BaselineRecentCount = metricsAccuracy(tt.test.y, orElse(tt.test.base, majority))
	}
	preds, err := predictionBatch(tt, ps, keyName, keyType, res.Threshold, mem)
	if err != nil {
		return res, nil, err
	}
	return res, preds, nil
}

// orElse returns v with NaN replaced by d.
func orElse(v []float64, d float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		if math.IsNaN(x) {
			x = d
		}
		out[i] = x
	}
	return out
}

func binaryMetrics(y []float32, p []float64, threshold float64) link.Metrics {
	correct := 0
	for i, s := range p {
		if (s >= threshold) == (y[i] > 0) {
			correct++
		}
	}
	return link.Metrics{AUROC: metrics.AUROC(y, p), AveragePrecision: metrics.AveragePrecision(y, p), Accuracy: float64(correct) / float64(len(y))}
}

// rocCurve is the test split's ROC curve, nil when metrics.ROCCurve refuses
// it (too few rows, one class, a NaN score): the plot is optional.
func rocCurve(y []float32, p []float64) []link.CurvePoint {
	pts, err := metrics.ROCCurve(y, p, metrics.MaxCurvePoints)
	if err != nil {
		return nil
	}
	out := make([]link.CurvePoint, len(pts))
	for i, c := range pts {
		out[i] = link.CurvePoint{Threshold: c.Threshold, FalsePositiveRate: c.FPR, TruePositiveRate: c.TPR}
	}
	return out
}

// residualHistogram is the test split's histogram of residuals, nil when
// metrics.ResidualHistogram refuses it.
func residualHistogram(y []float32, p []float64) []link.HistogramBin {
	bins, err := metrics.ResidualHistogram(p, y, metrics.HistogramBins)
	if err != nil {
		return nil
	}
	out := make([]link.HistogramBin, len(bins))
	for i, b := range bins {
		out[i] = link.HistogramBin{Lower: b.Lower, Upper: b.Upper, Count: b.Count}
	}
	return out
}

func regressionMetrics(y []float32, p []float64) link.Metrics {
	var abs, sq float64
	for i, v := range p {
		d := v - float64(y[i])
		abs += math.Abs(d)
		sq += d * d
	}
	n := float64(len(y))
	return link.Metrics{MAE: abs / n, RMSE: math.Sqrt(sq / n)}
}

// metricsAccuracy is the share of rows whose predicted class is the label
// (a label of -1, a class unseen in training, is never predicted).
func metricsAccuracy(y []float32, pred []float64) link.Metrics {
	correct := 0
	for i, c := range pred {
		if y[i] >= 0 && float32(c) == y[i] {
			correct++
		}
	}
	return link.Metrics{Accuracy: float64(correct) / float64(len(y))}
}

// argmax turns rows of k class probabilities into class indexes.
func argmax(p []float64, k int) []float64 {
	out := make([]float64, len(p)/k)
	for i := range out {
		row := p[i*k : (i+1)*k]
		out[i] = float64(slices.Index(row, slices.Max(row)))
	}
	return out
}

// predictionBatch builds the output batch: entity key (in its source type),
// anchor time, score and predicted class (see Output).
func predictionBatch(tt *trainingTable, p []float64, keyName string, keyType arrow.DataType, threshold float64, mem memory.Allocator) (arrow.RecordBatch, error) {
	fields := []arrow.Field{
		{Name: keyName, Type: keyType},
		{Name: link.ColAnchorTime, Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}},
		{Name: link.ColScore, Type: arrow.PrimitiveTypes.Float64},
	}
	switch tt.task {
	case pql.TaskBinaryClassification:
		fields = append(fields, arrow.Field{Name: link.ColPredictedClass, Type: arrow.FixedWidthTypes.Boolean})
	case pql.TaskMulticlassClassification:
		fields = append(fields, arrow.Field{Name: link.ColPredictedClass, Type: arrow.BinaryTypes.String})
	}
	schema := arrow.NewSchema(fields, nil)
	keys, err := scoreKeys(tt, keyType, mem)
	if err != nil {
		return nil, err
	}
	defer keys.Release()
	// The keys come from the plan; the rest is built here.
	b := array.NewRecordBuilder(mem, arrow.NewSchema(fields[1:], nil))
	defer b.Release()
	ab := b.Field(0).(*array.TimestampBuilder)
	sb := b.Field(1).(*array.Float64Builder)
	k := max(1, len(tt.classes))
	for i := 0; i < tt.score.rows; i++ {
		ab.Append(arrow.Timestamp(tt.score.anchor[i]))
		switch tt.task {
		case pql.TaskBinaryClassification:
			sb.Append(p[i])
			b.Field(2).(*array.BooleanBuilder).Append(p[i] >= threshold)
		case pql.TaskMulticlassClassification:
			row := p[i*k : (i+1)*k]
			c := slices.Index(row, slices.Max(row))
			sb.Append(row[c])
			b.Field(2).(*array.StringBuilder).Append(tt.classes[c])
		default:
			sb.Append(p[i])
		}
	}
	rest := b.NewRecordBatch()
	defer rest.Release()
	cols := append([]arrow.Array{keys}, rest.Columns()...)
	return array.NewRecordBatch(schema, cols, int64(tt.score.rows)), nil
}

// scoreKeys returns the score rows' keys in the source key's type.
func scoreKeys(tt *trainingTable, keyType arrow.DataType, mem memory.Allocator) (arrow.Array, error) {
	if tt.score.keys == nil {
		b := array.NewBuilder(mem, keyType)
		defer b.Release()
		return b.NewArray(), nil
	}
	if arrow.TypeEqual(tt.score.keys.DataType(), keyType) {
		tt.score.keys.Retain()
		return tt.score.keys, nil
	}
	ctx := compute.WithAllocator(context.Background(), mem)
	out, err := compute.CastArray(ctx, tt.score.keys, compute.SafeCastOptions(keyType))
	if err != nil {
		return nil, fmt.Errorf("entity keys from %s to %s: %w", tt.score.keys.DataType(), keyType, err)
	}
	return out, nil
}

// modelID derives a stable model identifier from the job, the anchors, the
// feature names, the parameters and the training and validation data (a
// fingerprint of the inputs the model is a function of).
func modelID(jobID string, anchors []plan.Anchor, tt *trainingTable, m *model) string {
	h := sha256.New()
	writeStr := func(s string) {
		_ = binary.Write(h, binary.LittleEndian, int64(len(s)))
		h.Write([]byte(s))
	}
	writeStr(jobID)
	for _, a := range anchors {
		_ = binary.Write(h, binary.LittleEndian, a.Time.UnixMicro())
		writeStr(string(a.Split))
	}
	for _, n := range tt.names {
		writeStr(n)
	}
	keys := make([]string, 0, len(m.params))
	for k := range m.params {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		writeStr(k + "=" + m.params[k])
	}
	for _, s := range []*split{tt.train, tt.val} {
		hashFloats(h, s.x)
		hashFloats(h, s.y)
	}
	return "m-" + hex.EncodeToString(h.Sum(nil))[:12]
}

// hashFloats writes the bits of v to h (NaN payloads included).
func hashFloats(h hash.Hash, v []float32) {
	var buf [4096]byte
	n := 0
	for _, f := range v {
		binary.LittleEndian.PutUint32(buf[n:], math.Float32bits(f))
		n += 4
		if n == len(buf) {
			h.Write(buf[:n])
			n = 0
		}
	}
	h.Write(buf[:n])
	clear(buf[:])
}
