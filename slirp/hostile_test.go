package slirp

import (
	"encoding/binary"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// These tests drive a router in process (frames straight into Router.input, frames out
// into a channel) the way a hostile guest would, and check that the bounds of limits.go
// hold: tables, host sockets, log lines.

// capture is a LAN endpoint that keeps what the router sends.
type capture struct {
	frames chan []byte
	closed chan struct{}
	once   sync.Once
}

func newCapture() *capture {
	return &capture{frames: make(chan []byte, 65536), closed: make(chan struct{})}
}

func (c *capture) ReadBatch([][]byte, []int) (int, error) { <-c.closed; return 0, net.ErrClosed }
func (c *capture) WriteBatch(fs [][]byte) (int, error) {
	for _, f := range fs {
		select {
		case c.frames <- append([]byte(nil), f...):
		default: // a full channel loses frames, as a LAN would
		}
	}
	return len(fs), nil
}
func (c *capture) Close() error { c.once.Do(func() { close(c.closed) }); return nil }

// next returns the next frame match accepts, or nil after wait.
func (c *capture) next(wait time.Duration, match func([]byte) bool) []byte {
	deadline := time.After(wait)
	for {
		select {
		case f := <-c.frames:
			if match(f) {
				return f
			}
		case <-deadline:
			return nil
		}
	}
}

// hostileRouter is a router on a capture, with logs counted.
type hostileRouter struct {
	*Router
	lan  *capture
	logs atomic.Int64
}

func newHostileRouter(t *testing.T, edit func(*Config)) *hostileRouter {
	t.Helper()
	h := &hostileRouter{lan: newCapture()}
	cfg := DefaultConfig()
	cfg.DHCP = true
	cfg.ResolvConf = filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(cfg.ResolvConf, []byte("nameserver 127.0.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg.Logf = func(format string, args ...any) { h.logs.Add(1); t.Logf(format, args...) }
	if edit != nil {
		edit(&cfg)
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.Router = r
	r.out.Store(newPort(h.lan))
	t.Cleanup(func() { r.Close(); h.lan.Close() })
	return h
}

var (
	routerIP = netip.MustParseAddr("10.0.2.2")
	dnsIP    = netip.MustParseAddr("10.0.2.3")
	guestIP  = netip.MustParseAddr("10.0.2.15")
)

// udpFrame is a UDP datagram from guest A (10.0.2.15:sport) to dst:dport.
func udpFrame(dst netip.Addr, sport, dport uint16, data []byte) []byte {
	return ethernet(MACFor(routerIP), guestA, etherTypeIPv4, buildUDP4(guestIP, dst, sport, dport, data))
}

// tcpSYN is a TCP SYN from guest A (10.0.2.15:sport) to dst:dport.
func tcpSYN(dst netip.Addr, sport, dport uint16) []byte {
	seg := make([]byte, header.TCPMinimumSize)
	tcp := header.TCP(seg)
	tcp.Encode(&header.TCPFields{SrcPort: sport, DstPort: dport, SeqNum: 1000, DataOffset: header.TCPMinimumSize, Flags: header.TCPFlagSyn, WindowSize: 65535})
	xsum := header.PseudoHeaderChecksum(header.TCPProtocolNumber, tcpAddr(guestIP), tcpAddr(dst), uint16(len(seg)))
	tcp.SetChecksum(^onesSumFrom(seg, xsum))
	return ethernet(MACFor(routerIP), guestA, etherTypeIPv4, buildIPv4(guestIP, dst, uint8(header.TCPProtocolNumber), 64, seg))
}

func onesSumFrom(b []byte, initial uint16) uint16 {
	s := uint32(initial) + uint32(onesSum(b))
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

// isUDPTo matches a UDP frame to guest A's port.
func isUDPTo(port uint16) func([]byte) bool {
	return func(f []byte) bool {
		return len(f) >= 42 && binary.BigEndian.Uint16(f[12:14]) == etherTypeIPv4 && f[23] == 17 &&
			header.UDP(f[34:]).DestinationPort() == port
	}
}

// isTCPTo matches a TCP frame to guest A's port; flags is what it must have set.
func isTCPTo(port uint16, flags header.TCPFlags) func([]byte) bool {
	return func(f []byte) bool {
		return len(f) >= 54 && binary.BigEndian.Uint16(f[12:14]) == etherTypeIPv4 && f[23] == 6 &&
			header.TCP(f[34:]).DestinationPort() == port && header.TCP(f[34:]).Flags()&flags == flags
	}
}

// openFDs counts this process's open descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(ents)
}

// waitFor polls cond for up to wait.
func waitFor(wait time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// udpSink counts datagrams on a loopback port.
type udpSink struct {
	pc   net.PacketConn
	port uint16
	n    atomic.Int64
}

func newUDPSink(t *testing.T, answer bool) *udpSink {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &udpSink{pc: pc, port: uint16(pc.LocalAddr().(*net.UDPAddr).Port)}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			s.n.Add(1)
			if answer && n >= 12 {
				buf[2] |= 0x80 // a DNS response, QR set; or an echo
				pc.WriteTo(buf[:n], from)
			}
		}
	}()
	return s
}

// TestUDPFlowFlood: datagrams from 5,000 source ports to the router address open at most
// the flow bound of host sockets; the process's descriptors stay under the bound; the
// refusals make a few log lines, not one per datagram; idle flows expire and give their
// descriptors back.
func TestUDPFlowFlood(t *testing.T) {
	old := udpIdle
	// Long enough that the first flows of the flood are still open when the last ones
	// open on a loaded machine (with 2 s, and with 5 s under make test's parallel
	// packages, they expired while a slow flood went on, and the 1000 were never open
	// together), short enough to watch them expire below.
	udpIdle = 15 * time.Second
	t.Cleanup(func() { udpIdle = old })
	h := newHostileRouter(t, func(c *Config) {})
	sink := newUDPSink(t, false)
	const limit = 1000
	h.flowLimit = limit
	base := openFDs(t)
	heap0 := heapInUse()
	const flood = 5000
	for i := range flood {
		h.input(udpFrame(routerIP, uint16(10000+i), sink.port, []byte("flood")))
	}
	// Every flow allowed dials its host socket (the sink's socket buffer may lose some of
	// the datagrams themselves).
	if !waitFor(10*time.Second, func() bool { return openFDs(t) >= base+limit }) {
		t.Fatalf("%d descriptors, %d before: the %d flows allowed did not open", openFDs(t), base, limit)
	}
	st := h.Stats()
	fds := openFDs(t)
	perFlow := (heapInUse() - heap0) / limit
	t.Logf("RELIABILITY: slirp unit: UDP flood of %d source ports, flow bound %d: %d flows open, %d refused, descriptors %d -> %d, heap %d KiB a flow, %d log lines",
		flood, limit, st.Flows, st.FlowsRefused, base, fds, perFlow>>10, h.logs.Load())
	if perFlow > 64<<10 {
		t.Errorf("%d KiB of heap a waiting flow", perFlow>>10)
	}
	if st.Flows > limit || st.FlowsRefused < flood-limit {
		t.Errorf("flows %d refused %d: want at most %d open and the other %d refused", st.Flows, st.FlowsRefused, limit, flood-limit)
	}
	if fds > base+limit+16 {
		t.Errorf("%d descriptors open, %d before the flood: more than the %d flows allow", fds, base, limit)
	}
	if n := h.logs.Load(); n > 5 {
		t.Errorf("%d log lines for the flood, want a few", n)
	}
	if sink.n.Load() > limit || sink.n.Load() == 0 {
		t.Errorf("the sink got %d datagrams from %d flows", sink.n.Load(), limit)
	}
	// Idle flows expire.
	if !waitFor(30*time.Second, func() bool { return h.Stats().Flows == 0 }) {
		t.Fatalf("%d flows still open after their idle time", h.Stats().Flows)
	}
	if !waitFor(5*time.Second, func() bool { return openFDs(t) <= base+4 }) {
		t.Errorf("%d descriptors after the flows expired, %d before", openFDs(t), base)
	}
	// And a new flow is served again.
	h.input(udpFrame(routerIP, 9999, sink.port, []byte("after")))
	before := sink.n.Load()
	if !waitFor(5*time.Second, func() bool { return sink.n.Load() > before }) {
		t.Fatal("no flow after the flood expired")
	}
}

// TestFlowBudgetUnderRlimit: the flow bound leaves a margin under RLIMIT_NOFILE.
func TestFlowBudgetUnderRlimit(t *testing.T) {
	h := newHostileRouter(t, nil)
	b := h.Stats().FlowLimit
	if b > maxFlows || b < 16 {
		t.Fatalf("flow limit %d, want 16..%d", b, maxFlows)
	}
	t.Logf("RELIABILITY: slirp unit: flow bound %d here (maxFlows %d, reserve %d + DNS %d + TFTP %d under RLIMIT_NOFILE)", b, maxFlows, fdReserve, maxDNSFlows, maxTFTP)
}

// TestDNSFloodUnanswered: queries from 2,000 ports to a nameserver that never answers
// hold at most maxDNSFlows host sockets; the rest are refused; the flows end after their
// idle time.
func TestDNSFloodUnanswered(t *testing.T) {
	old := dnsUDPIdle
	dnsUDPIdle = time.Second
	t.Cleanup(func() { dnsUDPIdle = old })
	h := newHostileRouter(t, nil)
	ns := newUDPSink(t, false)
	h.dns.port = itoa(ns.port)
	base := openFDs(t)
	const flood = 2000
	for i := range flood {
		h.input(udpFrame(dnsIP, uint16(20000+i), 53, query("flood", "example")))
	}
	waitFor(5*time.Second, func() bool { return ns.n.Load() >= maxDNSFlows })
	st := h.Stats()
	fds := openFDs(t)
	t.Logf("RELIABILITY: slirp unit: %d DNS queries from as many ports, nameserver silent: %d DNS flows open (bound %d), %d refused, %d reached the nameserver, descriptors %d -> %d, %d log lines",
		flood, st.DNSFlows, maxDNSFlows, st.DNSRefused, ns.n.Load(), base, fds, h.logs.Load())
	if st.DNSFlows > maxDNSFlows || st.DNSRefused < flood-maxDNSFlows || ns.n.Load() > maxDNSFlows {
		t.Errorf("DNS flows %d refused %d forwarded %d: want at most %d", st.DNSFlows, st.DNSRefused, ns.n.Load(), maxDNSFlows)
	}
	if fds > base+maxDNSFlows+16 {
		t.Errorf("%d descriptors, %d before", fds, base)
	}
	if st.Flows != 0 {
		t.Errorf("DNS proxy flows took %d of the NAT flows", st.Flows)
	}
	if !waitFor(10*time.Second, func() bool { return h.Stats().DNSFlows == 0 }) {
		t.Fatalf("%d DNS flows open after their idle time", h.Stats().DNSFlows)
	}
}

// TestDNSFloodAnswered: a flood of queries to an answering nameserver passes at most the
// rate bound (burst + rate × time taken); each flow ends with its answer; afterwards a
// query is answered at once.
func TestDNSFloodAnswered(t *testing.T) {
	h := newHostileRouter(t, func(c *Config) { c.NoHostLoopback = true })
	ns := newUDPSink(t, true)
	h.dns.port = itoa(ns.port)
	const flood = 3000
	start := time.Now()
	for i := range flood {
		h.input(udpFrame(dnsIP, uint16(20000+i%5000), 53, query("flood", "example")))
		if i%50 == 49 { // let the flows finish, so that the rate and not the flow bound drops
			waitFor(time.Second, func() bool { return h.Stats().DNSFlows == 0 })
		}
	}
	elapsed := time.Since(start)
	waitFor(5*time.Second, func() bool { return h.Stats().DNSFlows == 0 })
	st := h.Stats()
	allowed := int64(dnsBurst + dnsRate*elapsed.Seconds() + 1)
	t.Logf("RELIABILITY: slirp unit: %d DNS queries in %v to an answering nameserver: %d forwarded (rate bound %d/s burst %d allows %d), %d dropped by the rate, %d refused over %d flows, %d log lines",
		flood, elapsed.Round(time.Millisecond), ns.n.Load(), dnsRate, dnsBurst, allowed, st.DNSRateDropped, st.DNSRefused, maxDNSFlows, h.logs.Load())
	if ns.n.Load() > allowed {
		t.Errorf("%d queries forwarded, the rate allows %d", ns.n.Load(), allowed)
	}
	if st.DNSFlows != 0 {
		t.Errorf("%d DNS flows still open after their answers", st.DNSFlows)
	}
	if h.logs.Load() > 10 {
		t.Errorf("%d log lines for the flood", h.logs.Load())
	}
	// The bucket refills: a guest asking afterwards is answered (the nameserver on
	// 127.0.0.1 is the router's own service, allowed under NoHostLoopback).
	time.Sleep(time.Second)
	h.input(udpFrame(dnsIP, 33333, 53, query("after", "example")))
	if h.lan.next(5*time.Second, isUDPTo(33333)) == nil {
		t.Fatal("no answer to a query after the flood")
	}
}

// TestNoHostLoopback: with NoHostLoopback, nothing a guest sends to the router address,
// 127.0.0.0/8 or 0.0.0.0 reaches a listener on the host's loopback, and a TCP SYN to the
// router address is reset. Without it, the router address reaches it.
func TestNoHostLoopback(t *testing.T) {
	sink := newUDPSink(t, true)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	tport := uint16(ln.Addr().(*net.TCPAddr).Port)

	h := newHostileRouter(t, func(c *Config) { c.NoHostLoopback = true })
	for i, dst := range []netip.Addr{routerIP, netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.1.2.3"), netip.IPv4Unspecified()} {
		sport := uint16(40000 + i)
		h.input(udpFrame(dst, sport, sink.port, []byte("hello")))
		h.input(tcpSYN(dst, sport, tport))
		if dst != routerIP {
			continue // the netstack drops these as martians; NAT refuses them too
		}
		if h.lan.next(2*time.Second, isTCPTo(sport, header.TCPFlagRst)) == nil {
			t.Errorf("SYN to %v:%d not reset", dst, tport)
		}
	}
	h.input(echoRequest(guestA, "10.0.2.15", "127.0.0.1", 7))
	if f := h.lan.next(500*time.Millisecond, isEchoReply(7)); f != nil {
		t.Errorf("a ping to 127.0.0.1 was answered")
	}
	time.Sleep(300 * time.Millisecond)
	if sink.n.Load() != 0 || accepted.Load() != 0 {
		t.Fatalf("with NoHostLoopback, loopback listeners got %d datagrams and %d connections", sink.n.Load(), accepted.Load())
	}
	t.Logf("loopback refusals: %d", h.Stats().LoopbackRefused)
	if h.Stats().LoopbackRefused == 0 {
		t.Error("no loopback refusal counted")
	}

	open := newHostileRouter(t, nil)
	open.input(udpFrame(routerIP, 41000, sink.port, []byte("hello, loopback!")))
	if open.lan.next(3*time.Second, isUDPTo(41000)) == nil || sink.n.Load() == 0 {
		t.Fatal("without NoHostLoopback, the router address does not reach the host's loopback")
	}
	open.input(tcpSYN(routerIP, 41001, tport))
	if open.lan.next(3*time.Second, isTCPTo(41001, header.TCPFlagSyn|header.TCPFlagAck)) == nil {
		t.Fatal("without NoHostLoopback, no SYN-ACK from the router address")
	}
}

func TestHostLoopback(t *testing.T) {
	for _, tc := range []struct {
		a    string
		want bool
	}{
		{"127.0.0.1", true}, {"127.255.0.9", true}, {"::1", true}, {"::ffff:127.0.0.1", true},
		{"0.0.0.0", true}, {"::", true}, {"10.0.2.2", false}, {"8.8.8.8", false}, {"fd00::2", false},
	} {
		if got := hostLoopback(netip.MustParseAddr(tc.a)); got != tc.want {
			t.Errorf("hostLoopback(%s) = %v, want %v", tc.a, got, tc.want)
		}
	}
}

// TestLogLimiter: one line per kind per interval, and the count of what was held back.
func TestLogLimiter(t *testing.T) {
	var lines []string
	l := newLogLimiter(func(format string, args ...any) { lines = append(lines, format) })
	for range 1000 {
		l.log("a", "a")
		l.log("b", "b")
	}
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2: %q", len(lines), lines)
	}
	l.last["a"] = time.Now().Add(-logEvery)
	l.log("a", "a")
	if len(lines) != 3 || lines[2] != "a (and 999 more like it since the last report)" {
		t.Fatalf("lines %q", lines)
	}
}

func TestTokenBucket(t *testing.T) {
	b := newTokenBucket(10, 20)
	now := time.Unix(1e9, 0)
	n := 0
	for range 100 {
		if b.take(now) {
			n++
		}
	}
	if n != 20 {
		t.Fatalf("burst: %d, want 20", n)
	}
	now = now.Add(time.Second)
	n = 0
	for range 100 {
		if b.take(now) {
			n++
		}
	}
	if n != 10 {
		t.Fatalf("after a second: %d, want 10", n)
	}
}

// heapInUse is the heap in use after a collection, plus goroutine stacks.
func heapInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse + m.StackInuse)
}

