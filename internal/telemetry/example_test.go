package telemetry_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/ferry-ai/ferry/internal/telemetry"
)

func ExampleRegistry() {
	reg := telemetry.New(nil)
	jobs := reg.CounterVec("ferry_example_jobs_total", "Jobs by outcome.",
		telemetry.Label{Name: "outcome", Values: []string{"succeeded", "failed"}})
	jobs.Inc("succeeded")
	jobs.Inc("j-0123456789abcdef") // not an outcome: counted as "other"
	reg.AddCheck("database", func(context.Context) error { return nil })

	for _, path := range []string{telemetry.PathReadyz, telemetry.PathHealthz} {
		rec := httptest.NewRecorder()
		reg.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		fmt.Print(path, " ", rec.Code, " ", rec.Body.String())
	}
	// Output:
	// /readyz 200 {"status":"ready","checks":{"database":"ok"}}
	// /healthz 200 {"status":"ok"}
}
