package grpcrecover

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestRecover: a handler that panics gives the caller an Internal error and
// a log line with the method and stack; a handler that does not is
// untouched.
func TestRecover(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	var slice []int
	panicking := func() error { _ = slice[3]; return nil }
	cases := []struct {
		name string
		call func() error
		code codes.Code
	}{
		{"unary panics", func() error {
			_, err := Unary(log)(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/x/Unary"},
				func(context.Context, any) (any, error) { return nil, panicking() })
			return err
		}, codes.Internal},
		{"stream panics", func() error {
			return Stream(log)(nil, nil, &grpc.StreamServerInfo{FullMethod: "/x/Stream"},
				func(any, grpc.ServerStream) error { return panicking() })
		}, codes.Internal},
		{"unary returns", func() error {
			_, err := Unary(log)(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/x/Fine"},
				func(context.Context, any) (any, error) { return "ok", status.Error(codes.NotFound, "no") })
			return err
		}, codes.NotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); status.Code(err) != tc.code {
				t.Fatalf("error %v, want code %v", err, tc.code)
			}
		})
	}
	if !strings.Contains(logs.String(), `"method":"/x/Stream"`) || !strings.Contains(logs.String(), "index out of range") {
		t.Fatalf("logs: %s", logs.String())
	}
}
