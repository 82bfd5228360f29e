package plan

import (
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"strings"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/ferry-ai/ferry/engine/pql"
	"github.com/ferry-ai/ferry/internal/graph"
)

// t0 is the start of the test data.
var t0 = time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)

// shopGraph is a small shop: customers, their orders (of products) and
// returns, and the items of each order (two hops, timed by their order).
func shopGraph() *graph.Graph {
	return &graph.Graph{Tables: []graph.Table{
		{Name: "customers", Columns: []graph.Column{{Name: "customer_id", Type: "int64"}, {Name: "signup_at", Type: "timestamp[us]"},
			{Name: "segment", Type: "utf8"}, {Name: "country", Type: "utf8"}, {Name: "age", Type: "int32"}, {Name: "vip", Type: "bool"}},
			PrimaryKey: []string{"customer_id"}, TimeColumn: "signup_at"},
		{Name: "products", Columns: []graph.Column{{Name: "product_id", Type: "int64"}, {Name: "price", Type: "float64"}}, PrimaryKey: []string{"product_id"}},
		{Name: "orders", Columns: []graph.Column{{Name: "order_id", Type: "int64"}, {Name: "customer_id", Type: "int64"}, {Name: "product_id", Type: "int64"},
			{Name: "ordered_at", Type: "timestamp[us]"}, {Name: "amount", Type: "float64"}, {Name: "status", Type: "utf8"}},
			PrimaryKey: []string{"order_id"}, TimeColumn: "ordered_at",
			ForeignKeys: []graph.ForeignKey{{Columns: []string{"customer_id"}, RefTable: "customers", RefColumns: []string{"customer_id"}},
				{Columns: []string{"product_id"}, RefTable: "products", RefColumns: []string{"product_id"}}}},
		{Name: "order_items", Columns: []graph.Column{{Name: "item_id", Type: "int64"}, {Name: "order_id", Type: "int64"}, {Name: "quantity", Type: "int32"}},
			PrimaryKey:  []string{"item_id"},
			ForeignKeys: []graph.ForeignKey{{Columns: []string{"order_id"}, RefTable: "orders", RefColumns: []string{"order_id"}}}},
		{Name: "returns", Columns: []graph.Column{{Name: "return_id", Type: "int64"}, {Name: "customer_id", Type: "int64"}, {Name: "returned_at", Type: "timestamp[us]"}},
			PrimaryKey: []string{"return_id"}, TimeColumn: "returned_at",
			ForeignKeys: []graph.ForeignKey{{Columns: []string{"customer_id"}, RefTable: "customers", RefColumns: []string{"customer_id"}}}},
	}}
}

// ddl creates the shop's tables; the types are common to both databases.
var ddl = []string{
	`CREATE TABLE customers (customer_id BIGINT PRIMARY KEY, signup_at TIMESTAMP, segment VARCHAR, country VARCHAR, age INTEGER, vip BOOLEAN)`,
	`CREATE TABLE products (product_id BIGINT PRIMARY KEY, price DOUBLE PRECISION)`,
	`CREATE TABLE orders (order_id BIGINT PRIMARY KEY, customer_id BIGINT, product_id BIGINT, ordered_at TIMESTAMP, amount DOUBLE PRECISION, status VARCHAR)`,
	`CREATE TABLE order_items (item_id BIGINT PRIMARY KEY, order_id BIGINT, quantity INTEGER)`,
	`CREATE TABLE returns (return_id BIGINT PRIMARY KEY, customer_id BIGINT, returned_at TIMESTAMP)`,
}

