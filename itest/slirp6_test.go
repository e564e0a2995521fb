package itest

// slirpvde's IPv6 (-6, --ipv6=PREFIX) and the same router as vde_plug's slirp:// scheme,
// against real peers in the slirp world of slirp_harness_test.go: guests configure
// themselves by SLAAC from the router's advertisements (accept_ra=2 on their TAP), reach a
// host ::1 service at the router address, servers in the outside namespace O over IPv6
// (S and O get an IPv6 subnet on their veth and S a default IPv6 route via O), and a
// dnsmasq on S's 127.0.0.1 through the DNS proxy at ::3. Without -6 not one IPv6 frame
// may come out of the slirp.
//
//	go test ./itest/ -run Slirp -v
//
// Debian's slirpvde has no IPv6 and there is no vdeplug_slirp installed for Debian's
// vde_plug: with VDE_ITEST_SLIRP=debian only TestSlirpNoIPv6 runs.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vde-go/vde/switchcore/wire"
)

// The IPv6 network of `slirpvde -6` (libslirp's defaults) and the router's link-local
// address, the next hop of the guests' default route.
const (
	slirp6Prefix    = "fd00::/64"
	slirp6Router    = "fd00::2"
	slirp6DNS       = "fd00::3"
	slirp6LinkLocal = "fe80::2"
)

// slirpRouterMAC is the router's MAC on the default network (52:55:<10.0.2.2>).
var slirpRouterMAC = net.HardwareAddr{0x52, 0x55, 10, 0, 2, 2}

// noIPv6Wait is how long a guest soliciting routers must stay without an IPv6 route and
// global address, and a wire peer without IPv6 frames, for "the slirp sends no IPv6".
const noIPv6Wait = 4 * time.Second

// --- the world's IPv6 ----------------------------------------------------------------------

// world6 is a slirp world whose S–O veth also carries IPv6: S is SAddr6, O is OAddr6
// (a /64 of fd99::/16), and S's default IPv6 route goes via O, where it dies like the
// IPv4 one.
type world6 struct {
	*slirpWorld
	SAddr6, OAddr6 string
}

func newSlirpWorld6(t testing.TB, swImpl string) *world6 {
	t.Helper()
	w := &world6{slirpWorld: newSlirpWorld(t, swImpl)}
	// fd99:B:C::/64 from S's 10.B.C.1: unique per world like the IPv4 /24.
	var b, c int
	if _, err := fmt.Sscanf(w.SAddr, "10.%d.%d.1", &b, &c); err != nil {
		t.Fatalf("S's address %s: %v", w.SAddr, err)
	}
	prefix := fmt.Sprintf("fd99:%x:%x::", b, c)
	w.SAddr6, w.OAddr6 = prefix+"1", prefix+"2"
	vs, vo := vethIn(t, w.S), vethIn(t, w.O)
	run(t, "ip", "-n", w.S, "addr", "add", w.SAddr6+"/64", "dev", vs, "nodad")
	run(t, "ip", "-n", w.O, "addr", "add", w.OAddr6+"/64", "dev", vo, "nodad")
	run(t, "ip", "-n", w.S, "-6", "route", "add", "default", "via", w.OAddr6, "dev", vs)
	// S's own ICMPv6 echo sockets (the slirp's NAT of ping6) come under the same sysctl
	// as IPv4's, which newSlirpWorld set.
	return w
}

// vethIn is the name of the only veth in ns.
func vethIn(t testing.TB, ns string) string {
	t.Helper()
	out := run(t, "ip", "-n", ns, "-o", "link", "show", "type", "veth")
	f := strings.Fields(out)
	if len(f) < 2 || strings.Count(out, "\n") != 1 {
		t.Fatalf("want one veth in %s, got:\n%s", ns, out)
	}
	name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
	return name
}

// --- guests with SLAAC ---------------------------------------------------------------------

// acceptRA makes g's TAP take router advertisements (accept_ra=2: whatever the
// namespace's forwarding says), skip duplicate address detection (no tentative
// addresses) and solicit routers for as long as it is up; then it bounces the link so
// that the guest solicits at once.
func acceptRA(t testing.TB, g *slirpGuest) {
	t.Helper()
	conf := "net.ipv6.conf." + g.Tap + "."
	nsRun(t, g.NS, "sysctl", "-q", "-w",
		conf+"accept_ra=2", conf+"accept_dad=0", conf+"disable_ipv6=0",
		conf+"router_solicitations=-1", conf+"router_solicitation_interval=1")
	bounceLink(t, g)
}

