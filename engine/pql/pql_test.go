package pql

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ferry-ai/ferry/internal/graph"
)

const demo = "PREDICT COUNT(orders.*, 0, 30, days) = 0 FOR EACH customers.customer_id WHERE COUNT(orders.*, -90, 0, days) > 0"

func TestParseGood(t *testing.T) {
	for _, tc := range []struct{ in, canon string }{
		{demo, demo},
		{"predict count(orders.*,0,30,days)>0 for each customers.customer_id", "PREDICT COUNT(orders.*, 0, 30, days) > 0 FOR EACH customers.customer_id"},
		{"PREDICT COUNT(\"my orders\".*, 0, 2, weeks) >= 1.5\nFOR EACH \"Cust\".\"id\" -- comment\nWHERE COUNT(\"my orders\".*, -12, 0, hours) != 0 AND COUNT(x.*, -1, 0, day) <= 3",
			`PREDICT COUNT("my orders".*, 0, 2, weeks) >= 1.5 FOR EACH Cust.id WHERE COUNT("my orders".*, -12, 0, hours) != 0 AND COUNT(x.*, -1, 0, days) <= 3`},
		{"PREDICT COUNT(o.*, 0, 30, days) <> 0 FOR EACH c.id", "PREDICT COUNT(o.*, 0, 30, days) != 0 FOR EACH c.id"},
		// Names spelled like keywords stay names.
		{`PREDICT COUNT("count".*, +0, 30, DAYS) == -1.25e1 FOR EACH "where"."and"`, `PREDICT COUNT("count".*, 0, 30, days) = -12.5 FOR EACH "where"."and"`},
		{"PREDICT COUNT(o.*, 0, 5000, weeks) > 0 FOR EACH c.id WHERE COUNT(o.*, -876000, 0, hours) > 0", "PREDICT COUNT(o.*, 0, 5000, weeks) > 0 FOR EACH c.id WHERE COUNT(o.*, -876000, 0, hours) > 0"},
		// Every aggregation, the unit defaulting to days, months.
		{"PREDICT SUM(orders.amount, 0, 30) FOR EACH c.id", "PREDICT SUM(orders.amount, 0, 30, days) FOR EACH c.id"},
		{"PREDICT AVG(o.amount, 0, 2, months) FOR EACH c.id", "PREDICT AVG(o.amount, 0, 2, months) FOR EACH c.id"},
		{"PREDICT MIN(o.a, 0, 1, week) < 3 FOR EACH c.id", "PREDICT MIN(o.a, 0, 1, weeks) < 3 FOR EACH c.id"},
		{"PREDICT MAX(o.a, 0, 1, hour) FOR EACH c.id", "PREDICT MAX(o.a, 0, 1, hours) FOR EACH c.id"},
		{"PREDICT count_distinct(o.product_id, 0, 7, days) FOR EACH c.id", "PREDICT COUNT_DISTINCT(o.product_id, 0, 7, days) FOR EACH c.id"},
		{"PREDICT FIRST(o.status, 0, 7, days) FOR EACH c.id", "PREDICT FIRST(o.status, 0, 7, days) FOR EACH c.id"},
		{"PREDICT LAST(o.status, 0, 7, days) = 'paid' FOR EACH c.id", "PREDICT LAST(o.status, 0, 7, days) = 'paid' FOR EACH c.id"},
		{"PREDICT EXISTS(o.*, 0, 7, days) FOR EACH c.id", "PREDICT EXISTS(o.*, 0, 7, days) FOR EACH c.id"},
		{"PREDICT LIST_DISTINCT(o.product_id, 0, 30, days) RANK TOP 10 FOR EACH c.id", "PREDICT LIST_DISTINCT(o.product_id, 0, 30, days) RANK TOP 10 FOR EACH c.id"},
		// A filter inside an aggregation, with every operator.
		{"PREDICT COUNT(orders.* WHERE orders.status = 'returned', 0, 30, days) > 0 FOR EACH customers.customer_id",
			"PREDICT COUNT(orders.* WHERE orders.status = 'returned', 0, 30, days) > 0 FOR EACH customers.customer_id"},
		{"PREDICT SUM(o.amount WHERE o.status IN ('paid', 'shipped') AND NOT o.note LIKE '%gift%' OR o.amount >= 1e3, 0, 30, days) FOR EACH c.id",
			"PREDICT SUM(o.amount WHERE o.status IN ('paid', 'shipped') AND NOT o.note LIKE '%gift%' OR o.amount >= 1000, 0, 30, days) FOR EACH c.id"},
		{"PREDICT COUNT(o.* WHERE o.sku CONTAINS 'x''y' AND o.sku STARTS WITH 'A' AND o.sku ENDS WITH 'z' AND o.sku NOT LIKE '_b' AND o.coupon IS NULL AND o.ref IS NOT NULL AND o.n NOT IN (1, 2) AND o.gift = TRUE, 0, 1, days) > 0 FOR EACH c.id",
			"PREDICT COUNT(o.* WHERE o.sku CONTAINS 'x''y' AND o.sku STARTS WITH 'A' AND o.sku ENDS WITH 'z' AND o.sku NOT LIKE '_b' AND o.coupon IS NULL AND o.ref IS NOT NULL AND o.n NOT IN (1, 2) AND o.gift = TRUE, 0, 1, days) > 0 FOR EACH c.id"},
		// Static targets and entity filters on static columns and past aggregations.
		{"PREDICT customers.segment FOR EACH customers.id WHERE customers.country = 'FR' AND COUNT(orders.*, -90, 0, days) > 0",
			"PREDICT customers.segment FOR EACH customers.id WHERE customers.country = 'FR' AND COUNT(orders.*, -90, 0, days) > 0"},
		{"PREDICT c.churned = true FOR EACH c.id", "PREDICT c.churned = TRUE FOR EACH c.id"},
		// Precedence: AND binds tighter than OR; parentheses keep what they must.
		{"PREDICT COUNT(o.*, 0, 30) > 0 OR SUM(o.a, 0, 30) > 10 AND MAX(o.a, 0, 30) < 5 FOR EACH c.id",
			"PREDICT COUNT(o.*, 0, 30, days) > 0 OR SUM(o.a, 0, 30, days) > 10 AND MAX(o.a, 0, 30, days) < 5 FOR EACH c.id"},
		{"PREDICT (COUNT(o.*, 0, 30) > 0 OR SUM(o.a, 0, 30) > 10) AND ((MAX(o.a, 0, 30)) < 5) FOR EACH c.id WHERE NOT (c.a = 1 OR c.b = 2) AND NOT NOT c.ok",
			"PREDICT (COUNT(o.*, 0, 30, days) > 0 OR SUM(o.a, 0, 30, days) > 10) AND MAX(o.a, 0, 30, days) < 5 FOR EACH c.id WHERE NOT (c.a = 1 OR c.b = 2) AND NOT NOT c.ok"},
		{"PREDICT COUNT(o.*, 0, 7) > 0 FOR EACH c.id WHERE (c.a = 1 AND c.b = 2) AND c.c = 3", "PREDICT COUNT(o.*, 0, 7, days) > 0 FOR EACH c.id WHERE c.a = 1 AND c.b = 2 AND c.c = 3"},
		// ASSUMING: conditions over future windows.
		{"PREDICT COUNT(o.*, 0, 7) > 0 FOR EACH c.id WHERE EXISTS(o.*, -30, 0) ASSUMING COUNT(coupons.*, 0, 7) > 0",
			"PREDICT COUNT(o.*, 0, 7, days) > 0 FOR EACH c.id WHERE EXISTS(o.*, -30, 0, days) ASSUMING COUNT(coupons.*, 0, 7, days) > 0"},
		{"PREDICT COUNT(o.*, 0, 7) > 0 FOR EACH c.id WHERE c.signup_at >= '2024-01-01'", "PREDICT COUNT(o.*, 0, 7, days) > 0 FOR EACH c.id WHERE c.signup_at >= '2024-01-01'"},
	} {
		q, err := Parse(tc.in)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tc.in, err)
		}
		if got := q.String(); got != tc.canon {
			t.Errorf("Parse(%q).String() =\n %q, want\n %q", tc.in, got, tc.canon)
		}
		again, err := Parse(q.String())
		if err != nil || again.String() != q.String() {
			t.Errorf("canonical form does not round-trip: %q: %v", q.String(), err)
		}
	}
}

