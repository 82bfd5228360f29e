// Package all registers every connector Ferry ships on a new Mux. Binaries
// that need only some drivers build their own Mux instead.
package all

import (
	"github.com/ferry-ai/ferry/connectors"
	"github.com/ferry-ai/ferry/connectors/duckdb"
)

// Mux returns a Mux with every built-in driver registered.
func Mux() *connectors.Mux {
	m := connectors.NewMux()
	m.Register(duckdb.Scheme, duckdb.Opener{})
	return m
}
