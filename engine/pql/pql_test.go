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
	} {
		q, err := Parse(tc.in)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tc.in, err)
		}
		if got := q.String(); got != tc.canon {
			t.Errorf("Parse(%q).String() = %q, want %q", tc.in, got, tc.canon)
		}
		again, err := Parse(q.String())
		if err != nil || again.String() != q.String() {
			t.Errorf("canonical form does not round-trip: %q: %v", q.String(), err)
		}
	}
	q, _ := Parse(demo)
	wantTarget := Target{Agg: Aggregation{Func: "COUNT", Table: "orders", Column: "*", Start: 0, End: 30, Unit: Days, Pos: Pos{1, 9}, TablePos: Pos{1, 15}}, Op: "=", Value: 0, Pos: Pos{1, 9}}
	wantFilter := Condition{Agg: Aggregation{Func: "COUNT", Table: "orders", Column: "*", Start: -90, End: 0, Unit: Days, Pos: Pos{1, 79}, TablePos: Pos{1, 85}}, Op: ">", Value: 0, Pos: Pos{1, 79}}
	if q.Target != wantTarget || len(q.Filters) != 1 || q.Filters[0] != wantFilter || q.Entity != (EntityRef{"customers", "customer_id", Pos{1, 51}, Pos{1, 61}}) || q.Text != demo {
		t.Errorf("demo query parsed as %+v", q)
	}
	if s, e := q.Target.Agg.Window(); s != 0 || e != 30*24*time.Hour {
		t.Errorf("target window = (%v, %v]", s, e)
	}
	if q.Target.Agg.Start != 0 || q.Target.Agg.End != 30 || q.Target.Op != "=" || q.Target.Value != 0 ||
		len(q.Filters) != 1 || q.Filters[0].Agg.Start != -90 || !q.Target.FewerIsPositive() || q.TaskType() != "binary_classification" {
		t.Errorf("demo query parsed as %+v", q)
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
		{"PREDICT COUNT(orders.*, 0, 30, days) FOR EACH c.id", 1, 38, "expected a comparison"},
		{"PREDICT COUNT(orders.*, 0, 30, years) > 0 FOR EACH c.id", 1, 32, "time unit"},
		{"PREDICT COUNT(orders.*, 30, 0, days) > 0 FOR EACH c.id", 1, 9, "less than its end"},
		{"PREDICT COUNT(orders.*, -30, 0, days) > 0 FOR EACH c.id", 1, 9, "must lie in the future"},
		{"PREDICT COUNT(orders.*, 0, 30, days) > 0 FOR EACH c.id WHERE COUNT(orders.*, 0, 30, days) > 0", 1, 62, "must lie in the past"},
		{"PREDICT COUNT(orders.*, 0, 1.5, days) > 0 FOR EACH c.id", 1, 28, "window end"},
		{"PREDICT SUM(orders.amount, 0, 30, days) > 0 FOR EACH c.id", 1, 9, "not supported yet"},
		{"PREDICT COUNT(orders.*, 0, 30, days) > 0 FOR EACH c.id extra", 1, 56, "expected WHERE or end"},
		{"PREDICT COUNT(orders.*, 0, 30, days) > 0\nFOR EACH c.id WHERE", 2, 20, "aggregation"},
		{"PREDICT COUNT(\"orders.*, 0, 30, days) > 0 FOR EACH c.id", 1, 15, "unterminated"},
		{"PREDICT COUNT(orders.*, 0, 30, days) > 0 FOR EACH c.id; DROP TABLE x", 1, 55, "unexpected character"},
		{"PREDICT COUNT(orders.*, 0, 30, days) > 1e999 FOR EACH c.id", 1, 40, "out of range"},
		{"PREDICT COUNT x", 1, 15, `expected "(" after COUNT, found "x"`},
		{"PREDICT COUNT(orders.*, 0, 999999999999, hours) > 0 FOR EACH c.id", 1, 28, "more than 100 years"},
		{"PREDICT COUNT(orders.*, 0, 6000, weeks) > 0 FOR EACH c.id", 1, 28, "more than 100 years"},
		{"PREDICT COUNT(orders.*, 0, 30, days) > 0 FOR EACH c.id WHERE COUNT(o.*, -99999999, 0, days) > 0", 1, 73, "more than 100 years"},
		{"PREDICT COUNT(orders.*, 0, 30, days) > 0 FOR EACH c.id WHERE COUNT(o.*, -9, 0, days) > 0 OR", 1, 90, "OR is not supported yet"},
		{"PREDICT COUNT(orders.*, 0, 30, days) ! 0 FOR EACH c.id", 1, 38, `"!="`},
		{"PREDICT COUNT(orders.*, 0, 30, days) > 0 FOR EACH \"\".id", 1, 51, "empty"},
		{"PREDICT COUNT(orders.*, 0, 30, days) > 0 FOR EACH c.\"a\nb\"", 1, 53, "newline"},
		{"PREDICT\n\tCOUNT(orders.*, 0, 30, days)\n\t> x", 3, 4, "expected a number"},
		{"PREDICT COUNT(orders.*, 0, 30, days) > 0 FOR EACH c.id \xff", 1, 56, "UTF-8"},
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
}

