package xgboost

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Size of the benchmark's training: a binary:logistic hist model.
const (
	benchRows   = 200_000
	benchCols   = 50
	benchRounds = 100
)

// benchParams are the benchmark's booster parameters; the C baseline gets
// them in this, sorted, order, as NewBooster sets them.
var benchParams = [][2]string{
	{"eta", "0.3"},
	{"max_depth", "6"},
	{"nthread", "2"},
	{"objective", "binary:logistic"},
	{"seed", "1"},
	{"tree_method", "hist"},
	{"verbosity", "0"},
}

// splitMix64 is a small integer PRNG, so that the benchmark's matrix is the
// same on every machine and Go version.
type splitMix64 uint64

func (s *splitMix64) next() uint64 {
	*s += 0x9e3779b97f4a7c15
	z := uint64(*s)
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// unit returns a float32 in [0, 1) from the top 24 bits.
func (s *splitMix64) unit() float32 { return float32(s.next()>>40) / (1 << 24) }

// benchData returns rows×cols features uniform in [0, 1) and labels: 1 when
// a weighted sum of the first 10 features plus an interaction and noise is
// positive.
func benchData(rows, cols int) ([]float32, []float32) {
	r := splitMix64(42)
	x := make([]float32, rows*cols)
	y := make([]float32, rows)
	for i := range rows {
		row := x[i*cols : (i+1)*cols]
		for j := range row {
			row[j] = r.unit()
		}
		s := 0.0
		for j := 0; j < 10 && j < cols; j++ {
			s += float64(j+1) * (float64(row[j]) - 0.5)
		}
		if cols > 11 {
			s += 8 * (float64(row[10]) - 0.5) * (float64(row[11]) - 0.5)
		}
		s += 2 * (float64(r.unit()) - 0.5)
		if s > 0 {
			y[i] = 1
		}
	}
	return x, y
}

// buildCAPI compiles testdata/train_capi.c into dir with the C compiler ($CC
// or cc), adding $CGO_CFLAGS and $CGO_LDFLAGS as cgo does; it skips the
// benchmark when there is no compiler.
func buildCAPI(b *testing.B, dir string) string {
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "cc"
	}
	if _, err := exec.LookPath(cc); err != nil {
		b.Skipf("no C compiler %q to build the C API baseline: %v", cc, err)
	}
	bin := filepath.Join(dir, "train_capi")
	args := append([]string{"-O2", "-o", bin, filepath.Join("testdata", "train_capi.c")}, strings.Fields(os.Getenv("CGO_CFLAGS"))...)
	args = append(append(args, strings.Fields(os.Getenv("CGO_LDFLAGS"))...), "-lxgboost", "-lm")
	if out, err := exec.Command(cc, args...).CombinedOutput(); err != nil {
		b.Fatalf("%s %s: %v\n%s", cc, strings.Join(args, " "), err, out)
	}
	return bin
}

// runCAPI runs the baseline once and returns the time it measured and the
// sum of its predictions.
func runCAPI(b *testing.B, bin string, args []string) (time.Duration, float64) {
	var stderr bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("%s: %v\n%s", bin, err, stderr.Bytes())
	}
	var ns int64
	var sum float64
	errNS, errSum := errors.New("no ns line"), errors.New("no sum line")
	s := bufio.NewScanner(bytes.NewReader(out))
	for s.Scan() {
		switch k, v, _ := strings.Cut(s.Text(), " "); k {
		case "ns":
			ns, errNS = strconv.ParseInt(v, 10, 64)
		case "sum":
			sum, errSum = strconv.ParseFloat(v, 64)
		}
	}
	if errNS != nil || errSum != nil {
		b.Fatalf("%s printed %q: %v, %v", bin, out, errNS, errSum)
	}
	return time.Duration(ns), sum
}