func itoa(p uint16) string {
	return netip.AddrPortFrom(netip.IPv4Unspecified(), p).String()[len("0.0.0.0:"):]
}

// TestUDPForwardPeers: a -U forward keeps a flow for at most maxForwardPeers host peers;
// more are dropped and counted, and waiting flows hold no buffers.
func TestUDPForwardPeers(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := uint16(pc.LocalAddr().(*net.UDPAddr).Port)
	pc.Close()
	h := newHostileRouter(t, nil)
	fwd := Forward{UDP: true, Bind: netip.MustParseAddr("127.0.0.1"), HostPort: port, Guest: guestIP, GuestPort: 9}
	if err := h.AddForward(fwd); err != nil {
		t.Skipf("port %d taken meanwhile: %v", port, err)
	}
	heap0 := heapInUse()
	const peers = maxForwardPeers + 200
	to := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: int(port)}
	for i := range peers { // each from a port of its own, kept till the end
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.WriteTo([]byte("peer"), to)
		if i%64 == 63 {
			time.Sleep(10 * time.Millisecond) // the forward's socket buffer is small
		}
	}
	// The kernel may lose a few datagrams to the forward's full socket buffer.
	if !waitFor(10*time.Second, func() bool { return h.Stats().PeersRefused >= (peers-maxForwardPeers)*9/10 }) {
		t.Fatalf("%d peers refused, want %d", h.Stats().PeersRefused, peers-maxForwardPeers)
	}
	time.Sleep(200 * time.Millisecond)
	perPeer := (heapInUse() - heap0) / maxForwardPeers
	t.Logf("RELIABILITY: slirp unit: %d peers of a -U forward: %d refused (bound %d), heap %d KiB a peer flow, %d log lines",
		peers, h.Stats().PeersRefused, maxForwardPeers, perPeer>>10, h.logs.Load())
	if h.Stats().PeersRefused > peers-maxForwardPeers+5 {
		t.Errorf("%d peers refused, want %d", h.Stats().PeersRefused, peers-maxForwardPeers)
	}
	if perPeer > 32<<10 {
		t.Errorf("%d KiB of heap a peer flow", perPeer>>10)
	}
}

