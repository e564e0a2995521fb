package slirp

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/vde-go/vde/slirp/dhcp"
	"github.com/vde-go/vde/switchcore/wire"
)

// These tests talk to a router over its slirp:// endpoint with hand-made frames: what a
// guest's kernel would send, byte for byte. Real guests (TAPs, udhcpc, QEMU) are in itest.

var (
	guestA = net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 0x56}
	guestB = net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 0x57}
)

type lan struct {
	t  *testing.T
	ep wire.Endpoint
}

func openLAN(t *testing.T, opts string) *lan {
	t.Helper()
	ep, err := wire.Open("slirp://"+opts, wire.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ep.Close() })
	return &lan{t: t, ep: ep}
}

func (l *lan) send(frames ...[]byte) {
	l.t.Helper()
	if _, err := l.ep.WriteBatch(frames); err != nil {
		l.t.Fatal(err)
	}
}

// recv returns the next frame that match accepts, or nil after wait.
func (l *lan) recv(wait time.Duration, match func([]byte) bool) []byte {
	l.t.Helper()
	d := l.ep.(interface{ SetReadDeadline(time.Time) error })
	deadline := time.Now().Add(wait)
	bufs := [][]byte{make([]byte, 9300)}
	sizes := []int{0}
	for {
		d.SetReadDeadline(deadline)
		n, err := l.ep.ReadBatch(bufs, sizes)
		if err != nil {
			return nil
		}
		if n == 1 && match(bufs[0][:sizes[0]]) {
			return append([]byte(nil), bufs[0][:sizes[0]]...)
		}
	}
}

func ethernet(dst, src net.HardwareAddr, etherType uint16, payload []byte) []byte {
	f := make([]byte, 14+len(payload))
	copy(f[0:6], dst)
	copy(f[6:12], src)
	binary.BigEndian.PutUint16(f[12:14], etherType)
	copy(f[14:], payload)
	return f
}

func arpWhoHas(src net.HardwareAddr, spa, tpa string) []byte {
	return arpFrame(arpRequest, src, netip.MustParseAddr(spa), nil, netip.MustParseAddr(tpa))
}

func isARPReplyFor(tpa string) func([]byte) bool {
	want := netip.MustParseAddr(tpa).As4()
	return func(f []byte) bool {
		return len(f) >= 42 && binary.BigEndian.Uint16(f[12:14]) == etherTypeARP &&
			binary.BigEndian.Uint16(f[20:22]) == arpReply && bytes.Equal(f[28:32], want[:])
	}
}

func TestARPAnswersOnlyOwnAddresses(t *testing.T) {
	l := openLAN(t, "")
	for _, tc := range []struct{ ip, mac string }{{"10.0.2.2", "52:55:0a:00:02:02"}, {"10.0.2.3", "52:55:0a:00:02:03"}} {
		l.send(arpWhoHas(guestA, "10.0.2.15", tc.ip))
		f := l.recv(2*time.Second, isARPReplyFor(tc.ip))
		if f == nil {
			t.Fatalf("no ARP reply for %s", tc.ip)
		}
		if got := net.HardwareAddr(f[22:28]).String(); got != tc.mac {
			t.Errorf("ARP %s is-at %s, want %s", tc.ip, got, tc.mac)
		}
		if !bytes.Equal(f[0:6], guestA) {
			t.Errorf("ARP reply to %s, want the asker %s", net.HardwareAddr(f[0:6]), guestA)
		}
	}
	l.send(arpWhoHas(guestA, "10.0.2.15", "10.0.2.77"))
	if f := l.recv(300*time.Millisecond, isARPReplyFor("10.0.2.77")); f != nil {
		t.Errorf("answered ARP for 10.0.2.77, which is nobody: % x", f)
	}
}

// dhcpFrame is a broadcast DHCP message from mac.
func dhcpFrame(t *testing.T, mac net.HardwareAddr, msgType byte, requested string) []byte {
	m := &dhcp.Message{Op: dhcp.OpRequest, HType: 1, HLen: 6, XID: 0x1234}
	copy(m.CHAddr[:], mac)
	m.Options = append(m.Options, dhcp.Option{Code: 53, Data: []byte{msgType}})
	if requested != "" {
		a := netip.MustParseAddr(requested).As4()
		m.Options = append(m.Options, dhcp.Option{Code: 50, Data: a[:]})
	}
	payload, err := m.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	pkt := buildUDP4(netip.IPv4Unspecified(), netip.MustParseAddr("255.255.255.255"), 68, 67, payload)
	return ethernet(broadcastMAC, mac, etherTypeIPv4, pkt)
}

// dhcpReplyTo matches a DHCP reply frame to mac and returns its message.
func dhcpReplyTo(mac net.HardwareAddr) func([]byte) bool {
	return func(f []byte) bool {
		return len(f) > 14+20+8 && bytes.Equal(f[0:6], mac) && binary.BigEndian.Uint16(f[12:14]) == etherTypeIPv4 &&
			header.UDP(f[34:]).SourcePort() == 67
	}
}

