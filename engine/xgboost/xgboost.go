// Package xgboost is a small, safe cgo binding to XGBoost's C API (the OS
// package libxgboost-dev): dense matrices, boosting one round at a time,
// prediction over an iteration range and feature importance. Nothing is ever
// saved to disk. Callers own early stopping: predict on a validation matrix
// with Predict(valid, iter+1) after each round.
//
// A Booster is safe for concurrent use (calls are serialized); XGBoost's own
// boosters are not.
package xgboost

/*
#cgo LDFLAGS: -lxgboost
#include <stdlib.h>
#include <xgboost/c_api.h>
*/
import "C"

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"unsafe"
)

func lastError(op string) error {
	return fmt.Errorf("xgboost: %s: %s", op, C.GoString(C.XGBGetLastError()))
}

// Version returns the linked library's version.
func Version() string {
	var a, b, c C.int
	C.XGBoostVersion(&a, &b, &c)
	return fmt.Sprintf("%d.%d.%d", a, b, c)
}

// DMatrix is a dense matrix in XGBoost's memory.
type DMatrix struct {
	mu     sync.Mutex
	h      C.DMatrixHandle
	rows   int
	cols   int
	closed bool
}

// NewDMatrix copies a dense row-major matrix (NaN is missing) and, when
// labels is not nil, its labels into XGBoost.
func NewDMatrix(data []float32, rows, cols int, labels []float32) (*DMatrix, error) {
	if rows <= 0 || cols <= 0 {
		return nil, fmt.Errorf("xgboost: matrix of %d×%d: both must be positive", rows, cols)
	}
	if len(data) != rows*cols {
		return nil, fmt.Errorf("xgboost: %d values for a %d×%d matrix", len(data), rows, cols)
	}
	if labels != nil && len(labels) != rows {
		return nil, fmt.Errorf("xgboost: %d labels for %d rows", len(labels), rows)
	}
	var nan float32
	nanBits := uint32(0x7FC00000)
	nan = *(*float32)(unsafe.Pointer(&nanBits))
	d := &DMatrix{rows: rows, cols: cols}
	if C.XGDMatrixCreateFromMat((*C.float)(unsafe.Pointer(&data[0])), C.bst_ulong(rows), C.bst_ulong(cols), C.float(nan), &d.h) != 0 {
		return nil, lastError("create matrix")
	}
	if labels != nil {
		field := C.CString("label")
		defer C.free(unsafe.Pointer(field))
		if C.XGDMatrixSetFloatInfo(d.h, field, (*C.float)(unsafe.Pointer(&labels[0])), C.bst_ulong(rows)) != 0 {
			err := lastError("set labels")
			d.Close()
			return nil, err
		}
	}
	return d, nil
}

// Rows returns the row count.
func (d *DMatrix) Rows() int { return d.rows }

// Close frees the matrix; closing twice is safe.
func (d *DMatrix) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	if C.XGDMatrixFree(d.h) != 0 {
		return lastError("free matrix")
	}
	return nil
}

// Booster is a gradient-boosted model being trained.
type Booster struct {
	mu     sync.Mutex
	h      C.BoosterHandle
	closed bool
}

var errClosed = errors.New("xgboost: booster is closed")

// NewBooster creates a booster for the training matrix and sets params in
// sorted key order (deterministic).
func NewBooster(train *DMatrix, params map[string]string) (*Booster, error) {
	b := &Booster{}
	hs := []C.DMatrixHandle{train.h}
	if C.XGBoosterCreate(&hs[0], 1, &b.h) != 0 {
		return nil, lastError("create booster")
	}
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		ck, cv := C.CString(k), C.CString(params[k])
		rc := C.XGBoosterSetParam(b.h, ck, cv)
		C.free(unsafe.Pointer(ck))
		C.free(unsafe.Pointer(cv))
		if rc != 0 {
			err := lastError("set parameter " + k)
			b.Close()
			return nil, err
		}
	}
	return b, nil
}

// UpdateOneIter runs boosting round iter on train.
func (b *Booster) UpdateOneIter(iter int, train *DMatrix) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errClosed
	}
	if C.XGBoosterUpdateOneIter(b.h, C.int(iter), train.h) != 0 {
		return lastError(fmt.Sprintf("round %d", iter))
	}
	return nil
}

// Predict returns the predictions for d using trees [0, iterationEnd); 0
// means all trees. The result is copied out of XGBoost's memory.
func (b *Booster) Predict(d *DMatrix, iterationEnd int) ([]float32, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errClosed
	}
	cfg := C.CString(fmt.Sprintf(`{"type":0,"training":false,"iteration_begin":0,"iteration_end":%d,"strict_shape":false}`, iterationEnd))
	defer C.free(unsafe.Pointer(cfg))
	var shape *C.bst_ulong
	var dim C.bst_ulong
	var out *C.float
	if C.XGBoosterPredictFromDMatrix(b.h, d.h, cfg, &shape, &dim, &out) != 0 {
		return nil, lastError("predict")
	}
	n := 1
	for _, s := range unsafe.Slice(shape, int(dim)) {
		n *= int(s)
	}
	res := make([]float32, n)
	copy(res, unsafe.Slice((*float32)(unsafe.Pointer(out)), n))
	return res, nil
}

// FeatureImportance returns the importance (importanceType "gain", "weight",
// "cover", "total_gain" or "total_cover") of each feature used by the model,
// keyed by the given feature names.
func (b *Booster) FeatureImportance(featureNames []string, importanceType string) (map[string]float64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errClosed
	}
	cfgJSON, err := json.Marshal(map[string]any{"importance_type": importanceType, "feature_names": featureNames})
	if err != nil {
		return nil, err
	}
	cfg := C.CString(string(cfgJSON))
	defer C.free(unsafe.Pointer(cfg))
	var nFeat, dim C.bst_ulong
	var feats **C.char
	var shape *C.bst_ulong
	var scores *C.float
	if C.XGBoosterFeatureScore(b.h, cfg, &nFeat, &feats, &dim, &shape, &scores) != 0 {
		return nil, lastError("feature importance")
	}
	out := make(map[string]float64, int(nFeat))
	names := unsafe.Slice(feats, int(nFeat))
	vals := unsafe.Slice((*float32)(unsafe.Pointer(scores)), int(nFeat))
	for i := range names {
		out[C.GoString(names[i])] = float64(vals[i])
	}
	return out, nil
}

// Close frees the booster; closing twice is safe.
func (b *Booster) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	if C.XGBoosterFree(b.h) != 0 {
		return lastError("free booster")
	}
	return nil
}
