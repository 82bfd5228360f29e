// Package xgboost is a small, safe cgo binding to XGBoost's C API (the OS
// package libxgboost-dev, 1.7 or later): dense matrices with labels, instance
// weights and query groups, boosting one round at a time with any XGBoost
// objective (binary:logistic, multi:softprob, reg:squarederror, rank:ndcg,
// …), evaluation, prediction over an iteration range, feature importance and
// the choice of device (DeviceParams).
//
// Models are kept in memory only: SaveModel serializes a booster into a byte
// slice and LoadBooster makes a booster from one, and neither touches the
// disk. There is deliberately no save to or load from a file: where a model
// is stored is the caller's business.
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

// BuildInfo returns how the linked library was built, as XGBoost reports it:
// e.g. "USE_CUDA" is true for a library that can train on a GPU, "USE_OPENMP"
// for one that trains on several threads.
func BuildInfo() (map[string]any, error) {
	var text string
	if err := call("build info", func() C.int {
		// The string may be XGBoost's per-thread buffer: copy it here.
		var out *C.char
		rc := C.XGBuildInfo(&out)
		if rc == 0 {
			text = C.GoString(out)
		}
		return rc
	}); err != nil {
		return nil, err
	}
	info := map[string]any{}
	if err := json.Unmarshal([]byte(text), &info); err != nil {
		return nil, fmt.Errorf("xgboost: build info: %w", err)
	}
	return info, nil
}

