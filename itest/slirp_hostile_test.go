package itest

// A hostile guest against slirpvde (issue 8): --no-host-loopback holds, forwards bind
// only where configured, and floods of UDP flows, DHCP DISCOVERs from random MACs and DNS
// queries leave slirpvde's descriptors and memory bounded while other guests still get
// leases and answers. The figures go to the log on lines starting "RELIABILITY:".

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vde-go/vde/switchcore/wire"
)

// Ports of the hostile tests (each test has namespaces of its own).
const (
	hostileFwdLo    = "8102" // -L 127.0.0.1:PORT
	hostileFwdVeth  = "8106" // -L SADDR:PORT
	hostileFwdAny   = "8101" // -L PORT
	hostileFwdUDPLo = "8103" // -U 127.0.0.1:PORT
	hostileName     = "slirp-hostile.example"
	hostileAnswer   = "10.9.8.7"
)

// hostileIP is the address the wire-peer guest sends from (not leased: the router learns
// it from the frames).
var hostileIP = net.ParseIP("10.0.2.99").To4()

// procStatus returns a field of /proc/PID/status in KiB (VmRSS, VmHWM).
func procStatus(t *testing.T, pid int, field string) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("status of %d: %v", pid, err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// noFileLimit is the soft RLIMIT_NOFILE of pid, from /proc/PID/limits.
func noFileLimit(t testing.TB, pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		return "?"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "Max open files") {
			if f := strings.Fields(l); len(f) >= 5 {
				return f[3]
			}
		}
	}
	return "?"
}

// tcpSYNFrame is a TCP SYN from the hostile peer (src:sport) to dst:dport.
func tcpSYNFrame(src net.HardwareAddr, sip, dip net.IP, sport, dport uint16) []byte {
	seg := make([]byte, 20)
	binary.BigEndian.PutUint16(seg[0:], sport)
	binary.BigEndian.PutUint16(seg[2:], dport)
	binary.BigEndian.PutUint32(seg[4:], rand.Uint32())
	seg[12] = 5 << 4
	seg[13] = 0x02 // SYN
	binary.BigEndian.PutUint16(seg[14:], 65535)
	binary.BigEndian.PutUint16(seg[16:], l4Checksum(sip, dip, 6, seg))
	return ipv4Frame(slirpRouterMAC, src, sip, dip, 6, seg)
}

// icmpEchoFrame is a ping from the hostile peer to dip.
func icmpEchoFrame(src net.HardwareAddr, sip, dip net.IP, seq uint16) []byte {
	m := make([]byte, 8, 24)
	m[0] = 8
	binary.BigEndian.PutUint16(m[4:], 0x4242)
	binary.BigEndian.PutUint16(m[6:], seq)
	m = append(m, "vde hostile test"...)
	binary.BigEndian.PutUint16(m[2:], inetChecksum(m, 0))
	return ipv4Frame(slirpRouterMAC, src, sip, dip, 1, m)
}

// udpFrameFrom is a UDP datagram from the hostile peer, with its checksum.
func udpFrameFrom(src net.HardwareAddr, sip, dip net.IP, sport, dport uint16, payload []byte) []byte {
	u := udpDatagram(sport, dport, payload)
	binary.BigEndian.PutUint16(u[6:], l4Checksum(sip, dip, 17, u))
	return ipv4Frame(slirpRouterMAC, src, sip, dip, 17, u)
}

// sendAll sends frames in batches, pausing between batches so that the switch's queue
// to slirpvde loses few of them (the point is what slirpvde does with them, not speed).
func sendAll(t testing.TB, p *peer, frames [][]byte) {
	t.Helper()
	for len(frames) > 0 {
		n := min(len(frames), 32)
		p.send(t, frames[:n]...)
		frames = frames[n:]
		time.Sleep(2 * time.Millisecond)
	}
}

// drainPeer discards what p received so far.
func drainPeer(p *peer) {
	for {
		select {
		case <-p.rx:
		default:
			return
		}
	}
}

// udpNoEcho sends a few datagrams to addr from ns and reports whether any came back.
func udpNoEcho(t testing.TB, ns, addr string) bool {
	t.Helper()
	c, err := dialIn(ns, "udp4", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("udp %s from %s: %v", addr, ns, err)
	}
	defer c.Close()
	buf := make([]byte, 2048)
	for range 3 {
		c.Write([]byte("hostile-udp-probe"))
		c.SetReadDeadline(time.Now().Add(700 * time.Millisecond))
		if n, err := c.Read(buf); err == nil && string(buf[:n]) == "hostile-udp-probe" {
			return false
		}
	}
	return true
}

