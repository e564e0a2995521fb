package packet

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vde-go/vde/switchcore/wire"
)

// inNetns runs f on a thread of its own in a new network namespace, which goes away
// with the thread (never handed back to the runtime). Sockets f opens stay in it.
func inNetns(t *testing.T, f func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: a network namespace and veths")
	}
	done := make(chan any, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		defer func() { done <- recover() }()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			panic(errNoNetns{err})
		}
		f() // t.Fatal in f ends this goroutine, and the test fails
	}()
	switch p := (<-done).(type) {
	case nil:
	case errNoNetns:
		t.Skipf("unshare(CLONE_NEWNET): %v", p.error)
	default:
		panic(p)
	}
}

type errNoNetns struct{ error }

// vethPair makes veth a<->b, both up, in the calling thread's namespace.
func vethPair(t *testing.T, a, b string) {
	t.Helper()
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: a}, PeerName: b}); err != nil {
		t.Fatalf("veth %s %s: %v", a, b, err)
	}
	for _, n := range []string{a, b} {
		l, err := netlink.LinkByName(n)
		if err == nil {
			err = netlink.LinkSetUp(l)
		}
		if err != nil {
			t.Fatalf("%s up: %v", n, err)
		}
	}
	// The kernel turns a veth's carrier on from its link-watch work, at most once a
	// second: until then the queue discards what is sent. Alone a test never saw it; after
	// the package's earlier veths, the first frames of TestMergedSegments were lost.
	deadline := time.Now().Add(5 * time.Second)
	for _, n := range []string{a, b} {
		for {
			l, err := netlink.LinkByName(n)
			if err == nil && l.Attrs().OperState == netlink.OperUp {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no carrier after 5 s: %v", n, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// collector reads an endpoint until it closes and hands each frame over a channel.
func collector(e *Endpoint) <-chan []byte {
	ch := make(chan []byte, 256)
	go func() {
		defer close(ch)
		bufs := make([][]byte, 8)
		for i := range bufs {
			bufs[i] = make([]byte, wire.MaxFrame+1)
		}
		sizes := make([]int, len(bufs))
		for {
			n, err := e.ReadBatch(bufs, sizes)
			if err != nil {
				return
			}
			for i := range n {
				ch <- append([]byte(nil), bufs[i][:sizes[i]]...)
			}
		}
	}()
	return ch
}

// expect waits for a frame equal to want, skipping others the kernel sends on its own
// (IPv6 router solicitations, MLD); it fails after 5 s.
func expect(t *testing.T, ch <-chan []byte, want []byte, what string) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case f := <-ch:
			if bytes.Equal(f, want) {
				return
			}
		case <-deadline:
			t.Fatalf("%s: not received", what)
		}
	}
}

func frame(dst, src net.HardwareAddr, etype uint16, payload []byte) []byte {
	f := append(append(append([]byte(nil), dst...), src...), 0, 0)
	binary.BigEndian.PutUint16(f[12:], etype)
	return append(f, payload...)
}

func promisc(t *testing.T, name string) bool {
	t.Helper()
	l, err := netlink.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return l.Attrs().Promisc == 1 || l.Attrs().RawFlags&unix.IFF_PROMISC != 0
}

