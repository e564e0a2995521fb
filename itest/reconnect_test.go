package itest

// A switch SIGKILLed under its clients: without --reconnect every form of vde_plug and
// slirpvde ends with one line naming the switch (status 0, as Debian's tools end on a
// control EOF); a new switch on the same path reclaims the stale directory while a live
// one keeps it; with --reconnect, vde_plug and slirpvde dial the new switch and frames,
// pings and an open TCP connection flow again.

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vde-go/vde/switchcore/wire"
)

// reconnectTimeout bounds each wait for a plug or slirpvde to be back on a new switch.
const reconnectTimeout = 20 * time.Second

// killSwitch SIGKILLs a switch (by its PID) and waits for it to be gone: it cleans
// nothing up, as after a crash.
func killSwitch(t testing.TB, sw *Switch) {
	t.Helper()
	sw.Proc.Cmd.Process.Signal(syscall.SIGKILL)
	if err := sw.Proc.Wait(stopTimeout); err == nil {
		t.Fatalf("%s exited 0 after SIGKILL", sw.Proc.Name)
	}
}

// restartSwitch starts a switch of implementation which on sw's control directory and
// management socket, which a killed switch left behind.
func restartSwitch(t testing.TB, sw *Switch, which string) *Switch {
	t.Helper()
	return startSwitchArgs(t, which, sw.Tmp, sw.Dir, sw.Mgmt, []string{"-s", sw.Dir, "-M", sw.Mgmt})
}

// (a) Without --reconnect, each form of our vde_plug and our slirpvde ends when its
// switch is SIGKILLed, with status 0 (as Debian's, whose exit a script may test) and one
// line that names the switch; Debian's end silently with status 0 too.
func TestReconnectSwitchKilledEndsClients(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	plug, slirp := appletPath(t, "vde_plug"), appletPath(t, "slirpvde")
	sw := startSwitch(t, implOurs)
	other := startSwitch(t, implOurs)
	type client struct {
		desc, prefix string
		proc         *Proc
	}
	var clients []client
	add := func(desc, prefix, name string, args ...string) {
		p := startProc(t, name, args...)
		p.Name = desc
		clients = append(clients, client{desc, prefix, p})
		waitPlugged(t, sw, p.PID())
	}
	add("stream", "vde_plug", plug, sw.Dir)
	add("cable, switch first", "vde_plug", plug, "vde://"+sw.Dir, other.Dir)
	add("cable, switch second", "vde_plug", plug, "null://", sw.Dir)
	add("= command", "vde_plug", plug, sw.Dir, "=", "cat")
	add("classic -s", "vde_plug", plug, "-s", sw.Dir)
	add("slirpvde", "slirpvde", slirp, "-s", sw.Dir)
	if _, err := os.Stat("/usr/bin/vde_plug"); err == nil {
		add("Debian's stream", "", "/usr/bin/vde_plug", sw.Dir)
		add("Debian's = command", "", "/usr/bin/vde_plug", sw.Dir, "=", "cat")
	}
	if _, err := os.Stat(debianSlirp); err == nil {
		add("Debian's slirpvde", "", debianSlirp, "-s", sw.Dir)
	}

	killSwitch(t, sw)
	for _, c := range clients {
		if err := c.proc.Wait(stopTimeout); err != nil {
			t.Errorf("%s after its switch was killed: %v (status %d), want status 0\n%s",
				c.desc, err, c.proc.ExitCode(), c.proc.Stderr.String())
			continue
		}
		stderr := c.proc.Stderr.String()
		if c.prefix == "" {
			if strings.Contains(stderr, "closed") {
				t.Logf("%s: stderr %q", c.desc, stderr) // Debian's say nothing; not ours to judge
			}
			continue
		}
		want := c.prefix + ": switch " + sw.Dir + " closed the connection"
		if got := lastLine(stderr); got != want {
			t.Errorf("%s: last line of stderr %q, want %q (all of it: %q)", c.desc, got, want, stderr)
		}
		if strings.Count(stderr, sw.Dir+" closed") != 1 {
			t.Errorf("%s: stderr says more than once that the switch went away: %q", c.desc, stderr)
		}
	}
	var ended []string
	for _, c := range clients {
		ended = append(ended, fmt.Sprintf("%s: status %d", c.desc, c.proc.ExitCode()))
	}
	t.Logf("RELIABILITY: switch SIGKILLed: every client ended within %v with one line naming the switch (ours) or silently (Debian's): %s", stopTimeout, strings.Join(ended, ", "))
}

