package console_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/ferry-ai/ferry/controlplane"
	"github.com/ferry-ai/ferry/controlplane/auth"
	"github.com/ferry-ai/ferry/controlplane/metadb"
	"github.com/ferry-ai/ferry/controlplane/metadb/metadbtest"
	"github.com/ferry-ai/ferry/engine/pql"
	"github.com/ferry-ai/ferry/internal/fakeagent"
	"github.com/ferry-ai/ferry/internal/graph"
	"github.com/ferry-ai/ferry/internal/loadtest"
	"github.com/ferry-ai/ferry/internal/oidctest"
	"github.com/ferry-ai/ferry/internal/pki"
	"github.com/ferry-ai/ferry/internal/syncbuf"
	"github.com/ferry-ai/ferry/secrets"
)

// defaultChromium is where Debian's chromium package puts the browser
// (scripts/services.sh installs it); FERRY_CHROMIUM overrides it.
const defaultChromium = "/usr/bin/chromium"

const (
	tenant   = "default"
	agentID  = "agent-1"
	clientID = "ferry-console"
	// jobTime is how long the fake agent takes per job: long enough for
	// the jobs page, polling every 2 s, to show the job running.
	jobTime = 6 * time.Second
)

// person is a user at the identity provider, the tenant they sign in to
// and the role their groups give.
type person struct {
	oidctest.User
	tenant, role string
}

// people: the customer's editor, viewer and admin, and a member of the
// provider's support staff (a viewer of the support tenant).
var people = map[string]person{
	"editor":  {oidctest.User{Username: "erin", Email: "erin@acme.example", Groups: []string{"ferry-editors"}}, tenant, "editor"},
	"viewer":  {oidctest.User{Username: "vic", Email: "vic@acme.example", Groups: []string{"ferry-viewers"}}, tenant, "viewer"},
	"admin":   {oidctest.User{Username: "ada", Email: "ada@acme.example", Groups: []string{"ferry-admins"}}, tenant, "admin"},
	"support": {oidctest.User{Username: "sam", Email: "sam@ferry.example", Groups: []string{"ferry-viewers"}}, controlplane.DefaultSupportTenant, "viewer"},
}

// stack is a control plane with OpenID Connect sign-in against a real
// provider, and a fake agent connected over the agent RPC.
type stack struct {
	url   string // https://127.0.0.1:port, the user API and the console
	idp   *oidctest.Provider
	token string // the operator's API token
	http  *http.Client
	pins  []string // SPKI hashes of the two servers' certificates, for Chromium
	logs  *syncbuf.Buffer
}

func pqlPlanner(query string, g *graph.Graph) ([]string, error) {
	q, err := pql.Parse(query)
	if err != nil {
		return nil, err
	}
	if err := q.Validate(g); err != nil {
		return nil, err
	}
	return pql.RequiredTables(q, g), nil
}

