package vxlan

import (
	"bytes"
	"fmt"
	"net"
	"testing"

	"github.com/vde-go/vde/switchcore/wire"
)

// FuzzCableReceive sends any datagram from a peer's address to a running cable, then a
// good frame: the cable forwards the datagram only if it is a frame of its network, and
// always the good frame after it.
func FuzzCableReceive(f *testing.F) {
	h := NewHeader(42)
	f.Add(append(h[:], frame(0xff, 1, "seed")...))
	f.Add([]byte{0x08, 0, 0})
	f.Add(append([]byte{0x08, 0, 0, 0, 0, 0, 43, 0}, frame(0xff, 1, "vni")...))
	f.Add(append([]byte{0x0c, 0, 0, 0, 0, 0, 42, 0}, frame(0xff, 1, "flags")...))
	f.Add(h[:])
	f.Add(append(h[:], make([]byte, wire.MaxFrame)...))
	f.Add(append(h[:], make([]byte, wire.MaxFrame+1)...))

	port := testPort()
	c, err := ParseConfig(fmt.Sprintf("127.0.0.2/vni=42/local=127.0.0.1/port=%d", port), nil)
	if err != nil {
		f.Fatal(err)
	}
	cb, err := Open(c, func(string, ...any) {})
	if err != nil {
		f.Skipf("port %d: %v", port, err)
	}
	defer cb.Close()
	peer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)})
	if err != nil {
		f.Fatal(err)
	}
	defer peer.Close()
	dst := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: int(port)}
	bufs := make([][]byte, wire.BatchSize)
	for i := range bufs {
		bufs[i] = make([]byte, wire.MaxFrame+1)
	}
	sizes := make([]int, wire.BatchSize)
	good := append(h[:], frame(0xff, 1, "the good frame")...)

	f.Fuzz(func(t *testing.T, d []byte) {
		if len(d) > 65000 {
			return
		}
		if _, err := peer.WriteToUDP(d, dst); err != nil {
			t.Skip(err)
		}
		peer.WriteToUDP(good, dst)
		var got [][]byte
		for len(got) == 0 || !bytes.Equal(got[len(got)-1], good[8:]) {
			n, err := cb.ReadBatch(bufs, sizes)
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < n; i++ {
				if sizes[i] < wire.MinFrame || sizes[i] > wire.MaxFrame {
					t.Fatalf("a frame of %d bytes came through", sizes[i])
				}
				got = append(got, append([]byte(nil), bufs[i][:sizes[i]]...))
			}
		}
		var hd Header
		copy(hd[:], d)
		ok := len(d) >= HeaderLen && hd.Check(len(d), 42) == nil && len(d)-HeaderLen <= wire.MaxFrame
		switch {
		case ok && (len(got) != 2 || !bytes.Equal(got[0], d[8:])):
			t.Fatalf("a good datagram % x: got %d frames", d, len(got))
		case !ok && len(got) != 1:
			t.Fatalf("a bad datagram % x came through: % x", d, got[0])
		}
	})
}