// (b) A switch started on the directory of a SIGKILLed one reclaims it (its ctl and
// management sockets, and for ours its stale NNN.F data sockets); a switch started on
// the directory of a live one is refused (status 255, "Address already in use") and the
// live one goes on serving.
func TestReconnectStaleDirReclaimed(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	for _, which := range []string{implOurs, implDebian} {
		t.Run(which, func(t *testing.T) {
			sw := startSwitch(t, which)
			dialPeer(t, sw, 1, wire.DialOptions{})
			dialPeer(t, sw, 2, wire.DialOptions{})
			killSwitch(t, sw)
			stale, _ := filepath.Glob(filepath.Join(sw.Dir, "[0-9][0-9][0-9].*"))
			if _, err := os.Stat(filepath.Join(sw.Dir, "ctl")); err != nil || len(stale) == 0 {
				t.Fatalf("the killed switch left no stale sockets to reclaim (ctl: %v, data: %q)", err, stale)
			}

			sw2 := restartSwitch(t, sw, which)
			if which == implOurs {
				for _, p := range stale {
					if _, err := os.Lstat(p); err == nil {
						t.Errorf("stale data socket %s still there", p)
					}
				}
			}
			a, b := dialPeer(t, sw2, 3, wire.DialOptions{}), dialPeer(t, sw2, 4, wire.DialOptions{})
			exchange(t, a, b, "after-restart")

			// A third switch on the same path while sw2 lives.
			third := startProc(t, switchBin(t, which), "-s", sw.Dir, "-M", filepath.Join(sw.Tmp, "mgmt3"))
			third.Name = "third vde_switch(" + which + ")"
			if err := third.Wait(startTimeout); err == nil || third.ExitCode() != 255 {
				t.Fatalf("switch on a live switch's directory: %v (status %d), want status 255", err, third.ExitCode())
			}
			if msg := third.Stderr.String(); !strings.Contains(msg, "Could not bind to socket '") ||
				!strings.Contains(msg, "Address already in use") {
				t.Errorf("refused switch said %q", msg)
			}
			exchange(t, a, b, "still-serving")
			c := dialPeer(t, sw2, 5, wire.DialOptions{})
			exchange(t, a, c, "new-client")
			t.Logf("RELIABILITY: %s: a switch on a SIGKILLed switch's directory takes it over and serves; one on a live switch's directory exits 255 (%q) and the live one serves on", which, lastLine(third.Stderr.String()))
		})
	}
}

// reconnectPlug runs our vde_plug --reconnect with args.
func reconnectPlug(t testing.TB, desc string, args ...string) *Proc {
	t.Helper()
	p := startProc(t, appletPath(t, "vde_plug"), append([]string{"--reconnect"}, args...)...)
	p.Name = desc
	return p
}

// reconnectTap is a TAP host in a new namespace joined to url by our vde_plug
// --reconnect, with cidr (may be empty) on the TAP, whose link is up.
func reconnectTap(t testing.TB, sw *Switch, url, cidr string) *tapHost {
	t.Helper()
	h := plugTapURL(t, appletPath(t, "vde_plug"), []string{"--reconnect"}, sw, url, cidr)
	h.Plug.Name = "vde_plug --reconnect (" + h.Tap + ")"
	if cidr == "" {
		run(t, "ip", "-n", h.NS, "link", "set", h.Tap, "up")
	}
	return h
}

// portOfPID is the port on which port/print lists the client with this pid (-1: none).
func portOfPID(raw string, pid int) int {
	port := -1
	sc := bufio.NewScanner(strings.NewReader(raw))
	for sc.Scan() {
		var p int
		if n, _ := fmt.Sscanf(sc.Text(), "Port %d", &p); n == 1 {
			port = p
		}
		if strings.HasSuffix(sc.Text(), fmt.Sprintf(" pid=%d", pid)) {
			return port
		}
	}
	return -1
}

// checkReconnected checks that p is still running and said once that it lost sw and
// once that it was back, for each of the outages.
func checkReconnected(t testing.TB, p *Proc, prefix string, sw *Switch, outages int) {
	t.Helper()
	if p.Exited() {
		t.Fatalf("%s exited: %v\n%s", p.Name, p.waitErr, p.Stderr.String())
	}
	// The reconnected line comes right after the handshake that the switch lists.
	waitFor(t, reconnectTimeout, p.Name+" to log its reconnection", func() (bool, string) {
		s := p.Stderr.String()
		return strings.Count(s, prefix+": switch "+sw.Dir+": reconnected after ") == outages, s
	})
	s := p.Stderr.String()
	if n := lostLines(s, prefix, sw.Dir); n != outages {
		t.Errorf("%s: %d lost lines, want %d (one per outage, not per attempt):\n%s", p.Name, n, outages, s)
	}
}

