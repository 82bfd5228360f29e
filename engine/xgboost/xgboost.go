// Package xgboost is a small, safe cgo binding to XGBoost's C API (the OS
// package libxgboost-dev, 1.7 or later): dense matrices with labels, boosting
// one round at a time, evaluation, prediction over an iteration range and
// feature importance. Nothing is ever saved to disk: there is deliberately no
// save or load.
//
// Every C call checks its return code and turns XGBoost's last error into a
// Go error; the call and the error lookup run on one locked OS thread, since
// XGBoost keeps the last error per thread. Matrices and boosters are safe for
// concurrent use (XGBoost's own boosters are not: calls are serialized) and
// Close is idempotent; using a closed value is an error, never a crash.
//
// XGBoost 1.x keeps a booster's prediction cache (the margins of the
// matrices it trains and evaluates on) in thread-local storage and needs the
// training matrix cached on the calling thread before the first round. A
// Booster therefore runs every call on its own OS thread, owned by a
// goroutine that never unlocks it: Close frees the booster there and ends the
// goroutine, which ends the thread and, with it, the thread-local cache. No
// derived data of a job outlives its booster on another thread.
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
	"math"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unsafe"
)

// ErrClosed is returned when a closed matrix or booster is used.
var ErrClosed = errors.New("xgboost: use after close")

// call runs one C call on a locked OS thread and, when it fails, returns the
// thread's last XGBoost error wrapped with op.
func call(op string, f func() C.int) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if f() != 0 {
		return fmt.Errorf("xgboost: %s: %s", op, C.GoString(C.XGBGetLastError()))
	}
	return nil
}

// Version returns the linked library's version, e.g. "1.7.4".
func Version() string {
	var a, b, c C.int
	C.XGBoostVersion(&a, &b, &c)
	return fmt.Sprintf("%d.%d.%d", a, b, c)
}

// DMatrix is a dense matrix (and its labels) copied into XGBoost's memory.
type DMatrix struct {
	mu      sync.RWMutex
	h       C.DMatrixHandle
	rows    int
	cols    int
	closed  bool
	cleanup runtime.Cleanup
}

// NewDMatrix copies a dense row-major rows×cols matrix, in which NaN means
// missing, into XGBoost; when labels is not nil it also sets one label per
// row. The caller keeps ownership of data and labels (XGBoost copies them).
// Close frees the matrix; a matrix that becomes unreachable unclosed is freed
// by the garbage collector.
func NewDMatrix(data []float32, rows, cols int, labels []float32) (*DMatrix, error) {
	if rows <= 0 || cols <= 0 {
		return nil, fmt.Errorf("xgboost: matrix of %d×%d: both must be positive", rows, cols)
	}
	if rows > math.MaxInt32 || len(data)/rows != cols || len(data)%rows != 0 {
		return nil, fmt.Errorf("xgboost: %d values for a %d×%d matrix", len(data), rows, cols)
	}
	if labels != nil && len(labels) != rows {
		return nil, fmt.Errorf("xgboost: %d labels for %d rows", len(labels), rows)
	}
	d := &DMatrix{rows: rows, cols: cols}
	if err := call("create matrix", func() C.int {
		return C.XGDMatrixCreateFromMat((*C.float)(unsafe.Pointer(&data[0])), C.bst_ulong(rows), C.bst_ulong(cols),
			C.float(float32(math.NaN())), &d.h)
	}); err != nil {
		return nil, err
	}
	d.cleanup = runtime.AddCleanup(d, func(h C.DMatrixHandle) { C.XGDMatrixFree(h) }, d.h)
	if labels != nil {
		field := C.CString("label")
		defer C.free(unsafe.Pointer(field))
		if err := call("set labels", func() C.int {
			return C.XGDMatrixSetFloatInfo(d.h, field, (*C.float)(unsafe.Pointer(&labels[0])), C.bst_ulong(rows))
		}); err != nil {
			_ = d.Close()
			return nil, err
		}
	}
	return d, nil
}

// Rows returns the number of rows.
func (d *DMatrix) Rows() int { return d.rows }

// Cols returns the number of columns.
func (d *DMatrix) Cols() int { return d.cols }

// Close frees the matrix; closing twice is safe.
func (d *DMatrix) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	d.cleanup.Stop()
	return call("free matrix", func() C.int { return C.XGDMatrixFree(d.h) })
}

// use read-locks the matrices, so that none is freed while a C call uses it,
// and returns their handles and an unlock function; it fails if one is nil or
// closed.
func use(ds ...*DMatrix) ([]C.DMatrixHandle, func(), error) {
	hs := make([]C.DMatrixHandle, 0, len(ds))
	unlock := func() {
		for i := range hs {
			ds[i].mu.RUnlock()
		}
	}
	for _, d := range ds {
		if d == nil {
			unlock()
			return nil, nil, errors.New("xgboost: nil matrix")
		}
		d.mu.RLock()
		if d.closed {
			d.mu.RUnlock()
			unlock()
			return nil, nil, ErrClosed
		}
		hs = append(hs, d.h)
	}
	return hs, unlock, nil
}

