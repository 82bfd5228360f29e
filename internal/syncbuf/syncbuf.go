// Package syncbuf is a byte buffer safe for concurrent writers: the log sink
// a test reads while the servers and goroutines it started write to it.
package syncbuf

import (
	"bytes"
	"sync"
)

// Buffer is an io.Writer whose contents can be read at any time. The zero
// value is ready to use.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