// shopRows returns INSERT statements of a deterministic shop over two
// years; cut, when set, leaves out every row timed after it (order items go
// with their order).
func shopRows(seed uint64, cut time.Time) []string {
	r := mrand.New(mrand.NewPCG(seed, 7))
	ts := func(t time.Time) string { return "TIMESTAMP '" + t.Format("2006-01-02 15:04:05") + "'" }
	keep := func(t time.Time) bool { return cut.IsZero() || !t.After(cut) }
	var out []string
	segments := []string{"gold", "silver", "bronze", "o'brien"}
	countries := []string{"FR", "DE", "US"}
	for p := 1; p <= 20; p++ {
		out = append(out, fmt.Sprintf("INSERT INTO products VALUES (%d, %d.25)", p, 5+p))
	}
	order, item, ret := 0, 0, 0
	for c := 1; c <= 60; c++ {
		signup := t0.Add(time.Duration(r.IntN(300*24)) * time.Hour)
		seg := fmt.Sprintf("'%s'", strings.ReplaceAll(segments[r.IntN(len(segments))], "'", "''"))
		if c%11 == 0 {
			seg = "NULL"
		}
		vip := "FALSE"
		if c%3 == 0 {
			vip = "TRUE"
		}
		// Customers stay: whether one exists at t is the plan's to check.
		out = append(out, fmt.Sprintf("INSERT INTO customers VALUES (%d, %s, %s, '%s', %d, %s)", c, ts(signup), seg, countries[c%3], 20+c%50, vip))
		n := r.IntN(25)
		for k := 0; k < n; k++ {
			order++
			at := signup.Add(time.Duration(r.IntN(400*24*60)) * time.Minute)
			if k == 0 && c%7 == 0 {
				at = t0.Add(400 * 24 * time.Hour) // several orders at the same instant
			}
			// Every value is drawn whether or not the row is kept, so that
			// a cut leaves the kept rows as they are.
			status := []string{"paid", "shipped", "returned", "void"}[r.IntN(4)]
			product, amount := 1+r.IntN(20), r.IntN(200)
			if keep(at) {
				out = append(out, fmt.Sprintf("INSERT INTO orders VALUES (%d, %d, %d, %s, %d.5, '%s')", order, c, product, ts(at), amount, status))
			}
			for q := 0; q < 1+r.IntN(3); q++ {
				item++
				quantity := 1 + r.IntN(5)
				if keep(at) {
					out = append(out, fmt.Sprintf("INSERT INTO order_items VALUES (%d, %d, %d)", item, order, quantity))
				}
			}
			if r.IntN(5) == 0 {
				ret++
				rat := at.Add(time.Duration(1+r.IntN(20*24)) * time.Hour)
				if keep(rat) {
					out = append(out, fmt.Sprintf("INSERT INTO returns VALUES (%d, %d, %s)", ret, c, ts(rat)))
				}
			}
		}
	}
	return out
}

func openDuckDB(t *testing.T, stmts []string) *sql.DB {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	for _, s := range append(append([]string{}, ddl...), stmts...) {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("duckdb: %s: %v", s, err)
		}
	}
	return db
}

