package parquet_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ferry-ai/ferry/conformance"
	"github.com/ferry-ai/ferry/connectors"
)

const (
	testAccess = "ferrytestaccess"
	testSecret = "ferrytestsecret-Do-Not-Leak"
	testBucket = "ferry-test"
)

// versitygwBinary finds the versitygw binary: $FERRY_VERSITYGW, else
// $HOME/.cache/ferry/bin/versitygw.
func versitygwBinary(t testing.TB) string {
	t.Helper()
	bin := os.Getenv("FERRY_VERSITYGW")
	if bin == "" {
		home, _ := os.UserHomeDir()
		bin = filepath.Join(home, ".cache", "ferry", "bin", "versitygw")
	}
	if _, err := os.Stat(bin); err != nil {
		msg := fmt.Sprintf("versitygw S3 server not found at %s (set FERRY_VERSITYGW or build it: "+
			"cd /tmp && GOTOOLCHAIN=local GOBIN=$HOME/.cache/ferry/bin go install github.com/versity/versitygw/cmd/versitygw@v1.8.0)", bin)
		if testing.Short() {
			t.Skip(msg)
		}
		t.Fatal(msg)
	}
	return bin
}

// s3Server is a versitygw process on 127.0.0.1 serving a temp directory,
// with one bucket.
type s3Server struct {
	endpoint string
	n        atomic.Int64
}

func startS3(t testing.TB) *s3Server {
	t.Helper()
	bin := versitygwBinary(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	var logBuf strings.Builder
	cmd := exec.Command(bin, "--access", testAccess, "--secret", testSecret, "--port", addr, "posix", dir)
	cmd.Stdout, cmd.Stderr = &logBuf, &logBuf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start versitygw: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("versitygw did not listen on %s: %s", addr, logBuf.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	srv := &s3Server{endpoint: "http://" + addr}
	client := s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(testAccess, testSecret, "")})
	if _, err := client.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(testBucket)}); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	return srv
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
