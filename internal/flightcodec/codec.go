// Package flightcodec is a gRPC codec for Arrow Flight's FlightData
// message that saves the link two passes over every byte of Arrow data:
//
//   - sending, the Arrow IPC body goes from the record batch's own buffers
//     into gRPC's pooled send buffer in one copy (Writer), where arrow-go's
//     Flight writer copies it into a bytes.Buffer and the proto codec copies
//     it again;
//   - receiving, the body is copied once from gRPC's receive buffers into a
//     buffer from a BodyPool the receiver returns after use, where the proto
//     codec first joins the receive buffers and then copies the body into
//     fresh memory (whose page faults dominate the engine's receive cost).
//
// The wire format is FlightData's protobuf encoding, unchanged: any Flight
// peer reads and writes it. Every other message goes through gRPC's proto
// codec. The decoder is fuzzed against proto.Unmarshal (FuzzUnmarshal).
package flightcodec

import (
	"errors"
	"fmt"
	"io"
	"math/bits"
	"sync"

	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	protobuf "google.golang.org/protobuf/proto"
)

// Field numbers of arrow.flight.protocol.FlightData.
const (
	fieldDescriptor  = 1
	fieldDataHeader  = 2
	fieldAppMetadata = 3
	fieldDataBody    = 1000
)

// Outgoing is a FlightData to send whose body is still in pieces (the IPC
// body buffers and their padding); Codec.Marshal joins them in one copy.
type Outgoing struct {
	Descriptor  *flight.FlightDescriptor
	DataHeader  []byte
	AppMetadata []byte
	Body        [][]byte
}

// Codec marshals *Outgoing and *flight.FlightData, and unmarshals
// *flight.FlightData with its body in a buffer from Bodies (nil: fresh
// memory). Other messages use gRPC's proto codec. Name is "proto", so the
// content type is the standard one.
type Codec struct {
	Bodies *BodyPool
	// Pool supplies the buffers messages are marshalled into (nil: gRPC's
	// default pool).
	Pool mem.BufferPool
}

var protoCodec = encoding.GetCodecV2(proto.Name)

// Name returns "proto".
func (Codec) Name() string { return proto.Name }

// Marshal encodes v.
func (c Codec) Marshal(v any) (mem.BufferSlice, error) {
	switch m := v.(type) {
	case *Outgoing:
		return marshal(c.pool(), m.Descriptor, m.DataHeader, m.AppMetadata, m.Body)
	case *flight.FlightData:
		var body [][]byte
		if len(m.DataBody) > 0 {
			body = [][]byte{m.DataBody}
		}
		return marshal(c.pool(), m.FlightDescriptor, m.DataHeader, m.AppMetadata, body)
	}
	return protoCodec.Marshal(v)
}

func (c Codec) pool() mem.BufferPool {
	if c.Pool != nil {
		return c.Pool
	}
	return mem.DefaultBufferPool()
}

func marshal(pool mem.BufferPool, desc *flight.FlightDescriptor, header, meta []byte, body [][]byte) (mem.BufferSlice, error) {
	var descBytes []byte
	if desc != nil {
		var err error
		if descBytes, err = protobuf.Marshal(desc); err != nil {
			return nil, fmt.Errorf("flightcodec: descriptor: %w", err)
		}
	}
	var bodyLen int
	for _, b := range body {
		bodyLen += len(b)
	}
	size := 0
	field := func(num protowire.Number, n int, present bool) {
		if present {
			size += protowire.SizeTag(num) + protowire.SizeBytes(n)
		}
	}
	field(fieldDescriptor, len(descBytes), desc != nil)
	field(fieldDataHeader, len(header), len(header) > 0)
	field(fieldAppMetadata, len(meta), len(meta) > 0)
	field(fieldDataBody, bodyLen, bodyLen > 0)
	buf := pool.Get(size)
	out := (*buf)[:0]
	put := func(num protowire.Number, parts ...[]byte) {
		n := 0
		for _, p := range parts {
			n += len(p)
		}
		out = protowire.AppendTag(out, num, protowire.BytesType)
		out = protowire.AppendVarint(out, uint64(n))
		for _, p := range parts {
			out = append(out, p...)
		}
	}
	if desc != nil {
		put(fieldDescriptor, descBytes)
	}
	if len(header) > 0 {
		put(fieldDataHeader, header)
	}
	if len(meta) > 0 {
		put(fieldAppMetadata, meta)
	}
	if bodyLen > 0 {
		put(fieldDataBody, body...)
	}
	*buf = out
	return mem.BufferSlice{mem.NewBuffer(buf, pool)}, nil
}

// Unmarshal decodes data into v.
func (c Codec) Unmarshal(data mem.BufferSlice, v any) error {
	fd, ok := v.(*flight.FlightData)
	if !ok {
		return protoCodec.Unmarshal(data, v)
	}
	bufs := make([][]byte, len(data))
	for i, b := range data {
		bufs[i] = b.ReadOnlyData()
	}
	return c.decode(newSliceReader(bufs), fd)
}

