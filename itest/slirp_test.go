package itest

// slirpvde against real peers: busybox udhcpc, ping, nslookup and tftp in guest
// namespaces on TAPs, Go servers in the slirp host namespace S and in the outside world O
// (see slirp_harness_test.go), dnsmasq as the host's DNS server, and in-process wire peers
// for hand-made DHCP and malformed frames. No test traffic leaves the machine: slirpvde
// runs in S, whose only way out is the veth to O.
//
//	go test ./itest/ -run Slirp -v                          # our slirpvde
//	VDE_ITEST_SLIRP=debian go test ./itest/ -run Slirp -v   # Debian's, to check the tests

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vde-go/vde/switchcore/wire"
)

// Ports of the test servers. Every world has namespaces of its own, so they never collide.
const (
	loTCPPort  = "5001" // TCP echo on S's 127.0.0.1 and on O's veth address
	loUDPPort  = "5002" // UDP echo, likewise
	guestTCP   = "7001" // TCP echo in the guest, target of -L
	guestTCP2  = "7002" // TCP echo in the guest, target of -L with a bind address
	guestUDP   = "7003" // UDP echo in the guest, target of -U
	fwdTCP     = "8001" // -L host port
	fwdTCPBind = "8002" // -L 127.0.0.1:host port
	fwdUDP     = "8003" // -U host port
	fwdUnix    = "8004" // -x port
	fwdTCP2    = "8005" // a second -L, next to a taken one
)

// defaultLease is what a first guest must get from `slirpvde -dhcp` (spec §3.3).
var defaultLease = map[string]string{
	"ip": slirpFirst, "router": slirpRouter, "dns": slirpDNS, "serverid": slirpRouter,
	"subnet": "255.255.255.0", "mask": "24", "lease": "86400",
}

