package applets

import (
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
