package pql_test

import (
	"errors"
	"fmt"

	"github.com/ferry-ai/ferry/engine/pql"
)

func ExampleParse() {
	q, err := pql.Parse(`predict count(orders.*, 0, 30, days) = 0
for each customers.customer_id
where count(orders.*, -90, 0, days) > 0`)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(q)
	fmt.Println(q.TaskType(), q.Target.Agg.Table, q.Target.Agg.End, q.Entity.Column)

	_, err = pql.Parse("PREDICT COUNT x")
	var se *pql.SyntaxError
	fmt.Println(errors.As(err, &se), se.Line, se.Col, err)
	// Output:
	// PREDICT COUNT(orders.*, 0, 30, days) = 0 FOR EACH customers.customer_id WHERE COUNT(orders.*, -90, 0, days) > 0
	// binary_classification orders 30 customer_id
	// true 1 15 pql: line 1, column 15: expected "(" after COUNT, found "x"
}
