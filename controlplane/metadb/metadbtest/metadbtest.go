// Package metadbtest gives tests a fresh metadata database of each
// dialect: a SQLite file in the test's temporary directory, and a schema of
// its own on the local PostgreSQL (`make services`), dropped afterwards. A
// component's test suite runs on both with Each.
package metadbtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/ferry-ai/ferry/controlplane/metadb"
)

// PostgresURL is the PostgreSQL the tests use: FERRY_TEST_METADB_POSTGRES,
// or the local server's test database as its superuser.
func PostgresURL() string {
	if u := os.Getenv("FERRY_TEST_METADB_POSTGRES"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// Open returns a fresh, empty database of the dialect, closed (and on
// PostgreSQL dropped) when the test ends.
func Open(t testing.TB, d metadb.Dialect) *metadb.DB {
	t.Helper()
	ctx := context.Background()
	if d == metadb.SQLite {
		db, err := metadb.Open(ctx, filepath.Join(t.TempDir(), "ferry.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	db, err := metadb.Open(ctx, PostgresSchema(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// PostgresSchema creates an empty schema of the test's own on the local
// PostgreSQL, dropped when the test ends, and returns the URL that opens
// it (search_path set to it).
func PostgresSchema(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "ferry_metadb_" + hex.EncodeToString(b[:])
	admin, err := pgx.Connect(ctx, PostgresURL())
	if err != nil {
		t.Fatalf("PostgreSQL is not reachable (run `make services`): %v", err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), PostgresURL())
		if err == nil {
			_, _ = c.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
			c.Close(context.Background())
		}
	})
	return PostgresURL() + "&search_path=" + schema
}

// FromEnv is the dialect the FERRY_TEST_METADB environment variable names
// ("postgres", or SQLite by default): a package's whole suite runs on
// PostgreSQL with FERRY_TEST_METADB=postgres (make test runs both).
func FromEnv() metadb.Dialect {
	if os.Getenv("FERRY_TEST_METADB") == "postgres" {
		return metadb.Postgres
	}
	return metadb.SQLite
}

// Each runs fn as a subtest on a fresh database of each dialect.
func Each(t *testing.T, fn func(t *testing.T, db *metadb.DB)) {
	t.Helper()
	for _, d := range []metadb.Dialect{metadb.SQLite, metadb.Postgres} {
		t.Run(d.String(), func(t *testing.T) { fn(t, Open(t, d)) })
	}
}