func TestDHCPGivesEachGuestItsLease(t *testing.T) {
	l := openLAN(t, "")
	for _, tc := range []struct {
		mac  net.HardwareAddr
		want string
	}{{guestA, "10.0.2.15"}, {guestB, "10.0.2.16"}} {
		l.send(dhcpFrame(t, tc.mac, 1, ""))
		f := l.recv(2*time.Second, dhcpReplyTo(tc.mac))
		if f == nil {
			t.Fatalf("no OFFER for %s", tc.mac)
		}
		if len(f) != 590 {
			t.Errorf("OFFER frame is %d bytes, want 590 (BOOTP 548)", len(f))
		}
		ip := header.IPv4(f[14:])
		if src, dst := addrOf(ip.SourceAddressSlice()), addrOf(ip.DestinationAddressSlice()); src.String() != "10.0.2.2" || dst.String() != "255.255.255.255" {
			t.Errorf("OFFER %s -> %s, want 10.0.2.2 -> 255.255.255.255", src, dst)
		}
		if !bytes.Equal(f[6:12], MACFor(netip.MustParseAddr("10.0.2.2"))) {
			t.Errorf("OFFER from MAC %s", net.HardwareAddr(f[6:12]))
		}
		msg, err := dhcp.Parse(f[42:])
		if err != nil {
			t.Fatal(err)
		}
		if msg.YIAddr.String() != tc.want {
			t.Errorf("%s offered %s, want %s", tc.mac, msg.YIAddr, tc.want)
		}
	}
	// A REQUEST for an address outside the pool gets a NAK.
	l.send(dhcpFrame(t, guestA, 3, "10.0.2.200"))
	f := l.recv(2*time.Second, dhcpReplyTo(guestA))
	if f == nil {
		t.Fatal("no answer to a REQUEST for 10.0.2.200")
	}
	msg, err := dhcp.Parse(f[42:])
	if err != nil {
		t.Fatal(err)
	}
	if typ, _ := msg.Option(53); !bytes.Equal(typ, []byte{6}) {
		t.Errorf("REQUEST for 10.0.2.200 answered with type %v, want NAK (6)", typ)
	}
}

// echoRequest is a ping from (mac, src) to dst.
func echoRequest(mac net.HardwareAddr, src, dst string, seq uint16) []byte {
	icmp := make([]byte, 8+16)
	icmp[0] = 8
	binary.BigEndian.PutUint16(icmp[4:6], 0x4242)
	binary.BigEndian.PutUint16(icmp[6:8], seq)
	copy(icmp[8:], "vde slirp test!!")
	binary.BigEndian.PutUint16(icmp[2:4], ^onesSum(icmp))
	pkt := buildIPv4(netip.MustParseAddr(src), netip.MustParseAddr(dst), 1, 64, icmp)
	return ethernet(MACFor(netip.MustParseAddr("10.0.2.2")), mac, etherTypeIPv4, pkt)
}

