package main

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-ai/ferry/connectors"
	"github.com/ferry-ai/ferry/connectors/all"
	"github.com/ferry-ai/ferry/engine/pql"
	"github.com/ferry-ai/ferry/internal/graph"
)

// dataDir is the shared Formula 1 data, beside the project.
const dataDir = "../../../../shared/data/f1"

// TestLoad loads the Ergast CSV files and checks what Ferry will read: the
// snapshot's row counts are reference_tasks.py's (races up to 2023, event
// rows up to 2023-07-30), every table has its primary key, the event tables
// their foreign keys and a time column taken from their race (qualifying:
// a day earlier).
func TestLoad(t *testing.T) {
	if _, err := os.Stat(filepath.Join(dataDir, "races.csv")); err != nil {
		t.Skipf("no Formula 1 data here (%v)", err)
	}
	out := filepath.Join(t.TempDir(), "f1.db")
	ctx := context.Background()
	if err := Load(ctx, dataDir, out); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("duckdb", out)
	if err != nil {
		t.Fatal(err)
	}
	for table, want := range map[string]int{"races": 1101, "results": 26080, "qualifying": 9815, "drivers": 864, "circuits": 77} {
		var n int
		if err := db.QueryRowContext(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != want {
			t.Errorf("%s: %d rows, reference_tasks.py's snapshot has %d", table, n, want)
		}
	}
	var off int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM qualifying q JOIN races r USING (raceId) WHERE q.date <> r.date - INTERVAL 1 DAY`).Scan(&off); err != nil || off != 0 {
		t.Errorf("qualifying rows not a day before their race: %d (%v)", off, err)
	}
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM results x JOIN races r USING (raceId) WHERE x.date <> r.date OR x.date > TIMESTAMP '2023-07-30 23:59:59'`).Scan(&off); err != nil || off != 0 {
		t.Errorf("results rows off their race time or past the snapshot: %d (%v)", off, err)
	}

	db.Close() // one configuration per file in a process: the connector opens it next
	c, err := all.Mux().Open(ctx, "duckdb://"+out, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tables, err := c.Tables(ctx)
	if err != nil {
		t.Fatal(err)
	}
	events := map[string][]string{
		"results": {"races", "drivers", "constructors", "status"}, "qualifying": {"races", "drivers", "constructors"},
		"driver_standings": {"races", "drivers"}, "constructor_standings": {"races", "constructors"},
		"constructor_results": {"races", "constructors"}, "pit_stops": {"races", "drivers"},
		"sprint_results": {"races", "drivers", "constructors", "status"},
	}
	seen := 0
	for _, tb := range tables {
		if len(tb.PrimaryKey) == 0 {
			t.Errorf("%s has no primary key", tb.Name)
		}
		refs, ok := events[tb.Name]
		if !ok {
			continue
		}
		seen++
		if tb.TimeColumn != "date" {
			t.Errorf("%s: time column %q, want date", tb.Name, tb.TimeColumn)
		}
		for _, ref := range refs {
			if !hasFK(tb, ref) {
				t.Errorf("%s: no foreign key to %s", tb.Name, ref)
			}
		}
	}
	if seen != len(events) {
		t.Errorf("%d of %d event tables found", seen, len(events))
	}

	// The rel-f1 tasks of docs/examples/f1.md, in its order, fit the graph.
	g := connectors.Graph(tables)
	queries := pqlBlocks(t, "../f1.md")
	wantTasks := []string{pql.TaskBinaryClassification, pql.TaskBinaryClassification, pql.TaskRegression}
	if len(queries) != len(wantTasks) {
		t.Fatalf("f1.md has %d pql blocks, want %d (driver-dnf, driver-top3, driver-position)", len(queries), len(wantTasks))
	}
	for i, text := range queries {
		q, err := pql.Parse(text)
		if err != nil {
			t.Fatalf("f1.md query %d: %v", i+1, err)
		}
		task, err := q.Task(&g)
		if err != nil || task != wantTasks[i] {
			t.Errorf("f1.md query %d: task %q, %v; want %q", i+1, task, err, wantTasks[i])
		}
	}
}

// pqlBlocks returns the ```pql fenced blocks of a Markdown file.
func pqlBlocks(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	var cur []string
	in := false
	for _, line := range strings.Split(string(data), "\n") {
		switch {
		case !in && strings.TrimSpace(line) == "```pql":
			in, cur = true, nil
		case in && strings.TrimSpace(line) == "```":
			in = false
			out = append(out, strings.Join(cur, "\n"))
		case in:
			cur = append(cur, line)
		}
	}
	return out
}

func hasFK(t connectors.Table, ref string) bool {
	for _, fk := range t.ForeignKeys {
		if fk.RefTable == ref {
			return true
		}
	}
	return false
}

// loadF1 loads the Formula 1 data into a DuckDB file of the test's own and
// returns its path and graph; it skips the test where the data is absent.
func loadF1(t *testing.T) (string, graph.Graph) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dataDir, "races.csv")); err != nil {
		t.Skipf("no Formula 1 data here (%v)", err)
	}
	ctx := context.Background()
	out := filepath.Join(t.TempDir(), "f1.db")
	if err := Load(ctx, dataDir, out); err != nil {
		t.Fatal(err)
	}
	c, err := all.Mux().Open(ctx, "duckdb://"+out, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tables, err := c.Tables(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return out, connectors.Graph(tables)
}