func startStack(t *testing.T) *stack {
	t.Helper()
	certDir := t.TempDir()
	if err := pki.DevCerts(certDir, agentID, time.Hour); err != nil {
		t.Fatal(err)
	}
	// The redirect URL registered at the provider names the API's port, so
	// pick it first.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	apiAddr := ln.Addr().String()
	ln.Close()
	st := &stack{url: "https://" + apiAddr, logs: &syncbuf.Buffer{}, token: randomHex(t)}

	secret := randomHex(t)
	var idpUsers []oidctest.User
	for who, p := range people {
		u := p.User
		u.Password = "pw-" + who
		idpUsers = append(idpUsers, u)
	}
	st.idp = oidctest.Start(t, oidctest.Options{
		Users:   idpUsers,
		Clients: []oidctest.Client{{ID: clientID, Secret: secret, RedirectURIs: []string{st.url + auth.CallbackPath}}},
	})
	// One provider per tenant: the customer's and the support staff's
	// (here the same provider and client).
	roles := map[string]auth.Role{"ferry-viewers": auth.Viewer, "ferry-editors": auth.Editor, "ferry-admins": auth.Admin}
	var idps []auth.IdPConfig
	for _, tn := range []string{tenant, controlplane.DefaultSupportTenant} {
		idps = append(idps, auth.IdPConfig{
			Tenant: tn, Issuer: st.idp.Issuer, ClientID: clientID, ClientSecret: secrets.New(secret),
			RedirectURL: st.url + auth.CallbackPath, Roles: roles,
		})
	}
	cfg := controlplane.Config{
		DataDir:           t.TempDir(),
		APIAddr:           apiAddr,
		AgentAddr:         "127.0.0.1:0",
		TLS:               pki.DevFiles(certDir, "controlplane"),
		APIToken:          st.token,
		Planner:           controlplane.PlannerFunc(pqlPlanner),
		Logger:            slog.New(slog.NewJSONHandler(st.logs, nil)),
		HeartbeatInterval: 500 * time.Millisecond,
		ShutdownTimeout:   3 * time.Second,
		Auth:              &auth.Config{IdPs: idps, HTTPClient: st.idp.HTTPClient()},
	}
	if metadbtest.FromEnv() == metadb.Postgres {
		cfg.MetadataDB = metadbtest.PostgresSchema(t)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := controlplane.New(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		err := srv.Serve(ctx)
		if cerr := srv.Close(); err == nil {
			err = cerr
		}
		done <- err
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("control plane: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("the control plane did not stop within 10 s")
		}
		if t.Failed() {
			t.Logf("control plane log (last lines):\n%s", lastLines(st.logs.String(), 60))
		}
	})
	_, agentAddr := srv.Addrs()

	pool, err := pki.LoadCAPool(cfg.TLS.CA)
	if err != nil {
		t.Fatal(err)
	}
	st.http = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool}}}

	agentTLS, err := pki.DevFiles(certDir, "agent").ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	a, err := fakeagent.Start(ctx, fakeagent.Config{Addr: agentAddr.String(), TLS: agentTLS, ID: agentID, Version: "1.0.0-test", Tables: loadtest.Tables(), JobTime: jobTime})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := a.Close(); err != nil {
			t.Errorf("fake agent: %v", err)
		}
	})

	// Chromium trusts exactly these two certificates, by their public keys.
	cp, err := spkiOfFile(cfg.TLS.Cert)
	if err != nil {
		t.Fatal(err)
	}
	idpTLS := st.idp.Transport().(*http.Transport).TLSClientConfig.Clone()
	u, _ := url.Parse(st.idp.Issuer)
	conn, err := tls.Dial("tcp", u.Host, idpTLS)
	if err != nil {
		t.Fatal(err)
	}
	st.pins = []string{cp, spki(conn.ConnectionState().PeerCertificates[0])}
	conn.Close()
	return st
}

// apiGet calls the API with the operator's token.
func (st *stack) apiGet(t *testing.T, path string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, st.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+st.token)
	resp, err := st.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// browser is one headless Chromium; tab opens an isolated browser context
// (its own cookies), as a separate person's browser.
type browser struct {
	t      *testing.T
	ctx    context.Context
	shots  string
	mu     sync.Mutex
	errors []string // uncaught exceptions, console errors, CSP violations
}

func chromiumPath(t *testing.T) string {
	t.Helper()
	p := os.Getenv("FERRY_CHROMIUM")
	if p == "" {
		p = defaultChromium
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("Chromium is not installed at %s (%v): run `make services`, which installs Debian's chromium package (or set FERRY_CHROMIUM to a Chromium binary)", p, err)
	}
	return p
}

func startBrowser(t *testing.T, st *stack, shots string) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		// Trust the control plane's and the provider's certificates only.
		chromedp.Flag("ignore-certificate-errors-spki-list", strings.Join(st.pins, ",")),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelBrowser(); cancelAlloc() })
	// Start the browser now, so that tabs are new browser contexts of it.
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	return &browser{t: t, ctx: bctx, shots: shots}
}

// tab is one person's browser: an isolated context with its own cookies.
type tab struct {
	b    *browser
	ctx  context.Context
	name string
}

func (b *browser) tab(name string) *tab {
	b.t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	b.t.Cleanup(cancel)
	if err := chromedp.Listen(ctx, func(ev any) {
		var msg string
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			msg = "exception: " + ev.ExceptionDetails.Text
			if ev.ExceptionDetails.Exception != nil {
				msg += " " + ev.ExceptionDetails.Exception.Description
			}
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError {
				var parts []string
				for _, a := range ev.Args {
					parts = append(parts, string(a.Value)+a.Description)
				}
				msg = "console.error: " + strings.Join(parts, " ")
			}
		case *log.EventEntryAdded:
			// Refused API calls (401 before sign-in, the viewer's 403) are
			// network entries, expected; anything else at error level (a
			// CSP violation, a script error) is not.
			if ev.Entry.Level == log.EntryLevelError && ev.Entry.Source != log.EntrySourceNetwork {
				msg = fmt.Sprintf("%s: %s (%s)", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL)
			}
		}
		if msg != "" {
			b.mu.Lock()
			b.errors = append(b.errors, name+": "+msg)
			b.mu.Unlock()
		}
	}); err != nil {
		b.t.Fatal(err)
	}
	return &tab{b: b, ctx: ctx, name: name}
}

