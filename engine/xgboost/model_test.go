package xgboost

import (
	"bufio"
	"bytes"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// sameBits reports the first index where a and b differ bit for bit, or -1.
func sameBits(a, b []float32) int {
	if len(a) != len(b) {
		return 0
	}
	for i := range a {
		if a[i] != b[i] && !(a[i] != a[i] && b[i] != b[i]) {
			return i
		}
	}
	return -1
}

func mustPredict(t *testing.T, b *Booster, d *DMatrix) []float32 {
	t.Helper()
	p, err := b.Predict(d, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSaveLoad saves models of several objectives into memory and loads
// them back: the loaded booster's predictions equal the original's bit for
// bit, saving it again gives the same bytes, and both boosters go on
// training to the same model.
func TestSaveLoad(t *testing.T) {
	xc, yc := classes(800, 7)
	xr, yr := regression(800, 7)
	xk, rk, sk := ranking(40, 7)
	for _, tc := range []struct {
		name string
		x, y []float32
		p    map[string]string
	}{
		{"binary:logistic", nil, nil, params()},
		{"multi:softprob", xc, yc, params("objective", "multi:softprob", "num_class", "3", "eval_metric", "mlogloss")},
		{"reg:squarederror", xr, yr, params("objective", "reg:squarederror", "eval_metric", "rmse")},
		{"rank:ndcg", xk, rk, params("objective", "rank:ndcg", "eval_metric", "ndcg@10")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var d *DMatrix
			if tc.x == nil {
				d, _ = matrix(t, 800, 7, true)
			} else {
				d = newMatrix(t, tc.x, len(tc.y), 5, tc.y)
			}
			if tc.name == "rank:ndcg" {
				if err := d.SetGroups(sk); err != nil {
					t.Fatal(err)
				}
			}
			b, _ := train(t, d, d, 10, tc.p)
			model, err := b.SaveModel()
			if err != nil {
				t.Fatal(err)
			}
			loaded, err := LoadBooster(model, map[string]string{"nthread": "2"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = loaded.Close() })
			want, got := mustPredict(t, b, d), mustPredict(t, loaded, d)
			if i := sameBits(want, got); i >= 0 {
				t.Fatalf("loaded model: %d predictions differ from %d, first at %d", len(got), len(want), i)
			}
			again, err := loaded.SaveModel()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(model, again) {
				t.Errorf("saving the loaded model gives %d other bytes than the %d saved", len(again), len(model))
			}
			// Training goes on from the loaded model as from the original.
			for _, bst := range []*Booster{b, loaded} {
				for _, k := range []string{"tree_method", "seed", "max_depth", "eta"} {
					if err := bst.SetParam(k, tc.p[k]); err != nil {
						t.Fatal(err)
					}
				}
				for i := 10; i < 13; i++ {
					if err := bst.UpdateOneIter(i, d); err != nil {
						t.Fatal(err)
					}
				}
			}
			if i := sameBits(mustPredict(t, b, d), mustPredict(t, loaded, d)); i >= 0 {
				t.Errorf("after 3 more rounds the loaded model's prediction %d differs", i)
			}
		})
	}
}

// TestLoadBadModel checks that models that are not models are refused with
// an error, never a crash.
func TestLoadBadModel(t *testing.T) {
	d, _ := matrix(t, 300, 8, true)
	b, _ := fit(t, d, d, 3, params())
	model, err := b.SaveModel()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		model []byte
	}{
		{"empty", nil},
		{"not a model", []byte("not a model")},
		{"truncated", model[:len(model)/2]},
		{"JSON of another shape", []byte(`{"learner": 3}`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if l, err := LoadBooster(tc.model, nil); err == nil {
				_ = l.Close()
				t.Errorf("LoadBooster(%d bytes) accepted", len(tc.model))
			} else if !strings.HasPrefix(err.Error(), "xgboost: load model: ") {
				t.Errorf("LoadBooster: %v, want an error about loading the model", err)
			}
		})
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.SaveModel(); !errors.Is(err, ErrClosed) {
		t.Errorf("SaveModel after close: %v, want ErrClosed", err)
	}
	if _, err := b.PredictMatrix(d, 0, 0); !errors.Is(err, ErrClosed) {
		t.Errorf("PredictMatrix after close: %v, want ErrClosed", err)
	}
}

// procIO reads the process's I/O counters from /proc/self/io.
func procIO(t *testing.T) map[string]int64 {
	t.Helper()
	f, err := os.Open("/proc/self/io")
	if err != nil {
		t.Skipf("no I/O accounting here: %v", err)
	}
	defer f.Close()
	out := map[string]int64{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, ok := strings.Cut(s.Text(), ": ")
		if n, err := strconv.ParseInt(v, 10, 64); ok && err == nil {
			out[k] = n
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestNoFileWritten trains, saves and loads a model with TMPDIR and the
// working directory in an empty directory, and checks with the kernel's
// per-process I/O counters that nothing was written in the meantime:
//
//   - write_bytes counts the bytes of file pages this process dirtied (on a
//     disk-backed file system), in whole 4 KiB pages, so below 4096 means
//     that not one page of any file was written;
//   - wchar counts the bytes of every write(2) of the process, to any file
//     (tmpfs included, which write_bytes misses), pipe or terminal. The Go
//     runtime may wake its network poller meanwhile by writing 8 bytes to an
//     eventfd, so wchar is allowed 4096 bytes too, less than the model
//     (checked to be larger): saving it to any file would exceed the bound.
//
// The test writes nothing itself in that window (no t.Log, which -v prints
// at once), and tests do not run in parallel, so the runner does not either.
// A control write of the model afterwards shows the counters see a file
// write.
func TestNoFileWritten(t *testing.T) {
	const bound = 4096
	dir := t.TempDir()
	t.Setenv("TMPDIR", dir)
	t.Chdir(dir)
	x, y := synthetic(3000, 11)
	before := procIO(t)

	d, err := NewDMatrix(x, 3000, 5, y)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	b, err := NewBooster(d, params("max_depth", "6"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for i := 0; i < 20; i++ {
		if err := b.UpdateOneIter(i, d); err != nil {
			t.Fatal(err)
		}
	}
	model, err := b.SaveModel()
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := LoadBooster(model, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer loaded.Close()
	p1, err1 := b.Predict(d, 0, 0)
	p2, err2 := loaded.Predict(d, 0, 0)

	after := procIO(t)
	if err := errors.Join(err1, err2); err != nil {
		t.Fatal(err)
	}
	if i := sameBits(p1, p2); i >= 0 {
		t.Fatalf("loaded model's prediction %d differs", i)
	}
	if len(model) <= bound {
		t.Fatalf("model of %d bytes, not more than the bound %d: the test would not see it written", len(model), bound)
	}
	for _, k := range []string{"write_bytes", "wchar"} {
		if grew := after[k] - before[k]; grew >= bound {
			t.Errorf("%s grew by %d bytes while training, saving and loading (bound %d)", k, grew, bound)
		}
	}
	if entries, err := os.ReadDir(dir); err != nil || len(entries) > 0 {
		t.Errorf("TMPDIR and working directory %s: %v, %v; want it empty", dir, entries, err)
	}
	t.Logf("model %d bytes; write_bytes +%d, wchar +%d, syscw +%d", len(model),
		after["write_bytes"]-before["write_bytes"], after["wchar"]-before["wchar"], after["syscw"]-before["syscw"])

	// Control: writing the model to a file shows in wchar.
	if err := os.WriteFile(filepath.Join(dir, "model.ubj"), model, 0o600); err != nil {
		t.Fatal(err)
	}
	control := procIO(t)
	if grew := control["wchar"] - after["wchar"]; grew < int64(len(model)) {
		t.Errorf("wchar grew by %d writing a %d-byte file: the counter does not see file writes", grew, len(model))
	}
}

// TestSeed trains with row and column sampling: the same seed and
// parameters give bit-identical predictions, another seed other ones.
func TestSeed(t *testing.T) {
	d, _ := matrix(t, 1500, 12, true)
	valid, _ := matrix(t, 500, 13, true)
	base := params("tree_method", "hist", "subsample", "0.8", "colsample_bytree", "0.8", "nthread", "2", "max_depth", "6")
	run := func(seed string) []float32 {
		p := maps.Clone(base)
		p["seed"] = seed
		b, _ := train(t, d, valid, 20, p)
		return mustPredict(t, b, valid)
	}
	first := run("1")
	for _, tc := range []struct {
		seed string
		same bool
	}{
		{"1", true},
		{"2", false},
		{"12345", false},
	} {
		t.Run("seed "+tc.seed, func(t *testing.T) {
			p := run(tc.seed)
			if same := sameBits(first, p) < 0; same != tc.same {
				t.Errorf("predictions with seed %s equal to those with seed 1: %v, want %v", tc.seed, same, tc.same)
			}
		})
	}
}

func TestDeviceParams(t *testing.T) {
	for _, tc := range []struct {
		device, version string
		want            map[string]string // nil: an error naming the device
	}{
		{"cpu", "1.7.4", map[string]string{"tree_method": "hist"}},
		{"cuda", "1.7.4", map[string]string{"tree_method": "gpu_hist", "gpu_id": "0"}},
		{"cuda:1", "1.7.4", map[string]string{"tree_method": "gpu_hist", "gpu_id": "1"}},
		{"cpu", "2.1.3", map[string]string{"device": "cpu", "tree_method": "hist"}},
		{"cuda", "2.0.0", map[string]string{"device": "cuda:0", "tree_method": "hist"}},
		{"cuda:2", "3.0.1", map[string]string{"device": "cuda:2", "tree_method": "hist"}},
		{"gpu", "1.7.4", nil},
		{"CUDA", "2.1.3", nil},
		{"", "1.7.4", nil},
		{"cuda:", "1.7.4", nil},
		{"cuda:-1", "2.1.3", nil},
		{"cuda:01", "2.1.3", nil},
		{"cuda:x", "2.1.3", nil},
		{"cpu", "", nil},
		{"cpu", "0.90", nil},
	} {
		got, err := deviceParams(tc.device, tc.version)
		switch {
		case tc.want == nil && err == nil:
			t.Errorf("deviceParams(%q, %q) = %v, want an error", tc.device, tc.version, got)
		case tc.want == nil && !strings.Contains(err.Error(), strconv.Quote(tc.device)):
			t.Errorf("deviceParams(%q, %q): error %q does not name the device", tc.device, tc.version, err)
		case tc.want != nil && (err != nil || !reflect.DeepEqual(got, tc.want)):
			t.Errorf("deviceParams(%q, %q) = %v, %v; want %v", tc.device, tc.version, got, err, tc.want)
		}
	}
	if _, err := DeviceParams("tpu"); err == nil {
		t.Error("DeviceParams(tpu) accepted")
	}
}

// TestDeviceTraining trains with DeviceParams: on the CPU it works; "cuda"
// on this library, built without CUDA (no GPU is present either), fails at
// the first round with XGBoost's error, returned, never a crash.
func TestDeviceTraining(t *testing.T) {
	info, err := BuildInfo()
	if err != nil {
		t.Fatal(err)
	}
	cuda, ok := info["USE_CUDA"].(bool)
	if !ok {
		t.Fatalf("build info %v has no USE_CUDA", info)
	}
	d, _ := matrix(t, 300, 14, true)
	for _, tc := range []struct {
		device  string
		wantErr bool
	}{
		{"cpu", false},
		{"cuda", true},
	} {
		t.Run(tc.device, func(t *testing.T) {
			if tc.device != "cpu" && cuda {
				t.Skip("this libxgboost is built with CUDA: whether it trains depends on a GPU")
			}
			dp, err := DeviceParams(tc.device)
			if err != nil {
				t.Fatal(err)
			}
			p := params()
			maps.Copy(p, dp)
			b, err := NewBooster(d, p)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			err = b.UpdateOneIter(0, d)
			if (err != nil) != tc.wantErr {
				t.Fatalf("training on %s with %v: %v, want error %v", tc.device, dp, err, tc.wantErr)
			}
			if err != nil && (!strings.HasPrefix(err.Error(), "xgboost: round 0: ") || !strings.Contains(err.Error(), "GPU")) {
				t.Errorf("training on %s: %v, want XGBoost's error about the GPU", tc.device, err)
			}
			// The booster stays usable: closing and prediction work or fail cleanly.
			if _, err := b.Predict(d, 0, 0); err != nil && tc.device == "cpu" {
				t.Error(err)
			}
		})
	}
}