// Booster is a gradient-boosted tree model in XGBoost's memory, served by a
// dedicated OS thread.
type Booster struct {
	mu      sync.Mutex // serializes calls; guards closed
	h       C.BoosterHandle
	closed  bool
	work    chan func()
	done    chan struct{}
	cleanup runtime.Cleanup
}

// boosterThread serves calls on one locked OS thread until work is closed.
// It never unlocks the thread, so the thread exits with it and XGBoost's
// thread-local state for the booster is destroyed.
func boosterThread(work <-chan func(), done chan<- struct{}) {
	runtime.LockOSThread()
	defer close(done)
	for f := range work {
		f()
	}
}

// freeBooster frees h on the booster's thread and stops the thread.
func freeBooster(h C.BoosterHandle, work chan func(), done <-chan struct{}) error {
	var err error
	ran := make(chan struct{})
	work <- func() {
		err = call("free booster", func() C.int { return C.XGBoosterFree(h) })
		close(ran)
	}
	<-ran
	close(work)
	<-done
	return err
}

// NewBooster creates a booster that trains on train and sets params in
// sorted key order (so that runs are reproducible). XGBoost checks most
// parameters when it configures itself, at the first round. Close frees it;
// a booster that becomes unreachable unclosed is freed by the garbage
// collector.
func NewBooster(train *DMatrix, params map[string]string) (*Booster, error) {
	hs, unlock, err := use(train)
	if err != nil {
		return nil, err
	}
	defer unlock()
	b := &Booster{work: make(chan func()), done: make(chan struct{})}
	go boosterThread(b.work, b.done)
	b.run(func() {
		err = call("create booster", func() C.int { return C.XGBoosterCreate(&hs[0], 1, &b.h) })
	})
	if err != nil {
		close(b.work)
		<-b.done
		return nil, err
	}
	b.cleanup = runtime.AddCleanup(b, func(s boosterState) { _ = freeBooster(s.h, s.work, s.done) },
		boosterState{h: b.h, work: b.work, done: b.done})
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := b.SetParam(k, params[k]); err != nil {
			_ = b.Close()
			return nil, err
		}
	}
	return b, nil
}

// boosterState is what the garbage-collection cleanup of a Booster needs.
type boosterState struct {
	h    C.BoosterHandle
	work chan func()
	done chan struct{}
}

// run runs f on the booster's thread and waits for it.
func (b *Booster) run(f func()) {
	ran := make(chan struct{})
	b.work <- func() {
		defer close(ran)
		f()
	}
	<-ran
}

// lock locks the booster for one call; it fails once the booster is closed.
func (b *Booster) lock() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	return nil
}

// SetParam sets one parameter, e.g. ("max_depth", "6").
func (b *Booster) SetParam(name, value string) error {
	if err := b.lock(); err != nil {
		return err
	}
	defer b.mu.Unlock()
	cn, cv := C.CString(name), C.CString(value)
	defer C.free(unsafe.Pointer(cn))
	defer C.free(unsafe.Pointer(cv))
	var err error
	b.run(func() { err = call("set parameter "+name, func() C.int { return C.XGBoosterSetParam(b.h, cn, cv) }) })
	return err
}

// UpdateOneIter runs boosting round iter (0-based) on train.
func (b *Booster) UpdateOneIter(iter int, train *DMatrix) error {
	hs, unlock, err := use(train)
	if err != nil {
		return err
	}
	defer unlock()
	if err := b.lock(); err != nil {
		return err
	}
	defer b.mu.Unlock()
	b.run(func() {
		err = call(fmt.Sprintf("round %d", iter), func() C.int { return C.XGBoosterUpdateOneIter(b.h, C.int(iter), hs[0]) })
	})
	return err
}

// EvalSet names a matrix to evaluate.
type EvalSet struct {
	Name   string
	Matrix *DMatrix
}

// EvalOneIter evaluates the model after round iter on each set with the
// booster's eval_metric parameters and returns the figures keyed
// "<set>-<metric>", e.g. "valid-auc". Set names must not contain white space
// or ':'.
func (b *Booster) EvalOneIter(iter int, sets ...EvalSet) (map[string]float64, error) {
	if len(sets) == 0 {
		return nil, errors.New("xgboost: evaluate: no matrix")
	}
	ms := make([]*DMatrix, len(sets))
	for i, s := range sets {
		if s.Name == "" || strings.ContainsAny(s.Name, " \t\n:") {
			return nil, fmt.Errorf("xgboost: evaluate: bad set name %q", s.Name)
		}
		ms[i] = s.Matrix
	}
	hs, unlock, err := use(ms...)
	if err != nil {
		return nil, err
	}
	defer unlock()
	// A Go slice of C pointers may be passed to C (it holds no Go pointer).
	names := make([]*C.char, len(sets))
	for i, s := range sets {
		names[i] = C.CString(s.Name)
		defer C.free(unsafe.Pointer(names[i]))
	}
	if err := b.lock(); err != nil {
		return nil, err
	}
	defer b.mu.Unlock()
	var text string
	b.run(func() {
		var out *C.char
		err = call(fmt.Sprintf("evaluate round %d", iter), func() C.int {
			return C.XGBoosterEvalOneIter(b.h, C.int(iter), &hs[0], &names[0], C.bst_ulong(len(sets)), &out)
		})
		if err == nil {
			text = C.GoString(out)
		}
	})
	if err != nil {
		return nil, err
	}
	return ParseEval(text)
}

