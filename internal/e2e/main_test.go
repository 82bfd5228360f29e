package e2e

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-ai/ferry/controlplane/api"
	"github.com/ferry-ai/ferry/controlplane/apiclient"
	"github.com/ferry-ai/ferry/internal/devstack"
)

// The query of `make demo`.
const demoQuery = "PREDICT COUNT(orders.*, 0, 30, days) = 0 FOR EACH customers.customer_id WHERE COUNT(orders.*, -90, 0, days) > 0"

// testScale keeps the end-to-end runs to seconds; the planted signal is
// still found at this size.
const testScale = 0.2

var (
	binDir string // built binaries
	baseDB string // demo warehouse at testScale, copied per test
)

func TestMain(m *testing.M) {
	code, err := setup(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e setup:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func setup(m *testing.M) (int, error) {
	tmp, err := os.MkdirTemp("", "ferry-e2e-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(tmp)
	root, err := moduleRoot()
	if err != nil {
		return 0, err
	}
	binDir = filepath.Join(tmp, "bin")
	build := exec.Command("go", "build", "-tags", "duckdb_arrow", "-o", binDir+"/", "./cmd/...")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("build binaries: %v\n%s", err, out)
	}
	baseDB = filepath.Join(tmp, "base.db")
	gen := exec.Command(filepath.Join(binDir, "ferry"), "demo-data", "--scale", fmt.Sprint(testScale), "--out", "duckdb://"+baseDB)
	if out, err := gen.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("demo data: %v\n%s", err, out)
	}
	return m.Run(), nil
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	return filepath.Dir(strings.TrimSpace(string(out))), nil
}

// copyDB copies the base warehouse for one test.
func copyDB(t *testing.T) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "warehouse.db")
	in, err := os.Open(baseDB)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return dst
}

// startStack starts the three processes on warehouse db and stops them when
// the test ends, checking that each exits cleanly on SIGTERM.
func startStack(t *testing.T, db string) *devstack.Stack {
	t.Helper()
	return startStackWith(t, devstack.Options{Warehouse: "duckdb://" + db})
}

// startStackWith starts the three processes with opts (BinDir and Dir are
// filled in) and stops them when the test ends.
func startStackWith(t *testing.T, opts devstack.Options) *devstack.Stack {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	opts.BinDir, opts.Dir = binDir, filepath.Join(t.TempDir(), "run")
	s, err := devstack.Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("stack stop: %v", err)
		}
		if t.Failed() {
			for _, p := range []*devstack.Proc{s.ControlPlane, s.Engine, s.Agent} {
				b, _ := os.ReadFile(p.LogPath)
				t.Logf("---- %s log (tail) ----\n%s", p.Name, tail(string(b), 4000))
			}
		}
	})
	return s
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// runJob submits a query and waits for the job to succeed.
func runJob(t *testing.T, c *apiclient.Client, query, output string) *api.JobDetail {
	t.Helper()
	d := endJob(t, c, query, output)
	if d.Job.State != api.StateSucceeded {
		t.Fatalf("job %s ended %s: %+v", d.Job.ID, d.Job.State, d.Job.Error)
	}
	return d
}

// endJob submits a query and waits for the job to end, however it ends.
func endJob(t *testing.T, c *apiclient.Client, query, output string) *api.JobDetail {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	job, err := c.Submit(ctx, query, output)
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	d, err := c.Wait(ctx, job.ID, 200*time.Millisecond)
	if err != nil {
		t.Fatalf("wait for %s: %v", job.ID, err)
	}
	return d
}

// ferry runs the CLI and returns its exit code, stdout and stderr.
func ferry(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "ferry"), args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run ferry %v: %v", args, err)
	}
	return code, stdout.String(), stderr.String()
}
