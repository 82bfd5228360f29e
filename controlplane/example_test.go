package controlplane_test

import (
	"context"
	"log"
	"log/slog"
	"os"
	"os/signal"

	"github.com/ferry-ai/ferry/controlplane"
	"github.com/ferry-ai/ferry/internal/graph"
	"github.com/ferry-ai/ferry/internal/pki"
)

func ExampleRun() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	token, err := controlplane.ReadTokenFile("/etc/ferry/api-token")
	if err != nil {
		log.Fatal(err)
	}
	err = controlplane.Run(ctx, controlplane.Config{
		DataDir:   "/var/lib/ferry",
		APIAddr:   ":8443",
		AgentAddr: ":8444",
		TLS:       pki.Files{Cert: "/etc/ferry/controlplane.pem", Key: "/etc/ferry/controlplane-key.pem", CA: "/etc/ferry/ca.pem"},
		APIToken:  token,
		Planner: controlplane.PlannerFunc(func(query string, g *graph.Graph) ([]string, error) {
			return g.TableNames(), nil // a real planner parses and validates the query
		}),
		Logger: slog.New(slog.NewJSONHandler(os.Stderr, nil)),
	})
	if err != nil {
		log.Fatal(err)
	}
}
