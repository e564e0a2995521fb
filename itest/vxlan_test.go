package itest

// vxlan:// against the Linux kernel's VXLAN devices, unicast (head-end replication) and
// multicast, and against hostile datagrams. Every VTEP lives in a namespace of its own on
// an underlay bridge that the test makes; hosts on our switch are TAPs in namespaces too.

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vde-go/vde/switchcore/vxlan"
	"github.com/vde-go/vde/switchcore/wire"
)

// underlayNet is the underlay's prefix: VTEP i (from 1) is 10.77.0.i.
const underlayNet = "10.77.0."

// vtepNS is a namespace on the underlay: its device and address.
type vtepNS struct {
	NS, Dev, Addr string
}

// underlay makes n namespaces joined by a bridge (in a namespace of its own, multicast
// snooping off so that groups flood as on a plain LAN) with the given MTU.
func underlay(t testing.TB, n, mtu int) []vtepNS {
	t.Helper()
	requireTools(t, "ip")
	br := newNetns(t)
	run(t, "ip", "-n", br, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
	run(t, "ip", "-n", br, "link", "set", "br0", "up")
	var out []vtepNS
	for i := 1; i <= n; i++ {
		h := vtepNS{NS: newNetns(t), Dev: "ul" + strconv.Itoa(i), Addr: underlayNet + strconv.Itoa(i)}
		port := "brp" + strconv.Itoa(i)
		run(t, "ip", "-n", br, "link", "add", port, "mtu", strconv.Itoa(mtu), "type", "veth", "peer", "name", h.Dev, "netns", h.NS)
		run(t, "ip", "-n", br, "link", "set", port, "master", "br0", "up")
		run(t, "ip", "-n", h.NS, "link", "set", h.Dev, "mtu", strconv.Itoa(mtu), "up")
		run(t, "ip", "-n", h.NS, "addr", "add", h.Addr+"/24", "dev", h.Dev)
		out = append(out, h)
	}
	return out
}

// kernelVTEP makes a kernel vxlan device vx0 in u's namespace (id vni, the remote or group
// arguments in how) with the address cidr and the given MTU, and returns it as a host.
// The kernel leaves the inner checksum of a veth-underlaid vxlan for a NIC to finish:
// tx offload off, or its TCP would not be received.
func kernelVTEP(t testing.TB, u vtepNS, vni int, mtu int, cidr string, how ...string) *tapHost {
	t.Helper()
	requireTools(t, "ethtool")
	args := append([]string{"-n", u.NS, "link", "add", "vx0", "type", "vxlan", "id", strconv.Itoa(vni),
		"local", u.Addr, "dstport", "4789", "dev", u.Dev}, how...)
	run(t, "ip", args...)
	run(t, "ip", "netns", "exec", u.NS, "ethtool", "-K", "vx0", "tx", "off")
	run(t, "ip", "-n", u.NS, "link", "set", "vx0", "mtu", strconv.Itoa(mtu), "up")
	run(t, "ip", "-n", u.NS, "addr", "add", cidr, "dev", "vx0")
	addr, _, _ := strings.Cut(cidr, "/")
	return &tapHost{NS: u.NS, Tap: "vx0", Addr: addr}
}

// vxlanPlug runs our vde_plug joining sw to url inside u's namespace.
func vxlanPlug(t testing.TB, sw *Switch, u vtepNS, url string) *Proc {
	t.Helper()
	p := startProc(t, "ip", "netns", "exec", u.NS, appletPath(t, "vde_plug"), "vde://"+sw.Dir, url)
	p.Name = "vde_plug(" + url + ")"
	waitPlugged(t, sw, p.PID())
	return p
}

// rxBytes is a device's received byte count.
func rxBytes(t testing.TB, ns, dev string) int64 {
	t.Helper()
	s := strings.TrimSpace(nsRun(t, ns, "cat", "/sys/class/net/"+dev+"/statistics/rx_bytes"))
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("rx_bytes of %s in %s: %q", dev, ns, s)
	}
	return n
}