// DMatrix is a dense matrix, with its labels, weights and query groups,
// copied into XGBoost's memory.
type DMatrix struct {
	mu      sync.RWMutex // write-locked to free or change the matrix
	h       C.DMatrixHandle
	rows    int
	cols    int
	groups  int // number of query groups, 0 without; guarded by mu
	weights int // number of weights, 0 without; guarded by mu
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

// SetWeights sets the instance weights, finite and non-negative: one per row
// or, once the matrix has query groups (SetGroups), one per group, since
// XGBoost's ranking objectives weigh whole groups. A row (or group) of weight
// w counts as w copies of it in training and in the evaluation metrics.
// Calling it again replaces the weights.
func (d *DMatrix) SetWeights(weights []float32) error {
	for i, w := range weights {
		if !(w >= 0) || math.IsInf(float64(w), 1) {
			return fmt.Errorf("xgboost: weight %d is %v: weights must be finite and non-negative", i, w)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	if d.groups > 0 && len(weights) != d.groups {
		return fmt.Errorf("xgboost: %d weights for %d query groups: a matrix with groups takes one weight per group", len(weights), d.groups)
	}
	if d.groups == 0 && len(weights) != d.rows {
		return fmt.Errorf("xgboost: %d weights for %d rows", len(weights), d.rows)
	}
	field := C.CString("weight")
	defer C.free(unsafe.Pointer(field))
	if err := call("set weights", func() C.int {
		return C.XGDMatrixSetFloatInfo(d.h, field, (*C.float)(unsafe.Pointer(&weights[0])), C.bst_ulong(len(weights)))
	}); err != nil {
		return err
	}
	d.weights = len(weights)
	return nil
}

// SetGroups sets the query groups of a learning-to-rank matrix: group i is
// the next sizes[i] rows, in row order, so every size must be positive and
// the sizes must sum to Rows(). Ranking objectives (rank:pairwise, rank:ndcg,
// rank:map) and metrics (ndcg, map) compare rows only within a group. Set the
// groups before any weights: a matrix with groups takes one weight per
// group. Calling it again replaces the groups.
func (d *DMatrix) SetGroups(sizes []uint32) error {
	if len(sizes) == 0 {
		return errors.New("xgboost: set groups: no group")
	}
	var sum uint64
	for i, n := range sizes {
		if n == 0 {
			return fmt.Errorf("xgboost: set groups: group %d is empty", i)
		}
		sum += uint64(n)
	}
	if sum != uint64(d.rows) {
		return fmt.Errorf("xgboost: set groups: group sizes sum to %d, the matrix has %d rows", sum, d.rows)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	if d.weights > 0 && d.weights != len(sizes) {
		return fmt.Errorf("xgboost: set groups: the matrix has %d weights, not one per group (%d): set the groups first", d.weights, len(sizes))
	}
	field := C.CString("group")
	defer C.free(unsafe.Pointer(field))
	if err := call("set groups", func() C.int {
		return C.XGDMatrixSetUIntInfo(d.h, field, (*C.uint)(unsafe.Pointer(&sizes[0])), C.bst_ulong(len(sizes)))
	}); err != nil {
		return err
	}
	d.groups = len(sizes)
	return nil
}

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
	b, err := newBooster(hs)
	if err != nil {
		return nil, err
	}
	if err := b.setParams(params); err != nil {
		_ = b.Close()
		return nil, err
	}
	return b, nil
}

// LoadBooster makes a booster from a model that SaveModel returned (or any
// XGBoost model in its JSON, UBJ or deprecated binary format), read from
// memory: nothing is read from or written to disk. It then sets params in
// sorted key order; the model brings its objective and the parameters it
// needs to predict, so params may be empty, or set e.g. nthread, which is not
// part of a model. The booster predicts, evaluates and reports feature
// importance as the saved one did; its predictions are bit for bit the
// same. It can also go on training (UpdateOneIter from the next round on)
// once given again the training parameters, which a model does not keep.
// Close frees it; a booster that becomes unreachable unclosed is freed by the
// garbage collector.
func LoadBooster(model []byte, params map[string]string) (*Booster, error) {
	if len(model) == 0 {
		return nil, errors.New("xgboost: load model: empty model")
	}
	b, err := newBooster(nil)
	if err != nil {
		return nil, err
	}
	b.run(func() {
		err = call("load model", func() C.int {
			return C.XGBoosterLoadModelFromBuffer(b.h, unsafe.Pointer(&model[0]), C.bst_ulong(len(model)))
		})
	})
	if err == nil {
		err = b.setParams(params)
	}
	if err != nil {
		_ = b.Close()
		return nil, err
	}
	return b, nil
}

// newBooster starts a booster thread and creates there a booster that caches
// the matrices hs (which the caller keeps locked).
func newBooster(hs []C.DMatrixHandle) (*Booster, error) {
	b := &Booster{work: make(chan func()), done: make(chan struct{})}
	go boosterThread(b.work, b.done)
	var first *C.DMatrixHandle
	if len(hs) > 0 {
		first = &hs[0]
	}
	var err error
	b.run(func() {
		err = call("create booster", func() C.int { return C.XGBoosterCreate(first, C.bst_ulong(len(hs)), &b.h) })
	})
	if err != nil {
		close(b.work)
		<-b.done
		return nil, err
	}
	b.cleanup = runtime.AddCleanup(b, func(s boosterState) { _ = freeBooster(s.h, s.work, s.done) },
		boosterState{h: b.h, work: b.work, done: b.done})
	return b, nil
}

// setParams sets params in sorted key order.
func (b *Booster) setParams(params map[string]string) error {
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := b.SetParam(k, params[k]); err != nil {
			return err
		}
	}
	return nil
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

// Predict returns the predictions for the rows of d from the trees of rounds
// [begin, end); end 0 means up to the last round. The result is copied out
// of XGBoost's memory and is row-major: with k outputs per row, row i's are
// at [i*k, (i+1)*k), and k = len(result)/d.Rows(). Most objectives give one
// output per row (k = 1): a probability for binary:logistic, a value for
// reg:squarederror, a score to sort a group by for rank:*, a class index for
// multi:softmax. multi:softprob gives num_class class probabilities per row,
// summing to 1; PredictMatrix cuts such a result into rows.
func (b *Booster) Predict(d *DMatrix, begin, end int) ([]float32, error) {
	res, _, err := b.predict(d, begin, end)
	return res, err
}

// PredictMatrix is Predict with the result cut into one slice per row of d:
// out[i][j] is output j of row i (for multi:softprob, the probability of
// class j), and every row has the same length, 1 for single-output
// objectives. The rows share one backing array, the slice Predict returns.
func (b *Booster) PredictMatrix(d *DMatrix, begin, end int) ([][]float32, error) {
	res, k, err := b.predict(d, begin, end)
	if err != nil {
		return nil, err
	}
	out := make([][]float32, len(res)/k)
	for i := range out {
		out[i] = res[i*k : (i+1)*k : (i+1)*k]
	}
	return out, nil
}

// predict returns the row-major predictions and the number of outputs per
// row.
func (b *Booster) predict(d *DMatrix, begin, end int) ([]float32, int, error) {
	if begin < 0 || end < 0 || (end != 0 && end <= begin) {
		return nil, 0, fmt.Errorf("xgboost: predict: bad iteration range [%d, %d)", begin, end)
	}
	hs, unlock, err := use(d)
	if err != nil {
		return nil, 0, err
	}
	defer unlock()
	cfg := C.CString(fmt.Sprintf(`{"type":0,"training":false,"iteration_begin":%d,"iteration_end":%d,"strict_shape":false}`, begin, end))
	defer C.free(unsafe.Pointer(cfg))
	if err := b.lock(); err != nil {
		return nil, 0, err
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
		dims := unsafe.Slice(shape, int(dim))
		n := 1
		for _, s := range dims {
			n *= int(s)
		}
		if len(dims) == 0 || int(dims[0]) != d.rows || n == 0 || n%d.rows != 0 {
			err = fmt.Errorf("xgboost: predict: output of shape %v for %d rows", dims, d.rows)
			return
		}
		res = make([]float32, n)
		copy(res, unsafe.Slice((*float32)(unsafe.Pointer(out)), n))
	})
	if err != nil {
		return nil, 0, err
	}
	return res, len(res) / d.rows, nil
}

// SaveModel returns the model in XGBoost's Universal Binary JSON format
// ("ubj"), in memory: nothing is written to disk. The model is the trees with
// what predicting needs (the objective and its parameters, num_class,
// base_score, the number of features); training-only state such as the
// tree method, nthread, the seed or the evaluation metrics is not part of
// it. LoadBooster reads it back.
func (b *Booster) SaveModel() ([]byte, error) {
	cfg := C.CString(`{"format":"ubj"}`)
	defer C.free(unsafe.Pointer(cfg))
	if err := b.lock(); err != nil {
		return nil, err
	}
	defer b.mu.Unlock()
	var model []byte
	var err error
	b.run(func() {
		// The buffer is XGBoost's, per thread: copy it out before the next
		// call.
		var n C.bst_ulong
		var out *C.char
		err = call("save model", func() C.int { return C.XGBoosterSaveModelToBuffer(b.h, cfg, &n, &out) })
		if err != nil {
			return
		}
		if n == 0 {
			err = errors.New("xgboost: save model: empty model")
			return
		}
		model = make([]byte, int(n))
		copy(model, unsafe.Slice((*byte)(unsafe.Pointer(out)), int(n)))
	})
	if err != nil {
		return nil, err
	}
	return model, nil
}

// DeviceParams returns the parameters that make a booster train on device
// with the linked library (see Version); merge them into the booster's
// parameters. device is "cpu", or "cuda" or "cuda:<n>" for NVIDIA GPU n (0
// when omitted). XGBoost 1.x selects a GPU with tree_method gpu_hist and
// gpu_id; 2.x with device (and tree_method hist). Any other device is an
// error naming it.
//
// DeviceParams only maps names: it does not look for a GPU. Training on one
// needs an XGBoost built with CUDA and a GPU. The OS package libxgboost-dev
// is built without CUDA and Ferry's build and test machines have no GPU, so
// there a booster given the "cuda" parameters fails at its first round with
// XGBoost's error (an error, never a crash).
func DeviceParams(device string) (map[string]string, error) {
	return deviceParams(device, Version())
}

// deviceParams is DeviceParams for the library version version, e.g.
// "1.7.4".
func deviceParams(device, version string) (map[string]string, error) {
	majorText, _, _ := strings.Cut(version, ".")
	major, err := strconv.Atoi(majorText)
	if err != nil || major < 1 {
		return nil, fmt.Errorf("xgboost: device %q: unknown XGBoost version %q", device, version)
	}
	ordinal := -1 // the CPU
	switch {
	case device == "cpu":
	case device == "cuda":
		ordinal = 0
	case strings.HasPrefix(device, "cuda:"):
		n, err := strconv.Atoi(device[len("cuda:"):])
		if err != nil || n < 0 || strconv.Itoa(n) != device[len("cuda:"):] {
			return nil, fmt.Errorf("xgboost: device %q: want cuda:<n> with n a GPU ordinal, 0 or more", device)
		}
		ordinal = n
	default:
		return nil, fmt.Errorf("xgboost: unknown device %q: want \"cpu\", \"cuda\" or \"cuda:<n>\"", device)
	}
	switch {
	case major >= 2 && ordinal < 0:
		return map[string]string{"device": "cpu", "tree_method": "hist"}, nil
	case major >= 2:
		return map[string]string{"device": fmt.Sprintf("cuda:%d", ordinal), "tree_method": "hist"}, nil
	case ordinal < 0:
		return map[string]string{"tree_method": "hist"}, nil
	default:
		return map[string]string{"tree_method": "gpu_hist", "gpu_id": strconv.Itoa(ordinal)}, nil
	}
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
