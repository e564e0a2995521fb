package itest

// The slirpvde harness: a "slirp world" (a switch; a slirp host namespace S joined by a
// veth to an "outside world" namespace O, S's default route via O so that nothing leaves
// the machine), the slirpvde process in S with a private resolv.conf, DHCP guests
// (busybox udhcpc on a TAP in their own namespace), Go servers and clients created inside
// namespaces, and raw DHCP/IPv4 frames for the wire peers.
//
// Which slirpvde runs is chosen with VDE_ITEST_SLIRP: "ours" (default, our vde binary as
// slirpvde) or "debian" (/usr/bin/slirpvde, to check the tests themselves). The switch
// follows VDE_ITEST_IMPL as everywhere else.

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const debianSlirp = "/usr/bin/slirpvde"

// Generous limits of the slirp tests; none is an assertion on speed.
const (
	slirpTimeout    = 20 * time.Second // a lease, a first ping, a first connection
	transferTimeout = 90 * time.Second // one TCP transfer of tcpBig bytes each way
	tcpBig          = 20 << 20         // the big TCP transfer
	tcpSmall        = 1 << 20          // transfers whose point is not volume
)

// The virtual network slirpvde makes by default (spec §3.1).
const (
	slirpRouter = "10.0.2.2"
	slirpDNS    = "10.0.2.3"
	slirpFirst  = "10.0.2.15"
	slirpSecond = "10.0.2.16"
)

// --- which slirpvde ----------------------------------------------------------------------

var slirpSel struct {
	once sync.Once
	mode string
}

// slirpMode is VDE_ITEST_SLIRP: implOurs (default) or implDebian.
func slirpMode(t testing.TB) string {
	t.Helper()
	slirpSel.once.Do(func() {
		slirpSel.mode = os.Getenv("VDE_ITEST_SLIRP")
		if slirpSel.mode == "" {
			slirpSel.mode = implOurs
		}
	})
	if slirpSel.mode != implOurs && slirpSel.mode != implDebian {
		t.Fatalf("VDE_ITEST_SLIRP=%q: want %q or %q", slirpSel.mode, implOurs, implDebian)
	}
	return slirpSel.mode
}

// slirpBin is the slirpvde under test. Ours must be there: an unfinished applet fails.
func slirpBin(t testing.TB) string {
	t.Helper()
	if slirpMode(t) == implDebian {
		requireTools(t, debianSlirp)
		return debianSlirp
	}
	return appletPath(t, "slirpvde")
}

// slirpOursOnly skips what Debian's slirpvde cannot do (it is a 2010 QEMU slirp: one
// client MAC, fake pings, no -netaddr, no bind addresses on forwards, no IPv6).
func slirpOursOnly(t testing.TB, why string) {
	t.Helper()
	if slirpMode(t) != implOurs {
		t.Skipf("ours-only (VDE_ITEST_SLIRP=%s): %s", slirpMode(t), why)
	}
}

// slirpTools are the stream-mode helpers matching the slirpvde under test.
func slirpDpipe(t testing.TB) (dpipe, plug string) {
	t.Helper()
	if slirpMode(t) == implDebian {
		requireTools(t, "/usr/bin/dpipe", "/usr/bin/vde_plug")
		return "/usr/bin/dpipe", "/usr/bin/vde_plug"
	}
	return appletPath(t, "dpipe"), appletPath(t, "vde_plug")
}

// --- Go in a namespace -------------------------------------------------------------------