// bounceLink takes g's TAP down and up: the kernel drops its IPv6 state and starts
// again with router solicitations.
func bounceLink(t testing.TB, g *slirpGuest) {
	t.Helper()
	run(t, "ip", "-n", g.NS, "link", "set", g.Tap, "down")
	run(t, "ip", "-n", g.NS, "link", "set", g.Tap, "up")
}

// globalAddrs6 are the global IPv6 addresses on g's TAP.
func globalAddrs6(g *slirpGuest) ([]netip.Addr, string) {
	out, _ := tryRun("ip", "-n", g.NS, "-6", "-o", "addr", "show", "dev", g.Tap, "scope", "global")
	var as []netip.Addr
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "inet6" {
				if p, err := netip.ParsePrefix(f[i+1]); err == nil {
					as = append(as, p.Addr())
				}
			}
		}
	}
	return as, out
}

// defaultRoute6 is `ip -6 route show default` in g.
func defaultRoute6(g *slirpGuest) string {
	out, _ := tryRun("ip", "-n", g.NS, "-6", "route", "show", "default")
	return strings.TrimSpace(out)
}

// waitSLAAC waits until g has an address in prefix and a default route via the
// router's link-local address on its TAP, and returns the address.
func waitSLAAC(t testing.TB, g *slirpGuest, prefix string) netip.Addr {
	t.Helper()
	pfx := netip.MustParsePrefix(prefix)
	var addr netip.Addr
	waitFor(t, slirpTimeout, "a SLAAC address in "+prefix+" and a default route via "+slirp6LinkLocal+" in "+g.NS, func() (bool, string) {
		as, out := globalAddrs6(g)
		addr = netip.Addr{}
		for _, a := range as {
			if pfx.Contains(a) {
				addr = a
			}
		}
		route := defaultRoute6(g)
		ok := addr.IsValid() && strings.HasPrefix(route, "default via "+slirp6LinkLocal+" dev "+g.Tap+" ")
		return ok, fmt.Sprintf("addresses:\n%sdefault route: %q", out, route)
	})
	t.Logf("guest %s: SLAAC address %s, %s", g.NS, addr, defaultRoute6(g))
	return addr
}

// checkNoIPv6 checks that g has neither a global IPv6 address nor an IPv6 default route.
func checkNoIPv6(t testing.TB, g *slirpGuest) {
	t.Helper()
	if as, out := globalAddrs6(g); len(as) > 0 {
		t.Errorf("guest %s got global IPv6 addresses %v from a slirp without -6:\n%s", g.NS, as, out)
	}
	if r := defaultRoute6(g); r != "" {
		t.Errorf("guest %s got an IPv6 default route from a slirp without -6: %s", g.NS, r)
	}
}

// tapMAC is the MAC of g's TAP.
func tapMAC(t testing.TB, g *slirpGuest) net.HardwareAddr {
	t.Helper()
	out := run(t, "ip", "-n", g.NS, "-o", "link", "show", "dev", g.Tap)
	m := regexp.MustCompile(`link/ether ([0-9a-f:]{17})`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no MAC in %q", out)
	}
	mac, err := net.ParseMAC(m[1])
	if err != nil {
		t.Fatal(err)
	}
	return mac
}

// --- IPv6 servers and clients --------------------------------------------------------------

// startICMP6Watch records the sources of the ICMPv6 echo requests that reach ns.
func startICMP6Watch(t testing.TB, ns string) *icmpWatch {
	t.Helper()
	return startEchoWatch(t, ns, "ip6:ipv6-icmp", "::", 128)
}

