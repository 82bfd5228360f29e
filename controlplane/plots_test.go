package controlplane_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"math"
	"slices"
	"testing"

	"github.com/ferry-ai/ferry/controlplane/agentapi"
	"github.com/ferry-ai/ferry/controlplane/api"
	"github.com/ferry-ai/ferry/controlplane/metadb"
	"github.com/ferry-ai/ferry/controlplane/metadb/metadbtest"
)

// gcmSealer seals with AES-GCM under a key of the test's own: a customer key
// without Vault.
type gcmSealer struct{ aead cipher.AEAD }

func newGCMSealer(t *testing.T) gcmSealer {
	t.Helper()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	b, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	aead, err := cipher.NewGCM(b)
	if err != nil {
		t.Fatal(err)
	}
	return gcmSealer{aead}
}

func (s gcmSealer) Seal(_ context.Context, p, aad []byte) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize())
	_, _ = rand.Read(nonce)
	return s.aead.Seal(nonce, nonce, p, aad), nil
}

func (s gcmSealer) Open(_ context.Context, e, aad []byte) ([]byte, error) {
	if len(e) < s.aead.NonceSize() {
		return nil, errors.New("short envelope")
	}
	return s.aead.Open(nil, e[:s.aead.NonceSize()], e[s.aead.NonceSize():], aad)
}