// inNetns runs fn on an OS thread that has joined the named network namespace, and then
// takes the thread back to where it was. Sockets fn creates stay in ns and may be used
// from anywhere afterwards. A thread that cannot go back stays locked, so it ends with
// the goroutine; but the process's main thread cannot end, and one left in ns would move
// /proc/self/net (the main thread's) into ns for the rest of the run: hence the way back.
func inNetns(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- err
			return
		}
		defer home.Close()
		f, err := os.Open("/var/run/netns/" + ns)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		err = fn()
		if unix.Setns(int(home.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// dialIn dials network/addr from inside ns.
func dialIn(ns, network, addr string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := inNetns(ns, func() error {
		var err error
		c, err = net.DialTimeout(network, addr, timeout)
		return err
	})
	return c, err
}

// listenIn makes a stream listener in ns, closed at cleanup.
func listenIn(t testing.TB, ns, network, addr string) net.Listener {
	t.Helper()
	return openIn(t, ns, network, addr, net.Listen)
}

// listenPacketIn makes a packet socket in ns, closed at cleanup.
func listenPacketIn(t testing.TB, ns, network, addr string) net.PacketConn {
	t.Helper()
	return openIn(t, ns, network, addr, net.ListenPacket)
}

// openIn runs open(network, addr) inside ns and closes what it made at cleanup.
func openIn[T io.Closer](t testing.TB, ns, network, addr string, open func(network, addr string) (T, error)) T {
	t.Helper()
	var v T
	if err := inNetns(ns, func() error {
		var err error
		v, err = open(network, addr)
		return err
	}); err != nil {
		t.Fatalf("listen %s %s in %s: %v", network, addr, ns, err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

// --- servers -----------------------------------------------------------------------------

// echoServer echoes TCP streams, unix streams or UDP datagrams and remembers the source
// address of every peer.
type echoServer struct {
	Addr  string
	mu    sync.Mutex
	peers []string
}

func (e *echoServer) saw(a net.Addr) {
	s := a.String()
	if h, _, err := net.SplitHostPort(s); err == nil {
		s = h
	}
	e.mu.Lock()
	e.peers = append(e.peers, s)
	e.mu.Unlock()
}

// Peers are the source addresses (IPs, or unix names) seen so far.
func (e *echoServer) Peers() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.peers)
}

// checkPeers checks that every peer was want.
func (e *echoServer) checkPeers(t testing.TB, want string) {
	t.Helper()
	p := e.Peers()
	if len(p) == 0 {
		t.Errorf("server %s saw no peers, want %s", e.Addr, want)
	}
	for _, a := range p {
		if a != want {
			t.Errorf("server %s saw source %s, want %s (all: %v)", e.Addr, a, want, p)
			return
		}
	}
}

// startStreamEcho serves echo on network ("tcp" or "unix") addr in ns ("" = the test's
// own namespace, which is fine for unix sockets).
func startStreamEcho(t testing.TB, ns, network, addr string) *echoServer {
	t.Helper()
	var l net.Listener
	if ns == "" {
		var err error
		if l, err = net.Listen(network, addr); err != nil {
			t.Fatalf("listen %s %s: %v", network, addr, err)
		}
		t.Cleanup(func() { l.Close() })
	} else {
		l = listenIn(t, ns, network, addr)
	}
	e := &echoServer{Addr: addr}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			e.saw(c.RemoteAddr())
			go func() {
				defer c.Close()
				io.Copy(c, c)
				if cw, ok := c.(interface{ CloseWrite() error }); ok {
					cw.CloseWrite()
				}
			}()
		}
	}()
	return e
}

// startUDPEcho serves UDP echo on addr in ns.
func startUDPEcho(t testing.TB, ns, addr string) *echoServer {
	t.Helper()
	return startUDPEchoNet(t, ns, "udp4", addr)
}

// startUDPEchoNet serves UDP echo on addr in ns over network ("udp4" or "udp6").
func startUDPEchoNet(t testing.TB, ns, network, addr string) *echoServer {
	t.Helper()
	pc := listenPacketIn(t, ns, network, addr)
	e := &echoServer{Addr: addr}
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			e.saw(from)
			pc.WriteTo(buf[:n], from)
		}
	}()
	return e
}

// icmpWatch records the sources of the ICMP echo requests that reach ns (a raw socket
// sees them while the kernel answers).
type icmpWatch struct {
	mu      sync.Mutex
	sources []string
}

func startICMPWatch(t testing.TB, ns string) *icmpWatch {
	t.Helper()
	return startEchoWatch(t, ns, "ip4:icmp", "0.0.0.0", 8)
}