// dnsAsk sends one query for name's A records to server:53 over network ("udp6",
// "tcp6", ...) from ns.
func dnsAsk(ns, network, server, name string) ([]string, error) {
	c, err := dialIn(ns, network, net.JoinHostPort(server, "53"), 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	id := uint16(rand.Uint32())
	q := dnsQuery(id, name)
	if strings.HasPrefix(network, "udp") {
		if _, err := c.Write(q); err != nil {
			return nil, err
		}
		buf := make([]byte, 4096)
		n, err := c.Read(buf)
		if err != nil {
			return nil, err
		}
		return dnsAnswers(buf[:n], id)
	}
	if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(q))), q...)); err != nil {
		return nil, err
	}
	var l [2]byte
	if _, err := io.ReadFull(c, l[:]); err != nil {
		return nil, fmt.Errorf("read length: %w", err)
	}
	resp := make([]byte, binary.BigEndian.Uint16(l[:]))
	if _, err := io.ReadFull(c, resp); err != nil {
		return nil, fmt.Errorf("read response: %w", err)
	}
	return dnsAnswers(resp, id)
}

// waitResolves waits until a query for name to server over network gives exactly want.
func waitResolves(t testing.TB, ns, network, server, name, want string) {
	t.Helper()
	waitFor(t, slirpTimeout, fmt.Sprintf("%s DNS query for %s at %s to give %s", network, name, server, want), func() (bool, string) {
		ips, err := dnsAsk(ns, network, server, name)
		return err == nil && len(ips) == 1 && ips[0] == want, fmt.Sprint(ips, err)
	})
}

// noHostLoopback checks that TCP from the guest to the router's port of the loopback echo
// server lo fails (refused or reset) and never reaches lo.
func noHostLoopback(t testing.TB, ns, network, addr string, lo *echoServer) {
	t.Helper()
	c, err := dialIn(ns, network, addr, 10*time.Second)
	if err != nil {
		t.Logf("TCP to %s: %v (refused, as it should)", addr, err)
	} else {
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		msg := []byte("reach the host loopback?")
		_, werr := c.Write(msg)
		buf := make([]byte, len(msg))
		_, rerr := io.ReadFull(c, buf)
		if werr == nil && rerr == nil && bytes.Equal(buf, msg) {
			t.Errorf("TCP to %s connected and echoed: the host loopback is reachable", addr)
		} else {
			t.Logf("TCP to %s connected, then: write %v, read %v (ended, as it should)", addr, werr, rerr)
		}
	}
	if p := lo.Peers(); len(p) > 0 {
		t.Errorf("the host loopback server %s saw connections %v with the host loopback disabled", lo.Addr, p)
	}
}

// --- IPv6 frames for wire peers ------------------------------------------------------------

// icmp6Frame is an Ethernet frame carrying an ICMPv6 message body (its checksum filled
// in) from src to dst with hop limit 255.
func icmp6Frame(dstMAC, srcMAC net.HardwareAddr, src, dst netip.Addr, body []byte) []byte {
	p := make([]byte, 40+len(body))
	p[0] = 0x60
	binary.BigEndian.PutUint16(p[4:], uint16(len(body)))
	p[6], p[7] = 58, 255
	copy(p[8:24], src.AsSlice())
	copy(p[24:40], dst.AsSlice())
	copy(p[40:], body)
	p[42], p[43] = 0, 0
	var sum uint32
	for i := 8; i < 40; i += 2 {
		sum += uint32(p[i])<<8 | uint32(p[i+1])
	}
	sum += uint32(len(body)) + 58
	binary.BigEndian.PutUint16(p[42:], inetChecksum(p[40:], sum))
	f := append(append(bytes.Clone(dstMAC), srcMAC...), 0x86, 0xdd)
	return append(f, p...)
}

// linkLocalOf is the EUI-64 link-local address of mac.
func linkLocalOf(mac net.HardwareAddr) netip.Addr {
	a := [16]byte{0: 0xfe, 1: 0x80, 8: mac[0] ^ 2, 9: mac[1], 10: mac[2], 11: 0xff, 12: 0xfe, 13: mac[3], 14: mac[4], 15: mac[5]}
	return netip.AddrFrom16(a)
}

// solicitedNode is the solicited-node group of a and its MAC.
func solicitedNode(a netip.Addr) (netip.Addr, net.HardwareAddr) {
	b := a.As16()
	g := netip.AddrFrom16([16]byte{0: 0xff, 1: 0x02, 11: 1, 12: 0xff, 13: b[13], 14: b[14], 15: b[15]})
	return g, net.HardwareAddr{0x33, 0x33, 0xff, b[13], b[14], b[15]}
}