// TestDHCPFloodFrames: 10,000 DISCOVER frames from random MACs through the router leave
// its heap where it was, and a guest asking afterwards gets an offer.
func TestDHCPFloodFrames(t *testing.T) {
	h := newHostileRouter(t, nil)
	flood := func() {
		for i := range 10000 {
			mac := net.HardwareAddr{2, byte(i >> 8), byte(i), byte(rand.Uint32()), byte(rand.Uint32()), byte(rand.Uint32())}
			h.input(dhcpFrame(t, mac, 1, ""))
		}
		for len(h.lan.frames) > 0 {
			<-h.lan.frames
		}
	}
	flood() // the first flood grows what is grown once (the neighbour table, pools)
	heap0 := heapInUse()
	flood()
	grown := heapInUse() - heap0
	t.Logf("RELIABILITY: slirp unit: a second flood of 10000 DHCP DISCOVERs from random MACs: heap %+d KiB, %d leases, %d offers reclaimed", grown>>10, len(h.dhcp.Leases()), h.dhcp.Reclaimed())
	if grown > 1<<20 {
		t.Errorf("heap grew by %d KiB", grown>>10)
	}
	if n := len(h.dhcp.Leases()); n > 16 {
		t.Errorf("%d leases", n)
	}
	h.input(dhcpFrame(t, guestA, 1, ""))
	if h.lan.next(2*time.Second, dhcpReplyTo(guestA)) == nil {
		t.Fatal("no OFFER after the flood")
	}
}