func TestParseTree(t *testing.T) {
	q, err := Parse(demo)
	if err != nil {
		t.Fatal(err)
	}
	target, ok := q.Target.Expr.(*Binary)
	if !ok {
		t.Fatalf("target is %T", q.Target.Expr)
	}
	agg := target.Left.(*Aggregation)
	want := Aggregation{Func: "COUNT", Table: "orders", Column: "*", Start: 0, End: 30, Unit: Days, At: Pos{1, 9}, TablePos: Pos{1, 15}, ColumnPos: Pos{1, 22}}
	if *agg != want || target.Op != OpEQ || target.Right.(*Literal).Num != 0 || target.At != (Pos{1, 9}) {
		t.Errorf("target parsed as %+v %+v", target, agg)
	}
	if q.Entity != (EntityRef{"customers", "customer_id", Pos{1, 51}, Pos{1, 61}}) || q.Text != demo {
		t.Errorf("entity parsed as %+v", q.Entity)
	}
	w := q.Where.(*Binary)
	if wa := w.Left.(*Aggregation); wa.Start != -90 || wa.End != 0 || wa.At != (Pos{1, 79}) {
		t.Errorf("WHERE parsed as %+v", wa)
	}
	anchor := time.Date(2024, 1, 31, 0, 0, 0, 0, time.UTC)
	if s, e := agg.Window(anchor); !s.Equal(anchor) || !e.Equal(anchor.Add(30*24*time.Hour)) {
		t.Errorf("target window = (%v, %v]", s, e)
	}
	m := &Aggregation{Start: -1, End: 1, Unit: Months}
	if s, e := m.Window(anchor); !s.Equal(time.Date(2023, 12, 31, 0, 0, 0, 0, time.UTC)) || !e.Equal(time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("month window = (%v, %v], want calendar months clamped to the month's end", s, e)
	}
	for _, tc := range []struct {
		from time.Time
		n    int
		want time.Time
	}{
		{time.Date(2023, 1, 31, 12, 0, 0, 0, time.UTC), 1, time.Date(2023, 2, 28, 12, 0, 0, 0, time.UTC)},
		{time.Date(2023, 3, 31, 0, 0, 0, 0, time.UTC), -1, time.Date(2023, 2, 28, 0, 0, 0, 0, time.UTC)},
		{time.Date(2023, 5, 15, 0, 0, 0, 0, time.UTC), 14, time.Date(2024, 7, 15, 0, 0, 0, 0, time.UTC)},
		{time.Date(2024, 12, 31, 0, 0, 0, 0, time.UTC), -10, time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC)},
	} {
		if got := Months.Add(tc.from, tc.n); !got.Equal(tc.want) {
			t.Errorf("%v + %d months = %v, want %v", tc.from, tc.n, got, tc.want)
		}
	}
	if got := len(q.Aggregations()); got != 2 {
		t.Errorf("Aggregations() = %d, want 2", got)
	}
	q, _ = Parse("PREDICT COUNT(o.* WHERE o.a = 1, 0, 7) > 0 FOR EACH c.id WHERE c.x = 1 AND EXISTS(o.*, -1, 0) ASSUMING SUM(o.a, 0, 7) > 1")
	var funcs []string
	for _, a := range q.Aggregations() {
		funcs = append(funcs, a.Func)
	}
	if strings.Join(funcs, ",") != "COUNT,EXISTS,SUM" || len(Conjuncts(q.Where)) != 2 || len(Conjuncts(q.Assuming)) != 1 || Conjuncts(nil) != nil {
		t.Errorf("aggregations %v, conjuncts %d", funcs, len(Conjuncts(q.Where)))
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		in        string
		line, col int
		want      string
	}{
		{"", 1, 1, "expected PREDICT"},
		{"SELECT * FROM customers", 1, 1, "expected PREDICT"},
		{"PREDICT COUNT(orders.*, 0, 30, days) > 0 FOR EACH", 1, 50, "expected entity table"},
		{"PREDICT COUNT(orders, 0, 30, days) > 0 FOR EACH c.id", 1, 21, `expected "."`},
		{"PREDICT COUNT(orders.*, 0, 30, years) > 0 FOR EACH c.id", 1, 32, "time unit"},
		{"PREDICT COUNT(orders.*, 30, 0, days) > 0 FOR EACH c.id", 1, 9, "less than its end"},
		{"PREDICT COUNT(orders.*, -30, 0, days) > 0 FOR EACH c.id", 1, 9, "must lie in the future"},
		{"PREDICT COUNT(orders.*, 0, 30, days) > 0 FOR EACH c.id WHERE COUNT(orders.*, 0, 30, days) > 0", 1, 62, "must lie in the past"},
		{"PREDICT COUNT(o.*, 0, 30) > 0 FOR EACH c.id ASSUMING COUNT(x.*, -3, 0) > 0", 1, 54, "ASSUMING window (-3, 0] must lie in the future"},
		{"PREDICT COUNT(orders.*, 0, 1.5, days) > 0 FOR EACH c.id", 1, 28, "window end"},
		{"PREDICT COUNT(orders.*, 0, 30, days) > 0 FOR EACH c.id extra", 1, 56, "expected WHERE, ASSUMING or end"},
		{"PREDICT COUNT(orders.*, 0, 30, days) > 0 FOR EACH c.id WHERE c.a = 1 c", 1, 70, "expected AND, OR, ASSUMING or end"},
		{"PREDICT COUNT(orders.*, 0, 30, days) > 0\nFOR EACH c.id WHERE", 2, 20, "expected a value"},
		{"PREDICT COUNT(\"orders.*, 0, 30, days) > 0 FOR EACH c.id", 1, 15, "unterminated"},
		{"PREDICT COUNT(o.* WHERE o.s = 'abc, 0, 30) > 0 FOR EACH c.id", 1, 31, "unterminated string"},
		{"PREDICT COUNT(orders.*, 0, 30, days) > 0 FOR EACH c.id; DROP TABLE x", 1, 55, "unexpected character"},
		{"PREDICT COUNT(orders.*, 0, 30, days) > 1e999 FOR EACH c.id", 1, 40, "out of range"},
		{"PREDICT COUNT x", 1, 15, `expected "(" after COUNT, found "x"`},
		{"PREDICT COUNT(orders.*, 0, 999999999999, hours) > 0 FOR EACH c.id", 1, 28, "more than 100 years"},
		{"PREDICT COUNT(orders.*, 0, 6000, weeks) > 0 FOR EACH c.id", 1, 28, "more than 100 years"},
		{"PREDICT COUNT(orders.*, 0, 1300, months) > 0 FOR EACH c.id", 1, 28, "more than 100 years"},
		{"PREDICT COUNT(orders.*, 0, 30, days) > 0 FOR EACH c.id WHERE COUNT(o.*, -99999999, 0, days) > 0", 1, 73, "more than 100 years"},
		{"PREDICT COUNT(orders.*, 0, 30, days) > 0 FOR EACH c.id WHERE COUNT(o.*, -9, 0, days) > 0 OR", 1, 92, "expected a value"},
		{"PREDICT COUNT(orders.*, 0, 30, days) ! 0 FOR EACH c.id", 1, 38, `"!="`},
		{"PREDICT COUNT(orders.*, 0, 30, days) > 0 FOR EACH \"\".id", 1, 51, "empty"},
		{"PREDICT COUNT(orders.*, 0, 30, days) > 0 FOR EACH c.\"a\nb\"", 1, 53, "newline"},
		{"PREDICT\n\tCOUNT(orders.*, 0, 30, days)\n\t> FOR", 3, 4, "expected a value"},
		{"PREDICT COUNT(orders.*, 0, 30, days) > 0 FOR EACH c.id \xff", 1, 56, "UTF-8"},
		// Functions and their arguments.
		{"PREDICT SUM(orders.*, 0, 30) FOR EACH c.id", 1, 20, "SUM needs a column"},
		{"PREDICT LIST_DISTINCT(o.p, 0, 30) FOR EACH c.id", 1, 9, "needs RANK TOP k"},
		{"PREDICT LIST_DISTINCT(o.p, 0, 30) RANK TOP 0 FOR EACH c.id", 1, 44, "between 1 and 1000"},
		{"PREDICT LIST_DISTINCT(o.p, 0, 30) RANK TOP 2.5 FOR EACH c.id", 1, 44, "an integer"},
		{"PREDICT COUNT(o.*, 0, 30) RANK TOP 3 FOR EACH c.id", 1, 27, "follows a LIST_DISTINCT"},
		{"PREDICT LIST_DISTINCT(o.p, 0, 30) = 1 FOR EACH c.id", 1, 9, "whole target"},
		{"PREDICT COUNT(o.* WHERE COUNT(o.*, 0, 1) > 0, 0, 30) > 0 FOR EACH c.id", 1, 25, "cannot appear inside an aggregation's WHERE"},
		{"PREDICT COUNT(o.* WHERE c.segment = 'x', 0, 30) > 0 FOR EACH c.id", 1, 25, "conditions use the columns of o"},
		{"PREDICT 42 FOR EACH c.id", 1, 9, "found the constant 42"},
		{"PREDICT 1 > 0 FOR EACH c.id", 1, 9, "two constants"},
		{"PREDICT c.a = NULL FOR EACH c.id", 1, 15, "use IS NULL"},
		{"PREDICT c.a IN (1, 'x') FOR EACH c.id", 1, 20, "one kind"},
		{"PREDICT c.a IN (NULL) FOR EACH c.id", 1, 17, "IS NULL"},
		{"PREDICT c.a IN () FOR EACH c.id", 1, 17, "expected a constant"},
		{"PREDICT c.a LIKE 3 FOR EACH c.id", 1, 18, "expected a 'string' after LIKE"},
		{"PREDICT c.a STARTS 'x' FOR EACH c.id", 1, 20, "expected WITH after STARTS"},
		{"PREDICT c.a NOT BETWEEN 1 FOR EACH c.id", 1, 17, "expected LIKE or IN after NOT"},
		{"PREDICT c.a IS 3 FOR EACH c.id", 1, 16, "expected NULL after IS"},
		{"PREDICT c.* FOR EACH c.id", 1, 11, "only valid inside COUNT or EXISTS"},
		{"PREDICT orders.amount FOR EACH c.id", 1, 9, "not a column of the entity table c"},
		{"PREDICT COUNT(o.*, 0, 7) > 0 FOR EACH c.id WHERE o.status = 'x'", 1, 50, "not a column of the entity table c"},
		{"PREDICT COUNT(o.*, 0, 7) > 0 FOR EACH c.id WHERE c.where = 1", 1, 52, "found the keyword WHERE"},
		{"PREDICT COUNT(o.*, 0, 7) > 0 FOR EACH c.id WHERE (c.a = 1", 1, 58, `expected ")"`},
		{"PREDICT COUNT(o.*, 0, 7) > 0 FOR EACH c.id WHERE " + strings.Repeat("NOT ", 70) + "c.ok", 1, 310, "deeper than 64"},
		{"PREDICT COUNT(o.*, 0, 7) > 0 FOR EACH c.id WHERE " + strings.Repeat("(", 70) + "c.ok", 1, 115, "deeper than 64"},
	} {
		_, err := Parse(tc.in)
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("Parse(%q) = %v, want a SyntaxError", tc.in, err)
			continue
		}
		if se.Line != tc.line || se.Col != tc.col || !strings.Contains(se.Msg, tc.want) {
			t.Errorf("Parse(%q) = line %d col %d %q; want line %d col %d containing %q", tc.in, se.Line, se.Col, se.Msg, tc.line, tc.col, tc.want)
		}
	}
	if _, err := Parse(strings.Repeat(" ", maxQueryLen+1)); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Errorf("an oversized query gave %v", err)
	}
	long := "PREDICT c.a IN (" + strings.Repeat("1, ", maxList) + "1) FOR EACH c.id"
	if _, err := Parse(long); err == nil || !strings.Contains(err.Error(), "at most 1000 values") {
		t.Errorf("an oversized IN list gave %v", err)
	}
}

