// Command benchagent is the agent side of the link benchmark
// (internal/bench): it uploads a synthetic mixed-type table to an engine
// with agent.StreamTable, as ferry-agent does, and prints a JSON report of
// rows, bytes, seconds, CPU time and its peak memory; when its stdin closes
// it purges the job and exits. It links the same connectors
// as ferry-agent, so its resident set is the agent's, not the benchmark's.
//
//	benchagent CERTDIR ENGINEADDR ROWS COMPRESSION
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/ferry-ai/ferry/agent"
	_ "github.com/ferry-ai/ferry/connectors/all" // what ferry-agent links
	"github.com/ferry-ai/ferry/internal/graph"
	"github.com/ferry-ai/ferry/internal/link"
	"github.com/ferry-ai/ferry/internal/pki"
	"github.com/ferry-ai/ferry/internal/syntable"
)

func main() {
	if len(os.Args) != 5 {
		fmt.Fprintln(os.Stderr, "usage: benchagent CERTDIR ENGINEADDR ROWS COMPRESSION")
		os.Exit(2)
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(agent.DefaultGCPercent) // as ferry-agent does
	}
	rows, err := strconv.ParseInt(os.Args[3], 10, 64)
	if err == nil {
		err = upload(os.Args[1], os.Args[2], rows, os.Args[4])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchagent:", err)
		os.Exit(1)
	}
}

// agentReport is what the agent child prints.
type agentReport struct {
	Rows, Bytes int64
	Secs        float64
	CPUSecs     float64 // user + system time of the upload
	PeakRSS     float64 // bytes (VmHWM): includes the executable's mapped pages
	PeakAnon    float64 // bytes: the peak of RssAnon, the process's own memory
}

// upload uploads a table of rows mixed-type rows to the engine at addr
// as the agent does (StreamTable, its window and acknowledgements) and
// prints a JSON agentReport. The batches are made once and sent again and
// again, so the figure is the link's, not the making of data.
func upload(certs, addr string, rows int64, compression string) error {
	tlsCfg, err := pki.DevFiles(certs, "agent").ClientConfig()
	if err != nil {
		return err
	}
	eng, err := flight.NewClientWithMiddleware(addr, nil, nil, grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)))
	if err != nil {
		return err
	}
	defer eng.Close()
	ctx := context.Background()
	batchRows := int64(agent.DefaultBatchRows)
	recs := make([]arrow.RecordBatch, 4)
	for i := range recs {
		recs[i] = syntable.Batch(memory.DefaultAllocator, int64(i)*batchRows, batchRows)
	}
	job := fmt.Sprintf("link-%d-%s", rows, compression)
	if err := action(ctx, eng, link.ActionStartJob, link.JobSpec{JobID: job, Tables: []graph.Table{{Name: "events"}}}); err != nil {
		return err
	}
	var peakAnon float64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			peakAnon = max(peakAnon, procStatus("RssAnon:"))
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	cpu0 := selfCPU()
	start := time.Now()
	ack, err := agent.StreamTable(ctx, eng, job, "events", syntable.Repeat(recs, rows), agent.StreamOptions{Compression: compression})
	secs, cpu := time.Since(start).Seconds(), selfCPU()-cpu0
	close(stop)
	<-sampled
	if err != nil {
		return err
	}
	rep := agentReport{Rows: ack.Rows, Bytes: ack.Bytes, Secs: secs, CPUSecs: cpu, PeakRSS: procStatus("VmHWM:"), PeakAnon: peakAnon}
	if err := json.NewEncoder(os.Stdout).Encode(rep); err != nil {
		return err
	}
	// The benchmark reads the engine's CPU time now; the purge (zeroing
	// what the job holds) waits until it closes stdin, so that the figure
	// is the transfer's.
	_, _ = io.Copy(io.Discard, os.Stdin)
	return action(ctx, eng, link.ActionPurge, link.JobRef{JobID: job})
}

// procStatus reads a kB field of /proc/self/status, in bytes.
func procStatus(field string) float64 {
	data, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			var kb float64
			fmt.Sscanf(strings.TrimSpace(v), "%f", &kb)
			return kb * 1024
		}
	}
	return 0
}

// selfCPU returns this process's user + system time.
func selfCPU() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// action runs a Flight action.
func action(ctx context.Context, eng flight.Client, typ string, body any) error {
	b, _ := json.Marshal(body)
	s, err := eng.DoAction(ctx, &flight.Action{Type: typ, Body: b})
	if err != nil {
		return err
	}
	if _, err := s.Recv(); err != nil {
		return fmt.Errorf("%s: %w", typ, err)
	}
	return nil
}
