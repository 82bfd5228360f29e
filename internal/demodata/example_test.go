package demodata_test

import (
	"context"
	"fmt"
	"log"
	"strings"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/ferry-ai/ferry/connectors"
	"github.com/ferry-ai/ferry/internal/demodata"
)

// rowCounter is a connectors.Sink that counts rows and drops them; a real
// program passes a *connectors.Conn, such as a DuckDB connection.
type rowCounter struct{}

func (rowCounter) Write(_ context.Context, _ string, r array.RecordReader, _ connectors.WriteOptions) (int64, error) {
	var n int64
	for r.Next() {
		n += r.RecordBatch().NumRows()
	}
	return n, r.Err()
}

func ExampleGenerate() {
	sum, err := demodata.Generate(context.Background(), rowCounter{}, demodata.Config{Scale: 0.01, Seed: 1})
	if err != nil {
		log.Fatal(err)
	}
	for _, t := range sum.Tables {
		fmt.Println(t.Name, t.Rows)
	}
	fmt.Println("churners", sum.Churners, "reactivated", sum.Reactivated, "of", sum.Customers)
	// Output:
	// customers 100
	// products 50
	// orders 3494
	// order_items 11210
	// returns 329
	// churners 22 reactivated 1 of 100
}

func ExampleSchemas() {
	for _, t := range demodata.Schemas() {
		var fks []string
		for _, fk := range t.ForeignKeys {
			fks = append(fks, fmt.Sprintf("%s->%s", fk.Columns[0], fk.RefTable))
		}
		fmt.Printf("%s pk=%s time=%q fks=[%s]\n", t.Name, strings.Join(t.PrimaryKey, ","), t.TimeColumn, strings.Join(fks, " "))
	}
	// Output:
	// customers pk=customer_id time="signup_at" fks=[]
	// products pk=product_id time="" fks=[]
	// orders pk=order_id time="ordered_at" fks=[customer_id->customers]
	// order_items pk=order_item_id time="" fks=[order_id->orders product_id->products]
	// returns pk=return_id time="returned_at" fks=[order_id->orders customer_id->customers]
}