// TestSlirpDHCP: a guest leases 10.0.2.15 with router 10.0.2.2 and DNS 10.0.2.3; a second
// guest leases 10.0.2.16, and both ping the router and move TCP at the same time.
func TestSlirpDHCP(t *testing.T) {
	w := newSlirpWorld(t, impl)
	w.startSlirp(t)
	lo := startStreamEcho(t, w.S, "tcp4", "127.0.0.1:"+loTCPPort)
	g1 := w.addGuest(t)
	g1.checkLease(t, defaultLease)
	pingOK(t, g1.NS, slirpRouter)
	tcpEcho(t, g1.NS, slirpRouter+":"+loTCPPort, tcpSmall)

	t.Run("second guest", func(t *testing.T) {
		slirpOursOnly(t, "Debian's slirpvde keeps one client MAC, so two guests at once get each other's replies (spec §3.2)")
		g2 := w.addGuest(t)
		want := withKey(defaultLease, "ip", slirpSecond)
		g2.checkLease(t, want)
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for _, g := range []*slirpGuest{g1, g2} {
			wg.Add(2)
			go func() {
				defer wg.Done()
				out, err := tryRun("ip", "netns", "exec", g.NS, "ping", "-n", "-c", "10", "-i", "0.2", "-W", "2", slirpRouter)
				if err != nil {
					errs <- fmt.Errorf("ping %s from %s (%s): %v\n%s", slirpRouter, g.NS, g.Addr, err, out)
				}
			}()
			go func() {
				defer wg.Done()
				if err := streamEcho(g.NS, "tcp4", slirpRouter+":"+loTCPPort, 5<<20); err != nil {
					errs <- fmt.Errorf("guest %s: %v", g.Addr, err)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
	w.checkAlive(t)
	lo.checkPeers(t, "127.0.0.1")
}

// withKey is a copy of m with k set to v.
func withKey(m map[string]string, k, v string) map[string]string {
	c := map[string]string{k: v}
	for mk, mv := range m {
		if mk != k {
			c[mk] = mv
		}
	}
	return c
}

// TestSlirpTraffic: TCP (20 MB, sha256), UDP echo and ping from a guest to services on
// the slirp host's loopback via 10.0.2.2, and to servers in the outside world, which must
// see S's own veth address as the source (real NAT). An outside address nothing answers
// gets no ping reply.
func TestSlirpTraffic(t *testing.T) {
	w := newSlirpWorld(t, impl)
	loTCP := startStreamEcho(t, w.S, "tcp4", "127.0.0.1:"+loTCPPort)
	loUDP := startUDPEcho(t, w.S, "127.0.0.1:"+loUDPPort)
	outTCP := startStreamEcho(t, w.O, "tcp4", w.OAddr+":"+loTCPPort)
	outUDP := startUDPEcho(t, w.O, w.OAddr+":"+loUDPPort)
	outICMP := startICMPWatch(t, w.O)
	w.startSlirp(t)
	g := w.addGuest(t)
	g.checkLease(t, defaultLease)

	t.Run("loopback", func(t *testing.T) {
		pingOK(t, g.NS, slirpRouter)
		tcpEcho(t, g.NS, slirpRouter+":"+loTCPPort, tcpBig)
		mustUDPEcho(t, g.NS, slirpRouter+":"+loUDPPort)
		loTCP.checkPeers(t, "127.0.0.1")
		loUDP.checkPeers(t, "127.0.0.1")
	})
	t.Run("outside", func(t *testing.T) {
		tcpEcho(t, g.NS, w.OAddr+":"+loTCPPort, tcpBig)
		mustUDPEcho(t, g.NS, w.OAddr+":"+loUDPPort)
		outTCP.checkPeers(t, w.SAddr)
		outUDP.checkPeers(t, w.SAddr)
	})
	t.Run("outside ping", func(t *testing.T) {
		slirpOursOnly(t, "Debian's slirpvde fakes pings to outside addresses with a UDP datagram to port 7 (spec §3.5)")
		pingOK(t, g.NS, w.OAddr)
		outICMP.checkSources(t, w.SAddr)
	})
	t.Run("unanswered ping", func(t *testing.T) {
		// Debian's passes too: its pseudo-ping (a UDP datagram to port 7) gets no answer.
		noPing(t, g.NS, "198.51.100.7")
		pingOK(t, g.NS, slirpRouter) // and the router still answers
	})
	w.checkAlive(t)
}

// TestSlirpDNS: names resolve through 10.0.2.3 (UDP with busybox nslookup, TCP with a Go
// client) to the first nameserver of the slirp host's resolv.conf, a dnsmasq on
// 127.0.0.1; after resolv.conf is rewritten to name a second dnsmasq, its answer shows.
func TestSlirpDNS(t *testing.T) {
	const name = "slirp-test.example"
	w := newSlirpWorld(t, impl)
	w.startDnsmasq(t, "127.0.0.1", name, "10.9.8.7")
	w.startDnsmasq(t, "127.0.0.2", name, "10.9.8.8")
	w.startSlirp(t)
	g := w.addGuest(t)
	g.checkLease(t, map[string]string{"dns": slirpDNS})

	resolves := func(t *testing.T, want string) {
		t.Helper()
		waitFor(t, slirpTimeout, "nslookup "+name+" 10.0.2.3 to give "+want, func() (bool, string) {
			out := nslookup(g.NS, name, slirpDNS)
			return strings.Contains(out, "Address: "+want), out
		})
		waitFor(t, slirpTimeout, "TCP DNS query for "+name+" at 10.0.2.3 to give "+want, func() (bool, string) {
			ips, err := dnsTCP(g.NS, slirpDNS, name)
			return err == nil && len(ips) == 1 && ips[0] == want, fmt.Sprint(ips, err)
		})
	}
	t.Run("first nameserver", func(t *testing.T) { resolves(t, "10.9.8.7") })
	t.Run("resolv.conf rewritten", func(t *testing.T) {
		slirpOursOnly(t, "Debian's slirpvde reads resolv.conf once at start-up (QEMU 0.12 slirp_init), not on change as spec §3.4 says")
		w.setResolv(t, "127.0.0.2")
		resolves(t, "10.9.8.8")
	})
	w.checkAlive(t)
}

// TestSlirpForwards: -L reaches a TCP server in the guest from the slirp host and from
// the outside; with a bind address it listens there only; -U does the same for UDP; -x
// connects the guest's TCP to router:PORT to a unix stream socket on the host.
func TestSlirpForwards(t *testing.T) {
	w := newSlirpWorld(t, impl)
	unixPath := filepath.Join(w.Dir, "fwd.sock")
	unixSrv := startStreamEcho(t, "", "unix", unixPath)
	args := []string{
		"-L", fwdTCP + ":" + slirpFirst + ":" + guestTCP,
		"-U", fwdUDP + ":" + slirpFirst + ":" + guestUDP,
		"-x", fwdUnix + ":" + unixPath,
	}
	bindAddr := slirpMode(t) == implOurs
	if bindAddr {
		args = append(args, "-L", "127.0.0.1:"+fwdTCPBind+":"+slirpFirst+":"+guestTCP2)
	}
	w.startSlirp(t, args...)
	g := w.plugGuest(t)
	// The guest's servers listen before it has an address: a forward may connect at once.
	gTCP := startStreamEcho(t, g.NS, "tcp4", "0.0.0.0:"+guestTCP)
	gTCP2 := startStreamEcho(t, g.NS, "tcp4", "0.0.0.0:"+guestTCP2)
	gUDP := startUDPEcho(t, g.NS, "0.0.0.0:"+guestUDP)
	g.dhcp(t)
	g.checkLease(t, map[string]string{"ip": slirpFirst})
	pingOK(t, g.NS, slirpRouter) // the slirp knows the guest's MAC

	t.Run("L", func(t *testing.T) {
		tcpEcho(t, w.S, "127.0.0.1:"+fwdTCP, tcpSmall)
		// A peer on the host's loopback appears as the router address (spec §3.6).
		gTCP.checkPeers(t, slirpRouter)
		// The forward listens on all addresses: the outside reaches it too, and the guest
		// sees the real peer.
		tcpEcho(t, w.O, w.SAddr+":"+fwdTCP, tcpSmall)
		if p := gTCP.Peers(); p[len(p)-1] != w.OAddr {
			t.Errorf("guest server saw the outside peer as %s, want %s (all: %v)", p[len(p)-1], w.OAddr, p)
		}
	})
	t.Run("L with bind address", func(t *testing.T) {
		slirpOursOnly(t, "Debian's slirpvde has no bind address in -L (HPORT:GUESTIP:GPORT only)")
		tcpEcho(t, w.S, "127.0.0.1:"+fwdTCPBind, tcpSmall)
		gTCP2.checkPeers(t, slirpRouter)
		out := nsRun(t, w.S, "ss", "-Hltn")
		if !strings.Contains(out, "127.0.0.1:"+fwdTCPBind+" ") || strings.Contains(out, "0.0.0.0:"+fwdTCPBind+" ") ||
			strings.Contains(out, "*:"+fwdTCPBind+" ") {
			t.Errorf("want a TCP listener on 127.0.0.1:%s only; ss -ltn in S:\n%s", fwdTCPBind, out)
		}
		if c, err := dialIn(w.O, "tcp4", w.SAddr+":"+fwdTCPBind, 5*time.Second); err == nil {
			c.Close()
			t.Errorf("the outside connected to %s:%s, a forward bound to 127.0.0.1", w.SAddr, fwdTCPBind)
		}
	})
	t.Run("U", func(t *testing.T) {
		mustUDPEcho(t, w.S, "127.0.0.1:"+fwdUDP)
		gUDP.checkPeers(t, slirpRouter)
		mustUDPEcho(t, w.O, w.SAddr+":"+fwdUDP)
		if p := gUDP.Peers(); p[len(p)-1] != w.OAddr {
			t.Errorf("guest UDP server saw the outside peer as %s, want %s (all: %v)", p[len(p)-1], w.OAddr, p)
		}
	})
	t.Run("x", func(t *testing.T) {
		tcpEcho(t, g.NS, slirpRouter+":"+fwdUnix, tcpSmall)
		if len(unixSrv.Peers()) == 0 {
			t.Errorf("the unix socket server saw no connection")
		}
	})
	w.checkAlive(t)
}

// TestSlirpNetaddr: another virtual network moves the router, DNS and the pool.
func TestSlirpNetaddr(t *testing.T) {
	want := map[string]string{"ip": "10.1.0.15", "router": "10.1.0.2", "dns": "10.1.0.3", "serverid": "10.1.0.2"}
	for _, tc := range []struct {
		name     string
		args     []string
		oursOnly string
	}{
		{"-netaddr", []string{"-netaddr", "10.1.0.0"}, "Debian's slirpvde parses -netaddr as -n etaddr and exits with usage (spec §1)"},
		{"-n", []string{"-n", "10.1.0.0"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.oursOnly != "" {
				slirpOursOnly(t, tc.oursOnly)
			}
			w := newSlirpWorld(t, impl)
			w.startSlirp(t, tc.args...)
			g := w.addGuest(t)
			g.checkLease(t, want)
			pingOK(t, g.NS, "10.1.0.2")
			w.checkAlive(t)
		})
	}
}

// TestSlirpNAK: a DHCPREQUEST for an address outside the pool gets a NAK; one for a free
// address in the pool gets an ACK of it.
func TestSlirpNAK(t *testing.T) {
	w := newSlirpWorld(t, impl)
	w.startSlirp(t)
	p := dialPeer(t, w.Sw, 1, wire.DialOptions{})

	xid := rand.Uint32()
	p.send(t, dhcpRequestFrame(p.MAC, xid, "10.0.2.200"))
	r := p.recvDHCP(t, xid)
	if r.Type != dhcpNak {
		t.Errorf("REQUEST for 10.0.2.200: reply type %d (options %v), want NAK (6)", r.Type, r.Order)
	}
	// Debian's NAK carries options 53 and 56 only (no server id, which RFC 2131 wants).
	if msg := string(r.Opts[56]); msg != "requested address not available" {
		t.Errorf("NAK message (option 56) %q, want %q", msg, "requested address not available")
	}
	t.Logf("NAK options %v", r.Order)

	xid = rand.Uint32()
	p.send(t, dhcpRequestFrame(p.MAC, xid, "10.0.2.20"))
	r = p.recvDHCP(t, xid)
	if r.Type != dhcpAck || !r.YIAddr.Equal(net.ParseIP("10.0.2.20")) {
		t.Errorf("REQUEST for 10.0.2.20: reply type %d yiaddr %v, want ACK (5) of 10.0.2.20", r.Type, r.YIAddr)
	}
	w.checkAlive(t)
}

// TestSlirpTFTP: busybox tftp fetches a file from -t DIR intact; a name climbing out of
// DIR is refused.
func TestSlirpTFTP(t *testing.T) {
	w := newSlirpWorld(t, impl)
	root := filepath.Join(w.Dir, "tftp")
	if err := os.Mkdir(root, 0755); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 200<<10+123) // not a multiple of the 512-byte block
	rand.NewChaCha8([32]byte{7}).Read(data)
	if err := os.WriteFile(filepath.Join(root, "boot.bin"), data, 0644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(w.Dir, "secret"), []byte("not for guests\n"), 0644); err != nil {
		t.Fatal(err)
	}
	w.startSlirp(t, "-t", root)
	g := w.addGuest(t)
	pingOK(t, g.NS, slirpRouter)

	out := filepath.Join(t.TempDir(), "got.bin")
	if o, err := tryRun("ip", "netns", "exec", g.NS, "busybox", "tftp", "-g", "-r", "boot.bin", "-l", out, slirpRouter); err != nil {
		t.Fatalf("tftp -g boot.bin: %v\n%s", err, o)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Errorf("tftp got %d bytes sha256 %x, want %d bytes sha256 %x", len(got), sha256.Sum256(got), len(data), sha256.Sum256(data))
	}

	out2 := filepath.Join(t.TempDir(), "secret")
	if o, err := tryRun("ip", "netns", "exec", g.NS, "busybox", "tftp", "-g", "-r", "../secret", "-l", out2, slirpRouter); err == nil {
		b, _ := os.ReadFile(out2)
		t.Errorf("tftp -g ../secret succeeded (%q), want refused\n%s", b, o)
	}
	w.checkAlive(t)
}

// TestSlirpStream: `dpipe vde_plug CTLDIR = slirpvde -dhcp -` (stream mode) serves a
// guest. (DHCP is off by default in stream mode as in switch mode: Debian's `slirpvde -`
// alone gives no lease.)
func TestSlirpStream(t *testing.T) {
	w := newSlirpWorld(t, impl)
	dpipe, plug := slirpDpipe(t)
	lo := startStreamEcho(t, w.S, "tcp4", "127.0.0.1:"+loTCPPort)
	p := startProc(t, "ip", w.inS(dpipe, plug, w.Sw.Dir, "=", slirpBin(t), "-dhcp", "-")...)
	p.Name = "dpipe(slirpvde " + slirpMode(t) + " -)"
	waitFor(t, startTimeout, "the stream-mode slirp's vde_plug to join the switch", func() (bool, string) {
		if p.Exited() {
			p.log(t)
			t.Fatalf("%s exited: %v", p.Name, p.waitErr)
		}
		raw := w.Sw.Cmd(t, "port/print")
		return strings.Contains(raw, " pid="), raw
	})
	g := w.addGuest(t)
	g.checkLease(t, defaultLease)
	pingOK(t, g.NS, slirpRouter)
	tcpEcho(t, g.NS, slirpRouter+":"+loTCPPort, tcpSmall)
	lo.checkPeers(t, "127.0.0.1")
	if p.Exited() {
		t.Errorf("%s exited: %v", p.Name, p.waitErr)
	}
}

// TestSlirpOnDebianSwitch: the slirpvde under test on Debian's vde_switch.
func TestSlirpOnDebianSwitch(t *testing.T) {
	w := newSlirpWorld(t, implDebian)
	lo := startStreamEcho(t, w.S, "tcp4", "127.0.0.1:"+loTCPPort)
	w.startSlirp(t)
	g := w.addGuest(t)
	g.checkLease(t, defaultLease)
	pingOK(t, g.NS, slirpRouter)
	tcpEcho(t, g.NS, slirpRouter+":"+loTCPPort, 5<<20)
	lo.checkPeers(t, "127.0.0.1")
	w.checkAlive(t)
}

// TestSlirpBadInput: malformed frames from a wire peer, and a -L whose host port is taken,
// leave the slirp serving its guests.
func TestSlirpBadInput(t *testing.T) {
	t.Run("frames", func(t *testing.T) {
		w := newSlirpWorld(t, impl)
		startStreamEcho(t, w.S, "tcp4", "127.0.0.1:"+loTCPPort)
		startUDPEcho(t, w.S, "127.0.0.1:"+loUDPPort)
		w.startSlirp(t)
		before := w.addGuest(t)
		pingOK(t, before.NS, slirpRouter)

		p := dialPeer(t, w.Sw, 1, wire.DialOptions{})
		sent := 0
		for _, j := range junkFrames(p.MAC) {
			if j.debianDies && slirpMode(t) != implOurs {
				t.Logf("not sent to Debian's slirpvde, which it kills: %s", j.what)
				continue
			}
			p.send(t, j.frame)
			if sent++; sent%8 == 0 {
				time.Sleep(10 * time.Millisecond) // let the slirp read; a full queue would drop
			}
		}
		t.Logf("sent %d malformed frames", sent)
		time.Sleep(500 * time.Millisecond)
		w.checkAlive(t)

		after := w.addGuest(t)
		ip := net.ParseIP(after.Addr).To4()
		if ip == nil || !bytes.Equal(ip[:3], []byte{10, 0, 2}) || ip[3] < 15 || ip[3] > 30 {
			t.Errorf("guest after the junk leased %q, want an address of 10.0.2.15-30", after.Addr)
		}
		pingOK(t, after.NS, slirpRouter)
		tcpEcho(t, after.NS, slirpRouter+":"+loTCPPort, tcpSmall)
		mustUDPEcho(t, after.NS, slirpRouter+":"+loUDPPort)
		t.Run("guest from before", func(t *testing.T) {
			slirpOursOnly(t, "Debian's slirpvde sends everything to the MAC that spoke ARP/DHCP last (spec §3.2)")
			pingOK(t, before.NS, slirpRouter)
			tcpEcho(t, before.NS, slirpRouter+":"+loTCPPort, tcpSmall)
		})
		w.checkAlive(t)
	})

	t.Run("taken port", func(t *testing.T) {
		w := newSlirpWorld(t, impl)
		listenIn(t, w.S, "tcp4", "0.0.0.0:"+fwdTCP) // taken
		w.startSlirp(t,
			"-L", fwdTCP+":"+slirpFirst+":"+guestTCP,
			"-L", fwdTCP2+":"+slirpFirst+":"+guestTCP)
		g := w.plugGuest(t)
		startStreamEcho(t, g.NS, "tcp4", "0.0.0.0:"+guestTCP)
		g.dhcp(t)
		g.checkLease(t, map[string]string{"ip": slirpFirst})
		pingOK(t, g.NS, slirpRouter)
		tcpEcho(t, w.S, "127.0.0.1:"+fwdTCP2, tcpSmall) // the other forward works
		w.checkAlive(t)

		stderr := w.Slirp.Stderr.String()
		t.Logf("%s stderr:\n%s", w.Slirp.Name, stderr)
		t.Run("message", func(t *testing.T) {
			slirpOursOnly(t, "Debian's slirpvde's wording is not ours to check")
			var lines []string
			for _, l := range strings.Split(stderr, "\n") {
				if strings.Contains(l, fwdTCP) {
					lines = append(lines, l)
				}
			}
			if len(lines) != 1 {
				t.Errorf("want one stderr line about the taken port %s, got %d: %q", fwdTCP, len(lines), lines)
			}
		})
	})
}

// junk is one malformed frame.
type junk struct {
	what       string
	frame      []byte
	debianDies bool // Debian's slirpvde crashes on it
}

// junkFrames are malformed ARP, IPv4, UDP, DHCP, DNS, TCP and ICMP frames from mac
// (source 10.0.2.99, not a guest's address).
func junkFrames(mac net.HardwareAddr) []junk {
	slirpMAC := net.HardwareAddr{0x52, 0x55, 10, 0, 2, 2}
	src := net.ParseIP("10.0.2.99")
	router, dns := net.ParseIP(slirpRouter), net.ParseIP(slirpDNS)
	var js []junk
	add := func(what string, f []byte) { js = append(js, junk{what: what, frame: f}) }

	eth := func(typ uint16, payload []byte) []byte {
		f := append(append(bytes.Clone(broadcast), mac...), byte(typ>>8), byte(typ))
		return append(f, payload...)
	}
	ip := func(dst net.IP, proto byte, payload []byte) []byte {
		return ipv4Frame(slirpMAC, mac, src, dst, proto, payload)
	}
	// good is a well-formed UDP datagram to the router's port 5002; withIP edits its
	// IPv4 header (and recomputes the header checksum).
	good := func() []byte { return ip(router, 17, udpDatagram(40002, 5002, []byte("junk"))) }
	recsum := func(h []byte) {
		h[10], h[11] = 0, 0
		ihl := min(int(h[0]&0x0f)*4, len(h))
		binary.BigEndian.PutUint16(h[10:], inetChecksum(h[:ihl], 0))
	}
	withIP := func(f []byte, edit func(h []byte)) []byte {
		edit(f[14:])
		recsum(f[14:])
		return f
	}
	tcp := func(dst net.IP, dport uint16, flags byte, doff int, hdrLen int) []byte {
		s := make([]byte, hdrLen)
		binary.BigEndian.PutUint16(s[0:], 40000)
		if hdrLen >= 4 {
			binary.BigEndian.PutUint16(s[2:], dport)
		}
		if hdrLen >= 14 {
			binary.BigEndian.PutUint32(s[4:], rand.Uint32())
			s[12] = byte(doff << 4)
			s[13] = flags
		}
		if hdrLen >= 16 {
			binary.BigEndian.PutUint16(s[14:], 65535)
		}
		if hdrLen >= 18 {
			binary.BigEndian.PutUint16(s[16:], l4Checksum(src, dst, 6, s))
		}
		return ip(dst, 6, s)
	}
	arp := func(op uint16, hlen, plen byte, n int) []byte {
		a := make([]byte, 28)
		binary.BigEndian.PutUint16(a[0:], 1)
		binary.BigEndian.PutUint16(a[2:], 0x0800)
		a[4], a[5] = hlen, plen
		binary.BigEndian.PutUint16(a[6:], op)
		copy(a[8:], mac)
		copy(a[14:], src.To4())
		copy(a[24:], router.To4())
		return eth(0x0806, a[:n])
	}
	bootp := func(edit func(b []byte) []byte) []byte {
		b := bootpRequest(mac, rand.Uint32(), []byte{53, 1, dhcpDiscover})
		return ip(net.IPv4bcast, 17, udpDatagram(68, 67, edit(b)))
	}
	dnsq := func(payload []byte) []byte { return ip(dns, 17, udpDatagram(40001, 53, payload)) }

	add("1-byte frame", []byte{0x01})
	add("6-byte frame", bytes.Clone(broadcast))
	add("13-byte frame", eth(0x0800, nil)[:13])
	add("IPv4 Ethernet header alone", eth(0x0800, nil))
	add("ARP Ethernet header alone", eth(0x0806, nil))

	add("ARP cut after 8 bytes", arp(1, 6, 4, 8))
	add("ARP cut after 20 bytes", arp(1, 6, 4, 20))
	add("ARP hlen 255 plen 255", arp(1, 255, 255, 28))
	add("ARP hlen 0 plen 0", arp(1, 0, 0, 28))
	add("ARP reply nobody asked for", arp(2, 6, 4, 28))
	add("ARP opcode 9", arp(9, 6, 4, 28))

	add("IPv4 shorter than its header", good()[:14+10])
	add("IPv4 IHL 2", withIP(good(), func(h []byte) { h[0] = 0x42 }))
	add("IPv4 IHL 15 past the packet", withIP(good(), func(h []byte) { h[0] = 0x4f }))
	add("IPv4 total length 65535 > frame", withIP(good(), func(h []byte) { binary.BigEndian.PutUint16(h[2:], 65535) }))
	add("IPv4 total length 8 < header", withIP(good(), func(h []byte) { binary.BigEndian.PutUint16(h[2:], 8) }))
	add("IPv4 version 6", withIP(good(), func(h []byte) { h[0] = 0x65 }))
	bad := good()
	bad[14+10] ^= 0xff
	add("IPv4 bad header checksum", bad)
	add("IPv4 first fragment, never completed", withIP(good(), func(h []byte) { binary.BigEndian.PutUint16(h[6:], 0x2000) }))
	js = append(js, junk{what: "IPv4 last fragment at offset 65528 (reassembles past 64 KiB)",
		frame:      withIP(good(), func(h []byte) { binary.BigEndian.PutUint16(h[6:], 0x1fff) }),
		debianDies: true}) // SIGSEGV in its ip_reass
	add("IPv4 middle fragment at offset 65520", withIP(good(), func(h []byte) { binary.BigEndian.PutUint16(h[6:], 0x3ffe) }))
	add("IPv4 TTL 0", withIP(good(), func(h []byte) { h[8] = 0 }))
	add("IPv4 timestamp option claiming 40 bytes",
		withIP(ip(router, 17, append([]byte{0x44, 40, 5, 0}, udpDatagram(40003, 5002, []byte("x"))...)), func(h []byte) {
			h[0] = 0x46
			binary.BigEndian.PutUint16(h[2:], uint16(len(h)))
		}))
	add("IPv4 protocol 255", ip(router, 255, []byte("unknown protocol")))
	add("UDP to 224.0.0.1", ip(net.ParseIP("224.0.0.1"), 17, udpDatagram(40004, 5002, []byte("multicast"))))
	add("UDP to the subnet broadcast", ip(net.ParseIP("10.0.2.255"), 17, udpDatagram(40005, 5002, []byte("subnet broadcast"))))

	longUDP := udpDatagram(40006, 5002, []byte("x"))
	binary.BigEndian.PutUint16(longUDP[4:], 1000)
	add("UDP length 1000 > packet", ip(router, 17, longUDP))
	shortUDP := udpDatagram(40007, 5002, []byte("xyz"))
	binary.BigEndian.PutUint16(shortUDP[4:], 3)
	add("UDP length 3 < header", ip(router, 17, shortUDP))
	add("UDP header cut at 3 bytes", ip(router, 17, []byte{0x9c, 0x40, 0x13}))
	badSum := udpDatagram(40008, 5002, []byte("bad checksum"))
	binary.BigEndian.PutUint16(badSum[6:], 0x1234)
	add("UDP bad checksum", ip(router, 17, badSum))
	add("UDP to port 0", ip(router, 17, udpDatagram(40009, 0, []byte("port zero"))))

	add("DHCP bad magic cookie", bootp(func(b []byte) []byte { binary.BigEndian.PutUint32(b[236:], 0xdeadbeef); return b }))
	add("DHCP 10 bytes", bootp(func(b []byte) []byte { return b[:10] }))
	add("DHCP cookie and no options", bootp(func(b []byte) []byte { return b[:240] }))
	add("DHCP option length past the end", bootp(func(b []byte) []byte { return append(b[:240], 53, 200, 1) }))
	add("DHCP requested address cut", bootp(func(b []byte) []byte { return append(b[:240], 53, 1, 3, 50, 4, 10) }))
	add("DHCP without end option", bootp(func(b []byte) []byte { return append(b[:240], 53, 1, 1) }))
	add("DHCP hlen 255", bootp(func(b []byte) []byte { b[2] = 255; return b }))
	add("DHCP BOOTREPLY sent to the server", bootp(func(b []byte) []byte { b[0] = 2; return b }))
	add("DHCP message type 42", bootp(func(b []byte) []byte { return append(b[:240], 53, 1, 42, 255) }))
	add("DHCP all ones", bootp(func(b []byte) []byte { return bytes.Repeat([]byte{0xff}, 600) }))

	ptrLoop := dnsQuery(1, "x")[:12]
	ptrLoop = append(ptrLoop, 0xc0, 12, 0, 1, 0, 1)
	manyQ := dnsQuery(2, "x")[:12]
	binary.BigEndian.PutUint16(manyQ[4:], 0xffff)
	add("DNS 5 bytes", dnsq([]byte{1, 2, 3, 4, 5}))
	add("DNS empty", dnsq(nil))
	add("DNS name pointing at itself", dnsq(ptrLoop))
	add("DNS 65535 questions, none there", dnsq(manyQ))
	add("DNS 1200 bytes of 0x3f", dnsq(bytes.Repeat([]byte{0x3f}, 1200)))

	add("TCP header cut at 10 bytes", tcp(router, 5001, 0x02, 5, 10))
	add("TCP data offset past the segment", tcp(router, 5001, 0x02, 15, 20))
	add("TCP data offset 2", tcp(router, 5001, 0x02, 2, 20))
	add("TCP SYN-ACK out of the blue", tcp(router, 5001, 0x12, 5, 20))
	add("TCP every flag", tcp(router, 5001, 0x3f, 5, 20))
	add("TCP no flag", tcp(router, 5001, 0x00, 5, 20))
	add("TCP RST to an outside address", tcp(net.ParseIP("198.51.100.7"), 80, 0x04, 5, 20))

	echo := []byte{8, 0, 0, 0, 0, 1, 0, 1, 'j', 'u', 'n', 'k'}
	badEcho := bytes.Clone(echo)
	binary.BigEndian.PutUint16(badEcho[2:], 0xbeef)
	unreach := append([]byte{3, 3, 0, 0, 0, 0, 0, 0}, good()[14:14+10]...)
	binary.BigEndian.PutUint16(unreach[2:], inetChecksum(unreach, 0))
	add("ICMP 2 bytes", ip(router, 1, []byte{8, 0}))
	add("ICMP echo with a bad checksum", ip(router, 1, badEcho))
	add("ICMP unreachable quoting a cut header", ip(router, 1, unreach))

	add("1600-byte frame (IPv4 of 1586 bytes)", ip(router, 17, udpDatagram(40010, 5002, make([]byte, 1600-14-20-8))))
	return js
}

// -X GUEST:DISPLAY forwards the first free host port from 6000 on to the guest's X
// server port 6000+DISPLAY (ours only: the C tool passes the ports byte-swapped).
func TestSlirpX11(t *testing.T) {
	slirpOursOnly(t, "Debian's -X is broken (spec §3.7)")
	w := newSlirpWorld(t, impl)
	w.startSlirp(t, "-X", slirpFirst+":1")
	g := w.plugGuest(t)
	gX := startStreamEcho(t, g.NS, "tcp4", "0.0.0.0:6001")
	g.dhcp(t)
	g.checkLease(t, map[string]string{"ip": slirpFirst})
	pingOK(t, g.NS, slirpRouter)
	// S is a fresh namespace: 6000 is free there, so the forward takes it.
	tcpEcho(t, w.S, "127.0.0.1:6000", tcpSmall)
	gX.checkPeers(t, slirpRouter)
}