// startEchoWatch records the sources of the echo requests (ICMP type echoType) that reach
// ns on a raw socket of network ("ip4:icmp", "ip6:ipv6-icmp"; neither gets an IP header).
func startEchoWatch(t testing.TB, ns, network, addr string, echoType byte) *icmpWatch {
	t.Helper()
	pc := listenPacketIn(t, ns, network, addr)
	w := &icmpWatch{}
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if n > 0 && buf[0] == echoType {
				w.mu.Lock()
				w.sources = append(w.sources, from.String())
				w.mu.Unlock()
			}
		}
	}()
	return w
}

func (w *icmpWatch) Sources() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.sources)
}

// checkSources checks that w saw echo requests, all from want. The watcher reads its raw
// socket in its own goroutine, so the guest's reply can come back before the watcher has
// read the request it was given at the same instant: wait for it a little.
func (w *icmpWatch) checkSources(t testing.TB, want string) {
	t.Helper()
	var src []string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if src = w.Sources(); len(src) > 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(src) == 0 {
		t.Errorf("the outside world saw no echo request within 5 s although the guest got a reply")
	}
	for _, s := range src {
		if s != want {
			t.Errorf("the outside world saw an echo request from %s, want %s (all: %v)", s, want, src)
			return
		}
	}
}

// --- clients -----------------------------------------------------------------------------

var echoSeed atomic.Uint64

