package auth_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-ai/ferry/controlplane/auth"
	"github.com/ferry-ai/ferry/controlplane/metadb"
	"github.com/ferry-ai/ferry/controlplane/metadb/metadbtest"
)

// TestCSRF: a cookie-authenticated request that changes state needs the
// session's CSRF token in X-Ferry-CSRF and no foreign origin; reads do
// not; bearer tokens are exempt.
func TestCSRF(t *testing.T) {
	metadbtest.Each(t, func(t *testing.T, db *metadb.DB) {
		h := newHarness(t, db, nil)
		b := h.signIn("erin")
		other := h.signIn("vic") // another session: its token is not erin's
		good := h.cookie(b, auth.CSRFCookie)
		p, _ := h.whoami(b, nil)
		_, tok, err := h.svc.CreateToken(context.Background(), tenant, p.UserID, auth.Editor, "ci", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name   string
			client *http.Client
			method string
			hdr    map[string]string
			want   int
		}{
			{"read without token", b, http.MethodGet, nil, http.StatusOK},
			{"read from another site", b, http.MethodGet, map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}, http.StatusOK},
			{"write without token", b, http.MethodPost, nil, http.StatusForbidden},
			{"write with a wrong token", b, http.MethodPost, map[string]string{auth.CSRFHeader: "nope"}, http.StatusForbidden},
			{"write with another session's token", b, http.MethodPost, map[string]string{auth.CSRFHeader: h.cookie(other, auth.CSRFCookie)}, http.StatusForbidden},
			{"write with the token", b, http.MethodPost, map[string]string{auth.CSRFHeader: good}, http.StatusOK},
			{"write with the token, same origin", b, http.MethodPost, map[string]string{auth.CSRFHeader: good, "Origin": h.srv.URL, "Sec-Fetch-Site": "same-origin"}, http.StatusOK},
			{"write with the token, trusted origin", b, http.MethodPost, map[string]string{auth.CSRFHeader: good, "Origin": "https://ui.acme.example"}, http.StatusOK},
			{"write with the token, foreign origin", b, http.MethodPost, map[string]string{auth.CSRFHeader: good, "Origin": "https://evil.example"}, http.StatusForbidden},
			{"write with the token, cross-site fetch", b, http.MethodPost, map[string]string{auth.CSRFHeader: good, "Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
			{"bearer write, no token, foreign origin", h.browser(), http.MethodPost, map[string]string{"Authorization": "Bearer " + tok.Reveal(), "Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}, http.StatusOK},
		} {
			t.Run(tc.name, func(t *testing.T) {
				path := "/api/whoami"
				if tc.method == http.MethodPost {
					path = "/api/jobs"
				}
				if status, body := h.do(tc.client, tc.method, path, tc.hdr); status != tc.want {
					t.Fatalf("%d %s, want %d", status, body, tc.want)
				}
			})
		}
	})
}

// TestNoSecretsInLogsOrDB runs every path that handles a secret — sign-in,
// a refused sign-in, tokens, break-glass right and wrong, logout — with
// debug logs into a buffer, then looks for each secret (client secret,
// authorization codes, states, the provider's tokens, session IDs, CSRF
// tokens, API tokens, passwords) in the logs, the events and the SQLite
// file (and its WAL).
func TestNoSecretsInLogsOrDB(t *testing.T) {
	db := metadbtest.Open(t, metadb.SQLite)
	h := newHarness(t, db, withBreakGlass)
	ctx := context.Background()
	secrets := map[string]string{"client secret": ferrySecret, "break-glass password": breakGlassPW, "wrong password": "hunter2-wrong-password"}

	b := h.browser()
	cb, err := h.idp.Authorize(ctx, b, h.srv.URL+auth.LoginPath, "erin")
	if err != nil {
		t.Fatal(err)
	}
	secrets["code"], secrets["state"] = cb.Query().Get("code"), cb.Query().Get("state")
	if status, body := h.callback(b, cb); status != http.StatusSeeOther {
		t.Fatalf("sign-in: %d %s", status, body)
	}
	secrets["session ID"], secrets["CSRF token"] = h.cookie(b, auth.SessionCookie), h.cookie(b, auth.CSRFCookie)

	// A refused sign-in (tampered state) logs its refusal.
	b2 := h.browser()
	cb2, err := h.idp.Authorize(ctx, b2, h.srv.URL+auth.LoginPath, "erin")
	if err != nil {
		t.Fatal(err)
	}
	secrets["refused code"] = cb2.Query().Get("code")
	q := cb2.Query()
	q.Set("state", q.Get("state")+"tampered")
	cb2.RawQuery = q.Encode()
	if status, _ := h.callback(b2, cb2); status != http.StatusBadRequest {
		t.Fatal(status)
	}

	p, _ := h.whoami(b, nil)
	_, tok, err := h.svc.CreateToken(ctx, tenant, p.UserID, auth.Editor, "ci", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	secrets["API token"] = tok.Reveal()
	if _, status := h.whoami(h.browser(), bearer(tok.Reveal())); status != http.StatusOK {
		t.Fatal(status)
	}
	if _, status := h.whoami(h.browser(), bearer(tok.Reveal()+"x")); status != http.StatusUnauthorized {
		t.Fatal(status)
	}
	bg := h.browser()
	h.breakGlass(bg, "root-ops", secrets["wrong password"], false)
	h.breakGlass(bg, secrets["wrong password"], breakGlassPW, true) // a password typed as the username
	if status := h.breakGlass(bg, "root-ops", breakGlassPW, false); status != http.StatusOK {
		t.Fatal(status)
	}
	secrets["break-glass session ID"] = h.cookie(bg, auth.SessionCookie)
	if status, _ := h.do(b, http.MethodPost, auth.LogoutPath, h.csrf(b)); status != http.StatusOK {
		t.Fatal(status)
	}
	for i, s := range h.rw.issuedTokens() {
		secrets[fmt.Sprintf("provider token %d", i)] = s
	}

	logs := h.logs.String()
	if !strings.Contains(logs, "auth event") || !strings.Contains(logs, "level=DEBUG") {
		t.Fatalf("the debug logs are not what the test expects:\n%s", logs)
	}
	events := fmt.Sprintf("%+v", h.events.all())
	var files []string
	for _, suffix := range []string{"", "-wal"} {
		data, err := os.ReadFile(db.Where + suffix)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		files = append(files, string(data))
	}
	dbText := strings.Join(files, "")
	if !strings.Contains(dbText, "erin@acme.example") {
		t.Fatal("the database files hold no user: the grep would prove nothing")
	}
	for name, s := range secrets {
		if s == "" {
			t.Fatalf("%s is empty", name)
		}
		if strings.Contains(logs, s) {
			t.Errorf("the %s is in the logs", name)
		}
		if strings.Contains(events, s) {
			t.Errorf("the %s is in the events", name)
		}
		if strings.Contains(dbText, s) {
			t.Errorf("the %s is in the database files %s", name, filepath.Base(db.Where))
		}
	}
	// The configuration prints without the client secret.
	cfg := auth.IdPConfig{ClientSecretFile: "x"}
	s, err := auth.ReadSecretFile(writeSecret(t, ferrySecret, 0o600))
	if err != nil {
		t.Fatal(err)
	}
	cfg.ClientSecret = s
	if out := fmt.Sprintf("%+v %v %#v", cfg, cfg, cfg); strings.Contains(out, ferrySecret) {
		t.Fatal("the config prints the client secret")
	}
}

func writeSecret(t *testing.T, value string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(value), mode); err != nil {
		t.Fatal(err)
	}
	return p
}
