package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/jackc/pgx/v5"

	"github.com/ferry-ai/ferry/conformance"
	"github.com/ferry-ai/ferry/connectors"
	"github.com/ferry-ai/ferry/connectors/postgres"
)

// serverURL is the PostgreSQL the tests use: FERRY_TEST_POSTGRES, or the
// local server that `make services` starts.
func serverURL() string {
	if u := os.Getenv("FERRY_TEST_POSTGRES"); u != "" {
		return u
	}
	return "postgres://127.0.0.1:5432/test?sslmode=disable"
}

var testCreds = map[string]string{"user": "postgres"}

// lastURL is the URL of the schema most recently opened (tests run
// sequentially within this package).
var lastURL string

func adminConn(ctx context.Context, t *testing.T) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(ctx, "host=127.0.0.1 port=5432 dbname=test user=postgres sslmode=disable")
	if err != nil {
		t.Fatalf("PostgreSQL is not reachable (run `make services`): %v", err)
	}
	return c
}

type harness struct{}

// newSchema creates a schema of the test's own and drops it afterwards.
func newSchema(ctx context.Context, t *testing.T) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "ferry_test_" + hex.EncodeToString(b[:])
	ac := adminConn(ctx, t)
	defer ac.Close(ctx)
	if _, err := ac.Exec(ctx, "CREATE SCHEMA "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ac := adminConn(context.Background(), t)
		defer ac.Close(context.Background())
		if _, err := ac.Exec(context.Background(), "DROP SCHEMA "+name+" CASCADE"); err != nil {
			t.Errorf("drop schema: %v", err)
		}
	})
	return name
}

func openSchema(ctx context.Context, t *testing.T, schema string, opts *connectors.Options) *connectors.Conn {
	t.Helper()
	mux := connectors.NewMux()
	mux.Register(postgres.Scheme, postgres.Opener{})
	o := connectors.Options{Credentials: testCreds}
	if opts != nil {
		o.Allocator = opts.Allocator
	}
	lastURL = serverURL() + "&schema=" + schema
	c, err := mux.Open(ctx, lastURL, &o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (harness) Open(ctx context.Context, t *testing.T, opts *connectors.Options) *connectors.Conn {
	return openSchema(ctx, t, newSchema(ctx, t), opts)
}

// OpenWithSQL implements conformance.SQLHarness.
func (harness) OpenWithSQL(ctx context.Context, t *testing.T, opts *connectors.Options, statements ...string) *connectors.Conn {
	schema := newSchema(ctx, t)
	ac := adminConn(ctx, t)
	if _, err := ac.Exec(ctx, "SET search_path TO "+schema); err != nil {
		t.Fatal(err)
	}
	for _, s := range statements {
		if _, err := ac.Exec(ctx, s); err != nil {
			t.Fatalf("exec %q: %v", s, err)
		}
	}
	ac.Close(ctx)
	return openSchema(ctx, t, schema, opts)
}

// Reopen implements conformance.Reopener.
func (h harness) Reopen(ctx context.Context, t *testing.T, c *connectors.Conn, opts *connectors.Options) *connectors.Conn {
	t.Helper()
	u, err := url.Parse(c.URL())
	if err != nil {
		t.Fatal(err)
	}
	c2, err := h.OpenAt(ctx, c, u.Host, nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c2
}

// Addr implements conformance.NetworkHarness.
func (harness) Addr() string {
	u, _ := url.Parse(serverURL())
	return u.Host
}

// OpenAt implements conformance.NetworkHarness.
func (harness) OpenAt(ctx context.Context, c *connectors.Conn, addr string, creds map[string]string, opts *connectors.Options) (*connectors.Conn, error) {
	u, err := url.Parse(c.URL())
	if err != nil {
		return nil, err
	}
	u.Host = addr
	mux := connectors.NewMux()
	mux.Register(postgres.Scheme, postgres.Opener{})
	o := connectors.Options{Credentials: testCreds}
	if creds != nil {
		o.Credentials = creds
	}
	if opts != nil {
		o.Allocator = opts.Allocator
	}
	return mux.Open(ctx, u.String(), &o)
}

// BadCredentials implements conformance.NetworkHarness: the server trusts
// local connections, so a role that does not exist is refused instead.
func (harness) BadCredentials() (map[string]string, string) {
	return map[string]string{"user": "ferry_no_such_role", "password": "pw-9f8e7d-secret"}, "pw-9f8e7d-secret"
}

func TestConformance(t *testing.T) {
	rows := int64(10_000_000)
	if testing.Short() {
		rows = 1_000_000
	}
	conformance.Run(t, harness{}, conformance.Quirks{
		Name:                "postgres",
		SupportsConstraints: true,
		LargeRows:           rows,
		UnmappableType:      arrow.FixedWidthTypes.Float16,
		Deviations: map[string]string{
			"T13_Structs": "structs would need a composite type created per column; they have no PostgreSQL mapping (composite columns are read as their text)",
		},
	})
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	mux := connectors.NewMux()
	mux.Register(postgres.Scheme, postgres.Opener{})
	for _, tc := range []struct {
		url   string
		creds map[string]string
		want  string
	}{
		{"postgres://127.0.0.1:1/test", testCreds, "connect"},
		{"postgres://no-such-host.invalid:5432/test", testCreds, "no-such-host"},
		{"postgres://127.0.0.1:5432/no_such_db", testCreds, "no_such_db"},
		{"postgres://127.0.0.1:5432/test", map[string]string{"user": "no_such_user", "password": "s3cret-PW"}, "no_such_user"},
		{"postgres://127.0.0.1:5432/test?schema=nope", testCreds, `schema "nope" does not exist`},
		{"postgres://127.0.0.1:5432/test?bogus=1", testCreds, `unknown URL parameter "bogus"`},
		{"postgres://127.0.0.1:5432/", testCreds, "database name"},
	} {
		c, err := mux.Open(ctx, tc.url, &connectors.Options{Credentials: tc.creds})
		if err == nil {
			c.Close()
			t.Errorf("%s: opened", tc.url)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %q does not mention %q", tc.url, err, tc.want)
		}
		if strings.Contains(err.Error(), "s3cret-PW") {
			t.Errorf("%s: error leaks the password: %q", tc.url, err)
		}
	}
}