// fullSizePing pings addr from ns with 1500-byte IPv4 packets that may not be fragmented.
func fullSizePing(t testing.TB, ns, addr string) {
	t.Helper()
	waitFor(t, 20*time.Second, "a full-size ping of "+addr+" from "+ns, func() (bool, string) {
		out, err := tryRun("ip", "netns", "exec", ns, "ping", "-n", "-c", "1", "-W", "1", "-M", "do", "-s", "1472", addr)
		return err == nil, out
	})
}

// testFile writes size pseudo-random bytes to a file of the test's and returns its path.
func testFile(t testing.TB, size int) string {
	t.Helper()
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(i*7 + i>>9)
	}
	p := filepath.Join(testDir(t), fmt.Sprintf("data-%d", size))
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// sameFile fails the test unless a and b hold the same bytes.
func sameFile(t testing.TB, a, b string) {
	t.Helper()
	x, err1 := os.ReadFile(a)
	y, err2 := os.ReadFile(b)
	if err1 != nil || err2 != nil || string(x) != string(y) {
		t.Fatalf("%s (%d bytes) and %s (%d bytes) differ (%v, %v)", a, len(x), b, len(y), err1, err2)
	}
}

// tcpBothWays moves a file over TCP from a to b and from b to a, and checks both copies.
func tcpBothWays(t testing.TB, a, b *tapHost, size int) {
	t.Helper()
	src := testFile(t, size)
	dir := testDir(t)
	ab, ba := filepath.Join(dir, "a2b-"+b.Addr), filepath.Join(dir, "b2a-"+b.Addr)
	transferTCP(t, a, b, src, ab)
	sameFile(t, src, ab)
	transferTCP(t, b, a, src, ba)
	sameFile(t, src, ba)
}

// A VDE LAN and two kernel VTEPs of VNI 42, joined by our cable listing both as unicast
// peers (no multicast in the underlay), with full-size frames; a kernel VTEP of VNI 43,
// also listed, gets nothing.
func TestVXLANKernelUnicast(t *testing.T) {
	requireTun(t)
	ul := underlay(t, 4, 1550)
	var k [3]*tapHost
	for i, vni := range []int{42, 42, 43} {
		k[i] = kernelVTEP(t, ul[i+1], vni, 1500, fmt.Sprintf("192.168.77.%d/24", i+2), "remote", ul[0].Addr)
	}
	sw := startSwitch(t, implOurs)
	plug := vxlanPlug(t, sw, ul[0], fmt.Sprintf("vxlan://%s,%s,%s/vni=42/local=%s", ul[1].Addr, ul[2].Addr, ul[3].Addr, ul[0].Addr))
	host := plugTap(t, sw, 0, "192.168.77.1/24")

	fullSizePing(t, host.NS, k[0].Addr)
	fullSizePing(t, host.NS, k[1].Addr)
	fullSizePing(t, k[0].NS, host.Addr)
	fullSizePing(t, k[1].NS, host.Addr)

	// Known unicast goes to its VTEP only: while 4 MB go to the first kernel VTEP, the
	// second sees next to nothing.
	before := rxBytes(t, k[1].NS, "vx0")
	tcpBothWays(t, host, k[0], 2<<20)
	if got := rxBytes(t, k[1].NS, "vx0") - before; got > 256<<10 {
		t.Errorf("the other VTEP received %d bytes during a 4 MB exchange: known unicast was flooded", got)
	}
	tcpBothWays(t, host, k[1], 1<<20)

	// VNI 43: its ARP reaches our cable and is dropped there, counted and logged.
	noPing(t, k[2].NS, host.Addr)
	noPing(t, host.NS, k[2].Addr)
	waitFor(t, 5*time.Second, "the plug to log the other VNI's datagrams", func() (bool, string) {
		s := plug.Stderr.String()
		return strings.Contains(s, "(other VNI), the last from "+ul[3].Addr+":"), s
	})
}

