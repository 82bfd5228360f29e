// Package console is the control plane's web console: static HTML, CSS and
// JavaScript (plain ES modules, no build step) embedded in the binary and
// served under /console/ by Handler.
//
// The console holds no state and no secret. Its pages call the user API
// (/v1/…, /auth/me, /auth/logout) with the browser's session cookie from
// OpenID Connect sign-in at /auth/login, and send the CSRF token
// (X-Ferry-CSRF, the __Host-ferry_csrf cookie's value) on every call that
// changes state. The pages hide what the signed-in role may not do; the API
// stays the one place that enforces it.
//
// Every response carries a Content-Security-Policy that allows only the
// console's own scripts, styles and API (no inline script or style, no
// eval, Trusted Types required so that no HTML string reaches the DOM,
// frame-ancestors 'none'), plus no-referrer, nosniff and frame denial.
package console

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

// Prefix is where Handler expects to be mounted.
const Prefix = "/console/"

// ContentSecurityPolicy is the policy of every console response: the
// console's own files and API only, no inline script or style, no eval, no
// HTML strings into the DOM (Trusted Types), no framing.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"base-uri 'none'; form-action 'self'; frame-ancestors 'none'; " +
	"require-trusted-types-for 'script'; trusted-types 'none'"

// securityHeaders are set on every response of Handler, errors included.
var securityHeaders = map[string]string{
	"Content-Security-Policy":      ContentSecurityPolicy,
	"Referrer-Policy":              "no-referrer",
	"X-Content-Type-Options":       "nosniff",
	"X-Frame-Options":              "DENY",
	"Cross-Origin-Opener-Policy":   "same-origin",
	"Cross-Origin-Resource-Policy": "same-origin",
	"Permissions-Policy":           "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
	"Strict-Transport-Security":    "max-age=63072000",
	// Revalidate every time (the files are not fingerprinted); the ETag
	// makes that a 304.
	"Cache-Control": "no-cache",
}

//go:embed static
var static embed.FS

// contentTypes are the file types the console serves; any other file in
// static/ is a build error in the test, never served.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
}

// file is one embedded file, ready to serve.
type file struct {
	body        []byte
	contentType string
	etag        string
}

// files maps a path below Prefix ("" for the page itself) to its file.
var files = mustLoad()

func mustLoad() map[string]file {
	out := map[string]file{}
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ct, ok := contentTypes[path.Ext(p)]
		if !ok {
			return fmt.Errorf("console: %s: no content type for this kind of file", p)
		}
		b, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		out[strings.TrimPrefix(p, "static/")] = file{body: b, contentType: ct, etag: `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`}
		return nil
	})
	if err != nil {
		panic(err)
	}
	out[""] = out["index.html"]
	return out
}

// Handler serves the console under Prefix: the page at Prefix itself and
// its scripts, styles and icon below it, GET and HEAD only, with the
// security headers on every response.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, v := range securityHeaders {
			w.Header().Set(k, v)
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		name, ok := strings.CutPrefix(r.URL.Path, Prefix)
		f, found := files[name]
		if !ok || !found || name == "index.html" {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", f.contentType)
		w.Header().Set("ETag", f.etag)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.body))
	})
}
