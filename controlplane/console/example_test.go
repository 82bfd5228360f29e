package console_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/ferry-ai/ferry/controlplane/console"
)

// The control plane mounts the console beside the API on its HTTPS
// listener; the pages call the API on the same origin.
func ExampleHandler() {
	mux := http.NewServeMux()
	mux.Handle(console.Prefix, console.Handler())

	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/console/", nil))
	fmt.Println(rec.Code, rec.Header().Get("Content-Type"))
	fmt.Println(rec.Header().Get("X-Frame-Options"), rec.Header().Get("Referrer-Policy"))
	// Output:
	// 200 text/html; charset=utf-8
	// DENY no-referrer
}