func shop() *graph.Graph {
	return &graph.Graph{Tables: []graph.Table{
		{Name: "customers", Columns: []graph.Column{{Name: "customer_id", Type: "int64"}, {Name: "signup_at", Type: "timestamp[us, tz=UTC]"},
			{Name: "segment", Type: "utf8"}, {Name: "age", Type: "int32"}, {Name: "vip", Type: "bool"}, {Name: "photo", Type: "binary"}, {Name: "notes"}},
			PrimaryKey: []string{"customer_id"}, TimeColumn: "signup_at"},
		{Name: "products", Columns: []graph.Column{{Name: "product_id", Type: "int64"}}, PrimaryKey: []string{"product_id"}},
		{Name: "orders", Columns: []graph.Column{{Name: "order_id", Type: "int64"}, {Name: "customer_id", Type: "int64"}, {Name: "product_id", Type: "int64"},
			{Name: "ordered_at", Type: "timestamp[us]"}, {Name: "amount", Type: "decimal(10, 2)"}, {Name: "status", Type: "utf8"}, {Name: "tags", Type: "list<item: utf8, nullable>"}},
			PrimaryKey: []string{"order_id"},
			ForeignKeys: []graph.ForeignKey{{Columns: []string{"customer_id"}, RefTable: "customers", RefColumns: []string{"customer_id"}},
				{Columns: []string{"product_id"}, RefTable: "products", RefColumns: []string{"product_id"}}}, TimeColumn: "ordered_at"},
		{Name: "order_items", Columns: []graph.Column{{Name: "order_item_id"}, {Name: "order_id"}}, PrimaryKey: []string{"order_item_id"},
			ForeignKeys: []graph.ForeignKey{{Columns: []string{"order_id"}, RefTable: "orders", RefColumns: []string{"order_id"}}}},
		{Name: "returns", Columns: []graph.Column{{Name: "return_id"}, {Name: "customer_id"}, {Name: "returned_at"}}, PrimaryKey: []string{"return_id"},
			ForeignKeys: []graph.ForeignKey{{Columns: []string{"customer_id"}, RefTable: "customers", RefColumns: []string{"customer_id"}}}, TimeColumn: "returned_at"},
	}}
}

