package itest

import (
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSlirpBulkToGuestInOrder: 200 MB from a server on the host's loopback to a guest
// through our `vde_plug slirp:// tap://` (no switch, so nothing on the way may drop)
// arrive whole and in order. The router's outbound queue used to hold 1000 packets and
// drop what found it full: a 64 KiB GSO burst lost packets from its middle, the guest's
// TCP counted thousands of out-of-order segments (TcpExtTCPOFOQueue, 3-6k per 200 MB),
// and now and then the stream stalled for seconds while the sender recovered.
func TestSlirpBulkToGuestInOrder(t *testing.T) {
	plugOnly(t)
	requireTun(t)
	requireTools(t, "ip", "nstat")
	const total = 200 << 20
	s, g, tap := newNetns(t), newNetns(t), tapName()
	run(t, "ip", "-n", s, "link", "set", "lo", "up")
	p := startProc(t, "ip", "netns", "exec", s, appletPath(t, "vde_plug"), "slirp://", "tap://"+tap)
	p.Name = "vde_plug(slirp://, " + tap + ")"
	waitFor(t, startTimeout, "TAP "+tap+" in "+s, func() (bool, string) {
		if p.Exited() {
			p.log(t)
			t.Fatalf("%s exited: %v", p.Name, p.waitErr)
		}
		out, err := tryRun("ip", "-n", s, "link", "show", tap)
		return err == nil, out
	})
	run(t, "ip", "-n", s, "link", "set", tap, "netns", g)
	run(t, "ip", "-n", g, "addr", "add", "10.0.2.15/24", "dev", tap)
	run(t, "ip", "-n", g, "link", "set", tap, "mtu", "1500", "up")
	run(t, "ip", "-n", g, "route", "add", "default", "via", "10.0.2.2")

	ln := listenIn(t, s, "tcp4", "127.0.0.1:0")
	sent := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			sent <- err
			return
		}
		defer c.Close()
		buf := make([]byte, 1<<20)
		for n := 0; n < total; n += len(buf) {
			if _, err := c.Write(buf); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	c, err := dialRetry(g, "tcp4", "10.0.2.2:"+strconv.Itoa(port))
	if err != nil {
		t.Fatalf("guest: dial the host's loopback server through slirp: %v", err)
	}
	defer c.Close()
	// A completion bound, not a speed check: at the old stall's worst, 200 MB took minutes.
	c.SetReadDeadline(time.Now().Add(2 * time.Minute))
	got, err := io.Copy(io.Discard, c)
	if err != nil || got != total {
		t.Fatalf("guest got %d of %d bytes: %v", got, total, err)
	}
	if err := <-sent; err != nil {
		t.Fatalf("host server: %v", err)
	}
	out := run(t, "ip", "netns", "exec", g, "nstat", "-az", "TcpExtTCPOFOQueue")
	ofo := -1
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "TcpExtTCPOFOQueue" {
			ofo, _ = strconv.Atoi(f[1])
		}
	}
	t.Logf("%d MB to the guest; its TCP queued %d segments out of order", total>>20, ofo)
	if ofo < 0 {
		t.Fatalf("no TcpExtTCPOFOQueue in nstat's output:\n%s", out)
	}
	// Nothing on this path drops or reorders: a few hundred would be a queue overflowing.
	if ofo > 200 {
		t.Errorf("the guest saw %d out-of-order segments in %d MB (the router drops or reorders)", ofo, total>>20)
	}
}