// ipv6Probes are what a guest says to an IPv6 router: a router solicitation, neighbour
// solicitations for the router's link-local and global addresses, and an echo request
// to the router (sent to its MAC on the default network).
func ipv6Probes(mac net.HardwareAddr) [][]byte {
	ll := linkLocalOf(mac)
	sll := append([]byte{1, 1}, mac...)
	rs := append([]byte{133, 0, 0, 0, 0, 0, 0, 0}, sll...)
	frames := [][]byte{icmp6Frame(net.HardwareAddr{0x33, 0x33, 0, 0, 0, 2}, mac, ll, netip.MustParseAddr("ff02::2"), rs)}
	for _, target := range []string{slirp6LinkLocal, slirp6Router} {
		ta := netip.MustParseAddr(target)
		g, gmac := solicitedNode(ta)
		ns := append(append([]byte{135, 0, 0, 0, 0, 0, 0, 0}, ta.AsSlice()...), sll...)
		frames = append(frames, icmp6Frame(gmac, mac, ll, g, ns))
	}
	echo := append([]byte{128, 0, 0, 0, 0x12, 0x34, 0, 1}, "slirp6-probe"...)
	frames = append(frames, icmp6Frame(slirpRouterMAC, mac, ll, netip.MustParseAddr(slirp6Router), echo))
	return frames
}

// frame6 describes an IPv6 frame: its source MAC and, for ICMPv6 without extension
// headers, the message type (0 otherwise).
type frame6 struct {
	Src  net.HardwareAddr
	Type byte
}

func parseFrame6(f []byte) (frame6, bool) {
	if len(f) < 14+40 || f[12] != 0x86 || f[13] != 0xdd {
		return frame6{}, false
	}
	r := frame6{Src: net.HardwareAddr(bytes.Clone(f[6:12]))}
	if f[14+6] == 58 && len(f) > 14+40 {
		r.Type = f[14+40]
	}
	return r, true
}

// collect6 returns the IPv6 frames p receives during d.
func collect6(p *peer, d time.Duration) []frame6 {
	var out []frame6
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case f, ok := <-p.rx:
			if !ok {
				return out
			}
			if r, ok := parseFrame6(f); ok {
				out = append(out, r)
			}
		case <-timer.C:
			return out
		}
	}
}

// --- slirp:// through vde_plug -------------------------------------------------------------

// startPlugSlirp runs our `vde_plug vde://CTLDIR slirp://OPTS` in S (with its private
// resolv.conf, in w.Dir so that relative unixfwd paths land there) and waits until it is
// attached. It becomes w.Slirp.
func (w *slirpWorld) startPlugSlirp(t testing.TB, url string) *Proc {
	t.Helper()
	plug := appletPath(t, "vde_plug")
	p := startProc(t, "ip", w.inS("sh", "-c", `cd "$0" && exec "$@"`, w.Dir, plug, "vde://"+w.Sw.Dir, url)...)
	p.Name = "vde_plug(" + url + ")"
	w.Slirp = p
	waitFor(t, startTimeout, p.Name+" to join the switch", func() (bool, string) {
		if p.Exited() {
			p.log(t)
			t.Fatalf("%s exited during start-up: %v", p.Name, p.waitErr)
		}
		raw := w.Sw.Cmd(t, "port/print")
		return strings.Contains(raw, fmt.Sprintf(" pid=%d\n", p.PID())), raw
	})
	return p
}

// plugOnly skips the slirp:// tests when checking the tests against Debian's slirpvde:
// Debian's vde_plug has no slirp:// (vdeplug_slirp is not installed here).
func plugOnly(t testing.TB) {
	t.Helper()
	slirpOursOnly(t, "slirp:// is our vde_plug's; Debian's vde_plug has no vdeplug_slirp installed")
}

// =========================================================================================