// Kernel VTEPs in multicast mode (group 239.77.0.1 on the underlay) and our cable in the
// same group: floods go to the group, and the kernel answers learned MACs by unicast.
func TestVXLANKernelMulticast(t *testing.T) {
	requireTun(t)
	ul := underlay(t, 3, 1550)
	const group = "239.77.0.1"
	k1 := kernelVTEP(t, ul[1], 42, 1500, "192.168.78.2/24", "group", group)
	k2 := kernelVTEP(t, ul[2], 42, 1500, "192.168.78.3/24", "group", group)
	sw := startSwitch(t, implOurs)
	vxlanPlug(t, sw, ul[0], fmt.Sprintf("vxlan://%s/vni=42/if=%s", group, ul[0].Dev))
	host := plugTap(t, sw, 0, "192.168.78.1/24")
	fullSizePing(t, host.NS, k1.Addr)
	fullSizePing(t, k2.NS, host.Addr)
	tcpBothWays(t, host, k1, 1<<20)
	tcpBothWays(t, k2, host, 1<<20)
}

// Jumbo frames cross when the underlay takes them.
func TestVXLANKernelJumbo(t *testing.T) {
	requireTun(t)
	ul := underlay(t, 2, 9050)
	k := kernelVTEP(t, ul[1], 7, 9000, "192.168.79.2/24", "remote", ul[0].Addr)
	sw := startSwitch(t, implOurs)
	vxlanPlug(t, sw, ul[0], fmt.Sprintf("vxlan://%s/vni=7", ul[1].Addr))
	host := plugTap(t, sw, 0, "192.168.79.1/24")
	run(t, "ip", "-n", host.NS, "link", "set", host.Tap, "mtu", "9000")
	waitFor(t, 20*time.Second, "a 9000-byte ping across", func() (bool, string) {
		out, err := tryRun("ip", "netns", "exec", host.NS, "ping", "-n", "-c", "1", "-W", "1", "-M", "do", "-s", "8972", k.Addr)
		return err == nil, out
	})
	tcpBothWays(t, host, k, 1<<20)
}

// Hostile datagrams to a running cable (loopback underlay): wrong flags, short ones,
// another VNI, and a flood from a stranger. The cable keeps forwarding, and logs at most
// one line per kind.
func TestVXLANHostile(t *testing.T) {
	sw := startSwitch(t, implOurs)
	a := dialPeer(t, sw, 1, wire.DialOptions{})
	port := 20000 + rand.IntN(40000)
	peerConn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2), Port: port})
	if err != nil {
		t.Skipf("port %d on 127.0.0.2 is taken: %v", port, err)
	}
	defer peerConn.Close()
	plug := startProc(t, appletPath(t, "vde_plug"), "vde://"+sw.Dir, fmt.Sprintf("vxlan://127.0.0.2/local=127.0.0.1/port=%d/vni=9", port))
	waitPlugged(t, sw, plug.PID())
	dst := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}
	stranger, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 66)})
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	head := vxlan.NewHeader(9)
	good := func(tag string) []byte {
		return append(head[:], ethFrame(broadcast, peerMAC(50), tag)...)
	}
	for i := 0; i < 20; i++ {
		peerConn.WriteToUDP([]byte{0x08, 0, 0}, dst)
		peerConn.WriteToUDP(append([]byte{0x0c, 0, 0, 0, 0, 0, 9, 0}, good("flags")[8:]...), dst)
		peerConn.WriteToUDP(append([]byte{0x08, 0, 0, 0, 0, 0, 10, 0}, good("vni")[8:]...), dst)
	}
	for i := 0; i < 20000; i++ {
		stranger.WriteToUDP(good("stranger"), dst)
	}
	peerConn.WriteToUDP(good("from-the-peer"), dst)
	a.recv(t, "from-the-peer")
	a.recvNone(t, "stranger")
	a.recvNone(t, "flags")
	a.recvNone(t, "vni")

	// And the other way: a frame from the LAN reaches the peer, behind the header.
	a.send(t, ethFrame(broadcast, a.MAC, "to-the-peer"))
	peerConn.SetReadDeadline(time.Now().Add(recvTimeout))
	buf := make([]byte, 9000)
	for {
		n, _, err := peerConn.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("the peer got no frame from the LAN: %v", err)
		}
		if strings.Contains(string(buf[:n]), "to-the-peer") {
			if [8]byte(buf[:8]) != head {
				t.Errorf("header % x, want % x", buf[:8], head)
			}
			break
		}
	}
	if plug.Exited() {
		t.Fatalf("the plug exited: %v", plug.waitErr)
	}
	logs := plug.Stderr.String()
	for _, kind := range []string{"too short", "bad flags", "other VNI", "not from a peer"} {
		if n := strings.Count(logs, "("+kind+")"); n != 1 {
			t.Errorf("%d log lines about %q, want 1:\n%s", n, kind, logs)
		}
	}
}

