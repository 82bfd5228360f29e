package jobstore

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// ZeroingAllocator is an Arrow allocator that overwrites every buffer with
// zeros before giving it back, and counts the bytes it holds and has zeroed.
type ZeroingAllocator struct {
	inner   memory.Allocator
	current atomic.Int64
	zeroed  atomic.Int64
}

var _ memory.Allocator = (*ZeroingAllocator)(nil)

// NewZeroingAllocator returns an allocator on the Go heap.
func NewZeroingAllocator() *ZeroingAllocator {
	return &ZeroingAllocator{inner: memory.NewGoAllocator()}
}

// Allocate implements memory.Allocator.
func (a *ZeroingAllocator) Allocate(size int) []byte {
	b := a.inner.Allocate(size)
	a.current.Add(int64(len(b)))
	return b
}

// Reallocate implements memory.Allocator; the old buffer is zeroed.
func (a *ZeroingAllocator) Reallocate(size int, b []byte) []byte {
	nb := a.Allocate(size)
	copy(nb, b)
	a.Free(b)
	return nb
}

// Free implements memory.Allocator: the buffer is zeroed, then released.
func (a *ZeroingAllocator) Free(b []byte) {
	clear(b)
	a.zeroed.Add(int64(len(b)))
	a.current.Add(-int64(len(b)))
	a.inner.Free(b)
}

// CurrentBytes is the number of bytes allocated and not yet freed.
func (a *ZeroingAllocator) CurrentBytes() int64 { return a.current.Load() }

// ZeroedBytes is the number of bytes zeroed on free so far.
func (a *ZeroingAllocator) ZeroedBytes() int64 { return a.zeroed.Load() }

// StorageWriteBytes returns this process's write_bytes from /proc/self/io
// (bytes it caused to be sent to the storage layer), or -1 where unknown.
func StorageWriteBytes() int64 {
	return procIOWriteBytes("/proc/self/io")
}

func procIOWriteBytes(path string) int64 {
	data, err := os.ReadFile(path)
	if err != nil {
		return -1
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Bytes()
		if v, ok := bytes.CutPrefix(line, []byte("write_bytes:")); ok {
			n, err := strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64)
			if err != nil {
				return -1
			}
			return n
		}
	}
	return -1
}
