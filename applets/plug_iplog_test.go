package applets

import (
	"bytes"
	"encoding/hex"
	"net/netip"
	"testing"
)

func TestSourceIP(t *testing.T) {
	v4 := append(make([]byte, 12), 0x08, 0x00, 0x45)
	v4 = append(v4, make([]byte, 11)...)
	v4 = append(v4, 10, 0, 2, 15, 10, 0, 2, 2)
	if a, ok := sourceIP(v4); !ok || a != netip.MustParseAddr("10.0.2.15") {
		t.Fatalf("IPv4: %v %v", a, ok)
	}
	v6 := append(make([]byte, 12), 0x81, 0x00, 0x00, 0x0a, 0x86, 0xdd, 0x60)
	v6 = append(v6, make([]byte, 7)...)
	v6 = append(v6, netip.MustParseAddr("fd00::15").AsSlice()...)
	v6 = append(v6, make([]byte, 16)...)
	if a, ok := sourceIP(v6); !ok || a != netip.MustParseAddr("fd00::15") {
		t.Fatalf("tagged IPv6: %v %v", a, ok)
	}
	if _, ok := sourceIP(append(make([]byte, 12), 0x08, 0x06, 0, 1)); ok {
		t.Fatal("ARP read as IP")
	}
	var logged []string
	l := newIPLogger(nil, func(f string, a ...any) { logged = append(logged, f) }, "u")
	l.note(netip.MustParseAddr("10.0.2.15"))
	l.note(netip.MustParseAddr("10.0.2.15"))
	if len(logged) != 1 {
		t.Fatalf("logged %d times", len(logged))
	}
}

// FuzzSourceIP: vde_plug -L reads the source address of any frame a switch hands it. An
// address is found only in an IPv4 or IPv6 packet (behind at most one 802.1Q tag) long
// enough to hold its header, and it is the bytes where that header keeps its source.
func FuzzSourceIP(f *testing.F) {
	for _, h := range []string{
		"ffffffffffff020000000001" + "0800" + "45000054000040004001b6c50a00020f08080808",
		"ffffffffffff020000000001" + "8100000a" + "0800" + "45000054000040004001b6c50a00020f08080808",
		"3333000000fb020000000001" + "86dd" + "6000000000083afffe800000000000000000000000000001ff0200000000000000000000000000fb",
		"ffffffffffff020000000001" + "0806" + "0001080006040001",
		"ffffffffffff020000000001" + "0800" + "4500",
	} {
		b, _ := hex.DecodeString(h)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, fr []byte) {
		a, ok := sourceIP(fr)
		if !ok {
			if a.IsValid() {
				t.Fatalf("sourceIP(%x) = %v but not ok", fr, a)
			}
			return
		}
		off := 14
		if len(fr) >= 18 && fr[12] == 0x81 && fr[13] == 0x00 {
			off = 18
		}
		et := int(fr[off-2])<<8 | int(fr[off-1])
		var want []byte
		switch {
		case et == 0x0800 && len(fr) >= off+20 && fr[off]>>4 == 4:
			want = fr[off+12 : off+16]
		case et == 0x86dd && len(fr) >= off+40 && fr[off]>>4 == 6:
			want = fr[off+8 : off+24]
		default:
			t.Fatalf("sourceIP(%x) = %v from a frame that is not IPv4 or IPv6", fr, a)
		}
		if !bytes.Equal(a.AsSlice(), want) {
			t.Fatalf("sourceIP(%x) = %v, want %x", fr, a, want)
		}
	})
}