// lostLines counts the lines in which a plug says it lost switch dir. The loss shows as
// the control connection's EOF or as the data socket's refusal, whichever the plug meets
// first; either way one line per outage.
func lostLines(stderr, prefix, dir string) int {
	lost := regexp.MustCompile("(?m)^" + regexp.QuoteMeta(prefix+": switch "+dir) + "(:| closed the connection).*; reconnecting$")
	return len(lost.FindAllString(stderr, -1))
}

// (c) Two switches cabled by our vde_plug --reconnect A[4] B, a TAP host on each by
// vde_plug --reconnect: A is killed and a new A started (ours), then B is killed and a
// Debian switch started in its place; after each restart the hosts ping each other
// again, and the cable is back on the port its URL asks for. SIGTERM ends a plug that is
// waiting for its switch.
func TestReconnectPlugResumes(t *testing.T) {
	t.Parallel()
	requireTools(t, "ping", "ip")
	a, b := startSwitch(t, implOurs), startSwitch(t, implOurs)
	cable := reconnectPlug(t, "cable", "vde://"+a.Dir+"[4]", b.Dir)
	waitPlugged(t, a, cable.PID())
	waitPlugged(t, b, cable.PID())
	h1 := reconnectTap(t, a, a.Dir, "10.215.0.1/24")
	h2 := reconnectTap(t, b, "vde://"+b.Dir, "10.215.0.2/24")
	waitPing(t, h1.NS, h2.Addr)

	killSwitch(t, a)
	a2 := restartSwitch(t, a, implOurs)
	raw := waitPlugged(t, a2, cable.PID())
	if port := portOfPID(raw, cable.PID()); port != 4 {
		t.Errorf("cable back on port %d of the new switch, want 4 (its URL's [4]):\n%s", port, raw)
	}
	waitPlugged(t, a2, h1.Plug.PID())
	waitPing(t, h1.NS, h2.Addr)
	checkReconnected(t, cable, "vde_plug", a, 1)
	checkReconnected(t, h1.Plug, "vde_plug", a, 1)

	killSwitch(t, b)
	b2 := restartSwitch(t, b, implDebian)
	waitPlugged(t, b2, cable.PID())
	waitPlugged(t, b2, h2.Plug.PID())
	waitPing(t, h2.NS, h1.Addr)
	checkReconnected(t, cable, "vde_plug", b, 1)
	checkReconnected(t, h2.Plug, "vde_plug", b, 1)

	t.Logf("RELIABILITY: vde_plug --reconnect (a cable on port 4, two TAP hosts): after a restart of either switch (ours, then Debian's in place of ours) the hosts ping again and the cable is back on port 4; %s", lastLine(cable.Stderr.String()))

	// No switch at all now: the plugs wait, and SIGTERM still ends them at once.
	killSwitch(t, a2)
	waitFor(t, reconnectTimeout, "the cable to notice", func() (bool, string) {
		s := cable.Stderr.String()
		return lostLines(s, "vde_plug", a.Dir) == 2, s
	})
	for _, p := range []*Proc{cable, h1.Plug} {
		if p.Exited() {
			t.Fatalf("%s exited while its switch was away: %v\n%s", p.Name, p.waitErr, p.Stderr.String())
		}
		p.Cmd.Process.Signal(syscall.SIGTERM)
		if err := p.Wait(stopTimeout); err != nil {
			t.Errorf("%s after SIGTERM while reconnecting: %v", p.Name, err)
		}
	}
}