// dialRetry dials network/addr from ns ("" = here) until it connects or slirpTimeout
// passes: a slirp refuses (RST) until its forward or the server behind is ready.
func dialRetry(ns, network, addr string) (net.Conn, error) {
	deadline := time.Now().Add(slirpTimeout)
	for {
		var c net.Conn
		var err error
		if ns == "" {
			c, err = net.DialTimeout(network, addr, 5*time.Second)
		} else {
			c, err = dialIn(ns, network, addr, 5*time.Second)
		}
		if err == nil {
			return c, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("dial %s %s from %q for %v: %w", network, addr, ns, slirpTimeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// streamEcho sends size pseudo-random bytes to the echo server at addr (dialled from ns)
// while reading the echo, and compares the sha256 of both ends. It returns an error (not
// t.Fatal) so that several may run at once.
func streamEcho(ns, network, addr string, size int) error {
	c, err := dialRetry(ns, network, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(transferTimeout))
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], echoSeed.Add(1))
	src := rand.NewChaCha8(seed)
	sent := sha256.New()
	werr := make(chan error, 1)
	go func() {
		buf := make([]byte, 64<<10)
		for left := size; left > 0; {
			n := min(left, len(buf))
			src.Read(buf[:n])
			sent.Write(buf[:n])
			if _, err := c.Write(buf[:n]); err != nil {
				werr <- fmt.Errorf("write after %d of %d bytes: %w", size-left, size, err)
				return
			}
			left -= n
		}
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			werr <- cw.CloseWrite()
			return
		}
		werr <- nil
	}()
	got := sha256.New()
	n, rerr := io.Copy(got, c)
	if err := <-werr; err != nil {
		return fmt.Errorf("echo %s %s from %q: %v", network, addr, ns, err)
	}
	if rerr != nil {
		return fmt.Errorf("echo %s %s from %q: read after %d bytes: %v", network, addr, ns, n, rerr)
	}
	if n != int64(size) || !bytes.Equal(got.Sum(nil), sent.Sum(nil)) {
		return fmt.Errorf("echo %s %s from %q: got %d bytes sha256 %x, sent %d bytes sha256 %x",
			network, addr, ns, n, got.Sum(nil), size, sent.Sum(nil))
	}
	return nil
}

// tcpEcho is streamEcho over TCP, failing the test.
func tcpEcho(t testing.TB, ns, addr string, size int) {
	t.Helper()
	if err := streamEcho(ns, "tcp4", addr, size); err != nil {
		t.Fatal(err)
	}
}

// udpEcho sends a datagram to the UDP echo server at addr from ns until the same bytes
// come back (retrying: UDP may be lost, and the first datagram may need an ARP).
func udpEcho(ns, addr string) error { return udpEchoNet(ns, "udp4", addr) }

// udpEchoNet is udpEcho over network ("udp4" or "udp6").
func udpEchoNet(ns, network, addr string) error {
	c, err := dialIn(ns, network, addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	msg := fmt.Sprintf("slirp-udp-echo-%d", echoSeed.Add(1))
	buf := make([]byte, 2048)
	deadline := time.Now().Add(slirpTimeout)
	var last error
	for time.Now().Before(deadline) {
		if _, err := c.Write([]byte(msg)); err != nil {
			last = err // ECONNREFUSED from an earlier ICMP unreachable: try again
			time.Sleep(500 * time.Millisecond)
			continue
		}
		c.SetReadDeadline(time.Now().Add(time.Second))
		n, err := c.Read(buf)
		if err != nil {
			last = err
			if errors.Is(err, syscall.ECONNREFUSED) {
				time.Sleep(500 * time.Millisecond)
			}
			continue
		}
		if string(buf[:n]) == msg {
			return nil
		}
		last = fmt.Errorf("got %q, want %q", buf[:n], msg)
	}
	return fmt.Errorf("UDP echo %s %s from %s: no echo within %v: %v", network, addr, ns, slirpTimeout, last)
}

func mustUDPEcho(t testing.TB, ns, addr string) {
	t.Helper()
	if err := udpEcho(ns, addr); err != nil {
		t.Fatal(err)
	}
}

// pingOK pings addr from ns (`ping -c 1 -W 2`) until one answer comes back.
func pingOK(t testing.TB, ns, addr string) {
	t.Helper()
	waitFor(t, slirpTimeout, "ping "+addr+" from "+ns, func() (bool, string) {
		out, err := tryRun("ip", "netns", "exec", ns, "ping", "-n", "-c", "1", "-W", "2", addr)
		return err == nil, out
	})
}

// --- the world ---------------------------------------------------------------------------

var worldSeq atomic.Uint32

// slirpWorld is one test's network: switch, slirp host S, outside world O.
type slirpWorld struct {
	Sw     *Switch
	S, O   string // namespaces
	SAddr  string // S's veth address: the source the outside sees
	OAddr  string // O's veth address: where outside servers listen
	Dir    string // private directory
	Resolv string // S's private resolv.conf (bind-mounted for slirpvde)
	Slirp  *Proc
}

// newSlirpWorld builds the namespaces and starts a switch of implementation swImpl. The
// outside world is O: S has a /24 with O on its veth and a default route via O, and O
// forwards nothing, so every outside address but O's own dies in O.
func newSlirpWorld(t testing.TB, swImpl string) *slirpWorld {
	t.Helper()
	requireTun(t)
	requireTools(t, "ip", "busybox", "ping", "vde_plug")
	w := &slirpWorld{Dir: testDir(t)}
	w.S, w.O = newNetns(t), newNetns(t)
	n := worldSeq.Add(1)
	net3 := fmt.Sprintf("10.%d.%d", 201+(n/256)%50, n%256)
	w.SAddr, w.OAddr = net3+".1", net3+".2"
	suf := uniqueSuffix()
	vs, vo := "vs"+suf, "vo"+suf
	run(t, "ip", "link", "add", vs, "netns", w.S, "type", "veth", "peer", "name", vo, "netns", w.O)
	run(t, "ip", "-n", w.S, "addr", "add", w.SAddr+"/24", "dev", vs)
	run(t, "ip", "-n", w.S, "link", "set", vs, "up")
	run(t, "ip", "-n", w.O, "addr", "add", w.OAddr+"/24", "dev", vo)
	run(t, "ip", "-n", w.O, "link", "set", vo, "up")
	run(t, "ip", "-n", w.S, "route", "add", "default", "via", w.OAddr)
	// As systemd's 50-default.conf sets it on a Debian host, so that an unprivileged
	// slirpvde may use ICMP echo sockets (a new namespace starts with "1 0").
	run(t, "ip", "netns", "exec", w.S, "sysctl", "-q", "-w", "net.ipv4.ping_group_range=0 2147483647")
	w.Resolv = filepath.Join(w.Dir, "resolv.conf")
	w.setResolv(t, "127.0.0.1")
	w.Sw = startSwitch(t, swImpl)
	return w
}

// setResolv rewrites S's resolv.conf in place (same inode: it is bind-mounted).
func (w *slirpWorld) setResolv(t testing.TB, nameserver string) {
	t.Helper()
	if err := os.WriteFile(w.Resolv, []byte("nameserver "+nameserver+"\n"), 0644); err != nil {
		t.Fatal(err)
	}
}

// inS is a command line that runs argv inside S with the private resolv.conf.
func (w *slirpWorld) inS(argv ...string) []string {
	return append([]string{"netns", "exec", w.S, "sh", "-c",
		`mount --bind "$0" /etc/resolv.conf && exec "$@"`, w.Resolv}, argv...)
}

// startSlirp runs slirpvde in S: `slirpvde -s CTLDIR -dhcp extra...`, and waits until
// the switch lists it.
func (w *slirpWorld) startSlirp(t testing.TB, extra ...string) *Proc {
	t.Helper()
	argv := append([]string{slirpBin(t), "-s", w.Sw.Dir, "-dhcp"}, extra...)
	p := startProc(t, "ip", w.inS(argv...)...)
	p.Name = "slirpvde(" + slirpMode(t) + ")"
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

// checkAlive fails the test if slirpvde has exited.
func (w *slirpWorld) checkAlive(t testing.TB) {
	t.Helper()
	if w.Slirp != nil && w.Slirp.Exited() {
		t.Fatalf("%s exited: %v\n%s", w.Slirp.Name, w.Slirp.waitErr, w.Slirp.Stderr.String())
	}
}

// startDnsmasq runs a dnsmasq in S on addr:53 answering name with answer.
func (w *slirpWorld) startDnsmasq(t testing.TB, addr, name, answer string) *Proc {
	t.Helper()
	requireTools(t, "dnsmasq")
	pid := filepath.Join(w.Dir, "dnsmasq-"+addr+".pid")
	p := startProc(t, "ip", "netns", "exec", w.S, "dnsmasq", "--no-daemon", "--conf-file=/dev/null",
		"--no-resolv", "--no-hosts", "--user=root", "--listen-address="+addr, "--bind-interfaces",
		"--port=53", "--address=/"+name+"/"+answer, "--pid-file="+pid, "--log-queries")
	p.Name = "dnsmasq(" + addr + ")"
	waitFor(t, startTimeout, p.Name+" to listen", func() (bool, string) {
		if p.Exited() {
			p.log(t)
			t.Fatalf("%s exited: %v", p.Name, p.waitErr)
		}
		out, _ := tryRun("ip", "netns", "exec", w.S, "ss", "-Hlnu", "src", addr+":53")
		return strings.Contains(out, addr+":53"), out
	})
	return p
}

// --- guests ------------------------------------------------------------------------------

// slirpGuest is a namespace with a TAP on the switch, configured by busybox udhcpc.
type slirpGuest struct {
	*tapHost
	Lease  map[string]string // the environment udhcpc gave its script at "bound"
	script string
	lease  string
}

// udhcpcScript applies the lease (address, default route) and records its environment.
const udhcpcScript = `#!/bin/sh
# udhcpc event script of the slirp tests: apply the lease and record what it said.
echo "$1" >>'%[1]s.events'
case "$1" in
deconfig)
	ip addr flush dev "$interface"
	ip link set "$interface" up
	;;
bound|renew)
	ip addr add "$ip/$mask" dev "$interface"
	[ -n "$router" ] && ip route replace default via "${router%%%% *}" dev "$interface"
	env >'%[1]s.tmp' && mv '%[1]s.tmp' '%[1]s'
	;;
esac
exit 0
`

// plugGuest makes a guest on w's switch (Debian's vde_plug on a TAP), without DHCP.
func (w *slirpWorld) plugGuest(t testing.TB) *slirpGuest {
	t.Helper()
	return plugGuestOn(t, w.Sw)
}

func plugGuestOn(t testing.TB, sw *Switch) *slirpGuest {
	t.Helper()
	g := &slirpGuest{tapHost: plugTap(t, sw, 0, "")}
	run(t, "ip", "-n", g.NS, "link", "set", g.Tap, "up")
	dir := t.TempDir()
	g.script, g.lease = filepath.Join(dir, "udhcpc.sh"), filepath.Join(dir, "lease")
	if err := os.WriteFile(g.script, []byte(fmt.Sprintf(udhcpcScript, g.lease)), 0755); err != nil {
		t.Fatal(err)
	}
	return g
}

// addGuest makes a guest and leases it an address.
func (w *slirpWorld) addGuest(t testing.TB) *slirpGuest {
	t.Helper()
	g := w.plugGuest(t)
	g.dhcp(t)
	return g
}

// dhcp runs `udhcpc -f -q -n -t 5 -T 1` (up to twice) and reads the lease.
func (g *slirpGuest) dhcp(t testing.TB) {
	t.Helper()
	var out string
	var err error
	for try := 0; try < 2; try++ {
		out, err = tryRun("ip", "netns", "exec", g.NS, "busybox", "udhcpc", "-i", g.Tap,
			"-f", "-q", "-n", "-t", "5", "-T", "1", "-s", g.script)
		if err == nil {
			break
		}
	}
	if err != nil {
		ev, _ := os.ReadFile(g.lease + ".events")
		t.Fatalf("udhcpc on %s in %s: no lease: %v\n%s\nscript events: %q", g.Tap, g.NS, err, out, ev)
	}
	b, rerr := os.ReadFile(g.lease)
	if rerr != nil {
		t.Fatalf("udhcpc succeeded but its script recorded no lease: %v\n%s", rerr, out)
	}
	g.Lease = map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			g.Lease[k] = v
		}
	}
	g.Addr = g.Lease["ip"]
	t.Logf("guest %s leased ip=%s mask=%s router=%s dns=%s serverid=%s lease=%s",
		g.NS, g.Lease["ip"], g.Lease["mask"], g.Lease["router"], g.Lease["dns"], g.Lease["serverid"], g.Lease["lease"])
}

// checkLease compares lease fields (keys of the udhcpc script environment).
func (g *slirpGuest) checkLease(t testing.TB, want map[string]string) {
	t.Helper()
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if got := strings.TrimSpace(g.Lease[k]); got != want[k] {
			t.Errorf("guest %s lease %s=%q, want %q", g.NS, k, got, want[k])
		}
	}
}