// TestSlirpHostileLoopback: without --no-host-loopback a guest reaches S's loopback
// listeners at the router address; with it, neither at the router address nor by
// sending to 127.0.0.1 itself (frames a kernel would not send, from a wire peer) nor by
// pinging it, while the DNS proxy still forwards to a nameserver on 127.0.0.1 (the
// router's own service, not the guest reaching loopback).
func TestSlirpHostileLoopback(t *testing.T) {
	for _, flag := range []bool{false, true} {
		name := "default"
		if flag {
			name = "no-host-loopback"
		}
		t.Run(name, func(t *testing.T) {
			if flag {
				slirpOursOnly(t, "--no-host-loopback is ours (vdeplug_slirp's disable_host_loopback)")
			}
			w := newSlirpWorld(t, impl)
			lo := startStreamEcho(t, w.S, "tcp4", "127.0.0.1:"+loTCPPort)
			loU := startUDPEcho(t, w.S, "127.0.0.1:"+loUDPPort)
			w.startDnsmasq(t, "127.0.0.1", hostileName, hostileAnswer)
			var args []string
			if flag {
				args = append(args, "--no-host-loopback")
			}
			w.startSlirp(t, args...)
			g := w.addGuest(t)
			pingOK(t, g.NS, slirpRouter)

			// The DNS proxy works either way.
			waitFor(t, slirpTimeout, "nslookup at 10.0.2.3", func() (bool, string) {
				out := nslookup(g.NS, hostileName, slirpDNS)
				return strings.Contains(out, "Address: "+hostileAnswer), out
			})
			if !flag {
				tcpEcho(t, g.NS, slirpRouter+":"+loTCPPort, tcpSmall)
				mustUDPEcho(t, g.NS, slirpRouter+":"+loUDPPort)
				lo.checkPeers(t, "127.0.0.1")
				return
			}
			if c, err := dialIn(g.NS, "tcp4", slirpRouter+":"+loTCPPort, 5*time.Second); err == nil {
				c.Close()
				t.Errorf("the guest connected to %s:%s with --no-host-loopback", slirpRouter, loTCPPort)
			} else {
				t.Logf("connect %s:%s: %v", slirpRouter, loTCPPort, err)
			}
			if !udpNoEcho(t, g.NS, slirpRouter+":"+loUDPPort) {
				t.Errorf("UDP to %s:%s echoed with --no-host-loopback", slirpRouter, loUDPPort)
			}
			// A wire peer sends what a guest kernel would not: straight to 127.0.0.1 and
			// 127.1.2.3, and pings 127.0.0.1.
			p := dialPeer(t, w.Sw, 1, wire.DialOptions{})
			lport, _ := strconv.Atoi(loTCPPort)
			uport, _ := strconv.Atoi(loUDPPort)
			var frames [][]byte
			for i, dst := range []string{"127.0.0.1", "127.1.2.3"} {
				dip := net.ParseIP(dst).To4()
				frames = append(frames,
					tcpSYNFrame(p.MAC, hostileIP, dip, uint16(30000+i), uint16(lport)),
					udpFrameFrom(p.MAC, hostileIP, dip, uint16(30000+i), uint16(uport), []byte("hostile-udp-probe")))
			}
			frames = append(frames, icmpEchoFrame(p.MAC, hostileIP, net.ParseIP("127.0.0.1").To4(), 1))
			for range 3 {
				sendAll(t, p, frames)
				time.Sleep(300 * time.Millisecond)
			}
			if f, ok := p.tryRecv("vde hostile test", 2*time.Second); ok {
				t.Errorf("a ping to 127.0.0.1 was answered: % x", f)
			}
			if len(lo.Peers()) != 0 || len(loU.Peers()) != 0 {
				t.Errorf("loopback listeners saw TCP peers %v and UDP peers %v with --no-host-loopback", lo.Peers(), loU.Peers())
			}
			w.checkAlive(t)
		})
	}
	t.Logf("RELIABILITY: --no-host-loopback: a guest's TCP and UDP to the router address, TCP/UDP/ping to 127.0.0.1 and 127.1.2.3 (and IPv6 ::1, in process) reach nothing on the host's loopback; without the flag the router address reaches it; the DNS proxy to a 127.0.0.1 nameserver still answers")
}