// (c) A stream plug --reconnect (as the end of an ssh or dpipe cable) keeps its stdin
// and stdout open across a switch restart: frames written to its stdin meanwhile are
// dropped, and after the restart frames flow both ways again.
func TestReconnectStreamPlugKeepsStdio(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	sw := startSwitch(t, implOurs)
	p := reconnectPlug(t, "vde_plug --reconnect (stream)", sw.Dir)
	waitPlugged(t, sw, p.PID())
	stdoutRx := func(tag string) bool {
		return strings.Contains(p.Stdout.String(), tag)
	}
	send := func(tag string) {
		f := ethFrame(net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, peerMAC(9), tag)
		if _, err := p.Stdin.Write(append([]byte{byte(len(f) >> 8), byte(len(f))}, f...)); err != nil {
			t.Fatalf("write to the plug's stdin: %v", err)
		}
	}
	peerSend := func(sw *Switch, n int, tag string) {
		q := dialPeer(t, sw, n, wire.DialOptions{})
		waitFor(t, reconnectTimeout, "frame "+tag+" on the plug's stdout", func() (bool, string) {
			q.send(t, ethFrame(net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, q.MAC, tag))
			return stdoutRx(tag), ""
		})
		waitFor(t, reconnectTimeout, "frame from the plug's stdin", func() (bool, string) {
			send(tag + "-back")
			_, ok := q.tryRecv(tag+"-back", 100*time.Millisecond)
			return ok, ""
		})
	}
	peerSend(sw, 1, "before")
	killSwitch(t, sw)
	for i := 0; i < 20; i++ {
		send("while-away") // dropped: no switch
	}
	sw2 := restartSwitch(t, sw, implOurs)
	waitPlugged(t, sw2, p.PID())
	peerSend(sw2, 2, "after")
	checkReconnected(t, p, "vde_plug", sw, 1)
	if s := p.Stderr.String(); !strings.Contains(s, "frames dropped meanwhile") {
		t.Errorf("reconnected line does not count the dropped frames:\n%s", s)
	}
}

// (c) slirpvde --reconnect and a guest joined by vde_plug --reconnect: a TCP connection
// from the guest to the host's loopback through slirp, opened before the switch is
// killed, carries data again after a new switch starts; the guest pings the router again
// and its DHCP lease is renewed.
func TestReconnectSlirp(t *testing.T) {
	t.Parallel()
	slirpOursOnly(t, "--reconnect is ours")
	w := newSlirpWorld(t, implOurs)
	w.startSlirp(t, "--reconnect")
	g := &slirpGuest{tapHost: reconnectTap(t, w.Sw, w.Sw.Dir, "")}
	dir := t.TempDir()
	g.script, g.lease = filepath.Join(dir, "udhcpc.sh"), filepath.Join(dir, "lease")
	if err := os.WriteFile(g.script, []byte(fmt.Sprintf(udhcpcScript, g.lease)), 0755); err != nil {
		t.Fatal(err)
	}
	g.dhcp(t)
	pingOK(t, g.NS, slirpRouter)

	port := 20000 + rand.IntN(20000)
	startStreamEcho(t, w.S, "tcp4", fmt.Sprintf("127.0.0.1:%d", port))
	c, err := dialRetry(g.NS, "tcp4", fmt.Sprintf("%s:%d", slirpRouter, port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rd := bufio.NewReader(c)
	echo := func(msg string) {
		t.Helper()
		c.SetDeadline(time.Now().Add(2 * reconnectTimeout))
		if _, err := c.Write([]byte(msg + "\n")); err != nil {
			t.Fatalf("TCP write %q: %v", msg, err)
		}
		line, err := rd.ReadString('\n')
		if err != nil || line != msg+"\n" {
			t.Fatalf("TCP echo of %q: %q, %v", msg, line, err)
		}
	}
	echo("before the restart")

	killSwitch(t, w.Sw)
	sw2 := restartSwitch(t, w.Sw, implOurs)
	waitFor(t, reconnectTimeout, "slirpvde and the guest on the new switch", func() (bool, string) {
		raw := sw2.Cmd(t, "port/print")
		return portOfPID(raw, w.Slirp.PID()) >= 0 && portOfPID(raw, g.Plug.PID()) >= 0, raw
	})
	echo("after the restart") // the same connection: TCP retransmits until the path is back
	pingOK(t, g.NS, slirpRouter)
	g.dhcp(t) // (udhcpc flushes the address first: a new connection after it)
	if g.Addr != slirpFirst {
		t.Errorf("lease after the restart %s, want %s again", g.Addr, slirpFirst)
	}
	tcpEcho(t, g.NS, fmt.Sprintf("%s:%d", slirpRouter, port), tcpSmall)
	w.checkAlive(t)
	checkReconnected(t, w.Slirp, "slirpvde", w.Sw, 1)
	checkReconnected(t, g.Plug, "vde_plug", w.Sw, 1)
	t.Logf("RELIABILITY: slirpvde --reconnect across a switch restart: the guest's open TCP connection echoes again, same lease, new connections work; %s", lastLine(w.Slirp.Stderr.String()))
}
