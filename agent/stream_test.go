package agent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/ferry-ai/ferry/agent"
	"github.com/ferry-ai/ferry/engine"
	"github.com/ferry-ai/ferry/internal/graph"
	"github.com/ferry-ai/ferry/internal/link"
	"github.com/ferry-ai/ferry/internal/pki"
)

// TestStreamCompression: a table uploaded to a real engine over mTLS with
// each IPC body compression arrives whole (the engine's acknowledgement
// matches the rows, batches and decompressed bytes sent), and an unknown
// compression is refused before anything is sent.
func TestStreamCompression(t *testing.T) {
	certs := t.TempDir()
	if err := pki.DevCerts(certs, "agent-test", time.Hour); err != nil {
		t.Fatal(err)
	}
	srv, err := engine.New(engine.Config{Addr: "127.0.0.1:0", TLS: pki.DevFiles(certs, "engine"), QuotaBytes: 1 << 30,
		WatchDirs: []string{t.TempDir()}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = srv.Serve(ctx) }()
	clientTLS, err := pki.DevFiles(certs, "agent").ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	// Count the TLS bytes the client writes, to see the compression on the
	// wire.
	var wire atomic.Int64
	dialer := func(ctx context.Context, addr string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		return &countingConn{Conn: c, n: &wire}, nil
	}
	eng, err := flight.NewClientWithMiddleware(srv.Addr().String(), nil, nil, grpc.WithTransportCredentials(credentials.NewTLS(clientTLS)), grpc.WithContextDialer(dialer))
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()

	schema := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "status", Type: arrow.BinaryTypes.String},
		{Name: "at", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}},
	}, nil)
	table := graph.Table{Name: "orders", Columns: []graph.Column{{Name: "id", Type: "int64"}, {Name: "status", Type: "utf8"}, {Name: "at", Type: "timestamp[us, tz=UTC]"}}}
	reader := func() array.RecordReader {
		var recs []arrow.RecordBatch
		for start := 0; start < 200_000; start += 50_000 {
			b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
			for i := start; i < start+50_000; i++ {
				b.Field(0).(*array.Int64Builder).Append(int64(i))
				b.Field(1).(*array.StringBuilder).Append(fmt.Sprintf("status_%d", i%7))
				b.Field(2).(*array.TimestampBuilder).Append(arrow.Timestamp(1_700_000_000_000_000 + int64(i)*1_000_000))
			}
			recs = append(recs, b.NewRecordBatch())
			b.Release()
		}
		r, _ := array.NewRecordReader(schema, recs)
		for _, rec := range recs {
			rec.Release()
		}
		return r
	}
	action := func(typ string, body any) {
		t.Helper()
		raw, _ := json.Marshal(body)
		stream, err := eng.DoAction(ctx, &flight.Action{Type: typ, Body: raw})
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		for {
			if _, err := stream.Recv(); err != nil {
				break
			}
		}
	}
	var plainBytes, plainWire int64
	for _, comp := range []string{agent.CompressionNone, agent.CompressionLZ4, agent.CompressionZSTD} {
		job := "compression-" + comp
		action(link.ActionStartJob, link.JobSpec{JobID: job, Tables: []graph.Table{table}})
		r := reader()
		before := wire.Load()
		ack, err := agent.StreamTable(ctx, eng, job, "orders", r, agent.StreamOptions{Compression: comp})
		sent := wire.Load() - before
		r.Release()
		if err != nil {
			t.Fatalf("%q: %v", comp, err)
		}
		if ack.Rows != 200_000 || ack.Batches != 4 {
			t.Fatalf("%q: engine kept %d rows in %d batches", comp, ack.Rows, ack.Batches)
		}
		if comp == agent.CompressionNone {
			plainBytes, plainWire = ack.Bytes, sent
		} else {
			if ack.Bytes != plainBytes {
				t.Errorf("%q: engine holds %d bytes, %d without compression", comp, ack.Bytes, plainBytes)
			}
			if float64(sent) > 0.6*float64(plainWire) {
				t.Errorf("%q: %d bytes on the wire, %d without compression", comp, sent, plainWire)
			}
		}
		t.Logf("%-4s %d bytes on the wire for %d bytes of Arrow data", comp, sent, ack.Bytes)
		action(link.ActionPurge, link.JobRef{JobID: job})
	}
	r := reader()
	defer r.Release()
	if _, err := agent.StreamTable(ctx, eng, "x", "orders", r, agent.StreamOptions{Compression: "snappy"}); err == nil {
		t.Fatal("unknown compression accepted")
	}
}

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.n.Add(int64(n))
	return n, err
}
