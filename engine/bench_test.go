package engine

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/arrow/util"

	"github.com/ferry-ai/ferry/agent"
	"github.com/ferry-ai/ferry/internal/link"
	"github.com/ferry-ai/ferry/internal/pki"
	"github.com/ferry-ai/ferry/internal/syntable"
)

// BenchmarkDoPut uploads 2M rows of the mixed-type table per iteration to an
// engine in this process over mutual TLS 1.3 (MB/s is of Arrow data).
func BenchmarkDoPut(b *testing.B) {
	for _, comp := range []string{agent.CompressionNone, agent.CompressionLZ4, agent.CompressionZSTD} {
		b.Run("compression="+comp, func(b *testing.B) {
			srv, dial := testEngine(b)
			c := dial(srv.Addr().String())
			const batchRows, batches = 65536, 32
			recs := make([]arrow.RecordBatch, 4)
			var size int64
			for i := range recs {
				recs[i] = syntable.Batch(memory.DefaultAllocator, int64(i*batchRows), batchRows)
				size += util.TotalRecordSize(recs[i])
			}
			b.SetBytes(size / int64(len(recs)) * batches)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				job := fmt.Sprintf("bench-%d", i)
				startJob(b, c, job)
				_, err := agent.StreamTable(context.Background(), c, job, "events", syntable.Repeat(recs, batchRows*batches), agent.StreamOptions{Compression: comp})
				if err != nil {
					b.Fatal(err)
				}
				purgeAction(b, c, job, link.PurgeCompleted)
			}
		})
	}
}

// BenchmarkRawTLS is the limit: a Go client writing to a Go server over the
// same mutual TLS 1.3 configuration, 64 MiB per iteration.
func BenchmarkRawTLS(b *testing.B) {
	certs := b.TempDir()
	if err := pki.DevCerts(certs, "agent-bench", time.Hour); err != nil {
		b.Fatal(err)
	}
	scfg, _ := pki.DevFiles(certs, "engine").ServerConfig()
	ccfg, _ := pki.DevFiles(certs, "agent").ClientConfig()
	l, err := tls.Listen("tcp", "127.0.0.1:0", scfg)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	c, err := tls.DialWithDialer(&net.Dialer{}, "tcp", l.Addr().String(), ccfg)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 1<<20)
	b.SetBytes(64 << 20)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for k := 0; k < 64; k++ {
			if _, err := c.Write(buf); err != nil {
				b.Fatal(err)
			}
		}
	}
}