func onesSum(b []byte) uint16 {
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

func isEchoReply(seq uint16) func([]byte) bool {
	return func(f []byte) bool {
		return len(f) >= 42 && binary.BigEndian.Uint16(f[12:14]) == etherTypeIPv4 && f[23] == 1 && f[34] == 0 &&
			binary.BigEndian.Uint16(f[40:42]) == seq
	}
}

// Two guests ping the router at once: each reply goes to its own guest (the C slirp
// sends everything to the last MAC it saw).
func TestPingRepliesGoToEachGuest(t *testing.T) {
	l := openLAN(t, "")
	l.send(echoRequest(guestA, "10.0.2.15", "10.0.2.2", 1), echoRequest(guestB, "10.0.2.16", "10.0.2.2", 2))
	for _, tc := range []struct {
		seq uint16
		mac net.HardwareAddr
		ip  string
	}{{1, guestA, "10.0.2.15"}, {2, guestB, "10.0.2.16"}} {
		f := l.recv(2*time.Second, isEchoReply(tc.seq))
		if f == nil {
			t.Fatalf("no echo reply %d", tc.seq)
		}
		if !bytes.Equal(f[0:6], tc.mac) {
			t.Errorf("reply %d to %s, want %s", tc.seq, net.HardwareAddr(f[0:6]), tc.mac)
		}
		if dst := addrOf(header.IPv4(f[14:]).DestinationAddressSlice()).String(); dst != tc.ip {
			t.Errorf("reply %d to %s, want %s", tc.seq, dst, tc.ip)
		}
		if !header.IPv4(f[14:]).IsChecksumValid() || onesSum(f[34:]) != 0xffff {
			t.Errorf("reply %d: bad checksum", tc.seq)
		}
	}
	// Another guest's address is not the router's to answer.
	l.send(echoRequest(guestA, "10.0.2.15", "10.0.2.16", 3))
	if f := l.recv(300*time.Millisecond, isEchoReply(3)); f != nil {
		t.Errorf("the router answered a ping to another guest: % x", f)
	}
}

// Junk from one guest leaves the router serving.
func TestBadFramesAreDropped(t *testing.T) {
	l := openLAN(t, "")
	routerMAC := MACFor(netip.MustParseAddr("10.0.2.2"))
	junk := [][]byte{
		{1, 2, 3},
		ethernet(broadcastMAC, guestA, etherTypeARP, []byte{0, 1, 8, 0, 6}),
		ethernet(routerMAC, guestA, etherTypeIPv4, []byte{0x4f, 0, 0, 20}),
		ethernet(routerMAC, guestA, etherTypeIPv4, bytes.Repeat([]byte{0x45}, 60)),
		ethernet(broadcastMAC, guestA, etherTypeIPv4, buildUDP4(netip.IPv4Unspecified(), netip.MustParseAddr("255.255.255.255"), 68, 67, []byte("not bootp"))),
		ethernet(routerMAC, guestA, etherTypeIPv6, bytes.Repeat([]byte{0x60}, 50)),
	}
	l.send(junk...)
	l.send(arpWhoHas(guestA, "10.0.2.15", "10.0.2.2"))
	if l.recv(2*time.Second, isARPReplyFor("10.0.2.2")) == nil {
		t.Fatal("no ARP reply after junk frames")
	}
}

func isIPv6(f []byte) bool { return len(f) >= 14 && binary.BigEndian.Uint16(f[12:14]) == etherTypeIPv6 }

func routerSolicitation(mac net.HardwareAddr) []byte {
	rs := make([]byte, 16)
	rs[0] = icmpv6RouterSolicit
	rs[8], rs[9] = ndpOptSourceLL, 1
	copy(rs[10:16], mac)
	pkt := buildIPv6(netip.MustParseAddr("fe80::5054:ff:fe12:3456"), netip.MustParseAddr("ff02::2"), icmpv6ProtoNumber, 255, rs)
	return ethernet(net.HardwareAddr{0x33, 0x33, 0, 0, 0, 2}, mac, etherTypeIPv6, pkt)
}

func TestNoIPv6UnlessAsked(t *testing.T) {
	l := openLAN(t, "")
	l.send(routerSolicitation(guestA))
	if f := l.recv(500*time.Millisecond, isIPv6); f != nil {
		t.Fatalf("an IPv4-only router sent IPv6: % x", f)
	}
}

func TestRouterAdvertisement(t *testing.T) {
	l := openLAN(t, "/v4/v6")
	l.send(routerSolicitation(guestA))
	f := l.recv(2*time.Second, func(f []byte) bool { return isIPv6(f) && len(f) > 54 && f[54] == icmpv6RouterAdvert })
	if f == nil {
		t.Fatal("no router advertisement")
	}
	ip := header.IPv6(f[14:])
	if src := addrOf(ip.SourceAddressSlice()).String(); src != "fe80::2" {
		t.Errorf("RA from %s, want fe80::2 (link-local)", src)
	}
	body := f[54:]
	var prefix, dns string
	for opts := body[16:]; len(opts) >= 8 && opts[1] > 0 && int(opts[1])*8 <= len(opts); opts = opts[int(opts[1])*8:] {
		switch opts[0] {
		case ndpOptPrefix:
			prefix = netip.PrefixFrom(addrOf(opts[16:32]), int(opts[2])).String()
		case ndpOptRDNSS:
			dns = addrOf(opts[8:24]).String()
		}
	}
	if prefix != "fd00::/64" || dns != "fd00::3" {
		t.Errorf("RA prefix %q dns %q, want fd00::/64 and fd00::3", prefix, dns)
	}
}

// FuzzInput feeds arbitrary frames to a router: none may crash it.
func FuzzInput(f *testing.F) {
	f.Add(arpWhoHas(guestA, "10.0.2.15", "10.0.2.2"))
	f.Add(echoRequest(guestA, "10.0.2.15", "10.0.2.2", 1))
	f.Add(routerSolicitation(guestA))
	f.Add(ethernet(broadcastMAC, guestA, etherTypeIPv4, buildUDP4(netip.IPv4Unspecified(), netip.MustParseAddr("255.255.255.255"), 68, 67, []byte{1, 1, 6, 0})))
	// What a hostile guest sends: straight to the host's loopback and to 0.0.0.0.
	f.Add(echoRequest(guestA, "10.0.2.15", "127.0.0.1", 2))
	f.Add(udpFrame(netip.MustParseAddr("127.0.0.1"), 1234, 9, []byte("x")))
	f.Add(tcpSYN(netip.IPv4Unspecified(), 1234, 9))
	cfg := DefaultConfig()
	cfg.DHCP, cfg.IPv6 = true, true
	r, err := New(cfg)
	if err != nil {
		f.Fatal(err)
	}
	defer r.Close()
	r.out.Store(newPort(discard{}))
	f.Fuzz(func(t *testing.T, frame []byte) {
		r.input(frame)
	})
}

type discard struct{}

func (discard) ReadBatch([][]byte, []int) (int, error) { select {} }
func (discard) WriteBatch(f [][]byte) (int, error)     { return len(f), nil }
func (discard) Close() error                           { return nil }