// TestVethBothWays: two endpoints on the ends of a veth pair see each other's frames,
// byte for byte (an 802.1Q tag the kernel took out is put back), and never their own;
// promiscuous mode is on while open and off after Close. b drops outgoing frames with
// the socket filter, as on kernels before PACKET_IGNORE_OUTGOING.
func TestVethBothWays(t *testing.T) {
	inNetns(t, func() {
		vethPair(t, "pa", "pb")
		a, err := Open(Config{Interface: "pa"})
		if err != nil {
			t.Fatal(err)
		}
		b, err := Open(Config{Interface: "pb", rxFilter: true})
		if err != nil {
			t.Fatal(err)
		}
		if !promisc(t, "pa") || !promisc(t, "pb") {
			t.Error("not promiscuous while open")
		}
		ra, rb := collector(a), collector(b)
		macA, macB := net.HardwareAddr{2, 0, 0, 0, 0, 0xa}, net.HardwareAddr{2, 0, 0, 0, 0, 0xb}
		bcast := net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
		big := bytes.Repeat([]byte{0x5a}, 1500)
		fromA := [][]byte{
			frame(macB, macA, 0x88b5, []byte("unicast to a MAC pb does not have")),
			frame(bcast, macA, 0x88b5, []byte("broadcast")),
			frame(macB, macA, 0x88b5, big),
			append(frame(macB, macA, 0x8100, []byte{0x20, 0x05, 0x88, 0xb5}), "tagged, VID 5, PCP 1"...),
		}
		fromB := [][]byte{frame(macA, macB, 0x88b5, []byte("back")), frame(bcast, macB, 0x88b5, []byte("back broadcast"))}
		if n, err := a.WriteBatch(fromA); n != len(fromA) || err != nil {
			t.Fatalf("a.WriteBatch = %d, %v", n, err)
		}
		if n, err := b.WriteBatch(fromB); n != len(fromB) || err != nil {
			t.Fatalf("b.WriteBatch = %d, %v", n, err)
		}
		for i, f := range fromA {
			expect(t, rb, f, "frame "+string(rune('0'+i))+" from a at b")
		}
		for i, f := range fromB {
			expect(t, ra, f, "frame "+string(rune('0'+i))+" from b at a")
		}
		// Too long for the MTU: dropped and counted, the rest of the batch goes on.
		tooBig := frame(macB, macA, 0x88b5, bytes.Repeat([]byte{1}, 1600))
		after := frame(macB, macA, 0x88b5, []byte("after the big one"))
		if n, err := a.WriteBatch([][]byte{tooBig, after}); n != 1 || err != nil || a.Dropped() != 1 {
			t.Errorf("a.WriteBatch(too big, small) = %d, %v, dropped %d; want 1, nil, 1", n, err, a.Dropped())
		}
		expect(t, rb, after, "the frame after a dropped one")
		a.Close()
		b.Close()
		for f := range ra {
			if bytes.Equal(f[6:12], macA) {
				t.Errorf("a read its own frame %x", f)
			}
		}
		for f := range rb {
			if bytes.Equal(f[6:12], macB) {
				t.Errorf("b read its own frame %x", f)
			}
		}
		if promisc(t, "pa") || promisc(t, "pb") {
			t.Error("still promiscuous after Close")
		}
	})
}

// TestChecksumsCompleted: a UDP datagram the host sends out of a veth reaches the packet
// socket on its peer with its checksum left to the device (the virtio_net_hdr says so);
// the frame read has it computed.
func TestChecksumsCompleted(t *testing.T) {
	inNetns(t, func() {
		vethPair(t, "ca", "cb")
		l, _ := netlink.LinkByName("cb")
		addr, _ := netlink.ParseAddr("10.9.0.1/24")
		peerMAC := net.HardwareAddr{2, 0, 0, 0, 0, 0xc}
		if err := netlink.AddrAdd(l, addr); err != nil {
			t.Fatal(err)
		}
		if err := netlink.NeighAdd(&netlink.Neigh{LinkIndex: l.Attrs().Index, State: netlink.NUD_PERMANENT,
			IP: net.IPv4(10, 9, 0, 2), HardwareAddr: peerMAC}); err != nil {
			t.Fatal(err)
		}
		a, err := Open(Config{Interface: "ca"})
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		ra := collector(a)
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		payload := bytes.Repeat([]byte("checksum "), 100)
		if err := unix.Sendto(fd, payload, 0, &unix.SockaddrInet4{Port: 9999, Addr: [4]byte{10, 9, 0, 2}}); err != nil {
			t.Fatal(err)
		}
		deadline := time.After(5 * time.Second)
		for {
			select {
			case f := <-ra:
				if len(f) < 42 || binary.BigEndian.Uint16(f[12:]) != 0x0800 || f[23] != unix.IPPROTO_UDP {
					continue
				}
				if !bytes.Equal(f[42:], payload) {
					t.Fatalf("payload differs: %x", f[42:])
				}
				ip, udp := f[14:34], f[34:]
				if binary.BigEndian.Uint16(udp[6:]) == 0 {
					t.Fatal("no UDP checksum")
				}
				pseudo := append(append([]byte(nil), ip[12:20]...), 0, unix.IPPROTO_UDP, 0, 0)
				binary.BigEndian.PutUint16(pseudo[10:], uint16(len(udp)))
				if s := sum16(append(pseudo, udp...)); s != 0xffff {
					t.Fatalf("UDP checksum does not verify (sum %#x): %x", s, f)
				}
				return
			case <-deadline:
				t.Fatal("the datagram did not come")
			}
		}
	})
}

