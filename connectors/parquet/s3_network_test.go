package parquet_test

import (
	"context"
	"net/url"
	"testing"

	"github.com/ferry-ai/ferry/connectors"
)

// Addr implements conformance.NetworkHarness.
func (s *s3Server) Addr() string { return s.Server.Addr }

// OpenAt implements conformance.NetworkHarness: the same bucket and prefix
// through another endpoint.
func (s *s3Server) OpenAt(ctx context.Context, c *connectors.Conn, addr string, cr map[string]string, opts *connectors.Options) (*connectors.Conn, error) {
	u, err := url.Parse(c.URL())
	if err != nil {
		return nil, err
	}
	q := u.Query()
	q.Set("endpoint", "http://"+addr)
	u.RawQuery = q.Encode()
	o := connectors.Options{Credentials: creds(testSecret)}
	if cr != nil {
		o.Credentials = cr
	}
	if opts != nil {
		o.Allocator = opts.Allocator
	}
	return newMux().Open(ctx, u.String(), &o)
}

// BadCredentials implements conformance.NetworkHarness.
func (s *s3Server) BadCredentials() (map[string]string, string) {
	const wrong = "wrong-secret-Must-Not-Appear"
	return creds(wrong), wrong
}

// Reopen implements conformance.Reopener.
func (s *s3Server) Reopen(ctx context.Context, t *testing.T, c *connectors.Conn, opts *connectors.Options) *connectors.Conn {
	t.Helper()
	c2, err := s.OpenAt(ctx, c, s.Server.Addr, nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c2
}
