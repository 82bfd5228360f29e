package postgres_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferry-ai/ferry/connectors"
	"github.com/ferry-ai/ferry/connectors/postgres"
)

// ids reads table's id column in the read's order.
func ids(ctx context.Context, t *testing.T, c *connectors.Conn, table string, opts connectors.ReadOptions) []int64 {
	t.Helper()
	r, err := c.Read(ctx, table, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	var out []int64
	for r.Next() {
		col := r.RecordBatch().Column(0).(*array.Int64)
		for i := 0; i < col.Len(); i++ {
			out = append(out, col.Value(i))
		}
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestOrderedReads: OrderBy reads in key order and Offset goes on from a
// row, so a read broken mid-table can resume on a new connection; bad
// orders are refused before the read starts.
func TestOrderedReads(t *testing.T) {
	ctx := context.Background()
	schema := newSchema(ctx, t)
	ac := adminConn(ctx, t)
	defer ac.Close(ctx)
	// Rows inserted out of key order, so heap order is not key order.
	if _, err := ac.Exec(ctx, "CREATE TABLE "+schema+".t (id bigint PRIMARY KEY, v text); INSERT INTO "+schema+".t SELECT (i * 7919) % 10007, 'v' || i FROM generate_series(1, 5000) i"); err != nil {
		t.Fatal(err)
	}
	c := openSchema(ctx, t, schema, nil)
	if !c.CanOrderReads() {
		t.Fatal("postgres reads cannot be ordered")
	}
	all := ids(ctx, t, c, "t", connectors.ReadOptions{Columns: []string{"id"}, OrderBy: []string{"id"}, BatchSize: 700})
	if len(all) != 5000 {
		t.Fatalf("%d rows, want 5000", len(all))
	}
	for i := 1; i < len(all); i++ {
		if all[i] <= all[i-1] {
			t.Fatalf("row %d: id %d after %d: not in key order", i, all[i], all[i-1])
		}
	}
	for _, off := range []int64{0, 1, 2345, 4999, 5000, 6000} {
		got := ids(ctx, t, c, "t", connectors.ReadOptions{Columns: []string{"id"}, OrderBy: []string{"id"}, Offset: off})
		want := all[min(off, int64(len(all))):]
		if len(got) != len(want) || (len(got) > 0 && (got[0] != want[0] || got[len(got)-1] != want[len(want)-1])) {
			t.Errorf("offset %d: %d rows from %v, want %d", off, len(got), got[:min(len(got), 1)], len(want))
		}
	}
	for _, tc := range []struct {
		opts connectors.ReadOptions
		want error
		text string
	}{
		{connectors.ReadOptions{OrderBy: []string{"idd"}}, connectors.ErrNotFound, `"id"`},
		{connectors.ReadOptions{Offset: 5}, connectors.ErrInvalidArgument, "order"},
		{connectors.ReadOptions{OrderBy: []string{"id"}, Offset: -1}, connectors.ErrInvalidArgument, "offset -1"},
	} {
		if _, err := c.Read(ctx, "t", tc.opts); !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
			t.Errorf("%+v: %v, want %v naming %s", tc.opts, err, tc.want, tc.text)
		}
	}
}

// TestOutputSchemaAndWriteRole: with output_schema, prediction tables go
// there and the read schema is untouched; with write_role they belong to
// that role, so the user that wrote them (a per-job user from Vault) can
// be dropped and the next user can replace the table.
func TestOutputSchemaAndWriteRole(t *testing.T) {
	ctx := context.Background()
	src := newSchema(ctx, t)
	out := newSchema(ctx, t)
	group := strings.Replace(out, "ferry_test_", "ferry_writer_", 1)
	ac := adminConn(ctx, t)
	defer ac.Close(ctx)
	users := []string{group + "_job1", group + "_job2"}
	for _, s := range []string{
		"CREATE TABLE " + src + ".t (id bigint PRIMARY KEY)",
		"CREATE ROLE " + group + " NOLOGIN",
		"GRANT USAGE ON SCHEMA " + src + " TO " + group,
		"GRANT SELECT ON ALL TABLES IN SCHEMA " + src + " TO " + group,
		"GRANT USAGE, CREATE ON SCHEMA " + out + " TO " + group,
		"CREATE ROLE " + users[0] + " LOGIN IN ROLE " + group,
		"CREATE ROLE " + users[1] + " LOGIN IN ROLE " + group,
	} {
		if _, err := ac.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	t.Cleanup(func() {
		ac := adminConn(context.Background(), t)
		defer ac.Close(context.Background())
		for _, r := range append(users, group) {
			ac.Exec(context.Background(), "DROP OWNED BY "+r)       //nolint:errcheck
			ac.Exec(context.Background(), "DROP ROLE IF EXISTS "+r) //nolint:errcheck
		}
	})
	mux := connectors.NewMux()
	mux.Register(postgres.Scheme, postgres.Opener{})
	write := func(user string, n int64) {
		t.Helper()
		c, err := mux.Open(ctx, serverURL()+"&schema="+src+"&output_schema="+out+"&write_role="+group, &connectors.Options{Credentials: map[string]string{"user": user}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}}, nil)
		b := array.NewInt64Builder(memory.DefaultAllocator)
		for i := int64(0); i < n; i++ {
			b.Append(i)
		}
		col := b.NewArray()
		rec := array.NewRecordBatch(s, []arrow.Array{col}, n)
		col.Release()
		r, _ := array.NewRecordReader(s, []arrow.RecordBatch{rec})
		rec.Release()
		defer r.Release()
		if _, err := c.Write(ctx, "preds", r, connectors.WriteOptions{}); err != nil {
			t.Fatalf("write as %s: %v", user, err)
		}
	}
	write(users[0], 3)
	// The first job's user goes, as Vault revokes it: nothing it made
	// stops the DROP ROLE.
	if _, err := ac.Exec(ctx, "DROP ROLE "+users[0]); err != nil {
		t.Fatalf("the first job's user cannot be dropped: %v", err)
	}
	write(users[1], 5)
	var owner string
	var n int
	if err := ac.QueryRow(ctx, "SELECT tableowner FROM pg_tables WHERE schemaname = $1 AND tablename = 'preds'", out).Scan(&owner); err != nil {
		t.Fatal(err)
	}
	if err := ac.QueryRow(ctx, "SELECT count(*) FROM "+out+".preds").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if owner != group || n != 5 {
		t.Errorf("preds owned by %q with %d rows, want %q and 5", owner, n, group)
	}
	if err := ac.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = $1", src).Scan(&n); err != nil || n != 1 {
		t.Errorf("the read schema holds %d tables (%v), want only its own", n, err)
	}
	// A role the user is not a member of is refused with the role named.
	c, err := mux.Open(ctx, serverURL()+"&schema="+src+"&output_schema="+out+"&write_role=pg_monitor_not_mine", &connectors.Options{Credentials: map[string]string{"user": users[1]}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}}, nil)
	r, _ := array.NewRecordReader(s, nil)
	defer r.Release()
	if _, err := c.Write(ctx, "preds", r, connectors.WriteOptions{}); err == nil || !strings.Contains(err.Error(), "pg_monitor_not_mine") {
		t.Errorf("write as a foreign role: %v", err)
	}
	for _, bad := range []string{"&output_schema=", "&output_schema=no_such_schema_x", "&write_role="} {
		if _, err := mux.Open(ctx, serverURL()+"&schema="+src+bad, &connectors.Options{Credentials: testCreds}); err == nil {
			t.Errorf("%s: opened", bad)
		}
	}
}
