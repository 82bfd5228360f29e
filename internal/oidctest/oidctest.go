// Package oidctest runs a real OpenID Provider in process for tests. It is
// zitadel's OpenID Certified provider library (github.com/zitadel/oidc/v3,
// pkg/op) with its example in-memory storage and login UI
// (example/server/storage, example/server/exampleop), not a hand-written
// token issuer: discovery, JWKS, the authorization-code flow with PKCE,
// client authentication, ID token signing and userinfo are the library's.
//
// What this package adds is small: users and their groups set by the test,
// a `groups` claim put into ID tokens and userinfo (a wrapper around the
// example storage), and Provider.Authorize, which drives the
// authorization-code flow without a browser — net/http with a cookie jar
// fills the provider's login form and stops at the redirect to the client —
// so API tests can sign in as a given user.
package oidctest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/html"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// GroupsClaim is the claim that carries a user's groups in ID tokens and
// userinfo.
const GroupsClaim = "groups"

// User is an account at the provider.
type User struct {
	// Username is what the login form takes. Required.
	Username string
	// Password is what the login form takes; empty means a random one
	// (Authorize knows it).
	Password string
	// ID is the subject (sub) of the user's tokens; empty means
	// "sub-" + Username.
	ID string
	// Email, FirstName and LastName fill the email and profile claims.
	Email     string
	FirstName string
	LastName  string
	// Groups go into the groups claim (absent when empty).
	Groups []string
}

// Client is an OAuth client registered at the provider: a confidential web
// client authenticating with HTTP Basic (client_secret_basic).
type Client struct {
	ID           string
	Secret       string
	RedirectURIs []string
}

// Options configures a provider.
type Options struct {
	Users   []User
	Clients []Client
	// PlainHTTP serves http:// instead of https://.
	PlainHTTP bool
}

// Provider is a running OpenID Provider on 127.0.0.1.
type Provider struct {
	// Issuer is the provider's issuer URL (https://127.0.0.1:port).
	Issuer string
	srv    *httptest.Server
	users  *userStore
}