// --- raw frames --------------------------------------------------------------------------

// inetChecksum is the RFC 1071 checksum of b with an initial partial sum.
func inetChecksum(b []byte, sum uint32) uint16 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// ipv4Header is a 20-byte IPv4 header with a correct checksum, for a payload of n bytes.
func ipv4Header(src, dst net.IP, proto byte, n int) []byte {
	h := make([]byte, 20)
	h[0] = 0x45
	binary.BigEndian.PutUint16(h[2:], uint16(20+n))
	binary.BigEndian.PutUint16(h[4:], uint16(rand.Uint32()))
	h[8] = 64
	h[9] = proto
	copy(h[12:16], src.To4())
	copy(h[16:20], dst.To4())
	binary.BigEndian.PutUint16(h[10:], inetChecksum(h, 0))
	return h
}

// l4Checksum is the TCP/UDP checksum of seg with the IPv4 pseudo-header.
func l4Checksum(src, dst net.IP, proto byte, seg []byte) uint16 {
	var sum uint32
	for _, a := range [][]byte{src.To4(), dst.To4()} {
		sum += uint32(binary.BigEndian.Uint16(a[0:])) + uint32(binary.BigEndian.Uint16(a[2:]))
	}
	sum += uint32(proto) + uint32(len(seg))
	return inetChecksum(seg, sum)
}

