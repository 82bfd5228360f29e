//go:build duckdb_arrow

package duckdb_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	_ "github.com/duckdb/duckdb-go/v2"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/ferry-ai/ferry/conformance"
	"github.com/ferry-ai/ferry/connectors"
	"github.com/ferry-ai/ferry/connectors/duckdb"
)

type harness struct{}

func (harness) Open(ctx context.Context, t *testing.T, opts *connectors.Options) *connectors.Conn {
	t.Helper()
	mux := connectors.NewMux()
	mux.Register(duckdb.Scheme, duckdb.Opener{})
	c, err := mux.Open(ctx, "duckdb://"+filepath.Join(t.TempDir(), "test.db"), opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Reopen implements conformance.Reopener.
func (harness) Reopen(ctx context.Context, t *testing.T, c *connectors.Conn, opts *connectors.Options) *connectors.Conn {
	t.Helper()
	mux := connectors.NewMux()
	mux.Register(duckdb.Scheme, duckdb.Opener{})
	c2, err := mux.Open(ctx, c.URL(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return c2
}

func TestConformance(t *testing.T) {
	rows := int64(10_000_000)
	if testing.Short() {
		rows = 1_000_000
	}
	conformance.Run(t, harness{}, conformance.Quirks{Name: "duckdb", SupportsConstraints: true, LargeRows: rows,
		UnmappableType: arrow.FixedWidthTypes.Float16})
}

func TestOpenErrors(t *testing.T) {
	mux := connectors.NewMux()
	mux.Register(duckdb.Scheme, duckdb.Opener{})
	for _, tc := range []struct{ url, want string }{
		{"duckdb://host/x.db", "no host"},
		{"duckdb:///tmp/x.db?bogus=1", `unknown URL parameter "bogus"`},
		{"duckdb:///tmp/x.db?threads=0", "threads"},
		{"duckdb://user:pw@/x.db", "credentials must not be in the URL"},
		{"nosuch:///x", `no driver for scheme "nosuch"`},
		{"duckdb:///nonexistent-dir/sub/x.db", "open"},
	} {
		c, err := mux.Open(context.Background(), tc.url, nil)
		if err == nil {
			c.Close()
			t.Errorf("%s: opened, want error containing %q", tc.url, tc.want)
			continue
		}
		if !contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q, want it to contain %q", tc.url, err, tc.want)
		}
		if contains(err.Error(), "pw") {
			t.Errorf("%s: error %q leaks the password", tc.url, err)
		}
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// OpenWithSQL implements conformance.SQLHarness: the statements run through
// database/sql on a new file, closed before the connector opens it.
func (harness) OpenWithSQL(ctx context.Context, t *testing.T, opts *connectors.Options, statements ...string) *connectors.Conn {
	t.Helper()
	path := filepath.Join(t.TempDir(), "native.db")
	db, err := sql.Open("duckdb", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range statements {
		if _, err := db.ExecContext(ctx, s); err != nil {
			db.Close()
			t.Fatalf("exec %q: %v", s, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	mux := connectors.NewMux()
	mux.Register(duckdb.Scheme, duckdb.Opener{})
	c, err := mux.Open(ctx, "duckdb://"+path, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
