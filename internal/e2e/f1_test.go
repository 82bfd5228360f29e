package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestF1FullPath runs a rel-f1 task of docs/examples/f1.md on real data
// through the whole path — the data loaded by `make f1`'s loader, the agent
// reading it, the engine training on RelBench's split (job options), the
// predictions written back to the warehouse — and checks the job succeeds,
// reaches the task's target on the test anchors (driver-top3 AUROC >= 0.90)
// and writes one prediction per driver scored; then a recommendation (each
// driver's team in the next 60 days) the same way, which must beat ranking
// by the driver's history and by popularity.
func TestF1FullPath(t *testing.T) {
	if testing.Short() {
		t.Skip("loads the Formula 1 data and trains")
	}
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(root, "..", "shared", "data", "f1")
	if _, err := os.Stat(filepath.Join(data, "races.csv")); err != nil {
		t.Skipf("no Formula 1 data here (%v)", err)
	}
	dir := t.TempDir()
	db := filepath.Join(dir, "f1.db")
	load := exec.Command("go", "run", "-tags", "duckdb_arrow", "./docs/examples/f1", "--data", data, "--out", db)
	load.Dir = root
	if out, err := load.CombinedOutput(); err != nil {
		t.Fatalf("load: %v\n%s", err, out)
	}
	code, out, errOut := ferry(t, nil, "demo", "--bin", binDir, "--dir", filepath.Join(dir, "run"), "--warehouse", "duckdb://"+db,
		"--output", "driver_top3",
		"--query", "PREDICT MIN(qualifying.position, 0, 30, days) <= 3 FOR EACH drivers.driverId",
		"--options", `{"validation_start":"2005-01-01T00:00:00Z","test_start":"2010-01-01T00:00:00Z","anchor_step_days":30,"max_eval_anchors":40,"search_sets":6}`)
	if code != 0 {
		t.Fatalf("ferry demo: exit %d\n%s\n%s", code, out, errOut)
	}
	m := regexp.MustCompile(`model m-[0-9a-f]+, test\s+([0-9.]+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no test metrics in\n%s", out)
	}
	auroc, _ := strconv.ParseFloat(m[1], 64)
	if auroc < 0.90 {
		t.Errorf("test AUROC %.4f, target 0.90", auroc)
	}
	rows := regexp.MustCompile(`"prediction_rows": (\d+)`).FindStringSubmatch(out)
	written := regexp.MustCompile(`"rows": (\d+)`).FindAllStringSubmatch(out, -1)
	if rows == nil || len(written) == 0 || written[len(written)-1][1] != rows[1] || rows[1] == "0" {
		t.Errorf("predictions %v, written %v", rows, written)
	}
	if !strings.Contains(out, "first rows of driver_top3") || !strings.Contains(out, "driverId,anchor_time,score,predicted_class,model_id,job_id,created_at") {
		t.Errorf("the predictions were not read back:\n%s", out)
	}
	t.Logf("driver-top3 through agent, engine and writeback: test AUROC %.4f, %s predictions", auroc, rows[1])

	// A recommendation on the same data: the team each driver races for
	// in the next 60 days, ranked against popularity and history.
	code, out, errOut = ferry(t, nil, "demo", "--bin", binDir, "--dir", filepath.Join(dir, "run2"), "--warehouse", "duckdb://"+db,
		"--output", "driver_team",
		"--query", "PREDICT LIST_DISTINCT(results.constructorId, 0, 60, days) RANK TOP 1 FOR EACH drivers.driverId",
		"--options", `{"validation_start":"2005-01-01T00:00:00Z","test_start":"2010-01-01T00:00:00Z","anchor_step_days":60,"max_eval_anchors":40}`)
	if code != 0 {
		t.Fatalf("ferry demo (recommendation): exit %d\n%s\n%s", code, out, errOut)
	}
	mp := regexp.MustCompile(`model m-[0-9a-f]+, test\s+([0-9.]+)\n\s+baseline: the entity's own items, test\s+([0-9.]+)\n\s+baseline: the most popular items, test\s+([0-9.]+)`).FindStringSubmatch(out)
	if mp == nil {
		t.Fatalf("no MAP@1 lines in\n%s", out)
	}
	model, _ := strconv.ParseFloat(mp[1], 64)
	history, _ := strconv.ParseFloat(mp[2], 64)
	popular, _ := strconv.ParseFloat(mp[3], 64)
	if model <= history || model <= popular {
		t.Errorf("test MAP@1 %.4f does not beat the history (%.4f) and popularity (%.4f) baselines", model, history, popular)
	}
	if !strings.Contains(out, "driverId,anchor_time,score,item,rank,model_id,job_id,created_at") {
		t.Errorf("the recommendations were not read back:\n%s", out)
	}
	t.Logf("driver team through agent, engine and writeback: test MAP@1 %.4f (history %.4f, popularity %.4f)", model, history, popular)
}
