package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferry-ai/ferry/connectors"
	"github.com/ferry-ai/ferry/connectors/postgres"
)

// bigTable creates a table of n rows natively and opens the connector on
// it; it returns the schema name too.
func bigTable(ctx context.Context, t *testing.T, n int) (*connectors.Conn, string, *memory.CheckedAllocator) {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	c := harness{}.OpenWithSQL(ctx, t, &connectors.Options{Allocator: mem},
		fmt.Sprintf(`CREATE TABLE big AS SELECT g AS id, md5(g::text) AS s FROM generate_series(1, %d) AS g`, n))
	schema := lastURL[strings.Index(lastURL, "schema=")+len("schema="):]
	return c, schema, mem
}

// copyBackends lists the backends running a COPY of the given schema.
func copyBackends(ctx context.Context, t *testing.T, schema string) []int {
	t.Helper()
	ac := adminConn(ctx, t)
	defer ac.Close(ctx)
	rows, err := ac.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE query LIKE 'COPY (SELECT%' AND query LIKE '%' || $1 || '%' AND pid <> pg_backend_pid()`, schema)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var pids []int
	for rows.Next() {
		var p int
		if err := rows.Scan(&p); err != nil {
			t.Fatal(err)
		}
		pids = append(pids, p)
	}
	return pids
}

// TestCancelStopsServerQuery: cancelling a read mid-stream stops the COPY on
// the server too (K3).
func TestCancelStopsServerQuery(t *testing.T) {
	ctx := context.Background()
	c, schema, mem := bigTable(ctx, t, 2_000_000)
	defer func() { c.Close(); mem.AssertSize(t, 0) }()
	rctx, cancel := context.WithCancel(ctx)
	r, err := c.Read(rctx, "big", connectors.ReadOptions{BatchSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Next() {
		t.Fatalf("no first batch: %v", r.Err())
	}
	if len(copyBackends(ctx, t, schema)) == 0 {
		t.Fatal("no COPY running on the server during the read: the check would prove nothing")
	}
	cancel()
	for r.Next() {
	}
	if !errors.Is(r.Err(), context.Canceled) {
		t.Errorf("after cancel: %v, want context.Canceled", r.Err())
	}
	r.Release()
	deadline := time.Now().Add(3 * time.Second)
	for len(copyBackends(ctx, t, schema)) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if pids := copyBackends(ctx, t, schema); len(pids) > 0 {
		t.Fatalf("COPY still running on backends %v 3 s after cancel", pids)
	}
}

// TestKilledServerIsAnError: a backend terminated mid-read ends the read with
// an error, never a short success (R7).
func TestKilledServerIsAnError(t *testing.T) {
	ctx := context.Background()
	c, schema, mem := bigTable(ctx, t, 2_000_000)
	defer func() { c.Close(); mem.AssertSize(t, 0) }()
	r, err := c.Read(ctx, "big", connectors.ReadOptions{BatchSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Next() {
		t.Fatalf("no first batch: %v", r.Err())
	}
	rows := r.RecordBatch().NumRows()
	pids := copyBackends(ctx, t, schema)
	if len(pids) != 1 {
		t.Fatalf("COPY backends %v, want one", pids)
	}
	ac := adminConn(ctx, t)
	if _, err := ac.Exec(ctx, "SELECT pg_terminate_backend($1)", pids[0]); err != nil {
		t.Fatal(err)
	}
	ac.Close(ctx)
	for r.Next() {
		rows += r.RecordBatch().NumRows()
	}
	err = r.Err()
	r.Release()
	if err == nil {
		t.Fatalf("read of a killed backend ended without error after %d of 2000000 rows", rows)
	}
	if rows >= 2_000_000 {
		t.Fatalf("the backend was killed after the read finished (%d rows): the check proved nothing", rows)
	}
	t.Logf("killed after %d rows: %v", rows, err)
}

// TestConnectDeadline: against a server that accepts and never answers,
// Open returns by the context's deadline (L3).
func TestConnectDeadline(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close() // hold it open, say nothing
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	mux := connectors.NewMux()
	mux.Register(postgres.Scheme, postgres.Opener{})
	start := time.Now()
	c, err := mux.Open(ctx, "postgres://"+l.Addr().String()+"/test?sslmode=disable", &connectors.Options{Credentials: testCreds})
	if err == nil {
		c.Close()
		t.Fatal("opened a connection to a silent server")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Open took %v with a 500 ms deadline", d)
	}
}

// TestWritePermissionDenied: a role that may read a schema but not create in
// it gets a clear permission error, and nothing is left behind (W8).
func TestWritePermissionDenied(t *testing.T) {
	ctx := context.Background()
	schema := newSchema(ctx, t)
	role := "ferry_ro_" + schema[len("ferry_test_"):]
	ac := adminConn(ctx, t)
	defer ac.Close(ctx)
	for _, s := range []string{
		"CREATE ROLE " + role + " LOGIN",
		"GRANT USAGE ON SCHEMA " + schema + " TO " + role,
		"CREATE TABLE " + schema + ".t (id int8)",
		"GRANT SELECT ON " + schema + ".t TO " + role,
	} {
		if _, err := ac.Exec(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		ac := adminConn(context.Background(), t)
		defer ac.Close(context.Background())
		ac.Exec(context.Background(), "DROP OWNED BY "+role)       //nolint:errcheck
		ac.Exec(context.Background(), "DROP ROLE IF EXISTS "+role) //nolint:errcheck
	})
	mux := connectors.NewMux()
	mux.Register(postgres.Scheme, postgres.Opener{})
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	c, err := mux.Open(ctx, serverURL()+"&schema="+schema, &connectors.Options{Allocator: mem, Credentials: map[string]string{"user": role}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rd, err := c.Read(ctx, "t", connectors.ReadOptions{})
	if err != nil {
		t.Fatalf("the read-only role cannot read: %v", err)
	}
	for rd.Next() {
	}
	if err := rd.Err(); err != nil {
		t.Fatalf("the read-only role cannot read: %v", err)
	}
	rd.Release()
	s := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}}, nil)
	r, _ := array.NewRecordReader(s, nil)
	defer r.Release()
	_, err = c.Write(ctx, "out", r, connectors.WriteOptions{})
	if err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("write without CREATE: %v, want a permission error", err)
	}
	tables, err := c.Tables(ctx)
	if err != nil || len(tables) != 1 {
		t.Fatalf("tables after the refused write: %v %v", tables, err)
	}
}
