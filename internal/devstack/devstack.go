// Package devstack starts Ferry's three processes — control plane, engine and
// agent — on loopback from built binaries, with development certificates, a
// fresh API token and configuration files in one directory. `ferry demo` and
// the end-to-end tests use it; nothing in it is simulated: the processes are
// the real binaries talking over real mutual-TLS connections.
package devstack

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ferry-ai/ferry/controlplane/api"
	"github.com/ferry-ai/ferry/controlplane/apiclient"
	"github.com/ferry-ai/ferry/internal/pki"
)

// AgentID is the agent identity of the development stack.
const AgentID = "agent-dev"

// Options configure a stack.
type Options struct {
	// BinDir holds ferry-controlplane, ferry-engine and ferry-agent.
	BinDir string
	// Dir receives certificates, configuration, the metadata DB and logs.
	Dir string
	// Warehouse is the agent's warehouse URL.
	Warehouse string
	// EngineThreads and EngineMaxRounds tune training (0: defaults).
	EngineThreads   int
	EngineMaxRounds int
	// LogLevel of all three processes ("" is info).
	LogLevel string
	// AgentYAML is appended to the agent's configuration: a credentials
	// block, say.
	AgentYAML string
	// SignInLinks lets the operator's token mint one-time console sign-in
	// links (auth.signin_links): the demo's admin link.
	SignInLinks bool
}

// Proc is one running process.
type Proc struct {
	Name    string
	Cmd     *exec.Cmd
	LogPath string
	done    chan struct{}
	err     error
}

// Pid returns the process id.
func (p *Proc) Pid() int { return p.Cmd.Process.Pid }

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stack is a running development stack.
type Stack struct {
	Opts         Options
	APIURL       string
	Token        string
	Certs        string
	AgentState   string // the enrolled agent's key and certificate
	EngineAddr   string
	AgentAddr    string
	DataDir      string
	EngineWork   string // the engine's working directory (empty, watched)
	EngineTmp    string // the engine's TMPDIR (empty, watched)
	Client       *apiclient.Client
	ControlPlane *Proc
	Engine       *Proc
	Agent        *Proc

	// start starts a process of the stack by name (see Restart).
	start func(name, dir string, env []string) (*Proc, error)

	// MetricsURLs are the base URLs of each process's /metrics, /healthz
	// and /readyz, by process name: the control plane's user API (its
	// /metrics needs Token), the engine's metrics listener (HTTPS, the
	// development CA) and the agent's (plain HTTP on loopback). See Scrape.
	MetricsURLs map[string]string
}

