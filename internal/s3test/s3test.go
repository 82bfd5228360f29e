// Package s3test starts a real S3-compatible server (versitygw, built by
// `make services`) on a loopback port with one bucket, for the tests and
// benchmarks of code that talks to S3.
package s3test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ferry-ai/ferry/internal/syncbuf"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Server is a running versitygw process serving a directory.
type Server struct {
	// Endpoint is http://127.0.0.1:port.
	Endpoint string
	// Addr is 127.0.0.1:port.
	Addr      string
	Bucket    string
	AccessKey string
	SecretKey string

	cmd  *exec.Cmd
	log  *syncbuf.Buffer
	once sync.Once
}

// Binary returns the versitygw binary: $FERRY_VERSITYGW, else
// $HOME/.cache/ferry/bin/versitygw.
func Binary() (string, error) {
	bin := os.Getenv("FERRY_VERSITYGW")
	if bin == "" {
		home, _ := os.UserHomeDir()
		bin = filepath.Join(home, ".cache", "ferry", "bin", "versitygw")
	}
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("versitygw S3 server not found at %s (run `make services`, or set FERRY_VERSITYGW): %w", bin, err)
	}
	return bin, nil
}

// Start runs versitygw on a free loopback port, serving dir, with the given
// bucket created.
func Start(ctx context.Context, dir, bucket, accessKey, secretKey string) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	s := &Server{Endpoint: "http://" + addr, Addr: addr, Bucket: bucket, AccessKey: accessKey, SecretKey: secretKey, log: &syncbuf.Buffer{}}
	s.cmd = exec.Command(bin, "--access", accessKey, "--secret", secretKey, "--port", addr, "posix", dir)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start versitygw: %w", err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("versitygw did not listen on %s: %s", addr, s.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := s.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		s.Stop()
		return nil, fmt.Errorf("create bucket %s: %w", bucket, err)
	}
	return s, nil
}

// ForTest starts a server for t and stops it when t ends. Without the
// binary it skips under -short and fails otherwise (CI builds it).
func ForTest(t testing.TB, bucket, accessKey, secretKey string) *Server {
	t.Helper()
	if _, err := Binary(); err != nil {
		if testing.Short() {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	s, err := Start(context.Background(), t.TempDir(), bucket, accessKey, secretKey)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Client returns an S3 client for the server.
func (s *Server) Client() *s3.Client {
	return s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(s.Endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, "")})
}

// Keys lists the keys under prefix in the bucket.
func (s *Server) Keys(ctx context.Context, prefix string) ([]string, error) {
	var keys []string
	pg := s3.NewListObjectsV2Paginator(s.Client(), &s3.ListObjectsV2Input{Bucket: &s.Bucket, Prefix: &prefix})
	for pg.HasMorePages() {
		out, err := pg.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, o := range out.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	return keys, nil
}

// Stop kills the server; calling it twice is safe.
func (s *Server) Stop() {
	s.once.Do(func() {
		if s.cmd.Process != nil {
			_ = s.cmd.Process.Kill()
			_ = s.cmd.Wait()
		}
	})
}