func shop() *graph.Graph {
	return &graph.Graph{Tables: []graph.Table{
		{Name: "customers", Columns: []graph.Column{{Name: "customer_id"}, {Name: "signup_at"}}, PrimaryKey: []string{"customer_id"}, TimeColumn: "signup_at"},
		{Name: "products", Columns: []graph.Column{{Name: "product_id"}}, PrimaryKey: []string{"product_id"}},
		{Name: "orders", Columns: []graph.Column{{Name: "order_id"}, {Name: "customer_id"}, {Name: "ordered_at"}}, PrimaryKey: []string{"order_id"},
			ForeignKeys: []graph.ForeignKey{{Columns: []string{"customer_id"}, RefTable: "customers", RefColumns: []string{"customer_id"}}}, TimeColumn: "ordered_at"},
		{Name: "order_items", Columns: []graph.Column{{Name: "order_item_id"}, {Name: "order_id"}}, PrimaryKey: []string{"order_item_id"},
			ForeignKeys: []graph.ForeignKey{{Columns: []string{"order_id"}, RefTable: "orders", RefColumns: []string{"order_id"}}}},
		{Name: "returns", Columns: []graph.Column{{Name: "return_id"}, {Name: "customer_id"}, {Name: "returned_at"}}, PrimaryKey: []string{"return_id"},
			ForeignKeys: []graph.ForeignKey{{Columns: []string{"customer_id"}, RefTable: "customers", RefColumns: []string{"customer_id"}}}, TimeColumn: "returned_at"},
	}}
}

func TestValidate(t *testing.T) {
	g := shop()
	for _, tc := range []struct{ in, want string }{
		{demo, ""},
		{"PREDICT COUNT(ordrs.*, 0, 30, days) > 0 FOR EACH customers.customer_id", `table "ordrs" not found (did you mean "orders"?)`},
		{"PREDICT COUNT(orders.*, 0, 30, days) > 0 FOR EACH customer.customer_id", `did you mean "customers"`},
		{"PREDICT COUNT(orders.*, 0, 30, days) > 0 FOR EACH customers.customer_idd", `column "customer_idd" not found in table "customers" (did you mean "customer_id"?)`},
		{"PREDICT COUNT(orders.*, 0, 30, days) > 0 FOR EACH customers.signup_at", "not the primary key"},
		{"PREDICT COUNT(products.*, 0, 30, days) > 0 FOR EACH customers.customer_id", "no time column"},
		{"PREDICT COUNT(customers.*, 0, 30, days) > 0 FOR EACH orders.order_id", "no foreign key"},
	} {
		q, err := Parse(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		err = q.Validate(g)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("Validate(%q): %v", tc.in, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("Validate(%q) = %v, want %q", tc.in, err, tc.want)
		}
		var nf *graph.NotFoundError
		if strings.Contains(tc.want, "not found") && !errors.As(err, &nf) {
			t.Errorf("Validate(%q) = %v, want a *graph.NotFoundError", tc.in, err)
		}
	}
	q, _ := Parse(demo)
	if err := q.Validate(nil); err == nil {
		t.Error("Validate(nil) accepted")
	}
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