// do runs actions within timeout; on failure it keeps a screenshot and the
// page's text and fails the test.
func (tb *tab) do(what string, timeout time.Duration, actions ...chromedp.Action[chromedp.Void]) {
	tb.b.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, timeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.fail(what, err)
	}
}

func (tb *tab) fail(what string, err error) {
	tb.b.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 5*time.Second)
	defer cancel()
	name := "FAILED-" + tb.name + "-" + strings.ReplaceAll(what, " ", "-") + ".png"
	if png, serr := chromedp.Run(ctx, chromedp.FullScreenshot(100)); serr == nil {
		_ = os.WriteFile(filepath.Join(tb.b.shots, name), png, 0o644)
	}
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ''`))
	tb.b.t.Fatalf("%s (%s): %v\nat %s\npage text:\n%s\nbrowser errors: %v\nscreenshot: %s", what, tb.name, err, loc, clip(text, 2000), tb.b.errs(), filepath.Join(tb.b.shots, name))
}

// eval evaluates a JavaScript expression (awaiting a promise) into T.
func eval[T any](tb *tab, what, expr string) T {
	tb.b.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		tb.fail(what, err)
	}
	return v
}

// shot keeps a full-page PNG screenshot, after checking that the page
// shows no value that was never filled in.
func (tb *tab) shot(name string) {
	tb.b.t.Helper()
	if bad := eval[string](tb, "unfilled values", `(document.body.innerText.match(/\b(null|undefined|NaN)\b|\[object Object\]/) || [''])[0]`); bad != "" {
		tb.b.t.Errorf("%s: the page shows %q", name, bad)
	}
	ctx, cancel := context.WithTimeout(tb.ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		tb.fail("screenshot "+name, err)
	}
	p := filepath.Join(tb.b.shots, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		tb.b.t.Fatal(err)
	}
	tb.b.t.Logf("screenshot %s", p)
}

func (b *browser) errs() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errors...)
}

// signIn opens the console, names the person's tenant, follows the
// sign-in link to the provider, fills the provider's login form and comes
// back signed in with the person's role.
func (tb *tab) signIn(st *stack, who string, shots bool) {
	tb.b.t.Helper()
	p := people[who]
	tb.do("open the console", 20*time.Second,
		chromedp.Navigate(st.url+"/console/"),
		chromedp.WaitVisible(chromedp.ID("signin")),
		chromedp.SendKeys(chromedp.ID("tenant"), p.tenant))
	if shots {
		tb.shot("01-signin")
	}
	tb.do("go to the provider's login form", 20*time.Second,
		chromedp.Click(chromedp.ID("signin")),
		chromedp.WaitVisible(chromedp.ID("username")))
	if !strings.HasPrefix(eval[string](tb, "location", `location.href`), st.idp.Issuer) {
		tb.fail("the login form is not the provider's", errors.New("wrong origin"))
	}
	if shots {
		tb.shot("02-provider-login")
	}
	tb.do("sign in at the provider", 20*time.Second,
		chromedp.SendKeys(chromedp.ID("username"), p.Username),
		chromedp.SendKeys(chromedp.ID("password"), "pw-"+who),
		chromedp.Click(chromedp.CSS(`button[type=submit]`)),
		chromedp.WaitVisible(chromedp.ID("who-role")))
	if got := eval[string](tb, "role", `document.getElementById('who-role').textContent`); got != p.role {
		tb.fail("signed in with the wrong role", fmt.Errorf("role %q, want %q", got, p.role))
	}
	if got := eval[string](tb, "user", `document.getElementById('who-user').textContent`); got != p.Email {
		tb.fail("signed in as someone else", fmt.Errorf("user %q, want %q", got, p.Email))
	}
	if got := eval[string](tb, "tenant", `document.getElementById('who-role').title`); got != "tenant "+p.tenant {
		tb.fail("signed in to the wrong tenant", fmt.Errorf("%q, want tenant %s", got, p.tenant))
	}
}

// TestConsoleBrowserIntegration drives the console in headless Chromium
// against a control plane with sign-in through a real OpenID Connect
// provider and an agent speaking the agent RPC: an editor signs in through
// the provider's login form, submits a query, watches the job run to
// success on the jobs page and reads its metrics and purge attestation; the
// schema graph and the agents render; a viewer is offered no submission
// and a forced one is refused (403); a support engineer asks for access to
// the tenant and its admin approves it; the admin filters the audit log,
// which holds the submission and the refusal, makes an API token, adds a
// connection (refused while a credential is among its settings), saves a
// query and runs it.
// Screenshots of each step are kept in $FERRY_ARTIFACTS/console (default:
// ferry-artifacts/console in the system's temporary directory), and no
// page raises a script error or a CSP violation.
func TestConsoleBrowserIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("drives Chromium")
	}
	start := time.Now()
	shots := artifactDir(t)
	st := startStack(t)
	b := startBrowser(t, st, shots)
	t.Logf("stack and browser up in %v", time.Since(start).Round(time.Millisecond))

	// The editor signs in through the provider and submits a query.
	ed := b.tab("editor")
	ed.signIn(st, "editor", true)
	ed.do("jobs page", 10*time.Second, chromedp.WaitVisible(chromedp.CSS(`#jobs tbody tr`)), chromedp.WaitVisible(chromedp.ID("new-job")))
	ed.shot("03-jobs-empty")
	ed.do("open the submit page", 10*time.Second,
		chromedp.Click(chromedp.ID("new-job")),
		chromedp.WaitVisible(chromedp.ID("query")),
		chromedp.WaitVisible(chromedp.CSS(`ul.schema`)))
	ed.do("fill in the query", 10*time.Second,
		chromedp.SendKeys(chromedp.ID("query"), loadtest.Query),
		chromedp.SendKeys(chromedp.ID("output_table"), "churn_predictions"))
	ed.shot("04-submit")
	ed.do("submit", 10*time.Second,
		chromedp.Click(chromedp.ID("submit")),
		chromedp.WaitVisible(chromedp.ID("submitted")),
		chromedp.WaitVisible(chromedp.CSS(`#jobs tr.highlight`)))
	job := eval[string](ed, "the new job's ID", `document.querySelector('#jobs tr.highlight').dataset.job`)
	if !strings.HasPrefix(job, "j-") {
		ed.fail("the submitted job is not listed", fmt.Errorf("job %q", job))
	}
	row := fmt.Sprintf(`#jobs tr[data-job=%q]`, job)
	// The page polls: the job shows running, then succeeded, without a
	// reload (which would drop this mark).
	eval[bool](ed, "mark the page", `window.ferryTestMark = true`)
	ed.do("the job runs", 30*time.Second, chromedp.WaitVisible(chromedp.CSS(row+`[data-state=reading], `+row+`[data-state=training], `+row+`[data-state=writing]`)))
	ed.shot("05-jobs-running")
	ed.do("the job succeeds", 30*time.Second, chromedp.WaitVisible(chromedp.CSS(row+`[data-state=succeeded]`)))
	if !eval[bool](ed, "the page's mark", `window.ferryTestMark === true`) {
		t.Error("the jobs page reloaded: it should poll")
	}
	ed.shot("06-jobs-succeeded")

	// The job's detail: history, metrics with baselines, importances,
	// purge attestation, write report.
	ed.do("open the job", 10*time.Second,
		chromedp.Click(chromedp.CSS(row+` a`)),
		chromedp.WaitVisible(chromedp.CSS(`#job-state[data-state=succeeded]`)),
		chromedp.WaitVisible(chromedp.CSS(`#metrics figure[data-metric=auroc] svg`)),
		chromedp.WaitVisible(chromedp.CSS(`#importance svg`)),
		chromedp.WaitVisible(chromedp.CSS(`#roc svg polyline.curve`)),
		chromedp.WaitVisible(chromedp.CSS(`#purge-verdict[data-clean=true]`)))
	detail := eval[string](ed, "job text", `document.getElementById('job').innerText`)
	for _, want := range []string{"AUROC", "0.780", "baseline · label rate", "Average precision", "orders.count_30d",
		"every byte the engine received was purged", "churn_predictions", "5,000", "succeeded", "customers", "orders", "ROC curve · test AUROC 0.780"} {
		if !strings.Contains(detail, want) {
			t.Errorf("the job page lacks %q:\n%s", want, clip(detail, 3000))
		}
	}
	if got := eval[string](ed, "files written", `document.getElementById('purge-files').textContent`); got != "0" {
		t.Errorf("files written = %q, want 0", got)
	}
	if n := eval[int](ed, "history", `document.querySelectorAll('#timeline svg rect').length`); n < 6 {
		t.Errorf("the timeline has %d segments, want one per state (6)", n)
	}
	ed.shot("07-job-detail")
	// The ROC curve the agent reported (41 points): a polyline through
	// them over the dashed diagonal, the AUROC in its title.
	if n := eval[int](ed, "ROC points", `document.querySelector('#roc svg polyline.curve').getAttribute('points').trim().split(/\s+/).length`); n != 41 {
		t.Errorf("the ROC curve's polyline has %d points, want the 41 reported", n)
	}
	if !eval[bool](ed, "ROC diagonal and title", `!!document.querySelector('#roc svg line.diagonal') && document.querySelector('#roc svg > title').textContent.includes('AUROC 0.780')`) {
		t.Error("the ROC curve lacks its diagonal or the AUROC in its title")
	}
	rocCtx, cancel := context.WithTimeout(ed.ctx, 10*time.Second)
	png, err := chromedp.Run(rocCtx, chromedp.Screenshot(chromedp.ID("roc")))
	cancel()
	if err != nil {
		ed.fail("screenshot the ROC curve", err)
	}
	if err := os.WriteFile(filepath.Join(shots, "07-job-roc.png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
	// A regression's residual histogram (the fake agent reports a binary
	// classifier): the console's chart drawn in the page from 30 bins, one
	// column per bin, as tall as its count, with the mark at zero.
	if !eval[bool](ed, "residual histogram", `import('./js/charts.js').then(({histogram}) => {
		const bins = Array.from({length: 30}, (_, i) => ({lower: -15 + i, upper: -14 + i, count: Math.round(400 * Math.exp(-(((i - 14.5) / 5) ** 2)))}));
		const svg = histogram(bins, {title: 'Residuals'});
		svg.id = 'residuals-drawn';
		document.getElementById('job').append(svg);
		const cols = [...svg.querySelectorAll('rect.bin')];
		const hs = cols.map((r) => Number(r.getAttribute('height')));
		return cols.length === 30 && Math.max(...hs) === hs[14] && hs[0] < hs[14] && !!svg.querySelector('line.zero');
	})`) {
		t.Error("the residual histogram does not draw one column per bin, as tall as its count, with a mark at zero")
	}
	hCtx, cancel := context.WithTimeout(ed.ctx, 10*time.Second)
	png, err = chromedp.Run(hCtx, chromedp.Screenshot(chromedp.ID("residuals-drawn")))
	cancel()
	if err != nil {
		ed.fail("screenshot the residual histogram", err)
	}
	if err := os.WriteFile(filepath.Join(shots, "07-residuals.png"), png, 0o644); err != nil {
		t.Fatal(err)
	}

	// The tables read, each column with its statistics: the orders table's
	// amount has its share of nulls, its range and a distinct estimate; its
	// key order_id and its time ordered_at have no range.
	ed.do("open the orders table's columns", 10*time.Second,
		chromedp.Click(chromedp.CSS(`#tables tr[data-table=orders] details.cols > summary`)),
		chromedp.WaitVisible(chromedp.CSS(`#tables tr[data-column=amount] td.max`)))
	cells := func(col string) []string {
		return eval[[]string](ed, col+"'s statistics", `[...document.querySelectorAll('#tables tr[data-table=orders] tr[data-column=`+col+`] td')].map((td) => td.textContent)`)
	}
	for col, want := range map[string][]string{
		"amount":     {"amount", "float64, nullable", "5.0%", "1.25", "4,999.5"},
		"order_id":   {"order_id", "int64", "0.0%", "—", "—"},
		"ordered_at": {"ordered_at", "timestamp[us]", "0.0%", "—", "—"},
	} {
		got := cells(col)
		if len(got) != 6 || !slices.Equal(got[:5], want) || !strings.HasPrefix(got[5], "≈ ") || len(got[5]) < len("≈ 10,000") {
			t.Errorf("orders.%s's row reads %q, want %q and a distinct estimate", col, got, want)
		}
	}
	ed.shot("07-job-column-stats")

	// The schema graph: two tables, their keys, the foreign-key arrow.
	ed.do("open the graph", 10*time.Second,
		chromedp.Click(chromedp.CSS(`#nav a[data-nav=graph]`)),
		chromedp.WaitVisible(chromedp.CSS(`#graph-svg path.fk-edge[data-from=orders][data-to=customers]`)))
	if n := eval[int](ed, "tables", `document.querySelectorAll('#graph-svg g.table-node').length`); n != 2 {
		t.Errorf("the graph draws %d tables, want 2", n)
	}
	ed.shot("08-graph")

	ed.do("open the agents", 10*time.Second,
		chromedp.Click(chromedp.CSS(`#nav a[data-nav=agents]`)),
		chromedp.WaitVisible(chromedp.CSS(`#agents tr[data-agent=agent-1]`)))
	if got := eval[string](ed, "agent row", `document.querySelector('#agents tr[data-agent=agent-1]').innerText`); !strings.Contains(got, "connected") || !strings.Contains(got, "1.0.0-test") {
		t.Errorf("agent row = %q, want connected and version 1.0.0-test", got)
	}
	if eval[bool](ed, "enroll form", `!!document.getElementById('enroll')`) {
		t.Error("an editor is offered agent enrollment (admin only)")
	}
	ed.shot("09-agents")
	ed.do("sign out", 10*time.Second, chromedp.Click(chromedp.ID("signout")), chromedp.WaitVisible(chromedp.ID("signin")))
	if code := eval[int](ed, "after sign-out", `fetch('/v1/jobs').then(r => r.status)`); code != 401 {
		t.Errorf("after sign-out GET /v1/jobs = %d, want 401", code)
	}

	// A viewer sees the job but is offered no submission, and a forced
	// one is refused by the API.
	vw := b.tab("viewer")
	vw.signIn(st, "viewer", false)
	vw.do("viewer's jobs page", 10*time.Second, chromedp.WaitVisible(chromedp.CSS(row+`[data-state=succeeded]`)))
	if eval[bool](vw, "submit offered", `!!document.querySelector('#new-job, #nav a[data-nav=submit]')`) {
		t.Error("a viewer is offered submission")
	}
	if eval[bool](vw, "audit offered", `!!document.querySelector('#nav a[data-nav=audit]')`) {
		t.Error("a viewer is offered the audit log")
	}
	vw.shot("10-viewer-jobs")
	vw.do("viewer opens the submit page by address", 10*time.Second,
		chromedp.Navigate(st.url+"/console/#/submit"),
		chromedp.WaitVisible(chromedp.ID("role-refused")))
	forced := eval[map[string]any](vw, "forced submission", `(async () => {
		const api = await import('/console/js/api.js');
		try {
			await api.post('/v1/jobs', {query: `+"`"+loadtest.Query+"`"+`, output_table: 'viewer_was_here'});
			return {status: 201};
		} catch (e) {
			return {status: e.status, message: e.message};
		}
	})()`)
	if forced["status"] != float64(403) || !strings.Contains(fmt.Sprint(forced["message"]), "needs the editor role") {
		t.Errorf("a viewer's forced submission: %v, want 403 naming the editor role", forced)
	}
	vw.shot("11-viewer-submit-refused")
	if code, body := st.apiGet(t, "/v1/jobs"); code != http.StatusOK || strings.Contains(body, "viewer_was_here") || strings.Count(body, `"id"`) != 1 {
		t.Errorf("jobs after the viewer's attempt: %d %s, want the editor's one job", code, body)
	}

	// A support engineer (the support tenant's) asks for access to the
	// customer's tenant.
	sp := b.tab("support")
	sp.signIn(st, "support", false)
	sp.do("ask for support access", 10*time.Second,
		chromedp.Click(chromedp.CSS(`#nav a[data-nav=support]`)),
		chromedp.WaitVisible(chromedp.ID("support-form")),
		chromedp.SendKeys(chromedp.ID("support-tenant"), tenant),
		chromedp.SendKeys(chromedp.ID("support-reason"), "ticket 4711: a failed job"),
		chromedp.Click(chromedp.CSS(`#support-form button[type=submit]`)),
		chromedp.WaitVisible(chromedp.ID("support-requested")))
	if eval[bool](sp, "decisions offered", `!!document.getElementById('support-requests')`) {
		t.Error("a support engineer (a viewer) is offered decisions on support requests")
	}
	request := eval[string](sp, "request", `document.getElementById('support-requested').dataset.request`)
	sp.shot("12-support-request")

	// An admin of the tenant approves it, then filters the audit log: the
	// editor's submission and the viewer's refusal.
	ad := b.tab("admin")
	ad.signIn(st, "admin", false)
	pending := fmt.Sprintf(`#support tr[data-request=%q]`, request)
	ad.do("approve the support request", 10*time.Second,
		chromedp.Click(chromedp.CSS(`#nav a[data-nav=support]`)),
		chromedp.WaitVisible(chromedp.CSS(pending+`[data-state=pending]`)),
		chromedp.Click(chromedp.CSS(pending+` button[data-action=approve]`)),
		chromedp.WaitVisible(chromedp.CSS(pending+`[data-state=approved] button[data-action=revoke]`)))
	ad.shot("13-support-approved")
	ad.do("open the audit log", 10*time.Second,
		chromedp.Click(chromedp.CSS(`#nav a[data-nav=audit]`)),
		chromedp.WaitVisible(chromedp.CSS(`#audit tbody tr`)))
	ad.do("filter the audit log", 10*time.Second,
		chromedp.SendKeys(chromedp.CSS(`#audit-filters input[name=action]`), "job.submit"),
		chromedp.Click(chromedp.ID("audit-apply")),
		// The unfiltered table has job.submit rows too: wait until the
		// filtered answer has replaced it.
		chromedp.Poll[chromedp.Void](`document.querySelectorAll('#audit tbody tr:not([data-action="job.submit"])').length === 0`, chromedp.WithPollingTimeout(5*time.Second)),
		chromedp.WaitVisible(chromedp.CSS(`#audit tr[data-action="job.submit"][data-outcome=denied]`)),
		chromedp.WaitVisible(chromedp.CSS(`#audit tr[data-action="job.submit"][data-outcome=success]`)))
	if n := eval[int](ad, "other actions", `document.querySelectorAll('#audit tbody tr:not([data-action="job.submit"])').length`); n != 0 {
		t.Errorf("the filtered audit log shows %d entries of other actions", n)
	}
	ad.shot("14-audit-filtered")

	// An API token made in the console (a POST with the CSRF header), its
	// secret shown once.
	ad.do("create an API token", 10*time.Second,
		chromedp.Click(chromedp.CSS(`#nav a[data-nav=tokens]`)),
		chromedp.WaitVisible(chromedp.ID("token-form")),
		chromedp.SendKeys(chromedp.ID("token-name"), "ci"),
		chromedp.Click(chromedp.CSS(`#token-form button[type=submit]`)),
		chromedp.WaitVisible(chromedp.ID("token-secret")),
		chromedp.WaitVisible(chromedp.CSS(`#tokens tr[data-token]`)))
	if secret := eval[string](ad, "token", `document.getElementById('token-secret').textContent`); !strings.HasPrefix(secret, auth.TokenPrefix) {
		t.Errorf("the new token's secret is %q", secret)
	}
	if ttl := eval[string](ad, "form reset", `document.getElementById('token-ttl').value`); ttl != "720h" {
		t.Errorf("after creating a token the form's expiry is %q, want its default 720h", ttl)
	}
	ad.shot("15-tokens")

	// Connections: a credential among the settings is refused, the
	// connection without it is saved.
	ad.do("open the connections", 10*time.Second,
		chromedp.Click(chromedp.CSS(`#nav a[data-nav=connections]`)),
		chromedp.WaitVisible(chromedp.ID("connection-form")),
		chromedp.SendKeys(chromedp.ID("conn-name"), "warehouse"),
		chromedp.SetValue(chromedp.ID("conn-kind"), "postgres"),
		chromedp.SendKeys(chromedp.ID("conn-settings"), "host = db.internal\npassword = hunter2"),
		chromedp.SendKeys(chromedp.ID("conn-vault"), "database/creds/ferry-agent"),
		chromedp.Click(chromedp.ID("conn-save")),
		chromedp.WaitVisible(chromedp.CSS(`#connection-editor .alert[data-status="400"]`)))
	if msg := eval[string](ad, "refusal", `document.querySelector('#connection-editor .alert').textContent`); !strings.Contains(msg, "credential") || strings.Contains(msg, "hunter2") {
		t.Errorf("a credential in a connection's settings: %q, want a refusal naming it without echoing it", msg)
	}
	ad.do("save the connection", 10*time.Second,
		chromedp.SetValue(chromedp.ID("conn-settings"), "host = db.internal\ndatabase = analytics"),
		chromedp.Click(chromedp.ID("conn-save")),
		chromedp.WaitVisible(chromedp.CSS(`#connections tr[data-connection=warehouse]`)))
	ad.shot("16-connections")

	// Saved queries: one saved (checked by the planner) and run.
	ad.do("save a query", 10*time.Second,
		chromedp.Click(chromedp.CSS(`#nav a[data-nav=queries]`)),
		chromedp.WaitVisible(chromedp.ID("query-form")),
		chromedp.SendKeys(chromedp.ID("q-name"), "churn next 30 days"),
		chromedp.SendKeys(chromedp.ID("q-pql"), loadtest.Query),
		chromedp.SendKeys(chromedp.ID("q-output"), "churn_saved"),
		chromedp.SetValue(chromedp.ID("q-connection"), "warehouse"),
		chromedp.Click(chromedp.CSS(`#query-form button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`#queries tr[data-query="churn next 30 days"]`)))
	ad.shot("17-saved-queries")
	ad.do("run the saved query", 10*time.Second,
		chromedp.Click(chromedp.CSS(`#queries tr[data-query="churn next 30 days"] button[data-action=run]`)),
		chromedp.WaitVisible(chromedp.CSS(`#jobs tr.highlight`)))
	if out := eval[string](ad, "run", `document.querySelector('#jobs tr.highlight').innerText`); !strings.Contains(out, "churn_saved") {
		t.Errorf("the saved query's job: %q", out)
	}

	if errs := b.errs(); len(errs) > 0 {
		t.Errorf("the browser reported errors:\n%s", strings.Join(errs, "\n"))
	}

	// The browser enforces the console's policy: an HTML string into the
	// DOM (the way script injection starts) and eval are refused.
	// (Runtime.evaluate lets DevTools eval past the CSP unless told not to.)
	ctx, cancel := context.WithTimeout(ad.ctx, 10*time.Second)
	defer cancel()
	refused, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]string](`(() => {
		const out = {};
		try { document.body.insertAdjacentHTML('beforeend', '<img src=x>'); out.html = 'allowed'; } catch (e) { out.html = e.name; }
		try { (0, eval)('1'); out.eval = 'allowed'; } catch (e) { out.eval = e.name; }
		return out;
	})()`, func(p *runtime.EvaluateParams) { p.AllowUnsafeEvalBlockedByCSP = new(false) }))
	if err != nil {
		ad.fail("the CSP in force", err)
	}
	if refused["html"] != "TypeError" || refused["eval"] != "EvalError" {
		t.Errorf("the page allowed what its policy forbids: %v (want HTML refused with a TypeError, eval with an EvalError)", refused)
	}
	// Those refusals reach the listener that found no error before: it
	// works.
	time.Sleep(200 * time.Millisecond)
	if errs := b.errs(); !slices.ContainsFunc(errs, func(e string) bool { return strings.Contains(e, "TrustedHTML") }) {
		t.Errorf("the browser's refusal of an HTML string was not reported to the test (the error listener is broken): %v", errs)
	}
	t.Logf("browser test took %v; screenshots in %s", time.Since(start).Round(time.Millisecond), shots)
}

// artifactDir is where the screenshots go: $FERRY_ARTIFACTS/console, else
// ferry-artifacts/console in the temporary directory; emptied first, kept
// after the test for CI to collect.
func artifactDir(t *testing.T) string {
	t.Helper()
	root := os.Getenv("FERRY_ARTIFACTS")
	if root == "" {
		root = filepath.Join(os.TempDir(), "ferry-artifacts")
	}
	dir := filepath.Join(root, "console")
	if metadbtest.FromEnv() == metadb.Postgres {
		dir += "-postgres"
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots go to %s", dir)
	return dir
}

func spki(c *x509.Certificate) string {
	sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}

func spkiOfFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return "", fmt.Errorf("%s: no PEM block", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return "", err
	}
	return spki(c), nil
}

func randomHex(t *testing.T) string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