// sum16 is the ones' complement sum of b (0xffff for a packet whose checksum is right).
func sum16(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

// TestOpenErrors: no such interface; a TUN is not Ethernet; a link taken away while
// attached ends the reader with ErrGone, and one that goes down and up again does not.
func TestOpenErrors(t *testing.T) {
	inNetns(t, func() {
		if _, err := Open(Config{Interface: "nosuch0"}); !errors.Is(err, unix.ENODEV) {
			t.Errorf("Open(nosuch0) = %v, want ENODEV", err)
		}
		if err := netlink.LinkAdd(&netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Name: "tn0"}, Mode: netlink.TUNTAP_MODE_TUN,
			Flags: netlink.TUNTAP_NO_PI | netlink.TUNTAP_DEFAULTS}); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(Config{Interface: "tn0"}); !errors.Is(err, ErrNotEthernet) {
			t.Errorf("Open(tun) = %v, want ErrNotEthernet", err)
		}
		vethPair(t, "ga", "gb")
		a, err := Open(Config{Interface: "ga"})
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		b, err := Open(Config{Interface: "gb"})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		ra := collector(a)
		ga, _ := netlink.LinkByName("ga")
		netlink.LinkSetDown(ga)
		time.Sleep(50 * time.Millisecond)
		netlink.LinkSetUp(ga)
		f := frame(net.HardwareAddr{2, 0, 0, 0, 0, 1}, net.HardwareAddr{2, 0, 0, 0, 0, 2}, 0x88b5, []byte("after down and up"))
		deadline := time.Now().Add(5 * time.Second)
		got := false
		for !got && time.Now().Before(deadline) {
			b.WriteBatch([][]byte{f}) // until the veth carries again
			select {
			case g := <-ra:
				got = bytes.Equal(g, f)
			case <-time.After(100 * time.Millisecond):
			}
		}
		if !got {
			t.Fatal("no frame after the link went down and up")
		}
		netlink.LinkDel(ga)
		select {
		case _, open := <-ra:
			for open {
				_, open = <-ra
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the reader did not end when the interface went away")
		}
		bufs, sizes := [][]byte{make([]byte, 100)}, []int{0}
		if _, err := a.ReadBatch(bufs, sizes); !errors.Is(err, ErrGone) {
			t.Errorf("ReadBatch after the interface went away: %v, want ErrGone", err)
		}
	})
}

// nextFrom is the next frame from src, skipping the kernel's own (IPv6 router
// solicitations, MLD reports).
func nextFrom(t *testing.T, ch <-chan []byte, src []byte) []byte {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case g := <-ch:
			if bytes.Equal(g[6:12], src) {
				return g
			}
		case <-deadline:
			t.Fatal("no frame came")
			return nil
		}
	}
}