// Start runs a provider until the test ends.
func Start(t testing.TB, opts Options) *Provider {
	t.Helper()
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// New runs a provider; Close stops it.
func New(opts Options) (*Provider, error) {
	users := &userStore{byID: map[string]*entry{}}
	for _, u := range opts.Users {
		if err := users.set(u); err != nil {
			return nil, err
		}
	}
	clients := map[string]*storage.Client{}
	for _, c := range opts.Clients {
		if c.ID == "" || c.Secret == "" || len(c.RedirectURIs) == 0 {
			return nil, fmt.Errorf("oidctest: client %q needs an ID, a secret and a redirect URI", c.ID)
		}
		clients[c.ID] = storage.WebClient(c.ID, c.Secret, c.RedirectURIs...)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("oidctest: %w", err)
	}
	srv := httptest.NewUnstartedServer(nil)
	srv.Listener.Close()
	srv.Listener = ln
	scheme := "https"
	if opts.PlainHTTP {
		scheme = "http"
	}
	issuer := scheme + "://" + ln.Addr().String()
	st := &groupStorage{Storage: storage.NewStorageWithClients(users, clients), users: users}
	// A nil logger leaves the process's default slog logger alone.
	srv.Config.Handler = exampleop.SetupServer(issuer, st, nil, false)
	if opts.PlainHTTP {
		srv.Start()
	} else {
		srv.StartTLS()
	}
	return &Provider{Issuer: issuer, srv: srv, users: users}, nil
}

// Close stops the provider.
func (p *Provider) Close() { p.srv.Close() }

// HTTPClient returns a client that trusts the provider's TLS certificate
// (every httptest TLS server's certificate, so also a test's own).
func (p *Provider) HTTPClient() *http.Client { return p.srv.Client() }

// Transport returns the transport of HTTPClient.
func (p *Provider) Transport() http.RoundTripper { return p.srv.Client().Transport }

// SetUser adds a user or replaces the one with the same username.
func (p *Provider) SetUser(u User) error { return p.users.set(u) }

// SetGroups replaces a user's groups; their next tokens carry them.
func (p *Provider) SetGroups(username string, groups ...string) error {
	return p.users.setGroups(username, groups)
}

// Subject returns the subject (sub) of the user's tokens.
func (p *Provider) Subject(username string) string {
	if e := p.users.byName(username); e != nil {
		return e.user.ID
	}
	return ""
}

// NewBrowser returns an HTTP client with a cookie jar that trusts the
// provider's certificate and does not follow redirects, as Authorize and
// SignIn use it.
func (p *Provider) NewBrowser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{
		Transport:     p.Transport(),
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Authorize drives the authorization-code flow as a browser would, without
// one: it GETs startURL (a client's login endpoint, or the provider's
// authorization URL), follows redirects to the provider, fills its login
// form with the user's username and password, and stops at the first
// redirect that leaves the provider after it was visited — the redirect to
// the client's redirect URI. It returns that URL (holding code and state,
// or an error) without requesting it. c must have a cookie jar; its
// redirect policy is not used.
func (p *Provider) Authorize(ctx context.Context, c *http.Client, startURL, username string) (*url.URL, error) {
	e := p.users.byName(username)
	if e == nil {
		return nil, fmt.Errorf("oidctest: no user %q", username)
	}
	if c.Jar == nil {
		return nil, errors.New("oidctest: Authorize needs a client with a cookie jar")
	}
	nc := *c
	nc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	issuer, err := url.Parse(p.Issuer)
	if err != nil {
		return nil, err
	}
	next, err := url.Parse(startURL)
	if err != nil {
		return nil, fmt.Errorf("oidctest: start URL: %w", err)
	}
	method, form := http.MethodGet, url.Values(nil)
	visited, filled := false, false
	for hop := 0; hop < 20; hop++ {
		atIdP := next.Scheme == issuer.Scheme && next.Host == issuer.Host
		if visited && !atIdP {
			return next, nil
		}
		visited = visited || atIdP
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, err := http.NewRequestWithContext(ctx, method, next.String(), body)
		if err != nil {
			return nil, err
		}
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		resp, err := nc.Do(req)
		if err != nil {
			return nil, fmt.Errorf("oidctest: %s %s: %w", method, next.Path, err)
		}
		page, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		method, form = http.MethodGet, nil
		switch {
		case resp.StatusCode >= 300 && resp.StatusCode < 400:
			loc, err := resp.Location()
			if err != nil {
				return nil, fmt.Errorf("oidctest: %s answered %d without a Location", next.Path, resp.StatusCode)
			}
			next = loc
		case resp.StatusCode == http.StatusOK && atIdP && !filled:
			f, err := loginForm(page)
			if err != nil {
				return nil, fmt.Errorf("oidctest: %s: %w", next.Path, err)
			}
			f.values.Set("username", e.user.Username)
			f.values.Set("password", e.user.Password)
			action, err := next.Parse(f.action)
			if err != nil {
				return nil, fmt.Errorf("oidctest: login form action %q: %w", f.action, err)
			}
			next, method, form, filled = action, f.method, f.values, true
		default:
			return nil, fmt.Errorf("oidctest: %s %s answered %d: %s", req.Method, next.Path, resp.StatusCode, firstLine(page))
		}
	}
	return nil, errors.New("oidctest: too many redirects")
}

// SignIn runs Authorize and then requests the redirect URI with c, as the
// browser would, returning the client's answer (its body unread).
func (p *Provider) SignIn(ctx context.Context, c *http.Client, startURL, username string) (*http.Response, error) {
	cb, err := p.Authorize(ctx, c, startURL, username)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cb.String(), nil)
	if err != nil {
		return nil, err
	}
	nc := *c
	nc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return nc.Do(req)
}

type form struct {
	action, method string
	values         url.Values
}

// loginForm finds the page's form and its fields (hidden ones keep their
// values).
func loginForm(page []byte) (*form, error) {
	doc, err := html.Parse(strings.NewReader(string(page)))
	if err != nil {
		return nil, err
	}
	var f *form
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			switch n.Data {
			case "form":
				if f == nil {
					f = &form{method: strings.ToUpper(attr(n, "method")), action: attr(n, "action"), values: url.Values{}}
					if f.method == "" {
						f.method = http.MethodGet
					}
				}
			case "input":
				if f != nil && attr(n, "name") != "" {
					f.values.Set(attr(n, "name"), attr(n, "value"))
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	if f == nil {
		return nil, fmt.Errorf("no login form in the page: %s", firstLine(page))
	}
	if _, ok := f.values["username"]; !ok {
		return nil, errors.New("the login form has no username field")
	}
	return f, nil
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// userStore is the example storage's UserStore, with groups, safe for a
// test changing users while the provider runs.
type userStore struct {
	mu   sync.Mutex
	byID map[string]*entry
}

type entry struct {
	user   storage.User
	groups []string
}

func (s *userStore) set(u User) error {
	if u.Username == "" {
		return errors.New("oidctest: a user needs a username")
	}
	if u.ID == "" {
		u.ID = "sub-" + u.Username
	}
	if u.Password == "" {
		var b [16]byte
		_, _ = rand.Read(b[:])
		u.Password = hex.EncodeToString(b[:])
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, e := range s.byID {
		if e.user.Username == u.Username {
			delete(s.byID, id)
		}
	}
	s.byID[u.ID] = &entry{
		user: storage.User{
			ID: u.ID, Username: u.Username, Password: u.Password,
			FirstName: u.FirstName, LastName: u.LastName,
			Email: u.Email, EmailVerified: u.Email != "",
		},
		groups: append([]string(nil), u.Groups...),
	}
	return nil
}

func (s *userStore) setGroups(username string, groups []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.byID {
		if e.user.Username == username {
			e.groups = append([]string(nil), groups...)
			return nil
		}
	}
	return fmt.Errorf("oidctest: no user %q", username)
}

func (s *userStore) byName(username string) *entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.byID {
		if e.user.Username == username {
			c := *e
			return &c
		}
	}
	return nil
}

func (s *userStore) groupsOf(id string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.byID[id]; e != nil {
		return append([]string(nil), e.groups...)
	}
	return nil
}

// GetUserByID implements storage.UserStore.
func (s *userStore) GetUserByID(id string) *storage.User {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.byID[id]; e != nil {
		u := e.user
		return &u
	}
	return nil
}

// GetUserByUsername implements storage.UserStore.
func (s *userStore) GetUserByUsername(username string) *storage.User {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.byID {
		if e.user.Username == username {
			u := e.user
			return &u
		}
	}
	return nil
}

// ExampleClientID implements storage.UserStore (the example's service
// user for the JWT profile grant).
func (s *userStore) ExampleClientID() string { return storage.ServiceUserID }

// groupStorage is the example storage with a groups claim added to ID
// tokens, userinfo and token exchange (a custom scope would not do: the
// provider drops scopes it does not know).
type groupStorage struct {
	*storage.Storage
	users *userStore
}

func (g *groupStorage) addGroups(info *oidc.UserInfo, subject string) {
	if groups := g.users.groupsOf(subject); len(groups) > 0 {
		info.AppendClaims(GroupsClaim, groups)
	}
}

// SetUserinfoFromRequest adds the groups claim to ID tokens.
func (g *groupStorage) SetUserinfoFromRequest(ctx context.Context, info *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	if err := g.Storage.SetUserinfoFromRequest(ctx, info, req, scopes); err != nil {
		return err
	}
	g.addGroups(info, req.GetSubject())
	return nil
}

// SetUserinfoFromToken adds the groups claim to userinfo.
func (g *groupStorage) SetUserinfoFromToken(ctx context.Context, info *oidc.UserInfo, tokenID, subject, origin string) error {
	if err := g.Storage.SetUserinfoFromToken(ctx, info, tokenID, subject, origin); err != nil {
		return err
	}
	if subject == "" {
		subject = info.Subject
	}
	g.addGroups(info, subject)
	return nil
}

// SetUserinfoFromTokenExchangeRequest adds the groups claim to exchanged
// ID tokens.
func (g *groupStorage) SetUserinfoFromTokenExchangeRequest(ctx context.Context, info *oidc.UserInfo, req op.TokenExchangeRequest) error {
	if err := g.Storage.SetUserinfoFromTokenExchangeRequest(ctx, info, req); err != nil {
		return err
	}
	g.addGroups(info, req.GetSubject())
	return nil
}
