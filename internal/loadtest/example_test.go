package loadtest_test

import (
	"context"
	"log"
	"os"
	"time"

	"github.com/ferry-ai/ferry/internal/loadtest"
)

// Run 1,000 agents heartbeating every 10 s against a ferry-controlplane
// built from this module while 100 jobs are dispatched, and print the table.
func ExampleRun() {
	r, err := loadtest.Run(context.Background(), loadtest.Config{
		Agents:            1000,
		Jobs:              100,
		HeartbeatInterval: 10 * time.Second,
		GoroutineDump:     true,
		Progress:          os.Stderr,
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := r.WriteTable(os.Stdout); err != nil {
		log.Fatal(err)
	}
}