// TestSlirp6: `slirpvde -6` gives a guest a SLAAC address in fd00::/64 and a default
// route via fe80::2; the guest moves TCP (checksummed) and UDP to host ::1 services at
// fd00::2 and pings it; it reaches TCP, UDP and ping servers in the outside world, which
// see S's IPv6 address; an unanswered outside address gets no ping reply; DNS at fd00::3
// (UDP and TCP) reaches the dnsmasq on S's 127.0.0.1; a wire peer's router solicitation
// gets an advertisement.
func TestSlirp6(t *testing.T) {
	slirpOursOnly(t, "Debian's slirpvde has no IPv6 (spec §1: no -6; §2.4: IPv6 frames are dropped)")
	const name = "slirp6-test.example"
	w := newSlirpWorld6(t, impl)
	loTCP := startStreamEcho(t, w.S, "tcp6", "[::1]:"+loTCPPort)
	loUDP := startUDPEchoNet(t, w.S, "udp6", "[::1]:"+loUDPPort)
	outTCP := startStreamEcho(t, w.O, "tcp6", "["+w.OAddr6+"]:"+loTCPPort)
	outUDP := startUDPEchoNet(t, w.O, "udp6", "["+w.OAddr6+"]:"+loUDPPort)
	outICMP := startICMP6Watch(t, w.O)
	w.startDnsmasq(t, "127.0.0.1", name, "10.9.8.6")
	w.startSlirp(t, "-6")
	g := w.plugGuest(t)
	acceptRA(t, g)
	waitSLAAC(t, g, slirp6Prefix)

	t.Run("loopback", func(t *testing.T) {
		pingOK(t, g.NS, slirp6Router)
		if err := streamEcho(g.NS, "tcp6", "["+slirp6Router+"]:"+loTCPPort, 5<<20); err != nil {
			t.Fatal(err)
		}
		if err := udpEchoNet(g.NS, "udp6", "["+slirp6Router+"]:"+loUDPPort); err != nil {
			t.Error(err)
		}
		loTCP.checkPeers(t, "::1")
		loUDP.checkPeers(t, "::1")
	})
	t.Run("outside", func(t *testing.T) {
		if err := streamEcho(g.NS, "tcp6", "["+w.OAddr6+"]:"+loTCPPort, 5<<20); err != nil {
			t.Fatal(err)
		}
		if err := udpEchoNet(g.NS, "udp6", "["+w.OAddr6+"]:"+loUDPPort); err != nil {
			t.Error(err)
		}
		outTCP.checkPeers(t, w.SAddr6)
		outUDP.checkPeers(t, w.SAddr6)
	})
	t.Run("outside ping", func(t *testing.T) {
		pingOK(t, g.NS, w.OAddr6)
		outICMP.checkSources(t, w.SAddr6)
	})
	t.Run("unanswered ping", func(t *testing.T) {
		noPing(t, g.NS, "2001:db8::7")
		pingOK(t, g.NS, slirp6Router)
	})
	t.Run("DNS", func(t *testing.T) {
		waitFor(t, slirpTimeout, "busybox nslookup "+name+" "+slirp6DNS+" to give 10.9.8.6", func() (bool, string) {
			out := nslookup(g.NS, name, slirp6DNS)
			return strings.Contains(out, "Address: 10.9.8.6"), out
		})
		waitResolves(t, g.NS, "udp6", slirp6DNS, name, "10.9.8.6")
		waitResolves(t, g.NS, "tcp6", slirp6DNS, name, "10.9.8.6")
	})
	t.Run("wire peer", func(t *testing.T) {
		// The probes of TestSlirpNoIPv6, here answered: a router advertisement from
		// the router's MAC, neighbour advertisements, an echo reply.
		p := dialPeer(t, w.Sw, 1, wire.DialOptions{})
		p.send(t, ipv6Probes(p.MAC)...)
		want := map[byte]string{134: "router advertisement", 136: "neighbour advertisement", 129: "echo reply"}
		deadline := time.Now().Add(slirpTimeout)
		for len(want) > 0 && time.Now().Before(deadline) {
			for _, f := range collect6(p, time.Second) {
				if bytes.Equal(f.Src, slirpRouterMAC) {
					delete(want, f.Type)
				}
			}
		}
		if len(want) > 0 {
			t.Errorf("the wire peer got no %v from %s", slices.Collect(maps.Values(want)), slirpRouterMAC)
		}
	})
	w.checkAlive(t)
}