// udpDatagram is a UDP header (length from payload, checksum 0 = none) and payload.
func udpDatagram(sport, dport uint16, payload []byte) []byte {
	u := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(u[0:], sport)
	binary.BigEndian.PutUint16(u[2:], dport)
	binary.BigEndian.PutUint16(u[4:], uint16(8+len(payload)))
	return append(u, payload...)
}

// ethIPv4 frames an IPv4 packet (header + payload) from mac to dst.
func ethIPv4(dst, src net.HardwareAddr, ip []byte) []byte {
	f := make([]byte, 0, 14+len(ip))
	f = append(f, dst...)
	f = append(f, src...)
	f = append(f, 0x08, 0x00)
	return append(f, ip...)
}

// ipv4Frame is a well-formed IPv4 frame carrying payload.
func ipv4Frame(dst, src net.HardwareAddr, sip, dip net.IP, proto byte, payload []byte) []byte {
	return ethIPv4(dst, src, append(ipv4Header(sip, dip, proto, len(payload)), payload...))
}

const dhcpCookie = 0x63825363

// DHCP message types (option 53).
const (
	dhcpDiscover = 1
	dhcpOffer    = 2
	dhcpRequest  = 3
	dhcpAck      = 5
	dhcpNak      = 6
)

// bootpRequest is a BOOTREQUEST from mac with xid and raw options (without the end
// option, which is added), padded to the 300-byte BOOTP minimum.
func bootpRequest(mac net.HardwareAddr, xid uint32, opts []byte) []byte {
	b := make([]byte, 240, 300)
	b[0], b[1], b[2] = 1, 1, 6
	binary.BigEndian.PutUint32(b[4:], xid)
	binary.BigEndian.PutUint16(b[10:], 0x8000) // broadcast reply
	copy(b[28:], mac)
	binary.BigEndian.PutUint32(b[236:], dhcpCookie)
	b = append(b, opts...)
	b = append(b, 255)
	for len(b) < 300 {
		b = append(b, 0)
	}
	return b
}