// Start writes certificates and configuration into opts.Dir and starts the
// three processes, then waits until the agent has registered.
func Start(ctx context.Context, opts Options) (*Stack, error) {
	s := &Stack{Opts: opts}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("devstack: %w", err)
	}
	s.Certs = filepath.Join(opts.Dir, "certs")
	if err := pki.DevCerts(s.Certs, AgentID, 24*time.Hour); err != nil {
		return nil, fmt.Errorf("devstack: %w", err)
	}
	tok := make([]byte, 24)
	_, _ = rand.Read(tok)
	s.Token = hex.EncodeToString(tok)
	tokenFile := filepath.Join(opts.Dir, "api-token")
	if err := os.WriteFile(tokenFile, []byte(s.Token+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("devstack: %w", err)
	}
	ports, err := freePorts(5)
	if err != nil {
		return nil, fmt.Errorf("devstack: %w", err)
	}
	apiAddr, agentAddr, engineAddr, engineMetrics, agentMetrics := ports[0], ports[1], ports[2], ports[3], ports[4]
	s.APIURL = "https://" + apiAddr
	s.MetricsURLs = map[string]string{
		"ferry-controlplane": s.APIURL,
		"ferry-engine":       "https://" + engineMetrics,
		"ferry-agent":        "http://" + agentMetrics,
	}
	s.AgentAddr = agentAddr
	s.EngineAddr = engineAddr
	s.DataDir = filepath.Join(opts.Dir, "controlplane")
	s.EngineWork = filepath.Join(opts.Dir, "engine-work")
	s.EngineTmp = filepath.Join(opts.Dir, "engine-tmp")
	logs := filepath.Join(opts.Dir, "logs")
	for _, d := range []string{s.DataDir, s.EngineWork, s.EngineTmp, logs} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("devstack: %w", err)
		}
	}
	level := opts.LogLevel
	if level == "" {
		level = "info"
	}
	tlsYAML := func(name string) string {
		f := pki.DevFiles(s.Certs, name)
		return fmt.Sprintf("tls:\n  cert: %q\n  key: %q\n  ca: %q\n", f.Cert, f.Key, f.CA)
	}
	// The agent enrolls with a one-time token, as in production: the
	// control plane holds the CA key, the engine follows its revocation
	// list, and the agent's key is made in its own state directory.
	s.AgentState = filepath.Join(opts.Dir, "agent-state")
	enrollTokenFile := filepath.Join(opts.Dir, "enrollment-token")
	caFile := filepath.Join(s.Certs, pki.CAFile)
	files := map[string]string{
		"controlplane.yaml": fmt.Sprintf("data_dir: %q\napi_addr: %q\nagent_addr: %q\napi_token_file: %q\nca_key: %q\nheartbeat_interval: 1s\nlog_level: %s\n%s",
			s.DataDir, apiAddr, agentAddr, tokenFile, filepath.Join(s.Certs, pki.CAKeyFile), level, tlsYAML("controlplane")),
		"engine.yaml": fmt.Sprintf("addr: %q\nmetrics_addr: %q\nthreads: %d\nmax_rounds: %d\nlog_level: %s\ncrl_url: %q\ncrl_refresh: 2s\n%s",
			engineAddr, engineMetrics, opts.EngineThreads, opts.EngineMaxRounds, level, s.APIURL+api.PathCRL, tlsYAML("engine")),
		"agent.yaml": fmt.Sprintf("agent_id: %q\ncontrol_plane: %q\nengine: %q\nmetrics_addr: %q\nwarehouse: %q\nheartbeat: 1s\nresume_timeout: 5s\nlog_level: %s\ntls:\n  ca: %q\nenrollment:\n  api: %q\n  token_file: %q\n  state_dir: %q\n",
			AgentID, agentAddr, engineAddr, agentMetrics, opts.Warehouse, level, caFile, apiAddr, enrollTokenFile, s.AgentState) + opts.AgentYAML,
	}
	if opts.SignInLinks {
		files["controlplane.yaml"] += "auth:\n  signin_links: true\n"
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(opts.Dir, name), []byte(body), 0o600); err != nil {
			return nil, fmt.Errorf("devstack: %w", err)
		}
	}
	start := func(name, dir string, env []string) (*Proc, error) {
		p := &Proc{Name: name, LogPath: filepath.Join(logs, name+".log"), done: make(chan struct{})}
		logf, err := os.Create(p.LogPath)
		if err != nil {
			return nil, err
		}
		p.Cmd = exec.Command(filepath.Join(opts.BinDir, name), "--config", filepath.Join(opts.Dir, strings.TrimPrefix(name, "ferry-")+".yaml"))
		// Through a pipe, not the file itself: the log file is written by
		// this process, so the child's storage writes (/proc/PID/io
		// write_bytes) count only what the child itself writes to disk.
		w := pipeWriter{logf}
		p.Cmd.Stdout, p.Cmd.Stderr = w, w
		p.Cmd.Dir = dir
		p.Cmd.Env = append(os.Environ(), env...)
		if err := p.Cmd.Start(); err != nil {
			logf.Close()
			return nil, fmt.Errorf("devstack: start %s: %w", name, err)
		}
		go func() { p.err = p.Cmd.Wait(); logf.Close(); close(p.done) }() // Wait returns after the pipe is drained
		return p, nil
	}
	s.start = start
	if s.ControlPlane, err = start("ferry-controlplane", opts.Dir, nil); err != nil {
		return nil, err
	}
	ca, err := pki.LoadCAPool(caFile)
	if err != nil {
		s.Stop()
		return nil, err
	}
	if s.Client, err = apiclient.New(s.APIURL, s.Token, ca); err != nil {
		s.Stop()
		return nil, err
	}
	if err := s.enrollAgent(ctx, enrollTokenFile); err != nil {
		s.Stop()
		return nil, err
	}
	if s.Engine, err = start("ferry-engine", s.EngineWork, []string{"TMPDIR=" + s.EngineTmp}); err != nil {
		s.Stop()
		return nil, err
	}
	if s.Agent, err = start("ferry-agent", opts.Dir, nil); err != nil {
		s.Stop()
		return nil, err
	}
	if err := s.waitReady(ctx, 60*time.Second); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// Restart starts the named process (ferry-controlplane or ferry-agent)
