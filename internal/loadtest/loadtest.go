// Package loadtest measures the control plane under many agents. It starts
// the real ferry-controlplane binary in a child process, so that /proc gives
// its own CPU time and memory apart from the load's, and connects N
// simulated agents to it from this process: each is a real gRPC client of
// the agent RPC with its own ECDSA P-256 certificate issued by the control
// plane's CA (its identity is the certificate's common name) and its own
// mutual TLS 1.3 connection on loopback. The agents say Hello with a small
// schema and heartbeat at the interval the control plane configures; M jobs
// are submitted through the user API (controlplane/apiclient), and each
// agent answers its assignment with the job events ferry-agent sends
// (reading, table statistics, training, metrics, writing, write report,
// purge attestation, succeeded) after a simulated work time, without a
// warehouse or an engine.
//
// The report has the control plane's CPU seconds and CPU use per phase
// (connect, idle heartbeats, jobs), its peak and current RSS, threads, file
// descriptors and (stopped with SIGQUIT) goroutines, the heartbeats per
// second it handled and how late it recorded them, and the latencies of
// connecting, submitting, dispatching (submit returned → the agent has its
// assignment) and completing a job, as p50/p99/max. Every failed
// connection, ended session, stale heartbeat or unsuccessful job is an
// error of the run.
//
// Run it with `make loadtest` or `go run ./internal/loadtest/cmd/loadtest
// -agents 1000 -jobs 100`; README.md has the measured numbers.
package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ferry-ai/ferry/controlplane"
	"github.com/ferry-ai/ferry/controlplane/api"
	"github.com/ferry-ai/ferry/controlplane/apiclient"
	"github.com/ferry-ai/ferry/internal/pki"
)

// Defaults of Config.
const (
	DefaultAgents     = 1000
	DefaultJobs       = 100
	DefaultJobTime    = 2 * time.Second
	DefaultSubmitters = 4
)

// Config configures a run. The zero value runs DefaultAgents agents and
// DefaultJobs jobs against a control plane built from this module.
type Config struct {
	// Agents is the number of simulated agents (DefaultAgents if 0).
	Agents int
	// Jobs is the number of jobs submitted (DefaultJobs if 0; negative:
	// none).
	Jobs int
	// HeartbeatInterval is the control plane's heartbeat_interval, which
	// its Welcome tells the agents
	// (controlplane.DefaultHeartbeatInterval if 0).
	HeartbeatInterval time.Duration
	// Idle is how long the agents only heartbeat, between connecting and
	// the first job (three heartbeat intervals if 0: long enough for the
	// control plane to drop a silent agent).
	Idle time.Duration
	// Ramp spreads the agents' first connections evenly over this time;
	// 0 connects them all at once, as after a control-plane restart.
	Ramp time.Duration
	// JobTime is the simulated work of a job between its first and last
	// event (DefaultJobTime if 0).
	JobTime time.Duration
	// Submitters is how many API calls submit jobs at once
	// (DefaultSubmitters if 0).
	Submitters int
	// Binary is the ferry-controlplane executable; empty builds it from
	// this module (go build ./cmd/ferry-controlplane) into the run
	// directory.
	Binary string
	// Dir keeps the run's certificates, configuration, metadata database
	// and control-plane log; empty uses a temporary directory removed at
	// the end.
	Dir string
	// ControlPlaneYAML is appended to the control plane's configuration
	// file (for instance another metadata database).
	ControlPlaneYAML string
	// LogLevel is the control plane's log level ("info" if empty).
	LogLevel string
	// GoroutineDump stops the control plane with SIGQUIT, all agents still
	// connected, and counts the goroutines of the dump it prints; without
	// it the control plane is stopped with SIGTERM and must exit cleanly.
	GoroutineDump bool
	// Progress receives a line at each phase; nil discards them.
	Progress io.Writer
}

