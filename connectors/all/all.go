// Package all registers every connector Ferry ships on a new Mux. Binaries
// that need only some drivers build their own Mux instead.
package all

import (
	"github.com/ferry-ai/ferry/connectors"
	"github.com/ferry-ai/ferry/connectors/duckdb"
	"github.com/ferry-ai/ferry/connectors/parquet"
	"github.com/ferry-ai/ferry/connectors/postgres"
)

// Mux returns a Mux with every built-in driver registered.
func Mux() *connectors.Mux {
	m := connectors.NewMux()
	m.Register(duckdb.Scheme, duckdb.Opener{})
	m.Register(parquet.FileScheme, parquet.FileOpener{})
	m.Register(parquet.S3Scheme, parquet.S3Opener{})
	m.Register(postgres.Scheme, postgres.Opener{})
	m.Register(postgres.SchemeLong, postgres.Opener{})
	m.Register(postgres.RedshiftScheme, postgres.RedshiftOpener{})
	return m
}