// TestSlirpHostileForwardBind: a forward with a host address listens on that address
// only (127.0.0.1 is not reachable at S's veth address, from S itself or from O, and the
// other way round); one without listens on all addresses, as Debian's slirpvde.
func TestSlirpHostileForwardBind(t *testing.T) {
	slirpOursOnly(t, "Debian's slirpvde has no bind address in -L")
	w := newSlirpWorld(t, impl)
	w.startSlirp(t,
		"-L", "127.0.0.1:"+hostileFwdLo+":"+slirpFirst+":"+guestTCP,
		"-L", w.SAddr+":"+hostileFwdVeth+":"+slirpFirst+":"+guestTCP,
		"-L", hostileFwdAny+":"+slirpFirst+":"+guestTCP,
		"-U", "127.0.0.1:"+hostileFwdUDPLo+":"+slirpFirst+":"+guestUDP,
	)
	g := w.plugGuest(t)
	startStreamEcho(t, g.NS, "tcp4", "0.0.0.0:"+guestTCP)
	startUDPEcho(t, g.NS, "0.0.0.0:"+guestUDP)
	g.dhcp(t)
	g.checkLease(t, map[string]string{"ip": slirpFirst})
	pingOK(t, g.NS, slirpRouter)

	refused := func(ns, addr string) {
		t.Helper()
		if c, err := dialIn(ns, "tcp4", addr, 3*time.Second); err == nil {
			c.Close()
			t.Errorf("connected to %s from %s: the forward is bound elsewhere", addr, ns)
		}
	}
	tcpEcho(t, w.S, "127.0.0.1:"+hostileFwdLo, tcpSmall)
	refused(w.S, w.SAddr+":"+hostileFwdLo)
	refused(w.O, w.SAddr+":"+hostileFwdLo)
	tcpEcho(t, w.S, w.SAddr+":"+hostileFwdVeth, tcpSmall)
	tcpEcho(t, w.O, w.SAddr+":"+hostileFwdVeth, tcpSmall)
	refused(w.S, "127.0.0.1:"+hostileFwdVeth)
	tcpEcho(t, w.S, "127.0.0.1:"+hostileFwdAny, tcpSmall)
	tcpEcho(t, w.O, w.SAddr+":"+hostileFwdAny, tcpSmall)
	// Without an address: 0.0.0.0, as the C slirp, and not also every IPv6 address.
	if c, err := dialIn(w.S, "tcp6", "[::1]:"+hostileFwdAny, 3*time.Second); err == nil {
		c.Close()
		t.Errorf("a forward without a bind address answered at [::1]:%s", hostileFwdAny)
	}
	mustUDPEcho(t, w.S, "127.0.0.1:"+hostileFwdUDPLo)
	if !udpNoEcho(t, w.S, w.SAddr+":"+hostileFwdUDPLo) {
		t.Errorf("UDP forward bound to 127.0.0.1 echoed at %s", w.SAddr)
	}
	tcpOut := nsRun(t, w.S, "ss", "-Hltn")
	for _, want := range []string{"127.0.0.1:" + hostileFwdLo + " ", w.SAddr + ":" + hostileFwdVeth + " ", "0.0.0.0:" + hostileFwdAny + " "} {
		if !strings.Contains(tcpOut, want) {
			t.Errorf("no TCP listener %q; ss -ltn in S:\n%s", want, tcpOut)
		}
	}
	udpOut := nsRun(t, w.S, "ss", "-Hlun")
	if !strings.Contains(udpOut, "127.0.0.1:"+hostileFwdUDPLo+" ") || strings.Contains(udpOut, "0.0.0.0:"+hostileFwdUDPLo+" ") {
		t.Errorf("want a UDP socket on 127.0.0.1:%s only; ss -lun in S:\n%s", hostileFwdUDPLo, udpOut)
	}
	w.checkAlive(t)
	t.Logf("RELIABILITY: -L forwards: one on 127.0.0.1 is not reachable at the host's other address (nor the other way round), one without an address listens on 0.0.0.0 only (not [::]); a UDP forward on 127.0.0.1 is not answered elsewhere")
}

// udpFloodFrames are n datagrams from the hostile peer to as many outside host:port
// pairs, which die in O: every flow waits its idle time.
func udpFloodFrames(p *peer, n int) [][]byte {
	var frames [][]byte
	for i := range n {
		dip := net.IPv4(198, 51, 100, byte(1+i%200)).To4()
		frames = append(frames, udpFrameFrom(p.MAC, hostileIP, dip, uint16(20000+i%64), uint16(1024+i), []byte("flood")))
	}
	return frames
}

