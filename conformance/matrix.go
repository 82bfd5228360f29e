package conformance

import (
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"testing"
)

// MatrixEnv names the environment variable holding the file the suite
// appends its results to (JSON lines of Result); `make conformance` sets it
// and renders the support matrix from the file.
const MatrixEnv = "FERRY_CONFORMANCE_OUT"

// Result is one check's outcome for one connector.
type Result struct {
	Connector string `json:"connector"`
	Check     string `json:"check"`
	Status    string `json:"status"` // "pass", "fail" or "not supported"
	Reason    string `json:"reason,omitempty"`
}

// notSupported ends a check as not supported, with the reason shown in the
// support matrix.
func notSupported(t *testing.T, q Quirks, reason string) {
	t.Helper()
	if q.rec != nil {
		q.rec.skip(t.Name(), reason)
	}
	t.Skip(reason)
}

// recorder collects one Run's results.
type recorder struct {
	connector string
	results   []Result
	mu        sync.Mutex
	reasons   map[string]string // why a check was not run, by test name
}

func newRecorder(connector string) *recorder {
	return &recorder{connector: connector, reasons: map[string]string{}}
}

func (r *recorder) skip(test, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reasons[test] = reason
}

func (r *recorder) record(t *testing.T, check string) {
	res := Result{Connector: r.connector, Check: check, Status: "pass"}
	switch {
	case t.Failed():
		res.Status = "fail"
	case t.Skipped():
		res.Status = "not supported"
		r.mu.Lock()
		res.Reason = r.reasons[t.Name()]
		r.mu.Unlock()
	}
	r.results = append(r.results, res)
}

func (r *recorder) known(name string, checks []struct {
	name string
	fn   func(t *testing.T, h Harness, q Quirks)
}) bool {
	for _, c := range checks {
		if c.name == name {
			return true
		}
	}
	return false
}

// flush appends the results to the matrix file when MatrixEnv is set.
func (r *recorder) flush() error {
	path := os.Getenv(MatrixEnv)
	if path == "" {
		return nil
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(f)
	for _, res := range r.results {
		if err := enc.Encode(res); err != nil {
			f.Close()
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	return f.Close()
}
