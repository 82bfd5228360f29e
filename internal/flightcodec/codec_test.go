package flightcodec

import (
	"bytes"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/flight"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	protobuf "google.golang.org/protobuf/proto"
)

// split cuts b into buffers at the given sizes (cycling), as gRPC hands a
// message over in frame-sized pieces.
func split(b []byte, sizes []int) mem.BufferSlice {
	var out mem.BufferSlice
	for i := 0; len(b) > 0; i++ {
		n := min(len(b), max(1, sizes[i%len(sizes)]))
		out = append(out, mem.SliceBuffer(b[:n]))
		b = b[n:]
	}
	return out
}

func sameFlightData(a, b *flight.FlightData) bool {
	return bytes.Equal(a.DataHeader, b.DataHeader) && bytes.Equal(a.AppMetadata, b.AppMetadata) &&
		bytes.Equal(a.DataBody, b.DataBody) && protobuf.Equal(a.FlightDescriptor, b.FlightDescriptor)
}

// TestRoundTrip: what Codec writes, proto reads, and what proto writes,
// Codec reads, whatever the buffer boundaries; the pooled body is reused.
func TestRoundTrip(t *testing.T) {
	body := bytes.Repeat([]byte("arrow-body"), 10_000)
	cases := []struct {
		name string
		fd   *flight.FlightData
	}{
		{"empty", &flight.FlightData{}},
		{"header only", &flight.FlightData{DataHeader: []byte{1, 2, 3}}},
		{"descriptor, header, body", &flight.FlightData{
			FlightDescriptor: &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: []byte(`{"job_id":"j"}`)},
			DataHeader:       []byte("header"), DataBody: body}},
		{"app metadata", &flight.FlightData{AppMetadata: []byte("meta"), DataBody: []byte{9}}},
	}
	pool := &BodyPool{}
	c := Codec{Bodies: pool}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Codec -> proto, sending the body in pieces.
			var pieces [][]byte
			for b := tc.fd.DataBody; len(b) > 0; {
				n := min(len(b), 777)
				pieces, b = append(pieces, b[:n]), b[n:]
			}
			out, err := c.Marshal(&Outgoing{Descriptor: tc.fd.FlightDescriptor, DataHeader: tc.fd.DataHeader, AppMetadata: tc.fd.AppMetadata, Body: pieces})
			if err != nil {
				t.Fatal(err)
			}
			wire := out.Materialize()
			out.Free()
			var viaProto flight.FlightData
			if err := protobuf.Unmarshal(wire, &viaProto); err != nil {
				t.Fatalf("proto cannot read Codec's output: %v", err)
			}
			if !sameFlightData(&viaProto, tc.fd) {
				t.Fatal("proto read something else than Codec wrote")
			}
			std, _ := protobuf.Marshal(tc.fd)
			if !bytes.Equal(std, wire) {
				t.Fatalf("Codec's encoding differs from proto's (%d vs %d bytes)", len(wire), len(std))
			}
			// proto -> Codec, in frame-sized and odd-sized pieces.
			for _, sizes := range [][]int{{16384}, {1}, {3, 5, 7}, {len(std) + 1}} {
				var got flight.FlightData
				if err := c.Unmarshal(split(std, sizes), &got); err != nil {
					t.Fatalf("split %v: %v", sizes, err)
				}
				if !sameFlightData(&got, tc.fd) {
					t.Fatalf("split %v: decoded something else", sizes)
				}
				if len(got.DataBody) > 0 {
					clear(got.DataBody)
					pool.Put(got.DataBody)
				}
			}
		})
	}
}

// TestRefusesMalformed: truncated and overflowing input is an error that
// says so, never a panic or a short body.
func TestRefusesMalformed(t *testing.T) {
	good, _ := protobuf.Marshal(&flight.FlightData{DataHeader: []byte("h"), DataBody: bytes.Repeat([]byte{7}, 100)})
	huge := protowire.AppendTag(nil, fieldDataBody, protowire.BytesType)
	huge = protowire.AppendVarint(huge, 1<<40)
	for name, in := range map[string][]byte{
		"truncated body":   good[:len(good)-1],
		"truncated tag":    good[:len(good)-102],
		"length past end":  huge,
		"varint overflow":  {0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02},
		"field number 0":   {0x02, 0x00},
		"end group at top": {0x0c},
	} {
		var fd flight.FlightData
		err := Codec{Bodies: &BodyPool{}}.Unmarshal(split(in, []int{4}), &fd)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if perr := protobuf.Unmarshal(in, &flight.FlightData{}); perr == nil {
			t.Errorf("%s: proto accepts what Codec refuses (%v)", name, err)
		}
	}
}

// FuzzUnmarshal: Codec decodes exactly what proto decodes, and refuses
// exactly what proto refuses, at any buffer boundaries.
func FuzzUnmarshal(f *testing.F) {
	seed, _ := protobuf.Marshal(&flight.FlightData{
		FlightDescriptor: &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: []byte("cmd"), Path: []string{"a"}},
		DataHeader:       []byte("h"), AppMetadata: []byte("m"), DataBody: []byte("body")})
	f.Add(seed, uint8(3))
	f.Add([]byte{0x0a, 0x00, 0xc2, 0x3e, 0x01, 0x09}, uint8(1))
	f.Add([]byte{0x0b, 0x10, 0x01, 0x0c}, uint8(2)) // a group
	f.Fuzz(func(t *testing.T, in []byte, cut uint8) {
		var want flight.FlightData
		perr := protobuf.Unmarshal(in, &want)
		var got flight.FlightData
		// At most a few hundred pieces, so long inputs stay quick.
		err := Codec{Bodies: &BodyPool{}}.Unmarshal(split(in, []int{max(int(cut), len(in)/256)}), &got)
		if (perr == nil) != (err == nil) {
			t.Fatalf("proto error %v, Codec error %v", perr, err)
		}
		if err == nil && !sameFlightData(&got, &want) {
			t.Fatalf("decoded %v, proto decoded %v", &got, &want)
		}
	})
}

// TestZeroingBufferPool: a buffer is zero when it comes back from the pool
// (it was zeroed when it was put), sizes round up to powers of two and are
// reused, and a buffer too large to pool is still zeroed on Put.
func TestZeroingBufferPool(t *testing.T) {
	p := &ZeroingBufferPool{}
	for _, n := range []int{0, 1, 255, 256, 257, 16384, 16385, 1 << 20, 1<<20 + 1} {
		b := p.Get(n)
		if len(*b) != n {
			t.Fatalf("Get(%d): len %d", n, len(*b))
		}
		for i := range *b {
			(*b)[i] = 0xAB
		}
		keep := (*b)[:cap(*b)]
		p.Put(b)
		for i, v := range keep {
			if v != 0 {
				t.Fatalf("Get(%d): byte %d is %#x after Put, want 0", n, i, v)
			}
		}
		again := p.Get(n)
		for i, v := range *again {
			if v != 0 {
				t.Fatalf("Get(%d) again: byte %d is %#x", n, i, v)
			}
		}
		p.Put(again)
	}
}