// errTruncated is wrapped by every error of a message that ends early.
var errTruncated = errors.New("message ends inside a field")

func (c Codec) decode(r *sliceReader, fd *flight.FlightData) error {
	fd.Reset()
	var bodyFromPool []byte
	fail := func(err error) error {
		if bodyFromPool != nil {
			c.Bodies.Put(bodyFromPool)
		}
		fd.Reset()
		return fmt.Errorf("flightcodec: FlightData: %w", err)
	}
	for r.remaining() > 0 {
		tag, err := r.varint()
		if err != nil {
			return fail(err)
		}
		num, typ, err := splitTag(tag)
		if err != nil {
			return fail(err)
		}
		known := num == fieldDescriptor || num == fieldDataHeader || num == fieldAppMetadata || num == fieldDataBody
		if !known || typ != protowire.BytesType {
			// An unknown field, or a known one with another wire type,
			// is skipped, as proto does.
			if err := r.skip(num, typ); err != nil {
				return fail(err)
			}
			continue
		}
		n, err := r.varint()
		if err != nil {
			return fail(err)
		}
		if n > uint64(r.remaining()) {
			return fail(fmt.Errorf("field %d of %d bytes: %w", num, n, errTruncated))
		}
		switch num {
		case fieldDataBody:
			var dst []byte
			if c.Bodies != nil {
				if bodyFromPool != nil { // a repeated field: the last one wins
					c.Bodies.Put(bodyFromPool)
				}
				dst = c.Bodies.Get(int(n))
				bodyFromPool = dst
			} else {
				dst = make([]byte, n)
			}
			r.read(dst)
			fd.DataBody = dst
		case fieldDescriptor:
			b := make([]byte, n)
			r.read(b)
			// Repeated occurrences of a message field merge, as in proto.
			if fd.FlightDescriptor == nil {
				fd.FlightDescriptor = &flight.FlightDescriptor{}
			}
			if err := (protobuf.UnmarshalOptions{Merge: true}).Unmarshal(b, fd.FlightDescriptor); err != nil {
				return fail(fmt.Errorf("descriptor: %w", err))
			}
		case fieldDataHeader:
			fd.DataHeader = make([]byte, n)
			r.read(fd.DataHeader)
		case fieldAppMetadata:
			fd.AppMetadata = make([]byte, n)
			r.read(fd.AppMetadata)
		}
	}
	return nil
}

// splitTag splits a field tag into its number and wire type, refusing a
// number outside 1 to 2^29-1 as protowire does.
func splitTag(tag uint64) (protowire.Number, protowire.Type, error) {
	if n := tag >> 3; n < uint64(protowire.MinValidNumber) || n > uint64(protowire.MaxValidNumber) {
		return 0, 0, fmt.Errorf("invalid field number %d", n)
	}
	return protowire.Number(tag >> 3), protowire.Type(tag & 7), nil
}

// sliceReader reads a message spread over several buffers.
type sliceReader struct {
	bufs [][]byte
	n    int // bytes consumed of bufs[0]
	left int // bytes not consumed in all
}

func newSliceReader(bufs [][]byte) *sliceReader {
	r := &sliceReader{bufs: bufs}
	for _, b := range bufs {
		r.left += len(b)
	}
	return r
}

func (r *sliceReader) remaining() int { return r.left }

func (r *sliceReader) byte() (byte, error) {
	for len(r.bufs) > 0 && r.n >= len(r.bufs[0]) {
		r.bufs, r.n = r.bufs[1:], 0
	}
	if len(r.bufs) == 0 {
		return 0, errTruncated
	}
	b := r.bufs[0][r.n]
	r.n++
	r.left--
	return b, nil
}

// varint reads a base-128 varint as protowire does (at most 10 bytes).
func (r *sliceReader) varint() (uint64, error) {
	var v uint64
	for i := 0; i < 10; i++ {
		b, err := r.byte()
		if err != nil {
			return 0, err
		}
		if i == 9 && b > 1 {
			return 0, errors.New("varint overflows 64 bits")
		}
		v |= uint64(b&0x7f) << (7 * i)
		if b < 0x80 {
			return v, nil
		}
	}
	return 0, errors.New("varint longer than 10 bytes")
}

// read fills dst; the caller has checked remaining.
func (r *sliceReader) read(dst []byte) {
	r.left -= len(dst)
	for len(dst) > 0 {
		for r.n >= len(r.bufs[0]) {
			r.bufs, r.n = r.bufs[1:], 0
		}
		k := copy(dst, r.bufs[0][r.n:])
		dst = dst[k:]
		r.n += k
	}
}

// discard skips n bytes; the caller has checked remaining.
func (r *sliceReader) discard(n int) {
	r.left -= n
	for n > 0 {
		for r.n >= len(r.bufs[0]) {
			r.bufs, r.n = r.bufs[1:], 0
		}
		k := min(n, len(r.bufs[0])-r.n)
		n -= k
		r.n += k
	}
}

