// Package faultproxy is a TCP proxy for tests that need a real network
// fault between two real parties: it can drop every open connection (as a
// killed server would, with a reset), go down and come back on the same
// port, and cut each connection after a chosen number of client bytes (a
// link that breaks mid-stream at a random point).
//
// It forwards bytes unchanged, so it sits in front of any protocol,
// including TLS: the parties still authenticate each other end to end.
package faultproxy

import (
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Proxy forwards connections on its address to a target address.
type Proxy struct {
	target string

	mu       sync.Mutex
	addr     string
	l        net.Listener
	conns    map[net.Conn]struct{}
	cutAfter func() int64
	accepted int
	cuts     int
	wg       sync.WaitGroup
}

// Start listens on a free loopback port and forwards to target.
func Start(target string) (*Proxy, error) {
	p := &Proxy{target: target, conns: map[net.Conn]struct{}{}}
	if err := p.Listen("127.0.0.1:0"); err != nil {
		return nil, err
	}
	return p, nil
}

// Addr returns the address clients dial.
func (p *Proxy) Addr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addr
}

// Listen (re)starts accepting on addr, e.g. the address the proxy had before
// Down.
func (p *Proxy) Listen(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("faultproxy: listen %s: %w", addr, err)
	}
	p.mu.Lock()
	p.l, p.addr = l, l.Addr().String()
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.pipe(c)
			}()
		}
	}()
	return nil
}

// CutAfter makes every new connection break (reset both ways) once the
// client has sent n() bytes through it; n is called once per connection,
// and a result ≤ 0 leaves that connection alone. nil turns cutting off.
func (p *Proxy) CutAfter(n func() int64) {
	p.mu.Lock()
	p.cutAfter = n
	p.mu.Unlock()
}

// Stats returns how many connections the proxy accepted and how many of
// them it cut by CutAfter.
func (p *Proxy) Stats() (accepted, cuts int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted, p.cuts
}

func (p *Proxy) pipe(c net.Conn) {
	s, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns[c], p.conns[s] = struct{}{}, struct{}{}
	p.accepted++
	var budget int64
	if p.cutAfter != nil {
		budget = p.cutAfter()
	}
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() {
		if budget > 0 {
			if _, err := io.CopyN(s, c, budget); err == nil {
				p.mu.Lock()
				p.cuts++
				p.mu.Unlock()
				reset(c)
				reset(s)
			}
		} else {
			_, _ = io.Copy(s, c)
		}
		s.Close()
		c.Close()
		done <- struct{}{}
	}()
	go func() {
		_, _ = io.Copy(c, s)
		c.Close()
		s.Close()
		done <- struct{}{}
	}()
	<-done
	<-done
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, s)
	p.mu.Unlock()
}

// reset makes Close send a TCP reset instead of a FIN, as a crashed peer or
// a broken middlebox would.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.Close()
}

// Cut drops every open connection with a reset; new ones are still
// accepted.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		reset(c)
	}
}

// Down closes the listener (the port refuses) and drops every connection.
func (p *Proxy) Down() {
	p.mu.Lock()
	if p.l != nil {
		p.l.Close()
		p.l = nil
	}
	p.mu.Unlock()
	p.Cut()
}

// Close stops the proxy and waits for its goroutines.
func (p *Proxy) Close() {
	p.Down()
	p.wg.Wait()
}