// TestUDPFlowEviction: once a flood's flows have idled udpEvictIdle, a full table makes
// room for new flows (another guest's) by closing them, without waiting for udpIdle; the
// count and the descriptors stay at the bound.
func TestUDPFlowEviction(t *testing.T) {
	h := newHostileRouter(t, nil)
	// Nothing idles out while the table fills, however slow the machine; then 300 ms.
	h.evictIdle.Store(int64(time.Hour))
	sink := newUDPSink(t, false)
	const limit = 200
	h.flowLimit = limit
	base := openFDs(t)
	for i := range limit {
		h.input(udpFrame(routerIP, uint16(10000+i), sink.port, []byte("flood")))
	}
	if !waitFor(10*time.Second, func() bool { return openFDs(t) >= base+limit }) {
		t.Fatalf("%d descriptors, %d before", openFDs(t), base)
	}
	// At once, nothing is idle enough: refused.
	h.input(udpFrame(routerIP, 30000, sink.port, []byte("early")))
	if st := h.Stats(); st.FlowsRefused != 1 || st.FlowsEvicted != 0 {
		t.Fatalf("a flow over the bound before any idled: refused %d evicted %d, want 1 and 0", st.FlowsRefused, st.FlowsEvicted)
	}
	h.evictIdle.Store(int64(300 * time.Millisecond))
	time.Sleep(600 * time.Millisecond)
	before := sink.n.Load()
	for i := range 50 {
		h.input(udpFrame(routerIP, uint16(31000+i), sink.port, []byte("late")))
	}
	if !waitFor(5*time.Second, func() bool { return sink.n.Load() >= before+50 }) {
		t.Fatalf("the new flows got %d datagrams through, want 50", sink.n.Load()-before)
	}
	time.Sleep(100 * time.Millisecond)
	st := h.Stats()
	fds := openFDs(t)
	t.Logf("RELIABILITY: slirp unit: full table of %d idle UDP flows: 50 new flows evicted %d, %d flows open, descriptors %d (%d before)", limit, st.FlowsEvicted, st.Flows, fds, base)
	if st.FlowsEvicted != 50 || st.Flows != limit {
		t.Errorf("evicted %d, flows %d; want 50 and %d", st.FlowsEvicted, st.Flows, limit)
	}
	if fds > base+limit+8 {
		t.Errorf("%d descriptors for %d flows, %d before", fds, limit, base)
	}
}

