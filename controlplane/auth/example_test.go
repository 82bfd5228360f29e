package auth_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ferry-ai/ferry/controlplane/auth"
	"github.com/ferry-ai/ferry/controlplane/metadb"
	"github.com/ferry-ai/ferry/internal/oidctest"
	"github.com/ferry-ai/ferry/secrets"
)

// Example guards an API with the auth service: a user of the group
// ferry-editors signs in through the tenant's OpenID provider (here a
// real one in process) and gets the editor role; an API token made for
// them with the viewer role cannot post a job.
func Example() {
	ctx := context.Background()
	api := httptest.NewUnstartedServer(nil)
	redirect := "https://" + api.Listener.Addr().String() + auth.CallbackPath
	idp, err := oidctest.New(oidctest.Options{
		Users:   []oidctest.User{{Username: "erin", Email: "erin@acme.example", Groups: []string{"ferry-editors"}}},
		Clients: []oidctest.Client{{ID: "ferry", Secret: "client-secret", RedirectURIs: []string{redirect}}},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer idp.Close()
	dir, err := os.MkdirTemp("", "ferry-auth-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	db, err := metadb.Open(ctx, filepath.Join(dir, "ferry.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	svc, err := auth.New(ctx, db, auth.Config{
		IdPs: []auth.IdPConfig{{
			Tenant: "acme", Issuer: idp.Issuer, ClientID: "ferry",
			ClientSecret: secrets.New("client-secret"), // in production: ClientSecretFile
			RedirectURL:  redirect,
			Roles:        map[string]auth.Role{"ferry-admins": auth.Admin, "ferry-editors": auth.Editor, "ferry-viewers": auth.Viewer},
		}},
		HTTPClient: idp.HTTPClient(),
		Logger:     slog.New(slog.DiscardHandler),
		OnEvent:    func(e auth.Event) { fmt.Println("event:", e.Action, e.Outcome) },
	})
	if err != nil {
		log.Fatal(err)
	}
	whoami := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := auth.FromContext(r.Context())
		_ = json.NewEncoder(w).Encode(p)
	})
	mux := http.NewServeMux()
	mux.Handle("/auth/", svc.Handler())
	mux.Handle("POST /api/jobs", svc.Authenticate(auth.Require(auth.Editor)(whoami)))
	api.Config.Handler = mux
	api.StartTLS()
	defer api.Close()

	browser := idp.NewBrowser()
	resp, err := idp.SignIn(ctx, browser, api.URL+auth.LoginPath, "erin")
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	resp, err = browser.Get(api.URL + auth.MePath)
	if err != nil {
		log.Fatal(err)
	}
	var p auth.Principal
	_ = json.NewDecoder(resp.Body).Decode(&p)
	resp.Body.Close()
	fmt.Println("signed in as", p.Role, "via", p.Via)

	_, tok, err := svc.CreateToken(auth.NewContext(ctx, p), "acme", p.UserID, auth.Viewer, "dashboards", 24*time.Hour)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("token:", strings.HasPrefix(tok.Reveal(), auth.TokenPrefix), tok)
	req, _ := http.NewRequest(http.MethodPost, api.URL+"/api/jobs", nil)
	req.Header.Set("Authorization", "Bearer "+tok.Reveal())
	resp, err = api.Client().Do(req)
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println("viewer token posting a job:", resp.StatusCode)
	// Output:
	// event: auth.signin success
	// signed in as editor via session
	// event: auth.token_create success
	// token: true [redacted]
	// viewer token posting a job: 403
}
