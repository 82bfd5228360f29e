package agent

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"

	"google.golang.org/grpc"
)

// egress is the agent's allowlist for connections out of the customer
// network: the control plane and engine endpoints of its configuration and
// nothing else. Every gRPC connection the agent makes to Ferry dials through
// it, with the passthrough resolver, so the address checked is the one
// configured, before any name lookup.
type egress struct {
	allowed []string // host:port, exactly as configured
}

func newEgress(endpoints ...string) *egress {
	e := &egress{}
	for _, ep := range endpoints {
		if ep != "" && !slices.Contains(e.allowed, ep) {
			e.allowed = append(e.allowed, ep)
		}
	}
	return e
}

// dial connects to addr if it is on the allowlist.
func (e *egress) dial(ctx context.Context, addr string) (net.Conn, error) {
	if !slices.Contains(e.allowed, addr) {
		return nil, fmt.Errorf("egress to %s refused: the agent dials only its configured endpoints (%s)", addr, strings.Join(e.allowed, ", "))
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

// client opens a gRPC client connection to target through the allowlist.
func (e *egress) client(target string, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	opts = append(opts, grpc.WithContextDialer(e.dial))
	return grpc.NewClient("passthrough:///"+target, opts...)
}