// openPostgres loads the statements into a schema of the test's own on the
// local PostgreSQL (`make services`), in a session on UTC.
func openPostgres(t *testing.T, stmts []string) *sql.DB {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "ferry_plan_" + hex.EncodeToString(b[:])
	admin, err := sql.Open("pgx", "host=127.0.0.1 port=5432 dbname=test user=postgres sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatalf("PostgreSQL is not reachable (run `make services`): %v", err)
	}
	t.Cleanup(func() {
		a, err := sql.Open("pgx", "host=127.0.0.1 port=5432 dbname=test user=postgres sslmode=disable")
		if err == nil {
			_, _ = a.Exec("DROP SCHEMA " + schema + " CASCADE")
			a.Close()
		}
	})
	db, err := sql.Open("pgx", "host=127.0.0.1 port=5432 dbname=test user=postgres sslmode=disable search_path="+schema+" timezone=UTC")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range append(append([]string{}, ddl...), stmts...) {
		s = strings.Replace(s, " DOUBLE PRECISION", " DOUBLE PRECISION", 1)
		if _, err := tx.Exec(s); err != nil {
			t.Fatalf("postgres: %s: %v", s, err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	return db
}

// table is a query result with every value normalized: numbers as float64,
// times in UTC, strings, nil.
type table struct {
	cols []string
	rows [][]any
}

func run(t *testing.T, db *sql.DB, query string) table {
	t.Helper()
	rows, err := db.Query(query)
	if err != nil {
		t.Fatalf("%v\n%s", err, query)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	out := table{cols: cols}
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		for i, v := range vals {
			switch x := v.(type) {
			case int32:
				vals[i] = float64(x)
			case int64:
				vals[i] = float64(x)
			case float32:
				vals[i] = float64(x)
			case time.Time:
				vals[i] = time.Date(x.Year(), x.Month(), x.Day(), x.Hour(), x.Minute(), x.Second(), x.Nanosecond(), time.UTC)
			case []byte:
				vals[i] = string(x)
			}
		}
		out.rows = append(out.rows, vals)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// sameTables reports the first difference between two training tables:
// equal columns and rows, text and integers exactly, doubles to a relative
// 1e-9 (the databases may sum in another order).
func sameTables(a, b table) error {
	if strings.Join(a.cols, ",") != strings.Join(b.cols, ",") {
		return fmt.Errorf("columns differ:\n%v\n%v", a.cols, b.cols)
	}
	if len(a.rows) != len(b.rows) {
		return fmt.Errorf("%d rows and %d rows", len(a.rows), len(b.rows))
	}
	for i := range a.rows {
		for j := range a.cols {
			x, y := a.rows[i][j], b.rows[i][j]
			fx, okx := x.(float64)
			fy, oky := y.(float64)
			if okx && oky {
				if math.Abs(fx-fy) > 1e-9*math.Max(1, math.Max(math.Abs(fx), math.Abs(fy))) {
					return fmt.Errorf("row %d column %s: %v and %v", i, a.cols[j], x, y)
				}
				continue
			}
			if fmt.Sprint(x) != fmt.Sprint(y) {
				return fmt.Errorf("row %d column %s: %v (%T) and %v (%T)", i, a.cols[j], x, x, y, y)
			}
		}
	}
	return nil
}

func anchorsAt(days ...int) []Anchor {
	var out []Anchor
	splits := []Split{Train, Train, Validation, Test, Score}
	for i, d := range days {
		out = append(out, Anchor{Time: t0.Add(time.Duration(d) * 24 * time.Hour), Split: splits[min(i, len(splits)-1)]})
	}
	return out
}

// queries cover every target form, filters inside aggregations, entity
// filters on static columns and past aggregations, string operators,
// months and ASSUMING.
var queries = []string{
	"PREDICT COUNT(orders.*, 0, 30, days) = 0 FOR EACH customers.customer_id WHERE COUNT(orders.*, -90, 0, days) > 0",
	"PREDICT SUM(orders.amount WHERE orders.status IN ('paid', 'shipped'), 0, 1, months) FOR EACH customers.customer_id",
	"PREDICT AVG(orders.amount, 0, 60, days) FOR EACH customers.customer_id WHERE customers.segment IS NOT NULL AND customers.segment NOT LIKE 'b%'",
	"PREDICT MIN(orders.amount, 0, 2, weeks) <= 50 FOR EACH customers.customer_id",
	"PREDICT MAX(orders.amount, 0, 720, hours) FOR EACH customers.customer_id WHERE customers.country = 'FR' OR customers.vip",
	"PREDICT COUNT_DISTINCT(orders.product_id, 0, 90, days) FOR EACH customers.customer_id",
	"PREDICT FIRST(orders.status, 0, 90, days) FOR EACH customers.customer_id",
	"PREDICT LAST(orders.status, 0, 90, days) = 'void' FOR EACH customers.customer_id WHERE customers.segment CONTAINS 'l' OR customers.segment STARTS WITH 'o''' OR customers.segment ENDS WITH 'ze'",
	"PREDICT EXISTS(returns.*, 0, 30, days) FOR EACH customers.customer_id WHERE NOT customers.vip ASSUMING EXISTS(orders.*, 0, 30, days)",
	"PREDICT customers.segment FOR EACH customers.customer_id WHERE customers.signup_at < '2023-06-01'",
	"PREDICT customers.age FOR EACH customers.customer_id",
	"PREDICT LIST_DISTINCT(orders.product_id, 0, 30, days) RANK TOP 5 FOR EACH customers.customer_id",
	"PREDICT COUNT(orders.* WHERE orders.amount > 100 AND orders.status <> 'void', 0, 30, days) > 0 OR SUM(orders.amount, 0, 30, days) > 150 FOR EACH customers.customer_id WHERE COUNT(returns.*, -365, 0, days) = 0",
}

// TestDuckDBAndPostgresAgree renders every query's plan for DuckDB and for
// PostgreSQL, runs each on the same data, and checks that both give the
// same training table (and, for a recommendation, the same positives).
func TestDuckDBAndPostgresAgree(t *testing.T) {
	rows := shopRows(1, time.Time{})
	duck := openDuckDB(t, rows)
	pg := openPostgres(t, rows)
	g := shopGraph()
	anchors := anchorsAt(300, 330, 360, 390, 420)
	for _, text := range queries {
		t.Run(text[8:40], func(t *testing.T) {
			q, err := pql.Parse(text)
			if err != nil {
				t.Fatal(err)
			}
			p, err := New(q, g, anchors, Options{})
			if err != nil {
				t.Fatal(err)
			}
			sqlDuck, err := p.TrainingSQL(DuckDB{})
			if err != nil {
				t.Fatal(err)
			}
			sqlPG, err := p.TrainingSQL(Postgres{})
			if err != nil {
				t.Fatal(err)
			}
			a, b := run(t, duck, sqlDuck), run(t, pg, sqlPG)
			if err := sameTables(a, b); err != nil {
				t.Fatal(err)
			}
			labelled := 0
			for _, r := range a.rows {
				if r[0] != string(Score) {
					labelled++
				}
			}
			if labelled == 0 || len(a.rows) == labelled {
				t.Fatalf("%d rows, %d labelled: the data does not exercise the query", len(a.rows), labelled)
			}
			if p.Task == pql.TaskRecommendation {
				pd, err1 := p.PositivesSQL(DuckDB{})
				pp, err2 := p.PositivesSQL(Postgres{})
				if err1 != nil || err2 != nil {
					t.Fatal(err1, err2)
				}
				x, y := run(t, duck, pd), run(t, pg, pp)
				if len(x.rows) == 0 {
					t.Fatal("no positives")
				}
				if err := sameTables(x, y); err != nil {
					t.Fatal(err)
				}
				cd, err1 := p.CandidatesSQL(DuckDB{}, 5)
				cp, err2 := p.CandidatesSQL(Postgres{}, 5)
				if err1 != nil || err2 != nil {
					t.Fatal(err1, err2)
				}
				x, y = run(t, duck, cd), run(t, pg, cp)
				positives := 0
				for _, r := range x.rows {
					if r[4] == 1.0 {
						positives++
					}
				}
				if len(x.rows) == 0 || positives == 0 || positives == len(x.rows) {
					t.Fatalf("%d candidates, %d positive", len(x.rows), positives)
				}
				if err := sameTables(x, y); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// TestNoLeakage proves that features and eligibility at t use only data at
// or before t: deleting every row timed after t (and the items of deleted
// orders) changes no feature and no example at t.
func TestNoLeakage(t *testing.T) {
	g := shopGraph()
	full := openDuckDB(t, shopRows(1, time.Time{}))
	for _, days := range []int{200, 330, 420} {
		at := t0.Add(time.Duration(days) * 24 * time.Hour)
		cut := openDuckDB(t, shopRows(1, at))
		for _, text := range []string{queries[0], queries[12]} {
			q, err := pql.Parse(text)
			if err != nil {
				t.Fatal(err)
			}
			p, err := New(q, g, []Anchor{{Time: at, Split: Score}}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			s, err := p.TrainingSQL(DuckDB{})
			if err != nil {
				t.Fatal(err)
			}
			a, b := run(t, full, s), run(t, cut, s)
			if len(a.rows) < 10 {
				t.Fatalf("day %d: %d examples: the data does not exercise the check", days, len(a.rows))
			}
			if err := sameTables(a, b); err != nil {
				t.Errorf("day %d, %s: rows after t change the table: %v", days, text[8:40], err)
			}
		}
		// A recommendation's candidates and pair features at t, likewise.
		q, err := pql.Parse(queries[11])
		if err != nil {
			t.Fatal(err)
		}
		p, err := New(q, g, []Anchor{{Time: at, Split: Score}}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		s, err := p.CandidatesSQL(DuckDB{}, 5)
		if err != nil {
			t.Fatal(err)
		}
		if a, b := run(t, full, s), run(t, cut, s); len(a.rows) < 10 {
			t.Fatalf("day %d: %d candidates", days, len(a.rows))
		} else if err := sameTables(a, b); err != nil {
			t.Errorf("day %d, candidates: rows after t change them: %v", days, err)
		}
	}
	// The check itself can fail: a training anchor's label does see the
	// future, so cutting it away changes the table.
	at := t0.Add(330 * 24 * time.Hour)
	q, _ := pql.Parse(queries[0])
	p, _ := New(q, g, []Anchor{{Time: at, Split: Train}}, Options{})
	s, _ := p.TrainingSQL(DuckDB{})
	if err := sameTables(run(t, full, s), run(t, openDuckDB(t, shopRows(1, at)), s)); err == nil {
		t.Error("labels at a training anchor did not change when the future was cut away")
	}
}

// TestLabelsByHand checks window bounds, existence, WHERE, null labels,
// ASSUMING, FIRST/LAST ties and calendar months on rows small enough to
// count by hand.
func TestLabelsByHand(t *testing.T) {
	at := time.Date(2024, 1, 31, 0, 0, 0, 0, time.UTC) // the anchor t
	ts := func(d time.Duration) string { return "TIMESTAMP '" + at.Add(d).Format("2006-01-02 15:04:05") + "'" }
	day := 24 * time.Hour
	stmts := []string{
		"INSERT INTO customers VALUES (1, " + ts(-40*day) + ", 'gold', 'FR', 30, TRUE)",
		"INSERT INTO customers VALUES (2, " + ts(day) + ", 'gold', 'FR', 30, TRUE)", // does not exist at t
		"INSERT INTO customers VALUES (3, " + ts(-40*day) + ", NULL, 'DE', 40, FALSE)",
		// Customer 1: at t (a feature, not a label), in (t, t+30d], on t+30d
		// exactly (in), just after (out), and on Feb 29 (in one month
		// from Jan 31, which SQL clamps to Feb 29).
		"INSERT INTO orders VALUES (1, 1, 1, " + ts(0) + ", 10, 'paid')",
		"INSERT INTO orders VALUES (2, 1, 2, " + ts(day) + ", 20, 'paid')",
		"INSERT INTO orders VALUES (3, 1, 2, " + ts(29*day) + ", 30, 'void')",
		"INSERT INTO orders VALUES (4, 1, 3, " + ts(30*day+time.Second) + ", 40, 'paid')",
		"INSERT INTO orders VALUES (5, 1, 3, " + ts(30*day+2*time.Second) + ", 50, 'paid')",
		// Customer 3: on t-10d exactly (outside (t-10d, t]), and two orders
		// at one instant in the window.
		"INSERT INTO orders VALUES (6, 3, 1, " + ts(-10*day) + ", 5, 'paid')",
		"INSERT INTO orders VALUES (7, 3, 1, " + ts(10*day) + ", 7, 'b')",
		"INSERT INTO orders VALUES (8, 3, 1, " + ts(10*day) + ", 6, 'a')",
		"INSERT INTO returns VALUES (1, 3, " + ts(3*day) + ")",
	}
	db := openDuckDB(t, stmts)
	g := shopGraph()
	const each = " FOR EACH customers.customer_id"
	for _, tc := range []struct {
		query string
		want  string // entity=label pairs of the train rows
	}{
		{"PREDICT COUNT(orders.*, 0, 29, days)" + each, "1=2 3=2"},
		{"PREDICT COUNT(orders.*, 0, 1, months)" + each, "1=2 3=2"}, // Feb 29 00:00 ends the window: orders 2, 3
		{"PREDICT SUM(orders.amount, 0, 29, days)" + each, "1=50 3=13"},
		{"PREDICT AVG(orders.amount, 0, 5, days)" + each, "1=20"}, // customer 3 has no order: no label, no example
		{"PREDICT FIRST(orders.status, 0, 29, days)" + each, "1=paid 3=a"},
		{"PREDICT LAST(orders.status, 0, 29, days)" + each, "1=void 3=b"},
		{"PREDICT COUNT(orders.*, 0, 29, days) > 1" + each + " WHERE COUNT(orders.*, -10, 0, days) > 0", "1=1"},
		{"PREDICT MAX(orders.amount, 0, 29, days) > 20" + each + " WHERE customers.segment IS NULL", "3=0"},
		{"PREDICT COUNT(orders.* WHERE orders.status = 'paid', 0, 29, days)" + each, "1=1 3=0"},
		{"PREDICT COUNT(orders.*, 0, 29, days) >= 2" + each + " ASSUMING EXISTS(returns.*, 0, 7, days)", "3=1"},
		{"PREDICT COUNT_DISTINCT(orders.product_id, 0, 31, days)" + each, "1=2 3=1"},
		{"PREDICT customers.age" + each, "1=30 3=40"},
	} {
		q, err := pql.Parse(tc.query)
		if err != nil {
			t.Fatal(err)
		}
		p, err := New(q, g, []Anchor{{Time: at, Split: Train}}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		s, err := p.TrainingSQL(DuckDB{})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range run(t, db, s).rows {
			got = append(got, fmt.Sprintf("%v=%v", r[2], r[3]))
			// The baseline is the target one window earlier, (t-29d, t]:
			// one order each (customer 3's at t-10d, customer 1's at t).
			if tc.query == "PREDICT COUNT(orders.*, 0, 29, days)"+each && fmt.Sprint(r[4]) != "1" {
				t.Errorf("baseline of entity %v = %v, want 1", r[2], r[4])
			}
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("%s: labels %q, want %q", tc.query, strings.Join(got, " "), tc.want)
		}
	}
}

// TestTargetColumnIsNotAFeature: the column a static target predicts is
// left out of the features (it would be its own answer); other columns stay.
func TestTargetColumnIsNotAFeature(t *testing.T) {
	g := shopGraph()
	for _, tc := range []struct{ query, absent, present string }{
		{"PREDICT customers.segment FOR EACH customers.customer_id", "customers.segment", "customers.age"},
		{"PREDICT customers.age > 30 FOR EACH customers.customer_id", "customers.age", "customers.segment"},
		{"PREDICT COUNT(orders.*, 0, 7) > 0 FOR EACH customers.customer_id", "", "customers.age"},
	} {
		q, err := pql.Parse(tc.query)
		if err != nil {
			t.Fatal(err)
		}
		p, err := New(q, g, anchorsAt(300), Options{})
		if err != nil {
			t.Fatal(err)
		}
		names := map[string]bool{}
		for _, f := range p.Features {
			names[f.Name] = true
		}
		if names[tc.absent] || !names[tc.present] {
			t.Errorf("%s: features %v; want %q absent and %q present", tc.query, p.Features, tc.absent, tc.present)
		}
	}
}
