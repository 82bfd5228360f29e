package controlplane_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ferry-ai/ferry/controlplane/api"
	"github.com/ferry-ai/ferry/controlplane/auth"
)

// TestSignInLink: the operator's token mints a one-time console sign-in
// link for a user of its tenant when the configuration allows it. The
// link's page asks for a click (fetching it spends nothing); the click
// signs the browser in with the user's role, and the session sees the
// operator's jobs; the link then works no more, an expired one never, and
// neither an admin's token nor a configuration without links mints one.
// The token is in no log line.
func TestSignInLink(t *testing.T) {
	ctx := context.Background()
	t.Run("off by default", func(t *testing.T) {
		h := startHarness(t, harnessOptions{})
		if code, body := h.do("POST", api.PathSignInLinks, "Bearer "+testToken, `{"user":"demo-admin","role":"admin"}`); code != http.StatusNotFound || !strings.Contains(body, "auth.signin_links") {
			t.Errorf("mint with links off: %d %s, want 404", code, body)
		}
		if code, _ := h.do("GET", auth.SignInLinkPath+"?token=fsl_x", "", ""); code != http.StatusNotFound {
			t.Errorf("link page with links off: %d, want 404", code)
		}
	})

	h := startHarness(t, harnessOptions{signInLinks: true})
	a := h.connectAgent(true)
	j, err := h.client.Submit(ctx, testQuery, "p")
	if err != nil {
		t.Fatal(err)
	}
	a.recv()
	_, adminBearer := h.tenantUser("default", "ada", auth.Admin)
	for _, tc := range []struct {
		bearer, body string
		code         int
	}{
		{adminBearer, `{"user":"demo-admin","role":"admin"}`, http.StatusForbidden},
		{"Bearer " + testToken, `{"user":"demo admin","role":"admin"}`, http.StatusBadRequest},
		{"Bearer " + testToken, `{"user":"demo-admin","role":"root"}`, http.StatusBadRequest},
		{"Bearer " + testToken, `{"user":"demo-admin","role":"admin","ttl_seconds":7200}`, http.StatusBadRequest},
	} {
		if code, body := h.do("POST", api.PathSignInLinks, tc.bearer, tc.body); code != tc.code {
			t.Errorf("mint %s: %d %s, want %d", tc.body, code, body, tc.code)
		}
	}
	mint := func(body string) api.SignInLink {
		t.Helper()
		code, out := h.do("POST", api.PathSignInLinks, "Bearer "+testToken, body)
		if code != http.StatusCreated {
			t.Fatalf("mint: %d %s", code, out)
		}
		var l api.SignInLink
		if err := json.Unmarshal([]byte(out), &l); err != nil {
			t.Fatal(err)
		}
		return l
	}
	link := mint(`{"user":"demo-admin","role":"admin"}`)
	u, err := url.Parse(link.URL)
	if err != nil || u.Path != auth.SignInLinkPath || !strings.HasPrefix(link.URL, h.apiURL) || link.Role != "admin" || time.Until(link.ExpiresAt) > 16*time.Minute {
		t.Fatalf("link %+v: want %s%s?token=…, role admin, 15 minutes", link, h.apiURL, auth.SignInLinkPath)
	}
	token := u.Query().Get("token")

	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Transport: h.http.Transport, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(path string) (int, string, http.Header) {
		t.Helper()
		resp, err := browser.Get(h.apiURL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(b), resp.Header
	}
	post := func() (int, http.Header) {
		t.Helper()
		resp, err := browser.PostForm(h.apiURL+auth.SignInLinkPath, url.Values{"token": {token}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header
	}

	// The page: a button, nothing spent, nothing cached or referred.
	for range 2 {
		code, page, hdr := get(u.RequestURI())
		if code != http.StatusOK || !strings.Contains(page, `<form method="post" action="/auth/link">`) || hdr.Get("Cache-Control") != "no-store" || hdr.Get("Referrer-Policy") != "no-referrer" {
			t.Fatalf("link page: %d %v\n%s", code, hdr, page)
		}
	}
	if code, _, _ := get(api.PathJobs); code != http.StatusUnauthorized {
		t.Errorf("jobs before the click: %d, want 401", code)
	}
	// The click signs in as the demo admin, who sees the operator's job.
	code, hdr := post()
	if code != http.StatusSeeOther || hdr.Get("Location") != "/console/" {
		t.Fatalf("sign in with the link: %d %v", code, hdr)
	}
	code, me, _ := get(auth.MePath)
	if code != http.StatusOK || !strings.Contains(me, `"role":"admin"`) || !strings.Contains(me, `"tenant":"default"`) {
		t.Errorf("/auth/me after the link: %d %s", code, me)
	}
	if code, jobs, _ := get(api.PathJobs); code != http.StatusOK || !strings.Contains(jobs, j.ID) {
		t.Errorf("the operator's job in the signed-in session: %d %s", code, jobs)
	}
	// Spent.
	jar2, _ := cookiejar.New(nil)
	browser.Jar = jar2
	if code, _ := post(); code != http.StatusGone {
		t.Errorf("second use of the link: %d, want 410", code)
	}
	// Expired.
	short := mint(`{"user":"demo-viewer","role":"viewer","ttl_seconds":1}`)
	su, _ := url.Parse(short.URL)
	token = su.Query().Get("token")
	time.Sleep(1100 * time.Millisecond)
	if code, _ := post(); code != http.StatusGone {
		t.Errorf("expired link: %d, want 410", code)
	}
	if code, _, _ := get(api.PathJobs); code != http.StatusUnauthorized {
		t.Errorf("jobs after refused links: %d, want 401", code)
	}
	// Audited, never logged.
	code, audit := h.do("GET", api.PathAudit+"?action=auth.", "Bearer "+testToken, "")
	if code != http.StatusOK || !strings.Contains(audit, "one-time sign-in link; role admin") || !strings.Contains(audit, "auth.signin_link_create") || !strings.Contains(audit, "used, expired or unknown") {
		t.Errorf("audit of sign-in links: %d %s", code, audit)
	}
	for _, l := range []api.SignInLink{link, short} {
		lu, _ := url.Parse(l.URL)
		if tok := lu.Query().Get("token"); strings.Contains(h.logs.String(), tok) {
			t.Errorf("a sign-in link token is in the logs")
		}
	}
}
