package flightcodec

import (
	"math/bits"
	"sync"

	"google.golang.org/grpc/mem"
)

// ZeroingBufferPool is a gRPC buffer pool (mem.BufferPool) that zeroes a
// buffer when gRPC gives it back, instead of when it hands it out again as
// gRPC's default pool does: the frames of a finished message do not linger
// in the pool with the data they carried. Use it where row data arrives
// (the engine: grpc/experimental.BufferPool, and Codec.Pool). Sizes are
// powers of two from 256 B to 1 MiB; larger buffers are not pooled.
type ZeroingBufferPool struct {
	classes [21]sync.Pool // index: log2 of the size
}

const (
	minPoolClass = 8
	maxPoolClass = 20
)

var _ mem.BufferPool = (*ZeroingBufferPool)(nil)

// Get returns a buffer of length n (its bytes are zero).
func (p *ZeroingBufferPool) Get(n int) *[]byte {
	c := max(bits.Len(uint(max(n, 1)-1)), minPoolClass)
	if c > maxPoolClass {
		b := make([]byte, n)
		return &b
	}
	if b, ok := p.classes[c].Get().(*[]byte); ok {
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n, 1<<c)
	return &b
}

// Put zeroes the whole buffer and keeps it for reuse.
func (p *ZeroingBufferPool) Put(b *[]byte) {
	full := (*b)[:cap(*b)]
	clear(full)
	c := bits.Len(uint(cap(full) - 1))
	if cap(full) == 0 || cap(full) != 1<<c || c < minPoolClass || c > maxPoolClass {
		return
	}
	*b = full[:0]
	p.classes[c].Put(b)
}
