package apiclient_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/ferry-ai/ferry/controlplane/apiclient"
	"github.com/ferry-ai/ferry/internal/pki"
)

func ExampleClient_Submit() {
	roots, err := pki.LoadCAPool("/etc/ferry/ca.pem")
	if err != nil {
		log.Fatal(err)
	}
	c, err := apiclient.New("https://controlplane.example.com:8443", "token-from-a-file", roots)
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	job, err := c.Submit(ctx, "PREDICT COUNT(orders.*, 0, 30, days) > 0 FOR EACH customers.customer_id", "churn_predictions")
	if err != nil {
		log.Fatal(err) // e.g. control plane: table "ordrs" not found (did you mean "orders"?) (HTTP 400)
	}
	done, err := c.Wait(ctx, job.ID, time.Second)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(done.State, done.Model.Test.AUROC)
}
