package auth

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-ai/ferry/secrets"
)

func TestAllows(t *testing.T) {
	for _, tc := range []struct {
		role, needed Role
		want         bool
	}{
		{Admin, Admin, true}, {Admin, Editor, true}, {Admin, Viewer, true},
		{Editor, Admin, false}, {Editor, Editor, true}, {Editor, Viewer, true},
		{Viewer, Admin, false}, {Viewer, Editor, false}, {Viewer, Viewer, true},
		{"", Viewer, false}, {"root", Viewer, false},
		{Admin, "", false}, {Admin, "root", false}, // nothing allows an unknown need
	} {
		if got := Allows(tc.role, tc.needed); got != tc.want {
			t.Errorf("Allows(%q, %q) = %v", tc.role, tc.needed, got)
		}
	}
	if _, err := ParseRole("superuser"); err == nil {
		t.Error("ParseRole took superuser")
	}
	if r, err := ParseRole("editor"); err != nil || r != Editor {
		t.Errorf("ParseRole(editor) = %q, %v", r, err)
	}
}

func TestPHC(t *testing.T) {
	h, err := HashPassword("a long enough password")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=65536,t=3,p=4$") {
		t.Fatalf("hash %q", h)
	}
	p, err := parsePHC(h)
	if err != nil {
		t.Fatal(err)
	}
	if !p.verify("a long enough password") || p.verify("a long enough passwore") || p.verify("") {
		t.Fatal("verify")
	}
	if _, err := HashPassword("short"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a short password: %v", err)
	}
	const salt, hash = "MDEyMzQ1Njc4OWFiY2RlZg", "c2l4dGVlbiBieXRlcyBvZiBoYXNoIQ"
	for _, tc := range []struct{ in, err string }{
		{"$argon2id$v=19$m=1024,t=1,p=1$" + salt + "$" + hash, ""},
		{"$argon2i$v=19$m=1024,t=1,p=1$" + salt + "$" + hash, "want argon2id"},
		{"$argon2id$v=16$m=1024,t=1,p=1$" + salt + "$" + hash, "want v=19"},
		{"$argon2id$v=19$m=4194304,t=1,p=1$" + salt + "$" + hash, "at most"},
		{"$argon2id$v=19$m=1024,t=99,p=1$" + salt + "$" + hash, "at most"},
		{"$argon2id$v=19$m=1024,t=1$" + salt + "$" + hash, "required"},
		{"$argon2id$v=19$m=1024,t=1,p=1,x=2$" + salt + "$" + hash, "unknown parameter"},
		{"$argon2id$v=19$m=1024,t=1,p=1$c2FsdA$" + hash, "salt"},
		{"$argon2id$v=19$m=1024,t=1,p=1$" + salt + "$c2hvcnQ", "hash"},
		{"$argon2id$v=19$m=1024,t=1,p=1$" + salt + "$" + hash + "==", "hash"},
		{"$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW", "not a PHC string"},
		{"", "not a PHC string"},
	} {
		_, err := parsePHC(tc.in)
		if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("parsePHC(%q): %v, want %q", tc.in, err, tc.err)
		}
	}
}

