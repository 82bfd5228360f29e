package parquet_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ferry-ai/ferry/conformance"
	"github.com/ferry-ai/ferry/connectors"
	"github.com/ferry-ai/ferry/internal/s3test"
)

const (
	testAccess = "ferrytestaccess"
	testSecret = "ferrytestsecret-Do-Not-Leak"
	testBucket = "ferry-test"
)

// s3Server is a versitygw process on 127.0.0.1 serving a temp directory,
// with one bucket.
type s3Server struct {
	*s3test.Server
	endpoint string
	n        atomic.Int64
}

func startS3(t testing.TB) *s3Server {
	t.Helper()
	srv := s3test.ForTest(t, testBucket, testAccess, testSecret)
	return &s3Server{Server: srv, endpoint: srv.Endpoint}
}

func (s *s3Server) url(prefix string) string {
	return fmt.Sprintf("s3://%s/%s?endpoint=%s&region=us-east-1&path_style=true", testBucket, prefix, s.endpoint)
}

func creds(secret string) map[string]string {
	return map[string]string{"access_key_id": testAccess, "secret_access_key": secret}
}

// Open gives each call its own prefix in the bucket.
func (s *s3Server) Open(ctx context.Context, t *testing.T, opts *connectors.Options) *connectors.Conn {
	t.Helper()
	o := connectors.Options{Credentials: creds(testSecret)}
	if opts != nil {
		o.Allocator = opts.Allocator
	}
	c, err := newMux().Open(ctx, s.url(fmt.Sprintf("run-%d/root", s.n.Add(1))), &o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestConformanceS3(t *testing.T) {
	srv := startS3(t)
	q := quirks("parquet-s3")
	if testing.Short() {
		q.LargeRows = 1_000_000
	}
	conformance.Run(t, srv, q)
}

func TestS3WrongSecret(t *testing.T) {
	srv := startS3(t)
	const wrong = "wrong-secret-Must-Not-Appear"
	_, err := newMux().Open(context.Background(), srv.url("x"), &connectors.Options{Credentials: creds(wrong)})
	if err == nil {
		t.Fatal("opened with a wrong secret")
	}
	if !strings.Contains(err.Error(), "SignatureDoesNotMatch") {
		t.Errorf("error %q does not say SignatureDoesNotMatch", err)
	}
	for _, secret := range []string{wrong, testSecret} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error %q contains a secret", err)
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error is a timeout, want an authentication error: %v", err)
	}
}