// skip passes over an unknown field, as proto does.
func (r *sliceReader) skip(num protowire.Number, typ protowire.Type) error {
	switch typ {
	case protowire.VarintType:
		_, err := r.varint()
		return err
	case protowire.Fixed32Type, protowire.Fixed64Type:
		n := 4
		if typ == protowire.Fixed64Type {
			n = 8
		}
		if r.remaining() < n {
			return fmt.Errorf("field %d: %w", num, errTruncated)
		}
		r.discard(n)
		return nil
	case protowire.BytesType:
		n, err := r.varint()
		if err != nil {
			return err
		}
		if n > uint64(r.remaining()) {
			return fmt.Errorf("field %d of %d bytes: %w", num, n, errTruncated)
		}
		r.discard(int(n))
		return nil
	case protowire.StartGroupType:
		for {
			tag, err := r.varint()
			if err != nil {
				return err
			}
			n, t, err := splitTag(tag)
			if err != nil {
				return err
			}
			if t == protowire.EndGroupType {
				if n != num {
					return fmt.Errorf("group %d ends with %d", num, n)
				}
				return nil
			}
			if err := r.skip(n, t); err != nil {
				return err
			}
		}
	}
	return fmt.Errorf("field %d: invalid wire type %d", num, typ)
}

// BodyPool recycles body buffers by power-of-two size class, so a receiver
// that holds bodies for a while (a job) and then zeroes and returns them
// does not fault fresh pages in for every message. It keeps at most Max
// bytes of free buffers (0: DefaultPoolMax); buffers must be zeroed before
// Put. It is safe for concurrent use.
type BodyPool struct {
	Max int64

	mu    sync.Mutex
	free  [64][][]byte
	bytes int64
}

// DefaultPoolMax bounds the free buffers a BodyPool keeps.
const DefaultPoolMax = 256 << 20

const minClass = 12 // 4 KiB

// Get returns a buffer of length n.
func (p *BodyPool) Get(n int) []byte {
	if n == 0 {
		return []byte{}
	}
	c := max(bits.Len(uint(n-1)), minClass)
	p.mu.Lock()
	if k := len(p.free[c]); k > 0 {
		b := p.free[c][k-1]
		p.free[c] = p.free[c][:k-1]
		p.bytes -= int64(cap(b))
		p.mu.Unlock()
		return b[:n]
	}
	p.mu.Unlock()
	return make([]byte, n, 1<<c)
}

// Put returns a buffer Get made (zeroed by the caller); beyond Max bytes
// of free buffers it is left to the garbage collector.
func (p *BodyPool) Put(b []byte) {
	c := bits.Len(uint(cap(b) - 1))
	if cap(b) == 0 || cap(b) != 1<<c || c < minClass {
		return // not one of ours
	}
	limit := p.Max
	if limit <= 0 {
		limit = DefaultPoolMax
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bytes+int64(cap(b)) > limit {
		return
	}
	p.free[c] = append(p.free[c], b[:0])
	p.bytes += int64(cap(b))
}

// Writer writes record batches to a Flight data stream as IPC messages
// through Codec: the body goes from the batches' buffers to gRPC's send
// buffer in one copy. Use it on a stream whose call has
// grpc.ForceCodecV2(Codec{}); it needs the Go allocator (the default) for
// any buffer the IPC writer makes, and the batches written must stay valid
// until Write returns.
type Writer struct {
	*ipc.Writer
	pw *payloadWriter
}

// MsgSender is the part of a gRPC stream the Writer uses.
type MsgSender interface {
	SendMsg(m any) error
}

// NewWriter returns a Writer on stream; opts are the IPC writer's.
func NewWriter(stream MsgSender, opts ...ipc.Option) *Writer {
	pw := &payloadWriter{s: stream}
	return &Writer{Writer: ipc.NewWriterWithPayloadWriter(pw, opts...), pw: pw}
}

// SetFlightDescriptor sets the descriptor the next message carries (the
// first message of a DoPut must carry one).
func (w *Writer) SetFlightDescriptor(d *flight.FlightDescriptor) { w.pw.desc = d }

type payloadWriter struct {
	s    MsgSender
	desc *flight.FlightDescriptor
	out  Outgoing
	body pieces
}

func (p *payloadWriter) Start() error { return nil }
func (p *payloadWriter) Close() error { return nil }

func (p *payloadWriter) WritePayload(pl ipc.Payload) error {
	meta := pl.Meta()
	defer meta.Release()
	p.body = p.body[:0]
	if err := pl.SerializeBody(&p.body); err != nil {
		return err
	}
	p.out = Outgoing{Descriptor: p.desc, DataHeader: meta.Bytes(), Body: p.body}
	err := p.s.SendMsg(&p.out)
	p.desc = nil
	p.out = Outgoing{}
	return err
}

// pieces collects the body's slices without copying them; Codec.Marshal
// copies them before SendMsg returns.
type pieces [][]byte

func (b *pieces) Write(p []byte) (int, error) {
	*b = append(*b, p)
	return len(p), nil
}

var _ io.Writer = (*pieces)(nil)