// dhcpRequestFrame is a broadcast DHCPREQUEST (0.0.0.0:68 → 255.255.255.255:67) asking
// for addr.
func dhcpRequestFrame(mac net.HardwareAddr, xid uint32, addr string) []byte {
	opts := []byte{53, 1, dhcpRequest, 50, 4}
	opts = append(opts, net.ParseIP(addr).To4()...)
	opts = append(opts, 54, 4)
	opts = append(opts, net.ParseIP(slirpRouter).To4()...)
	return ipv4Frame(broadcast, mac, net.IPv4zero, net.IPv4bcast, 17,
		udpDatagram(68, 67, bootpRequest(mac, xid, opts)))
}

// dhcpReply is a parsed BOOTREPLY.
type dhcpReply struct {
	Type   byte
	YIAddr net.IP
	Opts   map[byte][]byte
	Order  []byte // option codes in order
}

// parseDHCPReply parses f as Ethernet/IPv4/UDP 67→68/BOOTREPLY with xid.
func parseDHCPReply(f []byte, xid uint32) (*dhcpReply, bool) {
	if len(f) < 14+20 || f[12] != 0x08 || f[13] != 0x00 {
		return nil, false
	}
	ip := f[14:]
	ihl := int(ip[0]&0x0f) * 4
	if ip[0]>>4 != 4 || ihl < 20 || len(ip) < ihl+8 || ip[9] != 17 {
		return nil, false
	}
	udp := ip[ihl:]
	if binary.BigEndian.Uint16(udp[0:]) != 67 || binary.BigEndian.Uint16(udp[2:]) != 68 {
		return nil, false
	}
	b := udp[8:]
	if len(b) < 240 || b[0] != 2 || binary.BigEndian.Uint32(b[4:]) != xid || binary.BigEndian.Uint32(b[236:]) != dhcpCookie {
		return nil, false
	}
	r := &dhcpReply{YIAddr: net.IP(bytes.Clone(b[16:20])), Opts: map[byte][]byte{}}
	for o := b[240:]; len(o) > 0; {
		code := o[0]
		if code == 255 {
			break
		}
		if code == 0 {
			o = o[1:]
			continue
		}
		if len(o) < 2 || len(o) < 2+int(o[1]) {
			return nil, false
		}
		r.Opts[code] = bytes.Clone(o[2 : 2+int(o[1])])
		r.Order = append(r.Order, code)
		o = o[2+int(o[1]):]
	}
	if t, ok := r.Opts[53]; ok && len(t) == 1 {
		r.Type = t[0]
	}
	return r, true
}