// TestModelPlots reports a binary classifier's ROC curve and a regression's
// residual histogram in TrainMetrics events and reads them back in GET
// /v1/jobs/{id}, in plaintext (on the suite's database) and sealed under a
// customer key (on SQLite, whose file is then searched for the plots'
// field names). A plot the engine would not draw (too many points, too few
// test rows, a falling or out-of-range rate, a NaN, a negative count) is
// dropped and the rest of the report kept.
func TestModelPlots(t *testing.T) {
	roc := []*agentapi.CurvePoint{
		{Threshold: 0.97, FalsePositiveRate: 0, TruePositiveRate: 0},
		{Threshold: 0.8, FalsePositiveRate: 0.05, TruePositiveRate: 0.4},
		{Threshold: 0.55, FalsePositiveRate: 0.2, TruePositiveRate: 0.75},
		{Threshold: 0.3, FalsePositiveRate: 0.5, TruePositiveRate: 0.95},
		{Threshold: 0.01, FalsePositiveRate: 1, TruePositiveRate: 1},
	}
	residuals := []*agentapi.HistogramBin{
		{Lower: -12.5, Upper: -5, Count: 20}, {Lower: -5, Upper: 2.5, Count: 90}, {Lower: 2.5, Upper: 10, Count: 30}, {Lower: 10, Upper: 17.5, Count: 10},
	}
	binary := func(pts []*agentapi.CurvePoint, testRows int64) *agentapi.TrainMetrics {
		return &agentapi.TrainMetrics{ModelId: "m-b", TaskType: "binary_classification", Test: &agentapi.Metric{Auroc: 0.84, AveragePrecision: 0.5},
			TrainRows: 700, ValidationRows: 150, TestRows: testRows, Roc: pts}
	}
	regression := func(bins []*agentapi.HistogramBin) *agentapi.TrainMetrics {
		return &agentapi.TrainMetrics{ModelId: "m-r", TaskType: "regression", Test: &agentapi.Metric{Mae: 3.5, Rmse: 5.25},
			TrainRows: 700, ValidationRows: 150, TestRows: 150, Residuals: bins}
	}
	changed := func(pts []*agentapi.CurvePoint, i int, f func(p *agentapi.CurvePoint)) []*agentapi.CurvePoint {
		out := make([]*agentapi.CurvePoint, len(pts))
		for j, p := range pts {
			out[j] = &agentapi.CurvePoint{Threshold: p.Threshold, FalsePositiveRate: p.FalsePositiveRate, TruePositiveRate: p.TruePositiveRate}
		}
		f(out[i])
		return out
	}
	long := make([]*agentapi.CurvePoint, 102)
	for i := range long {
		r := float64(i) / 101
		long[i] = &agentapi.CurvePoint{Threshold: 1 - r, FalsePositiveRate: r, TruePositiveRate: r}
	}
	wantROC := make([]api.CurvePoint, len(roc))
	for i, p := range roc {
		wantROC[i] = api.CurvePoint{Threshold: p.Threshold, FalsePositiveRate: p.FalsePositiveRate, TruePositiveRate: p.TruePositiveRate}
	}
	wantResiduals := make([]api.HistogramBin, len(residuals))
	for i, b := range residuals {
		wantResiduals[i] = api.HistogramBin{Lower: b.Lower, Upper: b.Upper, Count: b.Count}
	}

	for _, sealed := range []bool{false, true} {
		name := "plaintext"
		opts := harnessOptions{}
		if sealed {
			name, opts.sealer, opts.sqlite = "sealed", newGCMSealer(t), true
		}
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			h := startHarness(t, opts)
			a := h.connectAgent(true)
			// run has the agent report m for a new job, which succeeds.
			run := func(m *agentapi.TrainMetrics) *api.Model {
				t.Helper()
				j, err := h.client.Submit(ctx, testQuery, "plot_predictions")
				if err != nil {
					t.Fatal(err)
				}
				if asg := a.recv().GetAssignment(); asg.GetJobId() != j.ID {
					t.Fatalf("assignment %v, want job %s", asg, j.ID)
				}
				h.waitState(j.ID, api.StateAssigned)
				a.event(j.ID, agentapi.JobState_JOB_STATE_READING, nil)
				a.event(j.ID, agentapi.JobState_JOB_STATE_TRAINING, func(ev *agentapi.JobEvent) {
					ev.Detail = &agentapi.JobEvent_Metrics{Metrics: m}
				})
				a.event(j.ID, agentapi.JobState_JOB_STATE_WRITING, nil)
				a.event(j.ID, agentapi.JobState_JOB_STATE_SUCCEEDED, nil)
				d := h.waitState(j.ID, api.StateSucceeded)
				if d.Model == nil || d.Model.ModelID != m.ModelId || d.Model.Test == nil || d.Model.TestRows != m.TestRows || d.Unreadable != nil {
					t.Fatalf("model %+v (unreadable %+v), want the report of %s", d.Model, d.Unreadable, m.ModelId)
				}
				return d.Model
			}

			if m := run(binary(roc, 150)); !slices.Equal(m.ROC, wantROC) || m.Residuals != nil || m.Test.AUROC != 0.84 {
				t.Errorf("binary classifier: ROC %+v, residuals %+v; want ROC %+v", m.ROC, m.Residuals, wantROC)
			}
			if m := run(regression(residuals)); !slices.Equal(m.Residuals, wantResiduals) || m.ROC != nil || m.Test.MAE != 3.5 {
				t.Errorf("regression: residuals %+v, ROC %+v; want residuals %+v", m.Residuals, m.ROC, wantResiduals)
			}
			if !sealed && metadbtest.FromEnv() == metadb.SQLite && !bytes.Contains(dbBytes(t, h.dataDir), []byte(`"false_positive_rate":0.05`)) {
				t.Error("the plaintext database file holds no ROC point: the search below would prove nothing")
			}
			if sealed {
				for _, s := range []string{"false_positive_rate", "true_positive_rate", "threshold", `"lower"`, `"upper"`, `"residuals"`, `"roc"`} {
					if bytes.Contains(dbBytes(t, h.dataDir), []byte(s)) {
						t.Errorf("the sealed database file holds %s in clear", s)
					}
				}
			}

			for _, tc := range []struct {
				name string
				m    *agentapi.TrainMetrics
			}{
				{"102 points", binary(long, 150)},
				{"49 test rows", binary(roc, 49)},
				{"falling rate", binary(changed(roc, 2, func(p *agentapi.CurvePoint) { p.TruePositiveRate = 0.3 }), 150)},
				{"rate above 1", binary(changed(roc, 3, func(p *agentapi.CurvePoint) { p.FalsePositiveRate = 1.5 }), 150)},
				{"NaN threshold", binary(changed(roc, 1, func(p *agentapi.CurvePoint) { p.Threshold = math.NaN() }), 150)},
				{"infinite bound", regression([]*agentapi.HistogramBin{{Lower: math.Inf(-1), Upper: 0, Count: 100}, {Lower: 0, Upper: 1, Count: 50}})},
				{"reversed bin", regression([]*agentapi.HistogramBin{{Lower: 1, Upper: 0, Count: 150}})},
				{"negative count", regression([]*agentapi.HistogramBin{{Lower: 0, Upper: 1, Count: 151}, {Lower: 1, Upper: 2, Count: -1}})},
			} {
				t.Run(tc.name, func(t *testing.T) {
					if m := run(tc.m); m.ROC != nil || m.Residuals != nil {
						t.Errorf("kept ROC %+v, residuals %+v; want the plot dropped", m.ROC, m.Residuals)
					}
				})
			}
		})
	}
}
