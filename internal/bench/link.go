package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/arrow/util"

	"github.com/ferry-ai/ferry/agent"
	"github.com/ferry-ai/ferry/engine"
	"github.com/ferry-ai/ferry/internal/pki"
	"github.com/ferry-ai/ferry/internal/syntable"
)

// The link benchmark runs the engine, the agent and the raw TLS sink each in
// a process of its own (the engine and the sink are this binary re-executed
// in a child mode; the agent is internal/benchagent, built here, which links
// what ferry-agent links), so the agent's peak RSS is the agent's alone and
// both sides of every transfer cross a process boundary, as in production.
const (
	childEngine  = "engine-child"
	childTLSSink = "tls-sink-child"
)

// runChild runs a child mode and reports whether args named one. With
// FERRY_BENCH_PROFILE=dir set, each child writes a CPU profile there.
func runChild(args []string) (bool, error) {
	if len(args) < 2 || !strings.HasSuffix(args[0], "-child") {
		return false, nil
	}
	if dir := os.Getenv("FERRY_BENCH_PROFILE"); dir != "" {
		f, err := os.CreateTemp(dir, args[0]+"-*.pprof")
		if err != nil {
			return true, err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return true, err
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	switch args[0] {
	case childEngine:
		return true, engineChild(args[1])
	case childTLSSink:
		return true, tlsSinkChild(args[1])
	}
	return true, fmt.Errorf("unknown child mode %q", args[0])
}

// engineChild serves an engine until stdin closes, after printing its
// address.
func engineChild(certs string) error {
	scratch, err := os.MkdirTemp("", "ferry-bench-engine-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(scratch)
	srv, err := engine.New(engine.Config{Addr: "127.0.0.1:0", TLS: pki.DevFiles(certs, "engine"), QuotaBytes: 16 << 30,
		WatchDirs: []string{scratch}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	fmt.Println(srv.Addr().String())
	ctx, cancel := context.WithCancel(context.Background())
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); cancel() }()
	return srv.Serve(ctx)
}

// tlsSinkChild accepts mutual-TLS connections with the engine's
// configuration and discards what they send, until stdin closes.
func tlsSinkChild(certs string) error {
	cfg, err := pki.DevFiles(certs, "engine").ServerConfig()
	if err != nil {
		return err
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		return err
	}
	fmt.Println(l.Addr().String())
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); l.Close() }()
	for {
		c, err := l.Accept()
		if err != nil {
			return nil
		}
		go func() {
			defer c.Close()
			n, _ := io.Copy(io.Discard, c)
			_, _ = fmt.Fprintf(c, "%d\n", n) // never read: the client half-closed
		}()
	}
}

// agentReport is what the agent child (internal/benchagent) prints.
type agentReport struct {
	Rows, Bytes       int64
	Secs              float64
	CPUSecs           float64 // user + system time of the upload
	PeakRSS, PeakAnon float64 // bytes
}

// cpuSecs returns the user + system time a process has used so far, from
// /proc/PID/stat (in clock ticks of 10 ms).
func cpuSecs(pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The fields after the command name, which is in parentheses.
	f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100
}

// selfCPU returns this process's user + system time (microsecond
// resolution).
func selfCPU() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// child is a running child process that printed its first line.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	first string
}

func startChild(args ...string) (*child, error) {
	return startProcess(os.Args[0], args...)
}

// startProcess starts the program with args and waits for its first line.
func startProcess(program string, args ...string) (*child, error) {
	cmd := exec.Command(program, args...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("%s %s: no first line: %w", filepath.Base(program), args[0], err)
	}
	return &child{cmd: cmd, stdin: stdin, first: strings.TrimSpace(line)}, nil
}

func (c *child) stop() {
	c.stdin.Close()
	_ = c.cmd.Wait()
}

// rawTLSOver sends n bytes to the sink over mutual TLS 1.3 and returns the
// seconds it took (the sink reads everything before the connection closes).
func rawTLSOver(certs, addr string, n int64) (float64, error) {
	ccfg, err := pki.DevFiles(certs, "agent").ClientConfig()
	if err != nil {
		return 0, err
	}
	start := time.Now()
	c, err := tls.DialWithDialer(&net.Dialer{}, "tcp", addr, ccfg)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	buf := make([]byte, 1<<20)
	for sent := int64(0); sent < n; {
		k := min(int64(len(buf)), n-sent)
		if _, err := c.Write(buf[:k]); err != nil {
			return 0, err
		}
		sent += k
	}
	if err := c.CloseWrite(); err != nil {
		return 0, err
	}
	// Wait for the sink's count: it has read every byte.
	if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
		return 0, err
	}
	return time.Since(start).Seconds(), nil
}