// trainFerry trains the benchmark's model through this package and returns
// the time taken (building the matrix, the booster and the rounds, and
// closing both; not the check) and the sum of the model's predictions on its
// training matrix.
func trainFerry(b *testing.B, x, y []float32, params map[string]string) (time.Duration, float64) {
	t0 := time.Now()
	d, err := NewDMatrix(x, benchRows, benchCols, y)
	if err != nil {
		b.Fatal(err)
	}
	bst, err := NewBooster(d, params)
	if err != nil {
		b.Fatal(err)
	}
	for i := range benchRounds {
		if err := bst.UpdateOneIter(i, d); err != nil {
			b.Fatal(err)
		}
	}
	elapsed := time.Since(t0)
	b.StopTimer()
	p, err := bst.Predict(d, 0, 0)
	if err != nil {
		b.Fatal(err)
	}
	sum := 0.0
	for _, v := range p {
		sum += float64(v)
	}
	b.StartTimer()
	t1 := time.Now()
	if err := bst.Close(); err != nil {
		b.Fatal(err)
	}
	if err := d.Close(); err != nil {
		b.Fatal(err)
	}
	return elapsed + time.Since(t1), sum
}

// BenchmarkTrainVsCAPI trains a binary:logistic hist model of 100 rounds on
// the same 200k×50 dense matrix through this package (ns/op, rows/s) and
// through XGBoost's C API with no Ferry code around it: a C program built
// from testdata/train_capi.c and fed the very matrix through a file in a
// temporary directory (capi-ns/op, capi-rows/s). Both time the same steps:
// matrix, booster, parameters, rounds, and freeing them; rows/s is the
// matrix's rows over the time of one whole training. Each iteration trains
// once each way, in turns first, so that load from elsewhere on the machine
// hits both alike. overhead_ratio is this package's total time over the C
// program's (1 means no overhead; the target is at most 1.10) and
// min_overhead_ratio that of their fastest runs. Every iteration checks that
// both trained the same model: the sums of their predictions are equal.
//
// OpenMP (libgomp) waits differ between the two processes: it spins less
// when it manages more threads than there are CPUs, and this process has a
// thread pool for each OS thread that called XGBoost, the C program one. On
// a machine that other processes keep busy the spinning C program can be
// much the slower; on an idle one it may be slightly the faster. To compare
// the binding alone, run with OMP_WAIT_POLICY=PASSIVE, which both inherit.
func BenchmarkTrainVsCAPI(b *testing.B) {
	dir := b.TempDir()
	bin := buildCAPI(b, dir)
	x, y := benchData(benchRows, benchCols)
	data := filepath.Join(dir, "matrix.f32")
	f, err := os.Create(data)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	if err := binary.Write(w, binary.NativeEndian, x); err != nil {
		b.Fatal(err)
	}
	if err := binary.Write(w, binary.NativeEndian, y); err != nil {
		b.Fatal(err)
	}
	if err := errors.Join(w.Flush(), f.Close()); err != nil {
		b.Fatal(err)
	}
	args := []string{data, strconv.Itoa(benchRows), strconv.Itoa(benchCols), strconv.Itoa(benchRounds)}
	params := map[string]string{}
	for _, kv := range benchParams {
		args = append(args, kv[0], kv[1])
		params[kv[0]] = kv[1]
	}

	// Settle the heap, so that the collector does not mark the matrix
	// during the first training.
	runtime.GC()
	var ferry, capi []time.Duration
	for b.Loop() {
		var tf, tc time.Duration
		var sumFerry, sumC float64
		runC := func() {
			b.StopTimer()
			tc, sumC = runCAPI(b, bin, args)
			b.StartTimer()
		}
		// Alternate which goes first, so that neither gains from the order.
		if len(ferry)%2 == 1 {
			runC()
		}
		tf, sumFerry = trainFerry(b, x, y, params)
		if len(ferry)%2 == 0 {
			runC()
		}
		if sumFerry != sumC {
			b.Fatalf("the C program's predictions sum to %v, this package's to %v: not the same model", sumC, sumFerry)
		}
		b.Logf("run %d: this package %v, C API %v, ratio %.3f", len(ferry), tf, tc, float64(tf)/float64(tc))
		ferry, capi = append(ferry, tf), append(capi, tc)
	}
	total := func(ds []time.Duration) float64 {
		s := 0.0
		for _, d := range ds {
			s += float64(d)
		}
		return s
	}
	n := float64(len(ferry))
	b.ReportMetric(total(capi)/n, "capi-ns/op")
	b.ReportMetric(total(ferry)/total(capi), "overhead_ratio")
	b.ReportMetric(float64(slices.Min(ferry))/float64(slices.Min(capi)), "min_overhead_ratio")
	b.ReportMetric(benchRows*n/time.Duration(total(ferry)).Seconds(), "rows/s")
	b.ReportMetric(benchRows*n/time.Duration(total(capi)).Seconds(), "capi-rows/s")
}