// udp6Frame is a UDP datagram over IPv6 from guest A (fd00::15:sport) to dst:dport.
func udp6Frame(dst netip.Addr, sport, dport uint16, data []byte) []byte {
	src := netip.MustParseAddr("fd00::15")
	seg := make([]byte, header.UDPMinimumSize+len(data))
	u := header.UDP(seg)
	u.Encode(&header.UDPFields{SrcPort: sport, DstPort: dport, Length: uint16(len(seg))})
	copy(seg[header.UDPMinimumSize:], data)
	xsum := header.PseudoHeaderChecksum(header.UDPProtocolNumber, tcpAddr(src), tcpAddr(dst), uint16(len(seg)))
	u.SetChecksum(^onesSumFrom(seg, xsum))
	return ethernet(MACFor(routerIP), guestA, etherTypeIPv6, buildIPv6(src, dst, uint8(header.UDPProtocolNumber), 64, seg))
}

// TestNoHostLoopback6: the IPv6 router address is the host's ::1; with NoHostLoopback a
// guest reaches nothing there, nor by sending to ::1 itself.
func TestNoHostLoopback6(t *testing.T) {
	pc, err := net.ListenPacket("udp6", "[::1]:0")
	if err != nil {
		t.Skipf("no ::1 here: %v", err)
	}
	pc.Close()
	sink := &udpSink{}
	{
		pc, err := net.ListenPacket("udp6", "[::1]:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close() })
		sink.pc, sink.port = pc, uint16(pc.LocalAddr().(*net.UDPAddr).Port)
		go func() {
			buf := make([]byte, 2048)
			for {
				if _, _, err := pc.ReadFrom(buf); err != nil {
					return
				}
				sink.n.Add(1)
			}
		}()
	}
	router6 := netip.MustParseAddr("fd00::2")
	closed := newHostileRouter(t, func(c *Config) { c.IPv6, c.NoHostLoopback = true, true })
	closed.input(udp6Frame(router6, 41000, sink.port, []byte("hello")))
	closed.input(udp6Frame(netip.IPv6Loopback(), 41001, sink.port, []byte("hello")))
	// The one to the router address is refused (and counted; the netstack itself drops
	// the one to ::1 as martian), and nothing arrives a moment later either.
	if !waitFor(3*time.Second, func() bool { return closed.Stats().LoopbackRefused >= 1 }) {
		t.Errorf("with NoHostLoopback, no refusal counted for a datagram to fd00::2")
	}
	time.Sleep(200 * time.Millisecond)
	if sink.n.Load() != 0 {
		t.Fatalf("with NoHostLoopback, ::1 got %d datagrams", sink.n.Load())
	}
	open := newHostileRouter(t, func(c *Config) { c.IPv6 = true })
	open.input(udp6Frame(router6, 41002, sink.port, []byte("hello")))
	if !waitFor(3*time.Second, func() bool { return sink.n.Load() > 0 }) {
		t.Fatal("without NoHostLoopback, fd00::2 does not reach ::1")
	}
}
