package main

import (
	"context"
	"database/sql"
	"encoding/csv"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/ferry-ai/ferry/engine/plan"
	"github.com/ferry-ai/ferry/engine/pql"
)

// relbenchTask is a rel-f1 task: its name in reference_tasks.py, its window
// and its query's place among f1.md's pql blocks.
type relbenchTask struct {
	name  string
	days  int
	block int
	rows  [3]int // RelBench's examples: train, validation, test
}

var relbenchTasks = []relbenchTask{
	{"driver-dnf", 30, 0, [3]int{11411, 566, 702}},
	{"driver-top3", 30, 1, [3]int{1353, 588, 726}},
	{"driver-position", 60, 2, [3]int{7453, 499, 760}},
}

// RelBench's split dates.
var (
	relbenchVal  = time.Date(2005, 1, 1, 0, 0, 0, 0, time.UTC)
	relbenchTest = time.Date(2010, 1, 1, 0, 0, 0, 0, time.UTC)
)

// relbenchSchedule is RelBench's anchor schedule for a window: training
// anchors back from 2005 to the first race, at most 40 validation anchors
// from 2005 and 40 test anchors from 2010, ending with the last race of the
// calendar.
func relbenchSchedule(ctx context.Context, t *testing.T, db *sql.DB, days int) []plan.Anchor {
	t.Helper()
	var begin, end time.Time
	if err := db.QueryRowContext(ctx, "SELECT min(date), max(date) FROM races").Scan(&begin, &end); err != nil {
		t.Fatal(err)
	}
	s := plan.SplitSchedule{Begin: begin.UTC(), End: end.UTC(), ValidationStart: relbenchVal, TestStart: relbenchTest,
		Step: time.Duration(days) * 24 * time.Hour, MaxEval: 40}
	anchors, err := s.Anchors()
	if err != nil {
		t.Fatal(err)
	}
	return anchors
}

// TestRelBenchLabels runs reference_tasks.py (RelBench's label queries,
// re-derived in Python's standard library) and checks that the labels of
// the PQL queries in f1.md, planned at RelBench's anchors and run on the
// data `make f1` loads, match its tables row for row: the same examples
// (anchor, driver) in each split and the same label.
func TestRelBenchLabels(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the reference script (about 5 s)")
	}
	out, g := loadF1(t)
	if _, err := exec.LookPath("python3"); err != nil {
		t.Fatalf("python3 runs the reference labels (scripts/deps.sh installs it): %v", err)
	}
	ctx := context.Background()
	ref := referenceTables(t)
	db, err := sql.Open("duckdb", out+"?access_mode=read_only")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	blocks := pqlBlocks(t, "../f1.md")
	for _, task := range relbenchTasks {
		t.Run(task.name, func(t *testing.T) {
			q, err := pql.Parse(blocks[task.block])
			if err != nil {
				t.Fatal(err)
			}
			p, err := plan.New(q, &g, relbenchSchedule(ctx, t, db, task.days), plan.Options{})
			if err != nil {
				t.Fatal(err)
			}
			query, err := p.LabelsSQL(plan.DuckDB{})
			if err != nil {
				t.Fatal(err)
			}
			rows, err := db.QueryContext(ctx, query)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			got := map[string][]labelRow{}
			for rows.Next() {
				var split string
				var at time.Time
				var driver int64
				var label float64
				if err := rows.Scan(&split, &at, &driver, &label); err != nil {
					t.Fatal(err)
				}
				got[split] = append(got[split], labelRow{at.UTC().Format("2006-01-02 15:04:05"), driver, label})
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			for split, refSplit := range map[string]string{"train": "train", "validation": "val", "test": "test"} {
				want := ref[task.name+"_"+refSplit]
				have := got[split]
				if len(want) == 0 {
					t.Fatalf("%s %s: no reference rows", task.name, refSplit)
				}
				if len(have) != len(want) {
					t.Errorf("%s: %d rows, reference %d", split, len(have), len(want))
				}
				for i := range min(len(have), len(want)) {
					h, w := have[i], want[i]
					if h.date != w.date || h.driver != w.driver || math.Abs(h.label-w.label) > 1e-9 {
						t.Errorf("%s row %d: %+v, reference %+v", split, i, h, w)
						break
					}
				}
				t.Logf("%s %s: %d rows match", task.name, split, len(have))
			}
		})
	}
}

type labelRow struct {
	date   string
	driver int64
	label  float64
}

// referenceTables runs reference_tasks.py in a scratch folder (it writes
// beside itself) and reads its tables, keyed task_split.
func referenceTables(t *testing.T) map[string][]labelRow {
	t.Helper()
	dir := t.TempDir()
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	script, err := os.ReadFile(filepath.Join(abs, "reference_tasks.py"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "reference_tasks.py"), script, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"races", "results", "qualifying"} {
		if err := os.Symlink(filepath.Join(abs, name+".csv"), filepath.Join(dir, name+".csv")); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("python3", filepath.Join(dir, "reference_tasks.py"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("reference_tasks.py: %v\n%s", err, out)
	}
	tables := map[string][]labelRow{}
	for _, task := range relbenchTasks {
		for _, split := range []string{"train", "val", "test"} {
			f, err := os.Open(filepath.Join(dir, "relbench_tasks", task.name+"_"+split+".csv"))
			if err != nil {
				t.Fatal(err)
			}
			records, err := csv.NewReader(f).ReadAll()
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range records[1:] {
				driver, err1 := strconv.ParseInt(r[1], 10, 64)
				label, err2 := strconv.ParseFloat(r[2], 64)
				if err1 != nil || err2 != nil {
					t.Fatal(fmt.Errorf("reference row %v: %v %v", r, err1, err2))
				}
				tables[task.name+"_"+split] = append(tables[task.name+"_"+split], labelRow{r[0], driver, label})
			}
		}
	}
	return tables
}