// recvDHCP waits for the BOOTREPLY with xid on p.
func (p *peer) recvDHCP(t testing.TB, xid uint32) *dhcpReply {
	t.Helper()
	timer := time.NewTimer(slirpTimeout)
	defer timer.Stop()
	for {
		select {
		case f, ok := <-p.rx:
			if !ok {
				t.Fatalf("%s: connection closed waiting for the DHCP reply %08x", p.Name, xid)
			}
			if r, ok := parseDHCPReply(f, xid); ok {
				return r
			}
		case <-timer.C:
			t.Fatalf("%s: no DHCP reply with xid %08x within %v", p.Name, xid, slirpTimeout)
		}
	}
}

// --- DNS ---------------------------------------------------------------------------------

// dnsQuery is a recursive query for name's A record.
func dnsQuery(id uint16, name string) []byte {
	q := make([]byte, 12)
	binary.BigEndian.PutUint16(q[0:], id)
	binary.BigEndian.PutUint16(q[2:], 0x0100) // RD
	binary.BigEndian.PutUint16(q[4:], 1)
	for _, label := range strings.Split(strings.TrimSuffix(name, "."), ".") {
		q = append(q, byte(len(label)))
		q = append(q, label...)
	}
	return append(q, 0, 0, 1, 0, 1) // root, type A, class IN
}

// dnsAnswers returns the A records of the response m to query id.
func dnsAnswers(m []byte, id uint16) ([]string, error) {
	if len(m) < 12 {
		return nil, fmt.Errorf("DNS response of %d bytes", len(m))
	}
	if binary.BigEndian.Uint16(m[0:]) != id {
		return nil, fmt.Errorf("DNS response id %d, want %d", binary.BigEndian.Uint16(m[0:]), id)
	}
	if rc := m[3] & 0x0f; rc != 0 {
		return nil, fmt.Errorf("DNS rcode %d", rc)
	}
	qd, an := int(binary.BigEndian.Uint16(m[4:])), int(binary.BigEndian.Uint16(m[6:]))
	off := 12
	skipName := func() error {
		for {
			if off >= len(m) {
				return errors.New("DNS name runs past the end")
			}
			l := int(m[off])
			switch {
			case l == 0:
				off++
				return nil
			case l&0xc0 == 0xc0:
				off += 2
				return nil
			}
			off += 1 + l
		}
	}
	for i := 0; i < qd; i++ {
		if err := skipName(); err != nil {
			return nil, err
		}
		off += 4
	}
	var out []string
	for i := 0; i < an; i++ {
		if err := skipName(); err != nil {
			return nil, err
		}
		if off+10 > len(m) {
			return nil, errors.New("DNS answer truncated")
		}
		typ, rdlen := binary.BigEndian.Uint16(m[off:]), int(binary.BigEndian.Uint16(m[off+8:]))
		off += 10
		if off+rdlen > len(m) {
			return nil, errors.New("DNS rdata truncated")
		}
		if typ == 1 && rdlen == 4 {
			out = append(out, net.IP(m[off:off+4]).String())
		}
		off += rdlen
	}
	return out, nil
}

// dnsTCP asks server:53 over TCP, from ns, for name's A records.
func dnsTCP(ns, server, name string) ([]string, error) { return dnsAsk(ns, "tcp4", server, name) }

// nslookup runs busybox nslookup (UDP) for name at server from ns and returns its output.
func nslookup(ns, name, server string) string {
	out, err := tryRun("ip", "netns", "exec", ns, "busybox", "nslookup", name, server)
	if err != nil {
		out += fmt.Sprintf("\n(%v)", err)
	}
	return out
}