// tcpSegments is a bulk TCP send as a NIC puts it on the wire: count IPv4 segments of
// mss bytes, consecutive sequence numbers and IP IDs, DF, ACK only, checksums right.
func tcpSegments(dst, src net.HardwareAddr, count, mss int) [][]byte {
	var out [][]byte
	for k := range count {
		ip := make([]byte, 20+20+mss)
		ip[0], ip[8], ip[9] = 0x45, 64, unix.IPPROTO_TCP
		binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)))
		binary.BigEndian.PutUint16(ip[4:], uint16(100+k))
		ip[6] = 0x40
		copy(ip[12:], []byte{10, 9, 1, 1, 10, 9, 1, 2})
		binary.BigEndian.PutUint16(ip[10:], ^sum16(ip[:20]))
		tcp := ip[20:]
		binary.BigEndian.PutUint16(tcp[0:], 40000)
		binary.BigEndian.PutUint16(tcp[2:], 5001)
		binary.BigEndian.PutUint32(tcp[4:], uint32(1000+k*mss))
		binary.BigEndian.PutUint32(tcp[8:], 777)
		tcp[12], tcp[13] = 5<<4, 0x10
		binary.BigEndian.PutUint16(tcp[14:], 502)
		for i := range mss {
			tcp[20+i] = byte(k + i)
		}
		pseudo := append(append([]byte(nil), ip[12:20]...), 0, unix.IPPROTO_TCP, 0, 0)
		binary.BigEndian.PutUint16(pseudo[10:], uint16(len(tcp)))
		binary.BigEndian.PutUint16(tcp[16:], ^sum16(append(pseudo, tcp...)))
		out = append(out, frame(dst, src, 0x0800, ip))
	}
	return out
}

// TestMergedSegments: consecutive TCP segments written to one end of a veth go as one
// GSO packet, and the packet socket on the other end cuts it into the very same frames.
func TestMergedSegments(t *testing.T) {
	inNetns(t, func() {
		vethPair(t, "ma", "mb")
		a, err := Open(Config{Interface: "ma"})
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		b, err := Open(Config{Interface: "mb"})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		rb := collector(b)
		segs := tcpSegments(net.HardwareAddr{2, 0, 0, 0, 0, 0xb}, net.HardwareAddr{2, 0, 0, 0, 0, 0xa}, 20, 1448)
		other := frame(net.HardwareAddr{2, 0, 0, 0, 0, 0xb}, net.HardwareAddr{2, 0, 0, 0, 0, 0xa}, 0x88b5, []byte("between"))
		batch := append(append(append([][]byte{}, segs[:10]...), other), segs[10:]...)
		if n, err := a.WriteBatch(batch); n != len(batch) || err != nil {
			t.Fatalf("WriteBatch = %d, %v", n, err)
		}
		if a.Merged() != uint64(len(segs)) {
			t.Errorf("%d frames merged, want %d", a.Merged(), len(segs))
		}
		for i, f := range batch {
			g := nextFrom(t, rb, f[6:12])
			if !bytes.Equal(g, f) {
				t.Fatalf("frame %d differs:\n got %x\nwant %x", i, g, f)
			}
		}
		// Segments longer than the link's MTU are not merged (the kernel would send them
		// cut at their size); alone, they are refused and counted.
		ma, _ := netlink.LinkByName("ma")
		if err := netlink.LinkSetMTU(ma, 1000); err != nil {
			t.Fatal(err)
		}
		small, err := Open(Config{Interface: "ma"})
		if err != nil {
			t.Fatal(err)
		}
		defer small.Close()
		if n, err := small.WriteBatch(segs); n != 0 || err != nil || small.Merged() != 0 || small.Dropped() != uint64(len(segs)) {
			t.Errorf("over the MTU: WriteBatch = %d, %v, merged %d, dropped %d; want 0, nil, 0, %d", n, err, small.Merged(), small.Dropped(), len(segs))
		}
	})
}