// again with the same configuration after it exited (a test stops or kills
// it first), appending to its log, and waits until the agent is connected
// again.
func (s *Stack) Restart(ctx context.Context, name string) error {
	var slot **Proc
	switch name {
	case "ferry-controlplane":
		slot = &s.ControlPlane
	case "ferry-agent":
		slot = &s.Agent
	default:
		return fmt.Errorf("devstack: cannot restart %q", name)
	}
	old := *slot
	if old != nil && !old.Exited() {
		return fmt.Errorf("devstack: %s is still running", name)
	}
	prev, err := os.ReadFile(old.LogPath)
	if err != nil {
		return fmt.Errorf("devstack: %w", err)
	}
	p, err := s.start(name, old.Cmd.Dir, nil)
	if err != nil {
		return err
	}
	// The earlier run's lines stay in the log, before the new run's.
	if err := os.WriteFile(old.LogPath+".1", prev, 0o600); err != nil {
		return fmt.Errorf("devstack: %w", err)
	}
	*slot = p
	return s.waitReady(ctx, 60*time.Second)
}

// Scrape GETs path (/metrics, /healthz or /readyz) from the named process
// (ferry-controlplane, ferry-engine or ferry-agent) and returns the status
// and body. It trusts the development CA and sends the API token to the
// control plane only.
func (s *Stack) Scrape(ctx context.Context, name, path string) (int, []byte, error) {
	base, ok := s.MetricsURLs[name]
	if !ok {
		return 0, nil, fmt.Errorf("devstack: no metrics endpoint for %q", name)
	}
	pool, err := pki.LoadCAPool(filepath.Join(s.Certs, pki.CAFile))
	if err != nil {
		return 0, nil, err
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool}}}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	if err != nil {
		return 0, nil, err
	}
	if name == "ferry-controlplane" {
		req.Header.Set("Authorization", "Bearer "+s.Token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("devstack: scrape %s%s: %w", name, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// enrollAgent waits for the control plane's API and writes a one-time
// enrollment token for the agent into tokenFile (0600).
func (s *Stack) enrollAgent(ctx context.Context, tokenFile string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		e, err := s.Client.CreateEnrollment(ctx, AgentID, "", 10*time.Minute) // the operator's tenant
		if err == nil {
			return os.WriteFile(tokenFile, []byte(e.Token+"\n"), 0o600)
		}
		if s.ControlPlane.Exited() {
			return fmt.Errorf("devstack: %s exited early (%v); see %s", s.ControlPlane.Name, s.ControlPlane.err, s.ControlPlane.LogPath)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("devstack: enrollment token: %w", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitReady waits until the agent is connected and the engine listens.
func (s *Stack) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		for _, p := range []*Proc{s.ControlPlane, s.Engine, s.Agent} {
			if p.Exited() {
				return fmt.Errorf("devstack: %s exited early (%v); see %s", p.Name, p.err, p.LogPath)
			}
		}
		agents, err := s.Client.Agents(ctx)
		if err == nil {
			for _, a := range agents {
				if a.ID == AgentID && a.Connected {
					if c, err := net.DialTimeout("tcp", s.EngineAddr, time.Second); err == nil {
						c.Close()
						return nil
					}
				}
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("devstack: agent not connected after %s (last error: %v); see logs in %s", timeout, err, filepath.Dir(s.Agent.LogPath))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Stop sends SIGTERM to the agent, the engine and the control plane, in that
// order, and waits for each (killing after 15 s). It returns the first
// unclean exit.
func (s *Stack) Stop() error {
	var errs []error
	for _, p := range []*Proc{s.Agent, s.Engine, s.ControlPlane} {
		if p == nil || p.Cmd.Process == nil {
			continue
		}
		if !p.Exited() {
			_ = p.Cmd.Process.Signal(syscall.SIGTERM)
		}
		select {
		case <-p.done:
		case <-time.After(15 * time.Second):
			_ = p.Cmd.Process.Kill()
			<-p.done
			errs = append(errs, fmt.Errorf("%s did not stop within 15s after SIGTERM", p.Name))
			continue
		}
		if p.err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p.Name, p.err))
		}
	}
	return errors.Join(errs...)
}

// pipeWriter hides the *os.File from os/exec so it copies through a pipe.
type pipeWriter struct{ f *os.File }

func (w pipeWriter) Write(b []byte) (int, error) { return w.f.Write(b) }

// freePorts returns n loopback addresses with free ports.
func freePorts(n int) ([]string, error) {
	var out []string
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		out = append(out, l.Addr().String())
	}
	return out, nil
}