func TestValidateAndTask(t *testing.T) {
	g := shop()
	const each = " FOR EACH customers.customer_id"
	for _, tc := range []struct{ in, task, err string }{
		{demo, TaskBinaryClassification, ""},
		{"PREDICT SUM(orders.amount, 0, 30)" + each, TaskRegression, ""},
		{"PREDICT AVG(orders.amount WHERE orders.status != 'void', 0, 30)" + each, TaskRegression, ""},
		{"PREDICT COUNT_DISTINCT(orders.product_id, 0, 30)" + each, TaskRegression, ""},
		{"PREDICT FIRST(orders.status, 0, 30)" + each, TaskMulticlassClassification, ""},
		{"PREDICT MAX(orders.amount, 0, 30) > 100" + each, TaskBinaryClassification, ""},
		{"PREDICT EXISTS(orders.*, 0, 30)" + each + " WHERE customers.vip", TaskBinaryClassification, ""},
		{"PREDICT customers.segment" + each, TaskMulticlassClassification, ""},
		{"PREDICT customers.age" + each, TaskRegression, ""},
		{"PREDICT customers.vip" + each, TaskBinaryClassification, ""},
		{"PREDICT customers.segment IN ('gold', 'silver')" + each, TaskBinaryClassification, ""},
		{"PREDICT LIST_DISTINCT(orders.product_id, 0, 30) RANK TOP 5" + each, TaskRecommendation, ""},
		{"PREDICT COUNT(orders.*, 0, 7) > 0" + each + " WHERE customers.signup_at < '2024-06-01 12:00:00' AND customers.segment STARTS WITH 'g'", TaskBinaryClassification, ""},
		{"PREDICT COUNT(orders.* WHERE orders.ordered_at IN ('2024-01-01'), 0, 7) > 0" + each, TaskBinaryClassification, ""},
		{"PREDICT COUNT(orders.*, 0, 7) > 0" + each + " ASSUMING COUNT(returns.*, 0, 7) = 0", TaskBinaryClassification, ""},
		// Names, with the nearest one.
		{"PREDICT COUNT(ordrs.*, 0, 30, days) > 0" + each, "", `line 1, column 15: table "ordrs" not found (did you mean "orders"?)`},
		{"PREDICT COUNT(orders.*, 0, 30, days) > 0 FOR EACH customer.customer_id", "", `did you mean "customers"`},
		{"PREDICT COUNT(orders.*, 0, 30, days) > 0 FOR EACH customers.customer_idd", "", `column "customer_idd" not found in table "customers" (did you mean "customer_id"?)`},
		{"PREDICT SUM(orders.amout, 0, 30)" + each, "", `line 1, column 20: column "amout" not found in table "orders" (did you mean "amount"?)`},
		{"PREDICT COUNT(orders.* WHERE orders.stauts = 'x', 0, 30) > 0" + each, "", `column 37: column "stauts" not found in table "orders" (did you mean "status"?)`},
		{"PREDICT customers.segmnt" + each, "", `column 19: column "segmnt" not found in table "customers" (did you mean "segment"?)`},
		// Keys and links.
		{"PREDICT COUNT(orders.*, 0, 30, days) > 0 FOR EACH customers.signup_at", "", "not the primary key"},
		{"PREDICT COUNT(products.*, 0, 30, days) > 0" + each, "", "no time column"},
		{"PREDICT COUNT(customers.*, 0, 30, days) > 0 FOR EACH orders.order_id", "", "no foreign key"},
		{"PREDICT customers.customer_id" + each, "", "entity's own key"},
		// Types.
		{"PREDICT SUM(orders.status, 0, 30)" + each, "", "SUM needs a numeric column; orders.status is a string"},
		{"PREDICT MAX(orders.tags, 0, 30)" + each, "", "needs a scalar column"},
		{"PREDICT COUNT(orders.*, 0, 30) > 'x'" + each, "", "cannot compare COUNT(orders.*, 0, 30, days) (a number) with 'x' (a string)"},
		{"PREDICT customers.segment > 3" + each, "", "cannot compare"},
		{"PREDICT customers.age LIKE 'x%'" + each, "", "LIKE matches strings; customers.age is a number"},
		{"PREDICT customers.vip > TRUE" + each, "", "booleans compare with = and != only"},
		{"PREDICT customers.age IN ('a')" + each, "", "IN list holds string values"},
		{"PREDICT COUNT(orders.*, 0, 7) > 0" + each + " WHERE customers.signup_at > 'yesterday'", "", "'yesterday' is not a time"},
		{"PREDICT COUNT(orders.*, 0, 7) > 0" + each + " WHERE COUNT(orders.*, -7, 0)", "", "is a number, not a condition"},
		{"PREDICT COUNT(orders.*, 0, 7) > 0 AND SUM(orders.amount, 0, 7)" + each, "", "is a number, not a condition"},
		{"PREDICT COUNT(orders.* WHERE orders.amount, 0, 7) > 0" + each, "", "not a condition"},
		{"PREDICT customers.signup_at" + each, "", "cannot predict customers.signup_at: it is a time"},
		{"PREDICT customers.photo" + each, "", "cannot predict"},
		{"PREDICT customers.notes" + each, "", "gives no type"},
	} {
		q, err := Parse(tc.in)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tc.in, err)
		}
		task, err := q.Task(g)
		switch {
		case tc.err == "" && (err != nil || task != tc.task):
			t.Errorf("Task(%q) = %q, %v; want %q", tc.in, task, err, tc.task)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("Task(%q) = %q, %v; want an error containing %q", tc.in, task, err, tc.err)
		}
		if verr := q.Validate(g); (verr == nil) != (tc.err == "") {
			t.Errorf("Validate(%q) = %v, Task's error %v", tc.in, verr, err)
		}
		var nf *graph.NotFoundError
		if strings.Contains(tc.err, "not found") && !errors.As(err, &nf) {
			t.Errorf("Task(%q) = %v, want a *graph.NotFoundError", tc.in, err)
		}
	}
	q, _ := Parse(demo)
	if err := q.Validate(nil); err == nil {
		t.Error("Validate(nil) accepted")
	}
}

func TestRequiredTables(t *testing.T) {
	g := shop()
	for _, tc := range []struct{ in, want string }{
		{demo, "customers,orders,returns"},
		{"PREDICT COUNT(returns.*, 0, 30, days) > 0 FOR EACH customers.customer_id WHERE COUNT(orders.*, -60, 0, days) >= 2 AND COUNT(returns.*, -9, 0, days) = 0",
			"customers,returns,orders"},
		// Unknown tables are listed as named; Validate reports them.
		{"PREDICT COUNT(x.*, 0, 30, days) > 0 FOR EACH y.id", "y,x"},
	} {
		q, err := Parse(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(RequiredTables(q, g), ","); got != tc.want {
			t.Errorf("RequiredTables(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}
