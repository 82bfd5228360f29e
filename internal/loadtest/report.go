package loadtest

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Dist summarizes a set of durations.
type Dist struct {
	N             int
	P50, P99, Max time.Duration
}

// newDist returns the nearest-rank percentiles of ds.
func newDist(ds []time.Duration) Dist {
	if len(ds) == 0 {
		return Dist{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := func(p float64) time.Duration {
		i := int(math.Ceil(p/100*float64(len(s)))) - 1
		return s[min(max(i, 0), len(s)-1)]
	}
	return Dist{N: len(s), P50: rank(50), P99: rank(99), Max: s[len(s)-1]}
}

// String formats the distribution as "p50 … p99 … max … (n)".
func (d Dist) String() string {
	if d.N == 0 {
		return "no samples"
	}
	return fmt.Sprintf("p50 %s  p99 %s  max %s  (n=%d)", fmtDur(d.P50), fmtDur(d.P99), fmtDur(d.Max), d.N)
}

func fmtDur(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
	case d < 10*time.Second:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

func fmtMB(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/(1<<20)) }

// Phase is one stretch of the run with the control plane's CPU use in it.
type Phase struct {
	Name string
	Wall time.Duration
	// CPUSeconds is the control plane's user + system time in the phase.
	CPUSeconds float64
	// Heartbeats is the number of heartbeats the agents sent in the phase.
	Heartbeats int64
	// SimCPUSeconds is the simulated agents' process's CPU time.
	SimCPUSeconds float64
}

// CPUPercent is the control plane's CPU use in the phase; 100 is one core.
func (p Phase) CPUPercent() float64 {
	if p.Wall <= 0 {
		return 0
	}
	return 100 * p.CPUSeconds / p.Wall.Seconds()
}

// HeartbeatRate is heartbeats per second in the phase.
func (p Phase) HeartbeatRate() float64 {
	if p.Wall <= 0 {
		return 0
	}
	return float64(p.Heartbeats) / p.Wall.Seconds()
}

// Report is the outcome of a run.
type Report struct {
	Agents, Jobs      int
	HeartbeatInterval time.Duration
	Ramp              time.Duration
	JobTime           time.Duration
	Cores             int
	// CertIssue is the time to issue the agents' certificates.
	CertIssue time.Duration

	// Startup is the control plane's CPU time from exec to serving, and
	// RSSStart its RSS then (no agent connected).
	StartupCPUSeconds float64
	RSSStart          int64
	// Phases: connect (every agent dials and gets Welcome), idle
	// (heartbeats only), jobs (submit to the last SUCCEEDED sent), and
	// the three together.
	Connect, Idle, JobsPhase, Total Phase
	// PeakCPUPercent is the control plane's highest CPU use over a window
	// of about one second (100 = one core).
	PeakCPUPercent float64

	// RSSConnected is the RSS after the idle phase, all agents connected;
	// PerAgentRSS is (RSSConnected-RSSStart)/Agents.
	RSSConnected, PerAgentRSS int64
	// PeakRSS is VmHWM, RSS and RSSAnon VmRSS and RssAnon at the end of
	// the jobs phase.
	PeakRSS, RSS, RSSAnon int64
	Threads, FDs          int
	// Goroutines is the control plane's goroutine count (runtime's
	// included) with every agent connected, from the dump of SIGQUIT; 0
	// when the run stopped it with SIGTERM. GoroutinesBy groups them by
	// the function that started them.
	Goroutines   int
	GoroutinesBy []goroutineCount
	// NofileSelf and NofileControlPlane are the soft RLIMIT_NOFILE of this
	// process and of the control plane.
	NofileSelf, NofileControlPlane uint64

	// Latencies. Welcome: from dialing to the first Welcome, per agent.
	// Submit: the API call. SubmitToAgent: from sending the submit call to
	// the agent receiving the assignment. Dispatch: from the submit
	// call's return to the agent receiving the assignment (0 when the
	// assignment came first: EarlyAssignments counts those). Queue: from
	// the job's creation to its assignment, both on the control plane's
	// clock. Complete: from the submit call's return to the control
	// plane's record of succeeded.
	Welcome, Submit, SubmitToAgent, Dispatch, Queue, Complete Dist
	EarlyAssignments                                          int

	// Jobs by end state, and the agents they ran on.
	Succeeded, NotSucceeded int
	AgentsUsed, MaxPerAgent int
	// HeartbeatsSent over the run; HeartbeatLag is how long after sending
	// the control plane recorded each agent's latest heartbeat (its
	// last_seen), over all agents at the end; StaleAgents counts agents
	// whose last_seen was more than two intervals old (lost heartbeats).
	HeartbeatsSent int64
	HeartbeatLag   Dist
	StaleAgents    int
	// ConnectedAtEnd is how many agents the control plane listed as
	// connected at the end.
	ConnectedAtEnd int

	// Errors counts every error; ErrorKinds by kind; FirstErrors keeps
	// the first few messages.
	Errors      int
	ErrorKinds  map[string]int
	FirstErrors []string
	// LogWarnings and LogErrors count the control plane's log lines at
	// those levels; LogMessages groups them by message.
	LogWarnings, LogErrors int
	LogMessages            map[string]int

	// Stop is how the control plane was stopped ("SIGTERM" or
	// "SIGQUIT"), StopTime how long it took to exit, ExitCode its code.
	Stop     string
	StopTime time.Duration
	ExitCode int

	// The simulated agents' process: its goroutines and RSS with every
	// agent connected.
	SimGoroutines int
	SimRSS        int64
	// LogPath is the control plane's log (removed with the run directory
	// unless Config.Dir was set).
	LogPath string
}

// WriteTable prints the report as one table.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, format string, args ...any) { fmt.Fprintf(tw, "%s\t%s\n", k, fmt.Sprintf(format, args...)) }
	phase := func(p Phase) string {
		s := fmt.Sprintf("%s wall, control plane CPU %.2f s (%.1f %%)", fmtDur(p.Wall), p.CPUSeconds, p.CPUPercent())
		if p.Heartbeats > 0 {
			s += fmt.Sprintf(", %.0f heartbeats/s", p.HeartbeatRate())
		}
		return s + fmt.Sprintf("; agents' process CPU %.2f s", p.SimCPUSeconds)
	}
	ramp := "all at once"
	if r.Ramp > 0 {
		ramp = "over " + r.Ramp.String()
	}
	fmt.Fprintf(tw, "Ferry control plane under load: %d agents (one certificate each, mTLS 1.3 on loopback, connecting %s), %d jobs, heartbeat %s, simulated job work %s, %d cores\n",
		r.Agents, ramp, r.Jobs, r.HeartbeatInterval, r.JobTime, r.Cores)
	fmt.Fprintf(tw, "measure\tvalue\n")
	row("control plane start", "CPU %.2f s, RSS %s", r.StartupCPUSeconds, fmtMB(r.RSSStart))
	row(fmt.Sprintf("connect %d agents", r.Agents), "%s", phase(r.Connect))
	row("idle (heartbeats only)", "%s", phase(r.Idle))
	row(fmt.Sprintf("jobs (%d submitted)", r.Jobs), "%s", phase(r.JobsPhase))
	row("whole run", "%s; peak %.0f %% over 1 s", phase(r.Total), r.PeakCPUPercent)
	row("memory", "RSS %s all connected (%.1f KB per agent); peak RSS (VmHWM) %s; RSS now %s (anon %s)",
		fmtMB(r.RSSConnected), float64(r.PerAgentRSS)/1024, fmtMB(r.PeakRSS), fmtMB(r.RSS), fmtMB(r.RSSAnon))
	g := "not counted (stopped with SIGTERM)"
	if r.Goroutines > 0 {
		g = fmt.Sprintf("%d (%.1f per agent)", r.Goroutines, float64(r.Goroutines)/float64(max(r.Agents, 1)))
		var by []string
		for _, c := range r.GoroutinesBy[:min(4, len(r.GoroutinesBy))] {
			by = append(by, fmt.Sprintf("%d %s", c.N, shortFunc(c.CreatedBy)))
		}
		if len(by) > 0 {
			g += ": " + strings.Join(by, ", ")
		}
	}
	row("goroutines", "%s", g)
	row("threads, open fds (peak)", "%d threads, %d fds; RLIMIT_NOFILE control plane %d, agents' process %d", r.Threads, r.FDs, r.NofileControlPlane, r.NofileSelf)
	row("connect (dial → Welcome)", "%s", r.Welcome)
	row("submit (API call)", "%s", r.Submit)
	row("submit sent → agent has job", "%s", r.SubmitToAgent)
	row("dispatch (submit returned → agent has job)", "%s; %d assignments arrived before the submit call returned", r.Dispatch, r.EarlyAssignments)
	row("queued → assigned (control plane clock)", "%s", r.Queue)
	row("submit → succeeded (recorded)", "%s", r.Complete)
	row("jobs", "%d succeeded, %d not; ran on %d agents (at most %d on one)", r.Succeeded, r.NotSucceeded, r.AgentsUsed, r.MaxPerAgent)
	row("heartbeats", "%d sent; recorded %s after sending (%s); %d agents stale (> 2 intervals)", r.HeartbeatsSent, fmtDur(r.HeartbeatLag.P50), r.HeartbeatLag, r.StaleAgents)
	row("agents connected at end", "%d / %d", r.ConnectedAtEnd, r.Agents)
	errs := fmt.Sprintf("%d", r.Errors)
	if r.Errors > 0 {
		errs += " (" + kinds(r.ErrorKinds) + ")"
	}
	row("errors", "%s", errs)
	logs := fmt.Sprintf("%d warnings, %d errors", r.LogWarnings, r.LogErrors)
	if len(r.LogMessages) > 0 {
		logs += " (" + kinds(r.LogMessages) + ")"
	}
	row("control plane log", "%s", logs)
	row("stop", "%s: exited in %s with code %d", r.Stop, fmtDur(r.StopTime), r.ExitCode)
	row("agents' process", "%d goroutines, RSS %s (simulated agents, not the control plane); certificates issued in %s", r.SimGoroutines, fmtMB(r.SimRSS), fmtDur(r.CertIssue))
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, e := range r.FirstErrors {
		if _, err := fmt.Fprintf(w, "  error: %s\n", e); err != nil {
			return err
		}
	}
	return nil
}

// shortFunc drops the module path of a function name.
func shortFunc(f string) string {
	if i := strings.LastIndex(f, "/"); i >= 0 {
		return f[i+1:]
	}
	return f
}
