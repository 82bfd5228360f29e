package telemetry

import (
	"context"
	"errors"
	"io"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// RPCErrors counts failed gRPC calls by method and status code. Methods are
// the full names ("/package.Service/Method") of the services it was made
// for; a call to any other method counts as Other.
type RPCErrors struct {
	v *CounterVec
}

// RPCErrors registers a counter of failed calls with labels method and
// code, for the methods of services.
func (r *Registry) RPCErrors(name, help string, services ...*grpc.ServiceDesc) *RPCErrors {
	var methods []string
	for _, sd := range services {
		for _, m := range sd.Methods {
			methods = append(methods, "/"+sd.ServiceName+"/"+m.MethodName)
		}
		for _, s := range sd.Streams {
			methods = append(methods, "/"+sd.ServiceName+"/"+s.StreamName)
		}
	}
	var codeNames []string
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		codeNames = append(codeNames, c.String())
	}
	return &RPCErrors{v: r.CounterVec(name, help, Label{Name: "method", Values: methods}, Label{Name: "code", Values: codeNames})}
}

// Observe counts err (when it is not nil) as a failure of method.
func (e *RPCErrors) Observe(method string, err error) {
	if err == nil {
		return
	}
	e.v.Inc(method, Code(err).String())
}

// Code returns the gRPC status code of err: its status, Canceled or
// DeadlineExceeded for a context's errors, Unknown otherwise.
func Code(err error) codes.Code {
	if s, ok := status.FromError(err); ok {
		return s.Code()
	}
	switch {
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	}
	return codes.Unknown
}

// UnaryServer counts the errors unary handlers return.
func (e *RPCErrors) UnaryServer() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		resp, err := handler(ctx, req)
		e.Observe(info.FullMethod, err)
		return resp, err
	}
}

// StreamServer counts the errors streaming handlers return.
func (e *RPCErrors) StreamServer() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		err := handler(srv, ss)
		e.Observe(info.FullMethod, err)
		return err
	}
}

// UnaryClient counts the errors of unary calls.
func (e *RPCErrors) UnaryClient() grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		err := invoker(ctx, method, req, reply, cc, opts...)
		e.Observe(method, err)
		return err
	}
}

// StreamClient counts, once per stream, a stream that could not be opened
// or whose receive ended with an error other than io.EOF.
func (e *RPCErrors) StreamClient() grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		cs, err := streamer(ctx, desc, cc, method, opts...)
		if err != nil {
			e.Observe(method, err)
			return nil, err
		}
		return &countedStream{ClientStream: cs, e: e, method: method}, nil
	}
}

// DialOptions returns the client interceptors as dial options.
func (e *RPCErrors) DialOptions() []grpc.DialOption {
	return []grpc.DialOption{grpc.WithChainUnaryInterceptor(e.UnaryClient()), grpc.WithChainStreamInterceptor(e.StreamClient())}
}

// ServerOptions returns the server interceptors as server options; put
// them before a recovering interceptor so that a recovered panic counts.
func (e *RPCErrors) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.ChainUnaryInterceptor(e.UnaryServer()), grpc.ChainStreamInterceptor(e.StreamServer())}
}

type countedStream struct {
	grpc.ClientStream
	e      *RPCErrors
	method string
	once   sync.Once
}

func (s *countedStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if err != nil && !errors.Is(err, io.EOF) {
		s.once.Do(func() { s.e.Observe(s.method, err) })
	}
	return err
}