// dnsFloodFrames are n queries from the hostile peer to the DNS proxy, each from a port
// of its own.
func dnsFloodFrames(p *peer, n int) [][]byte {
	var frames [][]byte
	for i := range n {
		frames = append(frames, udpFrameFrom(p.MAC, hostileIP, net.ParseIP(slirpDNS).To4(), uint16(40000+i%20000), 53, dnsQuery(uint16(i), hostileName)))
	}
	return frames
}

// hostileSample is slirpvde's descriptors and memory at one point.
type hostileSample struct {
	fds, rssKiB int
}

// TestSlirpHostileFlood: a guest (a wire peer) sends UDP to 12,000 outside host:port
// pairs, 10,000 DHCP DISCOVERs with random client MACs and 5,000 DNS queries from as many
// ports. slirpvde's descriptors stay under its flow bounds, its memory bounded, its log
// short; a guest that leased before keeps its lease, and a new guest gets a lease and DNS
// answers afterwards.
func TestSlirpHostileFlood(t *testing.T) {
	slirpOursOnly(t, "the bounds are ours (Debian's slirpvde opens a socket per flow without limit)")
	w := newSlirpWorld(t, impl)
	w.startDnsmasq(t, "127.0.0.1", hostileName, hostileAnswer)
	startStreamEcho(t, w.O, "tcp4", w.OAddr+":"+loTCPPort)
	startUDPEcho(t, w.O, w.OAddr+":"+loUDPPort)
	proc := w.startSlirp(t)
	pid := proc.PID()
	g1 := w.addGuest(t)
	pingOK(t, g1.NS, slirpRouter)
	p := dialPeer(t, w.Sw, 1, wire.DialOptions{})

	sample := func() hostileSample {
		return hostileSample{procFDs(t, pid), procStatus(t, pid, "VmRSS")}
	}
	// settle waits until the descriptor count stops moving (the relays open their host
	// sockets in goroutines of their own).
	settle := func() hostileSample {
		last := sample()
		for range 60 {
			time.Sleep(500 * time.Millisecond)
			s := sample()
			if s.fds == last.fds {
				return s
			}
			last = s
		}
		return last
	}
	logLines := func() int { return strings.Count(proc.Stderr.String(), "\n") }
	base := sample()
	lines0 := logLines()
	t.Logf("RELIABILITY: slirpvde flood: before: %d descriptors, RSS %d KiB, RLIMIT_NOFILE %s", base.fds, base.rssKiB, noFileLimit(t, pid))

	// 1. UDP to 12,000 outside host:port pairs (dying in O: every flow waits its idle time).
	const udpFlood = 12000
	sendAll(t, p, udpFloodFrames(p, udpFlood))
	afterUDP := settle()
	t.Logf("RELIABILITY: slirpvde flood: %d UDP datagrams to as many outside host:port pairs: %d descriptors (+%d), RSS %d KiB (+%d)",
		udpFlood, afterUDP.fds, afterUDP.fds-base.fds, afterUDP.rssKiB, afterUDP.rssKiB-base.rssKiB)

	// 2. DHCP DISCOVERs from 10,000 random client MACs.
	const dhcpFlood = 10000
	var frames [][]byte
	for range dhcpFlood {
		mac := net.HardwareAddr{2, byte(rand.Uint32()), byte(rand.Uint32()), byte(rand.Uint32()), byte(rand.Uint32()), byte(rand.Uint32())}
		frames = append(frames, ipv4Frame(broadcast, p.MAC, net.IPv4zero, net.IPv4bcast, 17,
			udpDatagram(68, 67, bootpRequest(mac, rand.Uint32(), []byte{53, 1, dhcpDiscover}))))
	}
	sendAll(t, p, frames)
	afterDHCP := settle()
	t.Logf("RELIABILITY: slirpvde flood: %d DHCP DISCOVERs from random MACs: %d descriptors, RSS %d KiB (+%d since the start)",
		dhcpFlood, afterDHCP.fds, afterDHCP.rssKiB, afterDHCP.rssKiB-base.rssKiB)

	// 3. DNS queries from 5,000 source ports.
	const dnsFlood = 5000
	drainPeer(p) // the OFFERs
	frames = dnsFloodFrames(p, dnsFlood)
	answers := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if _, ok := p.tryRecv(string(net.ParseIP(hostileAnswer).To4()), time.Second); !ok {
				return
			}
			answers++
		}
	}()
	sendAll(t, p, frames)
	afterDNS := settle()
	<-done
	t.Logf("RELIABILITY: slirpvde flood: %d DNS queries from as many ports: %d answers seen by the flooder, %d descriptors, RSS %d KiB (+%d since the start)",
		dnsFlood, answers, afterDNS.fds, afterDNS.rssKiB, afterDNS.rssKiB-base.rssKiB)

	peak := max(afterUDP.fds, afterDHCP.fds, afterDNS.fds)
	hwm := procStatus(t, pid, "VmHWM")
	lines := logLines() - lines0
	t.Logf("RELIABILITY: slirpvde flood: peak %d descriptors (bound: 4096 flows + 256 DNS + %d before), peak RSS %d KiB, %d log lines for %d hostile packets",
		peak, base.fds, hwm, lines, udpFlood+dhcpFlood+dnsFlood)
	if peak > base.fds+4096+256+64 {
		t.Errorf("%d descriptors at the peak, %d before: over the flow bounds", peak, base.fds)
	}
	if hwm > base.rssKiB+memScale*400<<10 {
		t.Errorf("RSS peaked at %d KiB, %d before", hwm, base.rssKiB)
	}
	if lines > 60 {
		t.Errorf("%d log lines for the floods; want a few a kind:\n%s", lines, proc.Stderr.String())
	}
	w.checkAlive(t)

	// Afterwards: the guest that leased before keeps its address and resolves; a new
	// guest gets a lease and resolves.
	pingOK(t, g1.NS, slirpRouter)
	g2 := w.addGuest(t)
	if g2.Addr == "" || g2.Addr == g1.Addr {
		t.Errorf("second guest leased %q, the first holds %q", g2.Addr, g1.Addr)
	}
	for _, g := range []*slirpGuest{g1, g2} {
		waitFor(t, slirpTimeout, "nslookup at 10.0.2.3 after the floods", func() (bool, string) {
			out := nslookup(g.NS, hostileName, slirpDNS)
			return strings.Contains(out, "Address: "+hostileAnswer), out
		})
	}
	// The flood's flows still fill the table (they would idle out after 240 s), but
	// once idle for 5 s they make room for new ones: the new guest's NAT works.
	start := time.Now()
	mustUDPEcho(t, g2.NS, w.OAddr+":"+loUDPPort)
	tcpEcho(t, g2.NS, w.OAddr+":"+loTCPPort, tcpSmall)
	end := sample()
	t.Logf("RELIABILITY: slirpvde flood: afterwards a new guest leased %s, both guests resolve, the new guest's UDP and TCP NAT work (after %v); %d descriptors, RSS %d KiB",
		g2.Addr, time.Since(start).Round(100*time.Millisecond), end.fds, end.rssKiB)
	w.checkAlive(t)
}