// TestSlirp6Prefix: `--ipv6=fd00:1::/64` moves the router, its DNS proxy and the guests'
// SLAAC addresses into that prefix.
func TestSlirp6Prefix(t *testing.T) {
	slirpOursOnly(t, "Debian's slirpvde has no IPv6 (spec §1: no --ipv6)")
	const name = "slirp6-prefix.example"
	w := newSlirpWorld6(t, impl)
	lo := startStreamEcho(t, w.S, "tcp6", "[::1]:"+loTCPPort)
	w.startDnsmasq(t, "127.0.0.1", name, "10.9.8.5")
	w.startSlirp(t, "--ipv6=fd00:1::/64")
	g := w.plugGuest(t)
	acceptRA(t, g)
	waitSLAAC(t, g, "fd00:1::/64")
	if as, out := globalAddrs6(g); slices.ContainsFunc(as, func(a netip.Addr) bool { return netip.MustParsePrefix(slirp6Prefix).Contains(a) }) {
		t.Errorf("guest has an address in the default %s too:\n%s", slirp6Prefix, out)
	}
	pingOK(t, g.NS, "fd00:1::2")
	if err := streamEcho(g.NS, "tcp6", "[fd00:1::2]:"+loTCPPort, tcpSmall); err != nil {
		t.Fatal(err)
	}
	lo.checkPeers(t, "::1")
	waitResolves(t, g.NS, "udp6", "fd00:1::3", name, "10.9.8.5")
	w.checkAlive(t)
}

// TestSlirpNoIPv6: without -6 a guest that solicits routers (accept_ra=2, link bounced)
// gets no IPv6 default route and no global address, and a wire peer sees IPv6 frames
// from nobody but that guest, although it too solicits the router, asks for its
// neighbour addresses and pings fd00::2. IPv4 keeps working.
func TestSlirpNoIPv6(t *testing.T) {
	w := newSlirpWorld(t, impl)
	w.startSlirp(t)
	g := w.addGuest(t)
	pingOK(t, g.NS, slirpRouter)
	gmac := tapMAC(t, g)

	p := dialPeer(t, w.Sw, 1, wire.DialOptions{})
	acceptRA(t, g)
	got := make(chan []frame6, 1)
	go func() { got <- collect6(p, noIPv6Wait) }()
	for i := 0; i < 3; i++ {
		p.send(t, ipv6Probes(p.MAC)...)
		time.Sleep(time.Second)
	}
	frames := <-got

	guestRS := 0
	for _, f := range frames {
		switch {
		case bytes.Equal(f.Src, gmac):
			if f.Type == 133 {
				guestRS++
			}
		default:
			t.Errorf("IPv6 frame from %s (ICMPv6 type %d) on a LAN whose slirp has no -6", f.Src, f.Type)
		}
	}
	if guestRS == 0 {
		t.Errorf("the guest sent no router solicitation within %v of its link coming up (so the test proves nothing)", noIPv6Wait)
	} else {
		t.Logf("the guest sent %d router solicitations; %d IPv6 frames seen in all", guestRS, len(frames))
	}
	checkNoIPv6(t, g)
	// The guest does speak IPv6: it has a link-local address.
	if out := run(t, "ip", "-n", g.NS, "-6", "-o", "addr", "show", "dev", g.Tap, "scope", "link"); !strings.Contains(out, "inet6 fe80::") {
		t.Errorf("guest %s has no link-local address (IPv6 off?):\n%s", g.NS, out)
	}
	pingOK(t, g.NS, slirpRouter)
	w.checkAlive(t)
}