func (c *Config) normalize() error {
	if c.Agents == 0 {
		c.Agents = DefaultAgents
	}
	if c.Jobs == 0 {
		c.Jobs = DefaultJobs
	}
	c.Jobs = max(c.Jobs, 0)
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = controlplane.DefaultHeartbeatInterval
	}
	if c.Idle == 0 {
		c.Idle = 3 * c.HeartbeatInterval
	}
	if c.JobTime == 0 {
		c.JobTime = DefaultJobTime
	}
	if c.Submitters == 0 {
		c.Submitters = DefaultSubmitters
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	switch {
	case c.Agents < 1:
		return fmt.Errorf("loadtest: %d agents: want at least one", c.Agents)
	case c.HeartbeatInterval < 10*time.Millisecond || c.Idle < 0 || c.Ramp < 0 || c.JobTime < 0 || c.Submitters < 1:
		return errors.New("loadtest: the heartbeat interval must be at least 10ms, idle, ramp and job time not negative, submitters at least one")
	}
	return nil
}

// Run starts a control plane, connects the agents, submits the jobs and
// returns what it measured. It returns an error when the run could not be
// set up (certificates, the binary, the control plane's start); what fails
// under load is counted in the report (Report.Errors), not returned.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	r := &Report{Agents: cfg.Agents, Jobs: cfg.Jobs, HeartbeatInterval: cfg.HeartbeatInterval, Ramp: cfg.Ramp, JobTime: cfg.JobTime, Cores: runtime.NumCPU()}
	progress := func(format string, args ...any) { fmt.Fprintf(cfg.Progress, "loadtest: "+format+"\n", args...) }

	soft, _, err := raiseNofile(uint64(cfg.Agents + fdHeadroom))
	if err != nil {
		return nil, fmt.Errorf("loadtest: %w", err)
	}
	r.NofileSelf = soft

	dir := cfg.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "ferry-loadtest-"); err != nil {
			return nil, fmt.Errorf("loadtest: %w", err)
		}
		defer os.RemoveAll(dir)
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("loadtest: %w", err)
	}
	bin := cfg.Binary
	if bin == "" {
		progress("building ferry-controlplane")
		if bin, err = buildControlPlane(ctx, dir); err != nil {
			return nil, err
		}
	}

	set, err := issueCerts(filepath.Join(dir, "certs"), cfg.Agents, 24*time.Hour)
	if err != nil {
		return nil, fmt.Errorf("loadtest: certificates: %w", err)
	}
	r.CertIssue = set.issued
	progress("issued %d agent certificates in %s", cfg.Agents, fmtDur(set.issued))

	cp, err := startControlPlane(ctx, bin, dir, set, cfg)
	if err != nil {
		return nil, err
	}
	r.LogPath = cp.child.logPath
	defer cp.child.stop(syscall.SIGKILL, 5*time.Second) // after a failure only
	r.NofileControlPlane = nofileLimit(cp.child.pid())

	sctx, stopSampling := context.WithCancel(ctx)
	smp := &sampler{pid: cp.child.pid(), period: 200 * time.Millisecond}
	var sampling sync.WaitGroup
	sampling.Go(func() { smp.run(sctx) })
	defer func() { stopSampling(); sampling.Wait() }()

	errs := &errorLog{}
	f := newFleet(cp.agentAddr, set, cfg.JobTime, cfg.Jobs, errs)
	mark := func() (procSample, float64, int64) {
		p, err := readProc(cp.child.pid())
		if err != nil {
			errs.add("reading /proc of the control plane", "", err)
		}
		return p, selfCPU(), f.heartbeat.Load()
	}
	phase := func(name string, a, b procSample, simA, simB float64, hbA, hbB int64) Phase {
		return Phase{Name: name, Wall: b.at.Sub(a.at), CPUSeconds: b.cpu - a.cpu, Heartbeats: hbB - hbA, SimCPUSeconds: simB - simA}
	}

	// Phase 1: every agent connects, by default all at once (a control
	// plane restart reconnects the whole fleet together).
	p0, sim0, hb0 := mark()
	r.StartupCPUSeconds, r.RSSStart = p0.cpu, p0.rss
	actx, stopAgents := context.WithCancel(ctx)
	waitAgents := f.start(actx, cfg.Ramp)
	defer func() { f.draining.Store(true); stopAgents(); waitAgents() }()
	connectTimeout := 60*time.Second + cfg.Ramp + time.Duration(cfg.Agents)*20*time.Millisecond
	select {
	case <-f.allIn:
	case <-time.After(connectTimeout):
		errs.add("connect phase timed out", "", fmt.Errorf("%d of %d agents connected after %s", f.welcomed.Load(), cfg.Agents, connectTimeout))
	case <-cp.child.done:
		return nil, fmt.Errorf("loadtest: the control plane exited while the agents connected: %v; see %s", cp.child.err, cp.child.logPath)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	p1, sim1, hb1 := mark()
	r.Connect = phase("connect", p0, p1, sim0, sim1, hb0, hb1)
	r.Welcome = newDist(f.connectTimes())
	progress("%d agents connected in %s", f.welcomed.Load(), fmtDur(r.Connect.Wall))

	// Phase 2: heartbeats only.
	if err := sleepCtx(ctx, cfg.Idle); err != nil {
		return nil, err
	}
	p2, sim2, hb2 := mark()
	r.Idle = phase("idle", p1, p2, sim1, sim2, hb1, hb2)
	r.RSSConnected = p2.rss
	r.PerAgentRSS = (p2.rss - p0.rss) / int64(cfg.Agents)
	progress("idle %s: control plane CPU %.1f %%, %.0f heartbeats/s", fmtDur(r.Idle.Wall), r.Idle.CPUPercent(), r.Idle.HeartbeatRate())

	// Phase 3: the jobs.
	subs := submitJobs(ctx, cp.client, cfg.Jobs, cfg.Submitters, errs)
	jobsTimeout := 60*time.Second + 3*cfg.JobTime*time.Duration((cfg.Jobs+cfg.Agents-1)/cfg.Agents)
	select {
	case <-f.allDone:
	case <-time.After(jobsTimeout):
		errs.add("jobs phase timed out", "", fmt.Errorf("%d of %d jobs succeeded after %s", f.done.Load(), cfg.Jobs, jobsTimeout))
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	p3, sim3, hb3 := mark()
	r.JobsPhase = phase("jobs", p2, p3, sim2, sim3, hb2, hb3)
	r.Total = phase("total", p0, p3, sim0, sim3, hb0, hb3)
	r.PeakRSS, r.RSS, r.RSSAnon = p3.hwm, p3.rss, p3.anon
	progress("%d jobs done in %s", f.done.Load(), fmtDur(r.JobsPhase.Wall))

	// Verification, outside the measured phases.
	r.SimGoroutines = runtime.NumGoroutine()
	if me, err := readProc(os.Getpid()); err == nil {
		r.SimRSS = me.rss
	}
	checkJobs(ctx, cp.client, f, subs, r, errs)
	checkAgents(ctx, cp.client, f, cfg.HeartbeatInterval, r, errs)
	if p, err := readProc(cp.child.pid()); err == nil {
		r.PeakRSS = max(r.PeakRSS, p.hwm)
	}
	peak, fds, threads := smp.peaks()
	r.PeakCPUPercent, r.FDs, r.Threads = 100*peak, fds, threads

	// Stop the control plane with every agent connected.
	f.draining.Store(true)
	sig, timeout := os.Signal(syscall.SIGTERM), 30*time.Second
	r.Stop = "SIGTERM"
	if cfg.GoroutineDump {
		sig, r.Stop = syscall.SIGQUIT, "SIGQUIT"
	}
	var logSize int64
	if fi, err := os.Stat(cp.child.logPath); err == nil {
		logSize = fi.Size()
	}
	r.StopTime, r.ExitCode = cp.child.stop(sig, timeout)
	stopAgents()
	waitAgents()
	logData, err := os.ReadFile(cp.child.logPath)
	if err != nil {
		return nil, fmt.Errorf("loadtest: control plane log: %w", err)
	}
	r.LogWarnings, r.LogErrors, r.LogMessages = scanLog(logData)
	switch {
	case cfg.GoroutineDump:
		r.Goroutines, r.GoroutinesBy = parseGoroutineDump(logData[min(logSize, int64(len(logData))):])
	case r.ExitCode != 0:
		errs.add("control plane did not exit cleanly", "", fmt.Errorf("exit code %d after %s", r.ExitCode, fmtDur(r.StopTime)))
	}
	r.Errors, r.ErrorKinds, r.FirstErrors = errs.snapshot()
	return r, nil
}

// controlPlane is the running control plane and its API client.
type controlPlane struct {
	child     *child
	client    *apiclient.Client
	agentAddr string
}

// startControlPlane writes the control plane's configuration and API
// token into dir, starts bin and waits until its API answers.
func startControlPlane(ctx context.Context, bin, dir string, set *pkiSet, cfg Config) (*controlPlane, error) {
	tok := make([]byte, 24)
	_, _ = rand.Read(tok)
	token := hex.EncodeToString(tok)
	tokenFile := filepath.Join(dir, "api-token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("loadtest: %w", err)
	}
	ports, err := freePorts(2)
	if err != nil {
		return nil, fmt.Errorf("loadtest: %w", err)
	}
	dataDir := filepath.Join(dir, "controlplane")
	tls := pki.DevFiles(set.dir, "controlplane")
	yaml := fmt.Sprintf("data_dir: %q\napi_addr: %q\nagent_addr: %q\napi_token_file: %q\nheartbeat_interval: %s\nlog_level: %s\ntls:\n  cert: %q\n  key: %q\n  ca: %q\n%s",
		dataDir, ports[0], ports[1], tokenFile, cfg.HeartbeatInterval, cfg.LogLevel, tls.Cert, tls.Key, tls.CA, cfg.ControlPlaneYAML)
	cfgFile := filepath.Join(dir, "controlplane.yaml")
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
		return nil, fmt.Errorf("loadtest: %w", err)
	}
	c, err := startChild(bin, filepath.Join(dir, "controlplane.log"), "--config", cfgFile)
	if err != nil {
		return nil, fmt.Errorf("loadtest: %w", err)
	}
	cp := &controlPlane{child: c, agentAddr: ports[1]}
	if cp.client, err = apiclient.New("https://"+ports[0], token, set.roots); err != nil {
		c.stop(syscall.SIGKILL, 5*time.Second)
		return nil, fmt.Errorf("loadtest: %w", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := cp.client.Agents(cctx)
		cancel()
		if err == nil {
			return cp, nil
		}
		if c.exited() || time.Now().After(deadline) || ctx.Err() != nil {
			c.stop(syscall.SIGKILL, 5*time.Second)
			return nil, fmt.Errorf("loadtest: control plane not serving (%v, exit: %v); see %s", err, c.err, c.logPath)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// buildControlPlane builds ./cmd/ferry-controlplane of this module (with the
// environment's GOFLAGS) into dir.
func buildControlPlane(ctx context.Context, dir string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("loadtest: go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	bin := filepath.Join(dir, "ferry-controlplane")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/ferry-controlplane")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("loadtest: build ferry-controlplane: %w\n%s", err, out)
	}
	return bin, nil
}

// submission is one submitted job, timed around the API call.
type submission struct {
	id               string
	start, returned  time.Time
	output, errorMsg string
}

// submitJobs submits n jobs from workers concurrent API calls.
func submitJobs(ctx context.Context, c *apiclient.Client, n, workers int, errs *errorLog) []submission {
	subs := make([]submission, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range next {
				s := &subs[i]
				s.output = fmt.Sprintf("loadtest_predictions_%04d", i)
				s.start = time.Now()
				j, err := c.Submit(ctx, Query, s.output)
				s.returned = time.Now()
				if err != nil {
					s.errorMsg = err.Error()
					errs.add("submit failed", s.output, err)
					continue
				}
				s.id = j.ID
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return subs
}

// checkJobs reads every submitted job back from the API (its state, its
// history on the control plane's clock and its reports) and fills the
// latencies and job counts of r.
func checkJobs(ctx context.Context, c *apiclient.Client, f *fleet, subs []submission, r *Report, errs *errorLog) {
	obs := f.observed()
	var submit, sentToAgent, dispatch, queue, complete []time.Duration
	perAgent := map[string]int{}
	for _, s := range subs {
		submit = append(submit, s.returned.Sub(s.start))
		if s.id == "" {
			r.NotSucceeded++
			continue
		}
		o, ok := obs[s.id]
		if ok && !o.received.IsZero() {
			sentToAgent = append(sentToAgent, o.received.Sub(s.start))
			d := o.received.Sub(s.returned)
			if d < 0 {
				r.EarlyAssignments++
				d = 0
			}
			dispatch = append(dispatch, d)
			perAgent[o.agent]++
		}
		d, err := waitTerminal(ctx, c, s.id)
		if err != nil {
			errs.add("reading job back", s.id, err)
			r.NotSucceeded++
			continue
		}
		if d.State != api.StateSucceeded {
			msg := ""
			if d.Error != nil {
				msg = d.Error.Stage + ": " + d.Error.Message
			}
			errs.add("job did not succeed", s.id, fmt.Errorf("%s %s", d.State, msg))
			r.NotSucceeded++
			continue
		}
		var problems []string
		if d.AgentID != o.agent {
			problems = append(problems, fmt.Sprintf("ran on %q, the assignment reached %q", d.AgentID, o.agent))
		}
		if len(d.TableStats) != len(d.Tables) || d.Model == nil || d.Purge == nil || d.Write == nil {
			problems = append(problems, fmt.Sprintf("reports missing: %d of %d table stats, model %t, purge %t, write %t",
				len(d.TableStats), len(d.Tables), d.Model != nil, d.Purge != nil, d.Write != nil))
		}
		if len(problems) > 0 {
			errs.add("job record incomplete", s.id, errors.New(strings.Join(problems, "; ")))
		}
		r.Succeeded++
		for _, h := range d.History {
			switch h.State {
			case api.StateAssigned:
				queue = append(queue, h.At.Sub(d.CreatedAt))
			case api.StateSucceeded:
				complete = append(complete, h.At.Sub(s.returned))
			}
		}
	}
	r.Submit, r.SubmitToAgent, r.Dispatch = newDist(submit), newDist(sentToAgent), newDist(dispatch)
	r.Queue, r.Complete = newDist(queue), newDist(complete)
	r.AgentsUsed = len(perAgent)
	for _, n := range perAgent {
		r.MaxPerAgent = max(r.MaxPerAgent, n)
	}
}

// waitTerminal polls a job until it is in a terminal state (the agent's
// last event may still be on its way), for at most ten seconds.
func waitTerminal(ctx context.Context, c *apiclient.Client, id string) (*api.JobDetail, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		d, err := c.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		if d.State.Terminal() || time.Now().After(deadline) {
			return d, nil
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return nil, err
		}
	}
}

// checkAgents lists the agents through the API: every simulated agent must
// be connected and its last heartbeat recorded; it fills the heartbeat
// figures of r.
func checkAgents(ctx context.Context, c *apiclient.Client, f *fleet, interval time.Duration, r *Report, errs *errorLog) {
	r.HeartbeatsSent = f.heartbeat.Load()
	asked := time.Now()
	agents, err := c.Agents(ctx)
	if err != nil {
		errs.add("listing agents", "", err)
		return
	}
	byID := f.agentByID()
	seen := map[string]bool{}
	var lags []time.Duration
	for _, a := range agents {
		sa := byID[a.ID]
		if sa == nil {
			continue
		}
		seen[a.ID] = true
		if a.Connected {
			r.ConnectedAtEnd++
		} else {
			errs.add("agent not connected at the end", a.ID, nil)
		}
		if lag, ok := sa.heartbeatLag(a.LastSeen); ok {
			lags = append(lags, lag)
		}
		// A heartbeat sent an interval before the question must be
		// recorded by the answer; last_seen older than two intervals
		// means at least one was lost or is stuck.
		if stale := asked.Sub(a.LastSeen); stale > 2*interval {
			r.StaleAgents++
			errs.add("heartbeat lost", a.ID, fmt.Errorf("last seen %s before the check, last heartbeat sent %s before",
				fmtDur(stale), fmtDur(asked.Sub(sa.lastHeartbeat()))))
		}
	}
	for id := range byID {
		if !seen[id] {
			errs.add("agent unknown to the control plane", id, nil)
		}
	}
	r.HeartbeatLag = newDist(lags)
}

// scanLog counts the warning and error lines of the control plane's JSON
// log and groups them by message.
func scanLog(data []byte) (warnings, errs int, byMsg map[string]int) {
	byMsg = map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		var e struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
		}
		if json.Unmarshal(line, &e) != nil {
			continue
		}
		switch e.Level {
		case "WARN":
			warnings++
		case "ERROR":
			errs++
		default:
			continue
		}
		byMsg[e.Level+" "+e.Msg]++
	}
	return warnings, errs, byMsg
}

// freePorts returns n loopback addresses whose ports were free.
func freePorts(n int) ([]string, error) {
	var out []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		out = append(out, l.Addr().String())
	}
	return out, nil
}

// selfCPU returns this process's user + system time in seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
