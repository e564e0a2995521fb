package vxlan

import (
	"encoding/binary"
	"testing"
)

func TestHeader(t *testing.T) {
	h := NewHeader(42)
	if want := (Header{0x08, 0, 0, 0, 0, 0, 42, 0}); h != want {
		t.Fatalf("NewHeader(42) = % x, want % x", h, want)
	}
	if h := NewHeader(MaxVNI); h.VNI() != MaxVNI || h[7] != 0 {
		t.Fatalf("NewHeader(MaxVNI) = % x", h)
	}
	for _, tc := range []struct {
		desc string
		head Header
		n    int
		vni  uint32
		want error
	}{
		{"a frame of vni 42", Header{0x08, 0, 0, 0, 0, 0, 42, 0}, 8 + 60, 42, nil},
		{"the shortest frame", Header{0x08, 0, 0, 0, 0, 0, 42, 0}, 8 + 14, 42, nil},
		{"a header and 13 bytes", Header{0x08, 0, 0, 0, 0, 0, 42, 0}, 8 + 13, 42, ErrShort},
		{"a bare header (vxvde's goodbye)", Header{0x08, 0, 0, 0, 0, 0, 42, 0}, 8, 42, ErrShort},
		{"nothing", Header{}, 0, 42, ErrShort},
		{"I flag clear", Header{0x00, 0, 0, 0, 0, 0, 42, 0}, 60, 42, ErrFlags},
		{"GBP flag too", Header{0x88, 0, 0, 0, 0, 0, 42, 0}, 60, 42, ErrFlags},
		{"GPE next protocol bits", Header{0x0c, 0, 0, 3, 0, 0, 42, 0}, 60, 42, ErrFlags},
		{"reserved byte 1", Header{0x08, 1, 0, 0, 0, 0, 42, 0}, 60, 42, ErrFlags},
		{"last reserved byte", Header{0x08, 0, 0, 0, 0, 0, 42, 1}, 60, 42, ErrFlags},
		{"vni 43", Header{0x08, 0, 0, 0, 0, 0, 43, 0}, 60, 42, ErrVNI},
		{"vni 42 + 2^16", Header{0x08, 0, 0, 0, 1, 0, 42, 0}, 60, 42, ErrVNI},
	} {
		if got := tc.head.Check(tc.n, tc.vni); got != tc.want {
			t.Errorf("%s: Check(% x, %d, %d) = %v, want %v", tc.desc, tc.head, tc.n, tc.vni, got, tc.want)
		}
	}
}

// FuzzHeader holds Check against RFC 7348 read independently: a datagram is ours when it
// can hold an Ethernet header, its first word is exactly the I flag, and its second word
// is the VNI shifted by 8 over a zero byte.
func FuzzHeader(f *testing.F) {
	f.Add([]byte{0x08, 0, 0, 0, 0, 0, 1, 0}, 22, uint32(1))
	f.Add([]byte{0x08, 0, 0, 0, 0xff, 0xff, 0xff, 0}, 1522, uint32(MaxVNI))
	f.Add([]byte{0x88, 0, 0, 0, 0, 0, 1, 0}, 60, uint32(1))
	f.Fuzz(func(t *testing.T, b []byte, n int, vni uint32) {
		if len(b) < HeaderLen {
			return
		}
		vni &= MaxVNI
		h := Header(b[:HeaderLen])
		w0, w1 := binary.BigEndian.Uint32(b[0:4]), binary.BigEndian.Uint32(b[4:8])
		ok := n >= HeaderLen+14 && w0 == 0x08000000 && w1 == vni<<8
		if err := h.Check(n, vni); (err == nil) != ok {
			t.Fatalf("Check(% x, %d, %d) = %v, RFC 7348 says ok=%v", b[:8], n, vni, err, ok)
		}
		if nh := NewHeader(vni); nh.Check(n, vni) != nil && n >= HeaderLen+14 {
			t.Fatalf("NewHeader(%d) does not pass its own Check", vni)
		}
	})
}
