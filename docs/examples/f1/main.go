// Command f1 loads the Ergast Formula 1 CSV files into a DuckDB database that
// Ferry reads, with load.sql (keys, foreign keys and time columns declared;
// RelBench's rel-f1 snapshot). It is what `make f1` runs; with DuckDB's CLI
// the same script runs as the comment at its top says.
//
// Usage:
//
//	go run ./docs/examples/f1 --data ../shared/data/f1 --out .ferry-f1/f1.db
package main

import (
	"context"
	"database/sql"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	_ "github.com/duckdb/duckdb-go/v2" // registers the "duckdb" driver
)

//go:embed load.sql
var loadSQL string

func main() {
	data := flag.String("data", "../shared/data/f1", "folder of the Ergast CSV files")
	out := flag.String("out", ".ferry-f1/f1.db", "DuckDB database to write (replaced)")
	flag.Parse()
	if err := Load(context.Background(), *data, *out); err != nil {
		fmt.Fprintln(os.Stderr, "f1:", err)
		os.Exit(1)
	}
	fmt.Printf("f1: loaded %s into %s\n", *data, *out)
}

// Load writes a new DuckDB database at out from the CSV files in data.
func Load(ctx context.Context, data, out string) error {
	if _, err := os.Stat(filepath.Join(data, "races.csv")); err != nil {
		return fmt.Errorf("data folder %s: %w", data, err)
	}
	abs, err := filepath.Abs(data)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	for _, f := range []string{out, out + ".wal"} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	db, err := sql.Open("duckdb", out)
	if err != nil {
		return fmt.Errorf("open %s: %w", out, err)
	}
	defer db.Close()
	conn, err := db.Conn(ctx) // SET VARIABLE and TEMP objects live in one connection
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SET VARIABLE f1_data = ?", abs); err != nil {
		return fmt.Errorf("set f1_data: %w", err)
	}
	if _, err := conn.ExecContext(ctx, loadSQL); err != nil {
		return fmt.Errorf("load.sql: %w", err)
	}
	return nil
}