func TestSafeReturn(t *testing.T) {
	for in, want := range map[string]string{
		"":                     "/",
		"/jobs?id=1":           "/jobs?id=1",
		"//evil.example/x":     "/",
		"/\\evil.example":      "/",
		"https://evil.example": "/",
		"jobs":                 "/",
		"/a\r\nSet-Cookie: x":  "/",
	} {
		if got := safeReturn(in); got != want {
			t.Errorf("safeReturn(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLimiter(t *testing.T) {
	l := newLimiter(3, time.Minute)
	t0 := time.Unix(1000, 0)
	for i := range 3 {
		if ok, _ := l.allow("a", t0.Add(time.Duration(i)*time.Second)); !ok {
			t.Fatalf("try %d refused", i+1)
		}
	}
	ok, wait := l.allow("a", t0.Add(10*time.Second))
	if ok || wait != 50*time.Second {
		t.Fatalf("fourth try: %v, wait %v", ok, wait)
	}
	if ok, _ := l.allow("b", t0.Add(10*time.Second)); !ok {
		t.Fatal("another address is limited too")
	}
	if ok, _ := l.allow("a", t0.Add(time.Minute)); !ok {
		t.Fatal("the oldest try did not age out")
	}
	if ok, _ := l.allow("a", t0.Add(time.Minute)); ok {
		t.Fatal("a refused try made room")
	}
}

func TestConfig(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret")
	if err := os.WriteFile(secretFile, []byte("  s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(dir, "open")
	if err := os.WriteFile(open, []byte("s3cret"), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	idp := func() IdPConfig {
		return IdPConfig{Tenant: "acme", Issuer: "https://idp.example", ClientID: "ferry", ClientSecretFile: secretFile,
			RedirectURL: "https://ferry.example/auth/callback", Roles: map[string]Role{"g": Admin}}
	}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		err  string
	}{
		{"ok", func(*Config) {}, ""},
		{"no tenant", func(c *Config) { c.IdPs[0].Tenant = "" }, "tenant is required"},
		{"two for a tenant", func(c *Config) { c.IdPs = append(c.IdPs, idp()) }, "one identity provider"},
		{"bad issuer", func(c *Config) { c.IdPs[0].Issuer = "idp.example" }, "issuer"},
		{"no client id", func(c *Config) { c.IdPs[0].ClientID = "" }, "client_id"},
		{"no secret", func(c *Config) { c.IdPs[0].ClientSecretFile = "" }, "client_secret_file"},
		{"secret readable by others", func(c *Config) { c.IdPs[0].ClientSecretFile = open }, "readable by others"},
		{"empty secret", func(c *Config) { c.IdPs[0].ClientSecretFile = empty }, "empty"},
		{"secret in code", func(c *Config) { c.IdPs[0].ClientSecretFile, c.IdPs[0].ClientSecret = "", secrets.New("x") }, ""},
		{"relative redirect", func(c *Config) { c.IdPs[0].RedirectURL = "/auth/callback" }, "redirect_url"},
		{"no roles", func(c *Config) { c.IdPs[0].Roles = nil }, "roles"},
		{"bad role", func(c *Config) { c.IdPs[0].Roles = map[string]Role{"g": "owner"} }, "owner"},
		{"negative ttl", func(c *Config) { c.SessionIdleTTL = -1 }, "negative"},
		{"bad origin", func(c *Config) { c.TrustedOrigins = []string{"ui.example"} }, "trusted origin"},
		{"break-glass without hash", func(c *Config) { c.BreakGlass = BreakGlassConfig{Enabled: true, Tenant: "acme", Username: "root"} }, "password_hash"},
		{"break-glass with bcrypt", func(c *Config) {
			c.BreakGlass = BreakGlassConfig{Enabled: true, Tenant: "acme", Username: "root", PasswordHash: "$2b$12$abc"}
		}, "PHC"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Config{IdPs: []IdPConfig{idp()}}
			tc.edit(&c)
			err := c.normalize()
			if (err == nil) != (tc.err == "") || (err != nil && (!strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrConfig))) {
				t.Fatalf("%v, want %q", err, tc.err)
			}
			if err != nil {
				return
			}
			p := c.IdPs[0]
			if c.SessionIdleTTL != DefaultSessionIdleTTL || c.SessionAbsoluteTTL != DefaultSessionAbsoluteTTL || p.GroupClaim != "groups" ||
				c.BreakGlass.SessionTTL != DefaultBreakGlassTTL || c.BreakGlass.Enabled {
				t.Fatalf("defaults: %+v", c)
			}
			if tc.name == "ok" && p.ClientSecret.Reveal() != "s3cret" {
				t.Fatal("the client secret was not read from its file")
			}
		})
	}
}
