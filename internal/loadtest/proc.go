package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// clockTicks is the unit of utime and stime in /proc/PID/stat (USER_HZ,
// 100 on every Linux architecture Go supports).
const clockTicks = 100

// procSample is what /proc says about a process at one moment.
type procSample struct {
	at time.Time
	// cpu is user + system time, in seconds, of all the process's threads.
	cpu float64
	// rss, hwm and anon are VmRSS, VmHWM (the peak RSS) and RssAnon, bytes.
	rss, hwm, anon int64
	threads        int
	fds            int
}

// readProc samples process pid from /proc/PID/stat, status and fd.
func readProc(pid int) (procSample, error) {
	s := procSample{at: time.Now()}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// The fields after the command name, which is in parentheses and may
	// hold spaces: field 14 (utime) is f[11], field 15 (stime) is f[12].
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	if len(f) < 13 {
		return s, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return s, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	s.cpu = float64(ut+st) / clockTicks
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(val)
		if len(fields) == 0 {
			continue
		}
		n, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			continue
		}
		switch key {
		case "VmRSS":
			s.rss = n << 10
		case "VmHWM":
			s.hwm = n << 10
		case "RssAnon":
			s.anon = n << 10
		case "Threads":
			s.threads = int(n)
		}
	}
	if fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
		s.fds = len(fds)
	}
	return s, nil
}

// nofileLimit returns the soft RLIMIT_NOFILE of process pid from
// /proc/PID/limits, or 0.
func nofileLimit(pid int) uint64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "Max open files"); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				n, _ := strconv.ParseUint(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

// raiseNofile makes sure this process may open need file descriptors,
// raising the soft limit up to the hard one. (The Go runtime already raises
// it to the hard limit at start; this is the check, with a clear error.)
func raiseNofile(need uint64) (soft, hard uint64, err error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, 0, fmt.Errorf("RLIMIT_NOFILE: %w", err)
	}
	if lim.Cur < need && lim.Cur < lim.Max {
		lim.Cur = min(max(need, lim.Cur), lim.Max)
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return lim.Cur, lim.Max, fmt.Errorf("raise RLIMIT_NOFILE to %d: %w", lim.Cur, err)
		}
	}
	if lim.Cur < need {
		return lim.Cur, lim.Max, fmt.Errorf("RLIMIT_NOFILE is %d (hard %d): %d agents need about %d descriptors in this process; raise the hard limit (ulimit -Hn)", lim.Cur, lim.Max, need-fdHeadroom, need)
	}
	return lim.Cur, lim.Max, nil
}

// fdHeadroom is the descriptors this process needs besides one per agent.
const fdHeadroom = 256

// sampler reads the control plane's /proc every period and keeps the peaks.
type sampler struct {
	pid    int
	period time.Duration

	mu sync.Mutex
	// peakCPU is the highest CPU use over a window of about one second,
	// in cores (1.0 = one core busy).
	peakCPU    float64
	maxFDs     int
	maxThreads int
	last       procSample
	window     []procSample
}

func (s *sampler) run(ctx context.Context) {
	t := time.NewTicker(s.period)
	defer t.Stop()
	for {
		if p, err := readProc(s.pid); err == nil {
			s.add(p)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *sampler) add(p procSample) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last = p
	s.maxFDs = max(s.maxFDs, p.fds)
	s.maxThreads = max(s.maxThreads, p.threads)
	s.window = append(s.window, p)
	for len(s.window) > 1 && p.at.Sub(s.window[1].at) >= time.Second {
		s.window = s.window[1:]
	}
	if first := s.window[0]; p.at.Sub(first.at) >= time.Second*9/10 {
		s.peakCPU = max(s.peakCPU, (p.cpu-first.cpu)/p.at.Sub(first.at).Seconds())
	}
}

func (s *sampler) peaks() (cpu float64, fds, threads int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peakCPU, s.maxFDs, s.maxThreads
}

// child is the control plane's process.
type child struct {
	cmd     *exec.Cmd
	logPath string
	log     *os.File
	done    chan struct{}
	err     error // Wait's result, set before done is closed
}

// startChild starts bin with args, its stdout and stderr going to logPath.
func startChild(bin, logPath string, args ...string) (*child, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	c := &child{cmd: exec.Command(bin, args...), logPath: logPath, log: logf, done: make(chan struct{})}
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	c.cmd.Dir = filepath.Dir(logPath)
	if err := c.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() {
		c.err = c.cmd.Wait()
		logf.Close()
		close(c.done)
	}()
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// stop signals the process and waits for it to exit, killing it after
// timeout. It returns how long the exit took and the exit code (-1 when it
// had to be killed).
func (c *child) stop(sig os.Signal, timeout time.Duration) (time.Duration, int) {
	start := time.Now()
	if !c.exited() {
		_ = c.cmd.Process.Signal(sig)
	}
	select {
	case <-c.done:
	case <-time.After(timeout):
		_ = c.cmd.Process.Kill()
		<-c.done
		return time.Since(start), -1
	}
	return time.Since(start), c.cmd.ProcessState.ExitCode()
}

// goroutineCount is how many goroutines one function started.
type goroutineCount struct {
	CreatedBy string
	N         int
}

// parseGoroutineDump counts the goroutines of a Go traceback (the dump a
// SIGQUIT prints) and groups them by the function that started them, most
// first.
func parseGoroutineDump(dump []byte) (total int, by []goroutineCount) {
	counts := map[string]int{}
	inG := false
	creator := ""
	flush := func() {
		if inG {
			if creator == "" {
				creator = "(main or runtime)"
			}
			counts[creator]++
		}
		inG, creator = false, ""
	}
	sc := bufio.NewScanner(bytes.NewReader(dump))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "goroutine ") && strings.HasSuffix(line, ":") && strings.Contains(line, " ["):
			flush()
			inG = true
			total++
		case inG && strings.HasPrefix(line, "created by "):
			creator = strings.TrimPrefix(line, "created by ")
			if i := strings.Index(creator, " in goroutine "); i >= 0 {
				creator = creator[:i]
			}
		}
	}
	flush()
	for k, n := range counts {
		by = append(by, goroutineCount{CreatedBy: k, N: n})
	}
	sort.Slice(by, func(i, j int) bool {
		if by[i].N != by[j].N {
			return by[i].N > by[j].N
		}
		return by[i].CreatedBy < by[j].CreatedBy
	})
	return total, by
}
