package pql_test

import (
	"errors"
	"fmt"

	"github.com/ferry-ai/ferry/engine/pql"
	"github.com/ferry-ai/ferry/internal/graph"
)

func ExampleParse() {
	q, err := pql.Parse(`predict count(orders.* where orders.status = 'returned', 0, 30, days) > 0
for each customers.customer_id
where count(orders.*, -90, 0, days) > 0`)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(q)
	for _, a := range q.Aggregations() {
		fmt.Println(a.Func, a.Table, a.Start, a.End, a.Unit)
	}

	_, err = pql.Parse("PREDICT COUNT x")
	var se *pql.SyntaxError
	fmt.Println(errors.As(err, &se), se.Line, se.Col, err)
	// Output:
	// PREDICT COUNT(orders.* WHERE orders.status = 'returned', 0, 30, days) > 0 FOR EACH customers.customer_id WHERE COUNT(orders.*, -90, 0, days) > 0
	// COUNT orders 0 30 days
	// COUNT orders -90 0 days
	// true 1 15 pql: line 1, column 15: expected "(" after COUNT, found "x"
}

func ExampleQuery_Task() {
	g := &graph.Graph{Tables: []graph.Table{
		{Name: "customers", Columns: []graph.Column{{Name: "customer_id", Type: "int64"}}, PrimaryKey: []string{"customer_id"}},
		{Name: "orders", Columns: []graph.Column{{Name: "customer_id", Type: "int64"}, {Name: "product_id", Type: "int64"},
			{Name: "amount", Type: "float64"}, {Name: "at", Type: "timestamp[us]"}},
			ForeignKeys: []graph.ForeignKey{{Columns: []string{"customer_id"}, RefTable: "customers", RefColumns: []string{"customer_id"}}}, TimeColumn: "at"},
	}}
	for _, text := range []string{
		"PREDICT COUNT(orders.*, 0, 30, days) > 0 FOR EACH customers.customer_id",
		"PREDICT SUM(orders.amount, 0, 30, days) FOR EACH customers.customer_id",
		"PREDICT LIST_DISTINCT(orders.product_id, 0, 30, days) RANK TOP 10 FOR EACH customers.customer_id",
		"PREDICT SUM(orders.amont, 0, 30, days) FOR EACH customers.customer_id",
	} {
		q, err := pql.Parse(text)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Println(q.Task(g))
	}
	// Output:
	// binary_classification <nil>
	// regression <nil>
	// recommendation <nil>
	//  pql: line 1, column 20: column "amont" not found in table "orders" (did you mean "amount"?)
}