// ParseEval parses XGBoost's evaluation line, "[3]\tvalid-auc:0.91\t…", into
// figures keyed "valid-auc". A figure XGBoost prints as nan or inf is kept as
// such.
func ParseEval(s string) (map[string]float64, error) {
	fields := strings.Fields(s)
	if len(fields) == 0 || !strings.HasPrefix(fields[0], "[") || !strings.HasSuffix(fields[0], "]") {
		return nil, fmt.Errorf("xgboost: evaluation %q: no [round] prefix", s)
	}
	out := make(map[string]float64, len(fields)-1)
	for _, f := range fields[1:] {
		i := strings.LastIndexByte(f, ':')
		if i <= 0 {
			return nil, fmt.Errorf("xgboost: evaluation %q: field %q is not name:value", s, f)
		}
		v, err := strconv.ParseFloat(f[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("xgboost: evaluation %q: field %q: %w", s, f, err)
		}
		out[f[:i]] = v
	}
	return out, nil
}

// Predict returns one prediction per row of d (a probability for
// binary:logistic) from the trees of rounds [begin, end); end 0 means up to
// the last round. The result is copied out of XGBoost's memory.
func (b *Booster) Predict(d *DMatrix, begin, end int) ([]float32, error) {
	if begin < 0 || end < 0 || (end != 0 && end <= begin) {
		return nil, fmt.Errorf("xgboost: predict: bad iteration range [%d, %d)", begin, end)
	}
	hs, unlock, err := use(d)
	if err != nil {
		return nil, err
	}
	defer unlock()
	cfg := C.CString(fmt.Sprintf(`{"type":0,"training":false,"iteration_begin":%d,"iteration_end":%d,"strict_shape":false}`, begin, end))
	defer C.free(unsafe.Pointer(cfg))
	if err := b.lock(); err != nil {
		return nil, err
	}
	defer b.mu.Unlock()
	var res []float32
	b.run(func() {
		// The result lives in the booster's thread-local buffer: copy it out
		// on this thread, before the next call.
		var shape *C.bst_ulong
		var dim C.bst_ulong
		var out *C.float
		err = call("predict", func() C.int { return C.XGBoosterPredictFromDMatrix(b.h, hs[0], cfg, &shape, &dim, &out) })
		if err != nil {
			return
		}
		n := 1
		for _, s := range unsafe.Slice(shape, int(dim)) {
			n *= int(s)
		}
		if n != d.rows {
			err = fmt.Errorf("xgboost: predict: %d outputs for %d rows (a multi-output objective is not supported)", n, d.rows)
			return
		}
		res = make([]float32, n)
		copy(res, unsafe.Slice((*float32)(unsafe.Pointer(out)), n))
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// FeatureImportance returns the importance of each feature the model uses,
// keyed by the given feature names (one per column); importanceType is
// "gain", "weight", "cover", "total_gain" or "total_cover". Features no tree
// splits on are absent.
func (b *Booster) FeatureImportance(featureNames []string, importanceType string) (map[string]float64, error) {
	cfgJSON, err := json.Marshal(map[string]any{"importance_type": importanceType, "feature_names": featureNames})
	if err != nil {
		return nil, fmt.Errorf("xgboost: feature importance: %w", err)
	}
	cfg := C.CString(string(cfgJSON))
	defer C.free(unsafe.Pointer(cfg))
	if err := b.lock(); err != nil {
		return nil, err
	}
	defer b.mu.Unlock()
	out := map[string]float64{}
	b.run(func() {
		var nFeat, dim C.bst_ulong
		var feats **C.char
		var shape *C.bst_ulong
		var scores *C.float
		err = call("feature importance", func() C.int {
			return C.XGBoosterFeatureScore(b.h, cfg, &nFeat, &feats, &dim, &shape, &scores)
		})
		if err != nil || nFeat == 0 {
			return
		}
		names := unsafe.Slice(feats, int(nFeat))
		vals := unsafe.Slice((*float32)(unsafe.Pointer(scores)), int(nFeat))
		for i := range names {
			out[C.GoString(names[i])] = float64(vals[i])
		}
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Close frees the booster and ends its thread; closing twice is safe.
func (b *Booster) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	b.cleanup.Stop()
	return freeBooster(b.h, b.work, b.done)
}