// linkBench prints the agent -> engine rows: the raw TLS copy (the limit),
// DoPut of rows mixed-type rows with each compression, and the flatness of
// the agent's RSS (a table a tenth the size).
func linkBench(dir string, rows int64, comps []string) error {
	for i, c := range comps {
		if c == "none" {
			comps[i] = agent.CompressionNone
		}
	}
	if !slices.Contains(comps, agent.CompressionNone) {
		return fmt.Errorf("link compressions %q: none is needed, it is the comparison", comps)
	}
	certs := filepath.Join(dir, "link-certs")
	if err := pki.DevCerts(certs, "agent-bench", time.Hour); err != nil {
		return err
	}
	agentBin := filepath.Join(dir, "benchagent")
	if out, err := exec.Command("go", "build", "-o", agentBin, "github.com/ferry-ai/ferry/internal/benchagent").CombinedOutput(); err != nil {
		return fmt.Errorf("build the agent child: %w\n%s", err, out)
	}
	eng, err := startChild(childEngine, certs)
	if err != nil {
		return err
	}
	defer eng.stop()
	sink, err := startChild(childTLSSink, certs)
	if err != nil {
		return err
	}
	defer sink.stop()
	// CPU seconds and bytes of every uncompressed upload and raw copy: on
	// two cores both sides of a transfer compete for the same CPU, so the
	// CPU each byte costs bounds the ratio.
	var flightCPU, flightBytes, rawCPU, rawBytes float64
	upload := func(rows int64, compression string) (agentReport, error) {
		engCPU := cpuSecs(eng.cmd.Process.Pid)
		c, err := startProcess(agentBin, certs, eng.first, strconv.FormatInt(rows, 10), compression)
		if err != nil {
			return agentReport{}, err
		}
		defer c.stop()
		var rep agentReport
		if err := json.Unmarshal([]byte(c.first), &rep); err != nil {
			return rep, fmt.Errorf("agent child: %q: %w", c.first, err)
		}
		if compression == agent.CompressionNone {
			flightCPU += rep.CPUSecs + cpuSecs(eng.cmd.Process.Pid) - engCPU
			flightBytes += float64(rep.Bytes)
		}
		return rep, nil
	}
	bytesPerRow := float64(util.TotalRecordSize(syntable.Batch(memory.DefaultAllocator, 0, 65536))) / 65536
	total := int64(float64(rows) * bytesPerRow)
	// Alternate the limit and the link three times; keep the best of each
	// (a single run on two shared cores is noise).
	var tlsBest float64
	var best map[string]agentReport = map[string]agentReport{}
	for round := 0; round < 3; round++ {
		cpu0, sink0 := selfCPU(), cpuSecs(sink.cmd.Process.Pid)
		secs, err := rawTLSOver(certs, sink.first, total)
		if err != nil {
			return fmt.Errorf("raw TLS copy: %w", err)
		}
		rawCPU += selfCPU() - cpu0 + cpuSecs(sink.cmd.Process.Pid) - sink0
		rawBytes += float64(total)
		if tlsBest == 0 || secs < tlsBest {
			tlsBest = secs
		}
		for _, comp := range comps {
			if round > 0 && comp == agent.CompressionZSTD {
				continue // slow and stable: once is enough
			}
			rep, err := upload(rows, comp)
			if err != nil {
				return fmt.Errorf("DoPut %s: %w", comp, err)
			}
			if b, ok := best[comp]; !ok || rep.Secs < b.Secs {
				if ok {
					rep.PeakRSS = max(rep.PeakRSS, b.PeakRSS)
					rep.PeakAnon = max(rep.PeakAnon, b.PeakAnon)
				}
				best[comp] = rep
			}
		}
	}
	small, err := upload(rows/10, agent.CompressionNone)
	if err != nil {
		return err
	}
	limit := result{name: "raw TLS 1.3 copy, separate processes", bytes: total, secs: tlsBest}
	limit.print()
	for _, comp := range comps {
		rep := best[comp]
		name := fmt.Sprintf("agent -> engine DoPut, %dM mixed rows", rows/1_000_000)
		if comp != agent.CompressionNone {
			name = "  the same, " + comp + " bodies"
		}
		r := result{name: name, rows: rep.Rows, bytes: rep.Bytes, secs: rep.Secs, rssMB: rep.PeakRSS / 1e6, limit: "raw TLS 1.3 copy"}
		r.ratio = (float64(rep.Bytes) / rep.Secs) / (float64(total) / tlsBest)
		r.print()
	}
	rawPerGB, flightPerGB := rawCPU/(rawBytes/1e9), flightCPU/(flightBytes/1e9)
	fmt.Printf("\nCPU per GB moved (both sides, user + system): raw TLS copy %.2f s, Flight DoPut %.2f s (agent and engine).\n"+
		"On %d cores, with both sides of the raw copy keeping the cores busy, the ratio cannot pass %.2f.\n",
		rawPerGB, flightPerGB, runtime.NumCPU(), rawPerGB/flightPerGB)
	big := best[agent.CompressionNone]
	fmt.Printf("\nagent peak RSS %.1f MB for %d rows, %.1f MB for %d rows (ten times more); of it, the agent's own memory (RssAnon) %.1f MB and %.1f MB,\n"+
		"the rest the executable's mapped pages (it links every connector, as ferry-agent does): the window bounds the agent's memory, not the table\n",
		small.PeakRSS/1e6, small.Rows, big.PeakRSS/1e6, big.Rows, small.PeakAnon/1e6, big.PeakAnon/1e6)
	return nil
}