// TestSlirpPlug: our vde_plug's slirp:// scheme (vdeplug_slirp's options, spec §7), run
// in S: the default gives a lease and reaches S's loopback and the outside; host= with
// tcpfwd= and udpfwd= behaves like -n with -L and -U; addr=, dhcp= and unixfwd= like -H,
// --dhcp= and -x; disable_host_loopback forbids the router's loopback mapping but not
// the outside; v4/v6 gives both families.
func TestSlirpPlug(t *testing.T) {
	plugOnly(t)
	t.Run("default", func(t *testing.T) {
		w := newSlirpWorld(t, impl)
		lo := startStreamEcho(t, w.S, "tcp4", "127.0.0.1:"+loTCPPort)
		loUDP := startUDPEcho(t, w.S, "127.0.0.1:"+loUDPPort)
		out := startStreamEcho(t, w.O, "tcp4", w.OAddr+":"+loTCPPort)
		w.startPlugSlirp(t, "slirp://")
		g := w.addGuest(t)
		g.checkLease(t, defaultLease)
		pingOK(t, g.NS, slirpRouter)
		tcpEcho(t, g.NS, slirpRouter+":"+loTCPPort, 5<<20)
		mustUDPEcho(t, g.NS, slirpRouter+":"+loUDPPort)
		tcpEcho(t, g.NS, w.OAddr+":"+loTCPPort, tcpSmall)
		lo.checkPeers(t, "127.0.0.1")
		loUDP.checkPeers(t, "127.0.0.1")
		out.checkPeers(t, w.SAddr)
		w.checkAlive(t)
	})
	t.Run("host and forwards", func(t *testing.T) {
		w := newSlirpWorld(t, impl)
		guest := "10.1.0.15"
		w.startPlugSlirp(t, "slirp:///host=10.1.0.0/16/tcpfwd="+fwdTCP+":"+guest+":"+guestTCP+
			"/udpfwd="+fwdUDP+":"+guest+":"+guestUDP)
		g := w.plugGuest(t)
		gTCP := startStreamEcho(t, g.NS, "tcp4", "0.0.0.0:"+guestTCP)
		gUDP := startUDPEcho(t, g.NS, "0.0.0.0:"+guestUDP)
		g.dhcp(t)
		g.checkLease(t, map[string]string{"ip": guest, "router": "10.1.0.2", "dns": "10.1.0.3",
			"serverid": "10.1.0.2", "mask": "16", "subnet": "255.255.0.0"})
		pingOK(t, g.NS, "10.1.0.2")
		t.Run("tcpfwd", func(t *testing.T) {
			tcpEcho(t, w.S, "127.0.0.1:"+fwdTCP, tcpSmall)
			gTCP.checkPeers(t, "10.1.0.2")
			tcpEcho(t, w.O, w.SAddr+":"+fwdTCP, tcpSmall)
			if p := gTCP.Peers(); p[len(p)-1] != w.OAddr {
				t.Errorf("guest server saw the outside peer as %s, want %s (all: %v)", p[len(p)-1], w.OAddr, p)
			}
		})
		t.Run("udpfwd", func(t *testing.T) {
			mustUDPEcho(t, w.S, "127.0.0.1:"+fwdUDP)
			gUDP.checkPeers(t, "10.1.0.2")
			mustUDPEcho(t, w.O, w.SAddr+":"+fwdUDP)
			if p := gUDP.Peers(); p[len(p)-1] != w.OAddr {
				t.Errorf("guest UDP server saw the outside peer as %s, want %s (all: %v)", p[len(p)-1], w.OAddr, p)
			}
		})
		w.checkAlive(t)
	})
	t.Run("addr dhcp unixfwd", func(t *testing.T) {
		w := newSlirpWorld(t, impl)
		// The "/" of a path would end the option: a relative path, in the plug's
		// working directory (w.Dir).
		unixSrv := startStreamEcho(t, "", "unix", filepath.Join(w.Dir, "fwd.sock"))
		w.startPlugSlirp(t, "slirp:///addr=10.3.0.2/24/dhcp=10.3.0.40/unixfwd="+fwdUnix+":fwd.sock")
		g := w.addGuest(t)
		g.checkLease(t, map[string]string{"ip": "10.3.0.40", "router": "10.3.0.2", "dns": "10.3.0.3", "mask": "24"})
		pingOK(t, g.NS, "10.3.0.2")
		tcpEcho(t, g.NS, "10.3.0.2:"+fwdUnix, tcpSmall)
		if len(unixSrv.Peers()) == 0 {
			t.Errorf("the unix socket server saw no connection")
		}
		w.checkAlive(t)
	})
	t.Run("disable_host_loopback", func(t *testing.T) {
		w := newSlirpWorld(t, impl)
		lo := startStreamEcho(t, w.S, "tcp4", "127.0.0.1:"+loTCPPort)
		out := startStreamEcho(t, w.O, "tcp4", w.OAddr+":"+loTCPPort)
		w.startPlugSlirp(t, "slirp:///disable_host_loopback")
		g := w.addGuest(t)
		g.checkLease(t, defaultLease)
		tcpEcho(t, g.NS, w.OAddr+":"+loTCPPort, tcpSmall) // the outside still works
		out.checkPeers(t, w.SAddr)
		noHostLoopback(t, g.NS, "tcp4", slirpRouter+":"+loTCPPort, lo)
		w.checkAlive(t)
	})
	t.Run("v4/v6", func(t *testing.T) {
		w := newSlirpWorld6(t, impl)
		lo4 := startStreamEcho(t, w.S, "tcp4", "127.0.0.1:"+loTCPPort)
		lo6 := startStreamEcho(t, w.S, "tcp6", "[::1]:"+loTCPPort)
		out6 := startStreamEcho(t, w.O, "tcp6", "["+w.OAddr6+"]:"+loTCPPort)
		w.startPlugSlirp(t, "slirp:///v4/v6")
		g := w.addGuest(t)
		g.checkLease(t, defaultLease)
		acceptRA(t, g)
		waitSLAAC(t, g, slirp6Prefix)
		pingOK(t, g.NS, slirpRouter)
		pingOK(t, g.NS, slirp6Router)
		tcpEcho(t, g.NS, slirpRouter+":"+loTCPPort, tcpSmall)
		if err := streamEcho(g.NS, "tcp6", "["+slirp6Router+"]:"+loTCPPort, tcpSmall); err != nil {
			t.Fatal(err)
		}
		if err := streamEcho(g.NS, "tcp6", "["+w.OAddr6+"]:"+loTCPPort, tcpSmall); err != nil {
			t.Fatal(err)
		}
		lo4.checkPeers(t, "127.0.0.1")
		lo6.checkPeers(t, "::1")
		out6.checkPeers(t, w.SAddr6)
		w.checkAlive(t)
	})
}