// plugIn runs a vde_plug binary joining sw to url inside u's namespace (Debian's runs on
// Debian's switch).
func plugIn(t testing.TB, bin string, sw *Switch, u vtepNS, url string) *Proc {
	t.Helper()
	p := startProc(t, "ip", "netns", "exec", u.NS, bin, "vde://"+sw.Dir, url)
	p.Name = filepath.Base(bin) + "(" + url + ")"
	waitPlugged(t, sw, p.PID())
	return p
}

// Debian's vde_plug vxlan:// and ours share a multicast segment, each joining its own
// switch (Debian's to Debian's) in a namespace of its own. Debian's keeps no table
// (hashsize=0): vdeplug4 4.0.1 learns unusable addresses and loses unicast otherwise.
func TestVXLANDebianPlug(t *testing.T) {
	requireTun(t)
	requireTools(t, "vde_plug")
	ul := underlay(t, 2, 1550)
	const group = "239.77.0.2"
	swOurs, swDebian := startSwitch(t, implOurs), startSwitch(t, implDebian)
	vxlanPlug(t, swOurs, ul[0], fmt.Sprintf("vxlan://%s/vni=5/if=%s", group, ul[0].Dev))
	plugIn(t, "/usr/bin/vde_plug", swDebian, ul[1], fmt.Sprintf("vxlan://%s/vni=5/hashsize=0/if=%s", group, ul[1].Dev))
	a := plugTap(t, swOurs, 0, "192.168.80.1/24")
	b := plugTap(t, swDebian, 0, "192.168.80.2/24")
	fullSizePing(t, a.NS, b.Addr)
	fullSizePing(t, b.NS, a.Addr)
	tcpBothWays(t, a, b, 1<<20)
}