// TestSlirpHostileTCP: a guest holds 1,500 NATed TCP connections to a server that
// reads them to the end; slirpvde's descriptors grow by one a connection, its memory by
// a bounded amount; once the guest closes them, the descriptors go back to where they
// were (no leak).
func TestSlirpHostileTCP(t *testing.T) {
	slirpOursOnly(t, "figures of our slirpvde")
	w := newSlirpWorld(t, impl)
	ln := listenIn(t, w.S, "tcp4", "127.0.0.1:"+loTCPPort)
	held := make(chan net.Conn, 4096)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held <- c
			go func() { // a server that reads to the end, then closes
				io.Copy(io.Discard, c)
				c.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		for {
			select {
			case c := <-held:
				c.Close()
			default:
				return
			}
		}
	})
	proc := w.startSlirp(t)
	pid := proc.PID()
	g := w.addGuest(t)
	pingOK(t, g.NS, slirpRouter)
	fds0, rss0 := procFDs(t, pid), procStatus(t, pid, "VmRSS")

	const conns = 1500
	var cs []net.Conn
	defer func() {
		for _, c := range cs {
			c.Close()
		}
	}()
	if err := inNetns(g.NS, func() error {
		for range conns {
			c, err := net.DialTimeout("tcp4", slirpRouter+":"+loTCPPort, slirpTimeout)
			if err != nil {
				return err
			}
			c.Write([]byte("x")) // some data in flight makes the splice's copies start
			cs = append(cs, c)
		}
		return nil
	}); err != nil {
		t.Fatalf("after %d connections: %v", len(cs), err)
	}
	waitFor(t, slirpTimeout, "the server to accept them all", func() (bool, string) {
		return len(held) >= conns, fmt.Sprint(len(held))
	})
	fds1, rss1 := procFDs(t, pid), procStatus(t, pid, "VmRSS")
	t.Logf("RELIABILITY: slirpvde TCP: %d NATed connections held open: descriptors %d -> %d, RSS %d -> %d KiB (%d KiB a connection)",
		conns, fds0, fds1, rss0, rss1, (rss1-rss0)/conns)
	if fds1 > fds0+conns+16 {
		t.Errorf("%d descriptors for %d connections, %d before", fds1, conns, fds0)
	}
	for _, c := range cs {
		c.Close()
	}
	cs = nil
	waitFor(t, slirpTimeout, "slirpvde's descriptors to go back", func() (bool, string) {
		n := procFDs(t, pid)
		return n <= fds0+2, fmt.Sprintf("%d descriptors, %d before", n, fds0)
	})
	fds2, rss2 := procFDs(t, pid), procStatus(t, pid, "VmRSS")
	t.Logf("RELIABILITY: slirpvde TCP: after the guest closed them: %d descriptors, RSS %d KiB", fds2, rss2)
	w.checkAlive(t)
}