// TestSlirpNoHostLoopback: `slirpvde --no-host-loopback` refuses guest TCP to the router
// address (IPv4, and IPv6 with -6) while the outside stays reachable.
func TestSlirpNoHostLoopback(t *testing.T) {
	slirpOursOnly(t, "Debian's slirpvde has no --no-host-loopback")
	w := newSlirpWorld6(t, impl)
	lo4 := startStreamEcho(t, w.S, "tcp4", "127.0.0.1:"+loTCPPort)
	lo6 := startStreamEcho(t, w.S, "tcp6", "[::1]:"+loTCPPort)
	out := startStreamEcho(t, w.O, "tcp4", w.OAddr+":"+loTCPPort)
	out6 := startStreamEcho(t, w.O, "tcp6", "["+w.OAddr6+"]:"+loTCPPort)
	w.startSlirp(t, "--no-host-loopback", "-6")
	g := w.addGuest(t)
	g.checkLease(t, defaultLease)
	tcpEcho(t, g.NS, w.OAddr+":"+loTCPPort, tcpSmall)
	out.checkPeers(t, w.SAddr)
	noHostLoopback(t, g.NS, "tcp4", slirpRouter+":"+loTCPPort, lo4)
	t.Run("IPv6", func(t *testing.T) {
		acceptRA(t, g)
		waitSLAAC(t, g, slirp6Prefix)
		if err := streamEcho(g.NS, "tcp6", "["+w.OAddr6+"]:"+loTCPPort, tcpSmall); err != nil {
			t.Fatal(err)
		}
		out6.checkPeers(t, w.SAddr6)
		noHostLoopback(t, g.NS, "tcp6", "["+slirp6Router+"]:"+loTCPPort, lo6)
	})
	w.checkAlive(t)
}

// TestSlirpPlugOnDebianSwitch: `vde_plug vde://CTL slirp://` (ours) on Debian's
// vde_switch serves a guest: lease, ping and TCP to S's loopback via 10.0.2.2, and the
// outside.
func TestSlirpPlugOnDebianSwitch(t *testing.T) {
	plugOnly(t)
	w := newSlirpWorld(t, implDebian)
	lo := startStreamEcho(t, w.S, "tcp4", "127.0.0.1:"+loTCPPort)
	out := startStreamEcho(t, w.O, "tcp4", w.OAddr+":"+loTCPPort)
	w.startPlugSlirp(t, "slirp://")
	g := w.addGuest(t)
	g.checkLease(t, defaultLease)
	pingOK(t, g.NS, slirpRouter)
	tcpEcho(t, g.NS, slirpRouter+":"+loTCPPort, 5<<20)
	tcpEcho(t, g.NS, w.OAddr+":"+loTCPPort, tcpSmall)
	lo.checkPeers(t, "127.0.0.1")
	out.checkPeers(t, w.SAddr)
	w.checkAlive(t)
}