// vxvde://: ours and Debian's in one segment, on one host (one namespace: the group
// socket is shared, each member has its own unicast port) and on two; two of ours on
// one host too. A member that leaves says so with the bare header.
func TestVXVDE(t *testing.T) {
	requireTun(t)
	requireTools(t, "vde_plug", "tcpdump")
	ul := underlay(t, 2, 1550)
	swOurs, swOurs2, swDebian := startSwitch(t, implOurs), startSwitch(t, implOurs), startSwitch(t, implDebian)
	url := func(u vtepNS) string { return "vxvde:///grp=4242/if=" + u.Dev }
	ours := vxlanPlug(t, swOurs, ul[0], url(ul[0]))
	plugIn(t, appletPath(t, "vde_plug"), swOurs2, ul[0], url(ul[0]))
	debian := plugIn(t, "/usr/bin/vde_plug", swDebian, ul[0], url(ul[0]))
	a := plugTap(t, swOurs, 0, "192.168.81.1/24")
	a2 := plugTap(t, swOurs2, 0, "192.168.81.3/24")
	b := plugTap(t, swDebian, 0, "192.168.81.2/24")
	fullSizePing(t, a.NS, b.Addr)
	fullSizePing(t, b.NS, a.Addr)
	fullSizePing(t, a2.NS, a.Addr)
	fullSizePing(t, b.NS, a2.Addr)
	tcpBothWays(t, a, b, 1<<20)

	// Debian's moves to the other namespace (another host): the segment still works.
	debian.Stop()
	plugIn(t, "/usr/bin/vde_plug", swDebian, ul[1], url(ul[1]))
	fullSizePing(t, a.NS, b.Addr)
	fullSizePing(t, b.NS, a2.Addr)
	tcpBothWays(t, b, a, 1<<20)

	// Our member's goodbye: exactly the 8-byte header to the group.
	cap := startProc(t, "ip", "netns", "exec", ul[1].NS, "tcpdump", "-n", "-l", "-c", "1", "-i", ul[1].Dev,
		"udp dst port 14789 and udp[4:2] = 16")
	time.Sleep(time.Second) // tcpdump opens its socket
	ours.Stop()
	if err := cap.Wait(10 * time.Second); err != nil {
		t.Fatalf("no goodbye from our plug on the wire: %v\n%s", err, cap.Stdout.String())
	}
	if out := cap.Stdout.String(); !strings.Contains(out, "> 239.0.16.146.14789: UDP, length 8") {
		t.Errorf("goodbye: %q, want a bare header to the group 239.0.16.146 (grp=4242)", out)
	}
}

// Over an IPv6 underlay (70 bytes of overhead), to a kernel VTEP.
func TestVXLANKernelIPv6(t *testing.T) {
	requireTun(t)
	ul := underlay(t, 2, 1570)
	for i, u := range ul {
		run(t, "ip", "-n", u.NS, "addr", "add", fmt.Sprintf("fd77::%d/64", i+1), "dev", u.Dev, "nodad")
	}
	run(t, "ip", "-n", ul[1].NS, "link", "add", "vx0", "type", "vxlan", "id", "42", "local", "fd77::2",
		"remote", "fd77::1", "dstport", "4789", "dev", ul[1].Dev)
	run(t, "ip", "netns", "exec", ul[1].NS, "ethtool", "-K", "vx0", "tx", "off")
	run(t, "ip", "-n", ul[1].NS, "addr", "add", "192.168.76.2/24", "dev", "vx0")
	run(t, "ip", "-n", ul[1].NS, "link", "set", "vx0", "up")
	k := &tapHost{NS: ul[1].NS, Tap: "vx0", Addr: "192.168.76.2"}
	sw := startSwitch(t, implOurs)
	vxlanPlug(t, sw, ul[0], "vxlan://fd77::2/vni=42")
	host := plugTap(t, sw, 0, "192.168.76.1/24")
	fullSizePing(t, host.NS, k.Addr)
	fullSizePing(t, k.NS, host.Addr)
	tcpBothWays(t, host, k, 1<<20)
}

// A frame that does not fit the underlay (1514 + 50 > 1500) still crosses, as with the
// kernel's own VTEPs: the outer packet goes without DF, fragmented, and the kernel VTEP
// reassembles it.
func TestVXLANFragments(t *testing.T) {
	requireTun(t)
	ul := underlay(t, 2, 1500)
	k := kernelVTEP(t, ul[1], 8, 1450, "192.168.75.2/24", "remote", ul[0].Addr)
	sw := startSwitch(t, implOurs)
	vxlanPlug(t, sw, ul[0], fmt.Sprintf("vxlan://%s/vni=8", ul[1].Addr))
	host := plugTap(t, sw, 0, "192.168.75.1/24")
	fullSizePing(t, host.NS, k.Addr)
	snmp := nsRun(t, ul[1].NS, "nstat", "-az", "IpReasmOKs")
	if f := strings.Fields(snmp); len(f) < 2 || f[len(f)-2] == "0" {
		t.Errorf("the kernel VTEP reassembled nothing:\n%s", snmp)
	}
}