// TestSlirpHostileLowNofile: under RLIMIT_NOFILE 700, slirpvde's flow bound shrinks so
// that a flood of UDP flows and DNS queries never runs it out of descriptors: it stays
// under the limit, never fails for want of one (EMFILE), and still leases and resolves.
func TestSlirpHostileLowNofile(t *testing.T) {
	slirpOursOnly(t, "the bounds are ours")
	requireTools(t, "prlimit")
	const nofile = 700
	w := newSlirpWorld(t, impl)
	w.startDnsmasq(t, "127.0.0.1", hostileName, hostileAnswer)
	argv := []string{"prlimit", fmt.Sprintf("--nofile=%d:%d", nofile, nofile), slirpBin(t), "-s", w.Sw.Dir, "-dhcp"}
	proc := startProc(t, "ip", w.inS(argv...)...)
	proc.Name = "slirpvde(prlimit)"
	w.Slirp = proc
	waitFor(t, startTimeout, proc.Name+" to join the switch", func() (bool, string) {
		if proc.Exited() {
			proc.log(t)
			t.Fatalf("%s exited during start-up: %v", proc.Name, proc.waitErr)
		}
		raw := w.Sw.Cmd(t, "port/print")
		return strings.Contains(raw, fmt.Sprintf(" pid=%d\n", proc.PID())), raw
	})
	pid := proc.PID()
	if l := noFileLimit(t, pid); l != strconv.Itoa(nofile) {
		t.Fatalf("slirpvde's RLIMIT_NOFILE is %s, want %d (did prlimit exec it?)", l, nofile)
	}
	g := w.addGuest(t)
	p := dialPeer(t, w.Sw, 1, wire.DialOptions{})
	fds0 := procFDs(t, pid)
	peak := fds0
	for round := range 2 {
		sendAll(t, p, udpFloodFrames(p, 3000))
		sendAll(t, p, dnsFloodFrames(p, 1000))
		for range 10 {
			time.Sleep(300 * time.Millisecond)
			peak = max(peak, procFDs(t, pid))
		}
		t.Logf("round %d: %d descriptors", round, procFDs(t, pid))
	}
	stderr := proc.Stderr.String()
	t.Logf("RELIABILITY: slirpvde under RLIMIT_NOFILE %d: 6,000 UDP flows and 2,000 DNS queries asked for: descriptors %d -> peak %d, %d log lines, no EMFILE",
		nofile, fds0, peak, strings.Count(stderr, "\n"))
	t.Logf("slirpvde's log:\n%s", stderr)
	if peak >= nofile-64 {
		t.Errorf("peak of %d descriptors, too close to the limit %d", peak, nofile)
	}
	if strings.Contains(stderr, "too many open files") {
		t.Errorf("slirpvde ran out of descriptors:\n%s", stderr)
	}
	w.checkAlive(t)
	drainPeer(p)
	pingOK(t, g.NS, slirpRouter)
	waitFor(t, slirpTimeout, "nslookup at 10.0.2.3 after the flood", func() (bool, string) {
		out := nslookup(g.NS, hostileName, slirpDNS)
		return strings.Contains(out, "Address: "+hostileAnswer), out
	})
	g2 := w.addGuest(t)
	t.Logf("a new guest leased %s after the flood", g2.Addr)
	w.checkAlive(t)
}
