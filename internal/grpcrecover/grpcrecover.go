// Package grpcrecover turns a panic in a gRPC handler into an Internal
// error for that call, logged with its stack, instead of a crashed server:
// a malformed message that gets past validation fails one job, not every
// job on the engine. gRPC-Go does not recover handler panics itself.
package grpcrecover

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Unary returns a server interceptor that recovers unary handlers.
func Unary(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		defer recoverTo(log, info.FullMethod, &err)
		return handler(ctx, req)
	}
}

// Stream returns a server interceptor that recovers streaming handlers.
func Stream(log *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
		defer recoverTo(log, info.FullMethod, &err)
		return handler(srv, ss)
	}
}

func recoverTo(log *slog.Logger, method string, err *error) {
	p := recover()
	if p == nil {
		return
	}
	// The panic value and stack name code and sizes, not row values.
	log.Error("panic in gRPC handler; the call fails, the server goes on", "method", method, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
	*err = status.Errorf(codes.Internal, "%s: internal error (%v); the server logged it", method, p)
}
