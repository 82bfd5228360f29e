package e2e

import (
	"bufio"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-ai/ferry/internal/pki"
	"github.com/ferry-ai/ferry/internal/syncbuf"
)

// TestDemoConsoleLink runs `ferry demo --keep` as `make demo` does from a
// terminal: it prints the console's URL and a one-time sign-in link for the
// demo admin, runs its job, and keeps the console up. A browser (an HTTP
// client with a cookie jar, trusting the demo's development CA) follows
// the link, clicks its button, and finds the demo's job, succeeded, in the
// console's API as the demo admin; the link works once. Ctrl-C (SIGINT)
// then stops the demo, which reads its predictions back and exits 0.
func TestDemoConsoleLink(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(filepath.Join(binDir, "ferry"), "demo", "--keep", "--bin", binDir, "--dir", dir, "--warehouse", "duckdb://"+copyDB(t))
	out := &syncbuf.Buffer{}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = io.MultiWriter(out, pw), out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait(); pw.Close() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-done
		}
	})

	// Read the demo's lines until it says the job is in the console.
	var consoleURL, linkURL, jobID string
	lines := bufio.NewScanner(pr)
	linkRE := regexp.MustCompile(`^\s+(https://\S+/auth/link\?token=fsl_\S+)$`)
	consoleRE := regexp.MustCompile(`^== web console: (https://\S+/console/)`)
	jobRE := regexp.MustCompile(`^== the job (j-[0-9a-f]+) is in the console at (\S+); press Ctrl-C to stop`)
	deadline := time.AfterFunc(3*time.Minute, func() { _ = cmd.Process.Kill() })
	defer deadline.Stop()
	for jobID == "" && lines.Scan() {
		line := lines.Text()
		if m := consoleRE.FindStringSubmatch(line); m != nil {
			consoleURL = m[1]
		}
		if m := linkRE.FindStringSubmatch(line); m != nil {
			linkURL = m[1]
		}
		if m := jobRE.FindStringSubmatch(line); m != nil {
			jobID = m[1]
		}
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	if consoleURL == "" || linkURL == "" || jobID == "" {
		t.Fatalf("the demo printed no console URL, sign-in link or waiting job:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "succeeded") {
		t.Fatalf("the demo's job did not succeed:\n%s", out.String())
	}

	pool, err := pki.LoadCAPool(filepath.Join(dir, "run", "certs", pki.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 10 * time.Second,
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(u string) (int, string) {
		t.Helper()
		resp, err := browser.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, page := get(consoleURL); code != http.StatusOK || !strings.Contains(page, "<html") {
		t.Errorf("console page: %d", code)
	}
	if code, page := get(linkURL); code != http.StatusOK || !strings.Contains(page, `<button type="submit">Sign in</button>`) {
		t.Fatalf("the link's page: %d %s", code, page)
	}
	lu, _ := url.Parse(linkURL)
	base := lu.Scheme + "://" + lu.Host
	click := func() int {
		t.Helper()
		resp, err := browser.PostForm(base+lu.Path, url.Values{"token": {lu.Query().Get("token")}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := click(); code != http.StatusSeeOther {
		t.Fatalf("sign in with the demo's link: %d", code)
	}
	if code, me := get(base + "/auth/me"); code != http.StatusOK || !strings.Contains(me, `"role":"admin"`) {
		t.Errorf("signed in as: %d %s", code, me)
	}
	code, job := get(base + "/v1/jobs/" + jobID)
	if code != http.StatusOK || !strings.Contains(job, `"state":"succeeded"`) {
		t.Errorf("the demo's job in the console's API: %d %.300s", code, job)
	}
	if code := click(); code != http.StatusGone {
		t.Errorf("second use of the demo's link: %d, want 410", code)
	}

	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the demo after Ctrl-C: %v\n%s", err, out.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("the demo did not stop within 60 s of Ctrl-C:\n%s", out.String())
	}
	if s := out.String(); !strings.Contains(s, "== first rows of churn_predictions") || !strings.Contains(s, "== done in") {
		t.Errorf("the demo did not finish after Ctrl-C:\n%s", s)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "run", "logs", "ferry-controlplane.log")); strings.Contains(string(b), lu.Query().Get("token")) {
		t.Error("the sign-in link's token is in the control plane's log")
	}
}
