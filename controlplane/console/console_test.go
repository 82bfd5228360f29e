package console

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

func get(t *testing.T, method, target string, header map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	Handler().ServeHTTP(rec, req)
	return rec
}

// TestHeaders: every answer, errors included, carries the security
// headers; the policy allows no inline script, no eval and no framing.
func TestHeaders(t *testing.T) {
	for _, tc := range []struct {
		method, target string
		status         int
		contentType    string
	}{
		{"GET", "/console/", 200, "text/html; charset=utf-8"},
		{"HEAD", "/console/", 200, "text/html; charset=utf-8"},
		{"GET", "/console/js/app.js", 200, "text/javascript; charset=utf-8"},
		{"GET", "/console/console.css", 200, "text/css; charset=utf-8"},
		{"GET", "/console/favicon.svg", 200, "image/svg+xml"},
		{"GET", "/console/index.html", 404, ""},
		{"GET", "/console/js/missing.js", 404, ""},
		{"GET", "/console/../go.mod", 404, ""},
		{"POST", "/console/", 405, ""},
		{"DELETE", "/console/js/app.js", 405, ""},
	} {
		rec := get(t, tc.method, tc.target, nil)
		if rec.Code != tc.status {
			t.Errorf("%s %s = %d, want %d", tc.method, tc.target, rec.Code, tc.status)
		}
		if tc.contentType != "" && rec.Header().Get("Content-Type") != tc.contentType {
			t.Errorf("%s %s: Content-Type %q, want %q", tc.method, tc.target, rec.Header().Get("Content-Type"), tc.contentType)
		}
		for k, v := range securityHeaders {
			if got := rec.Header().Get(k); got != v {
				t.Errorf("%s %s: %s = %q, want %q", tc.method, tc.target, k, got, v)
			}
		}
	}
	csp := map[string]string{}
	for _, d := range strings.Split(ContentSecurityPolicy, ";") {
		name, value, _ := strings.Cut(strings.TrimSpace(d), " ")
		csp[name] = value
	}
	for name, want := range map[string]string{
		"default-src": "'none'", "script-src": "'self'", "style-src": "'self'", "connect-src": "'self'",
		"frame-ancestors": "'none'", "base-uri": "'none'", "require-trusted-types-for": "'script'", "trusted-types": "'none'",
	} {
		if csp[name] != want {
			t.Errorf("CSP %s = %q, want %q", name, csp[name], want)
		}
	}
	if strings.Contains(ContentSecurityPolicy, "unsafe") || strings.Contains(ContentSecurityPolicy, "data:") {
		t.Errorf("CSP allows unsafe sources: %s", ContentSecurityPolicy)
	}
	if rec := get(t, "GET", "/console/", nil); rec.Header().Get("Referrer-Policy") != "no-referrer" || rec.Header().Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("headers %v", rec.Header())
	}
}

// TestConditional: files are revalidated by ETag.
func TestConditional(t *testing.T) {
	rec := get(t, "GET", "/console/js/app.js", nil)
	etag := rec.Header().Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	if rec := get(t, "GET", "/console/js/app.js", map[string]string{"If-None-Match": etag}); rec.Code != http.StatusNotModified {
		t.Errorf("If-None-Match with the ETag: %d, want 304", rec.Code)
	}
	if rec := get(t, "GET", "/console/console.css", map[string]string{"If-None-Match": etag}); rec.Code != http.StatusOK {
		t.Errorf("another file's ETag: %d, want 200", rec.Code)
	}
}

// TestNoInlineCode: the page has no inline script, style or event handler
// (the CSP would refuse them), and no script writes HTML strings or
// evaluates code (Trusted Types would refuse the first; the CSP the second).
func TestNoInlineCode(t *testing.T) {
	doc, err := html.Parse(strings.NewReader(string(files[""].body)))
	if err != nil {
		t.Fatal(err)
	}
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			for _, a := range n.Attr {
				if a.Key == "style" || strings.HasPrefix(a.Key, "on") {
					t.Errorf("index.html: <%s %s=…> is inline code", n.Data, a.Key)
				}
			}
			if n.Data == "style" {
				t.Error("index.html: a <style> element")
			}
			if n.Data == "script" {
				src := ""
				for _, a := range n.Attr {
					if a.Key == "src" {
						src = a.Val
					}
				}
				if src == "" || n.FirstChild != nil {
					t.Error("index.html: an inline <script>")
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	sinks := regexp.MustCompile(`\.innerHTML|\.outerHTML\s*=|insertAdjacentHTML|document\.write|\beval\(|new Function|setTimeout\(\s*['"]|\.setAttribute\(\s*['"](style|on)`)
	for name, f := range files {
		if path.Ext(name) != ".js" {
			continue
		}
		for i, line := range strings.Split(string(f.body), "\n") {
			if m := sinks.FindString(line); m != "" {
				t.Errorf("%s:%d: %q", name, i+1, m)
			}
		}
	}
}

// TestImportsResolve: every relative ES module import names an embedded
// file, so a page cannot fail to load for a typo.
func TestImportsResolve(t *testing.T) {
	imp := regexp.MustCompile(`(?m)^\s*import\s[^'"]*['"]([^'"]+)['"]`)
	n := 0
	for name, f := range files {
		if path.Ext(name) != ".js" {
			continue
		}
		for _, m := range imp.FindAllStringSubmatch(string(f.body), -1) {
			n++
			target := path.Join(path.Dir(name), m[1])
			if !strings.HasPrefix(m[1], ".") {
				t.Errorf("%s imports %q: want a relative path", name, m[1])
			} else if _, ok := files[target]; !ok {
				t.Errorf("%s imports %q (%s): not embedded", name, m[1], target)
			}
		}
	}
	if n < 10 {
		t.Errorf("found only %d imports: the pattern is broken", n)
	}
	// Every file the page names is served.
	for _, ref := range []string{"js/app.js", "console.css", "favicon.svg"} {
		if !strings.Contains(string(files[""].body), ref) {
			t.Errorf("index.html does not name %s", ref)
		}
		if rec := get(t, "GET", Prefix+ref, nil); rec.Code != 200 {
			t.Errorf("%s: %d", ref, rec.Code)
		}
	}
	if err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if _, ok := files[strings.TrimPrefix(p, "static/")]; !ok {
				t.Errorf("%s is embedded but not served", p)
			}
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
}
