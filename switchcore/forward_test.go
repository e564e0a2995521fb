package switchcore

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vde-go/vde/switchcore/wire"
)

const quiet = 300 * time.Millisecond

func expectFrame(t *testing.T, c *wire.Conn, want []byte, who string) {
	t.Helper()
	if got := recvFrame(t, c, 2*time.Second); !bytes.Equal(got, want) {
		t.Fatalf("%s: got %x, want %x", who, got, want)
	}
}

func expectNothing(t *testing.T, c *wire.Conn, who string) {
	t.Helper()
	if got := recvFrame(t, c, quiet); got != nil {
		t.Fatalf("%s: unexpected frame %x", who, got)
	}
}

func mustCmd(t *testing.T, s *Switch, line string) {
	t.Helper()
	if out := runCmd(t, s, line); !strings.HasSuffix(out, "1000 Success\n") {
		t.Fatalf("%s: %s", line, out)
	}
}

func TestVLANIsolationAndTagging(t *testing.T) {
	s := newTestSwitch(t, Config{})
	mustCmd(t, s, "vlan/create 10")
	a, b, c, tr := dial(t, s, 1), dial(t, s, 2), dial(t, s, 3), dial(t, s, 4)
	mustCmd(t, s, "port/setvlan 1 10")
	mustCmd(t, s, "port/setvlan 2 10")
	mustCmd(t, s, "vlan/addport 10 4") // port 4: VLAN 0 untagged, VLAN 10 tagged

	bc := frame(0xff, 1, "vlan10")
	a.WriteBatch([][]byte{bc})
	expectFrame(t, b, bc, "VLAN 10 untagged peer")
	expectFrame(t, tr, insertTag(make([]byte, 64), bc, 10), "VLAN 10 tagged port")
	expectNothing(t, c, "VLAN 0 host")

	// A tagged frame from the trunk (priority 7) reaches the VLAN 10 ports untagged.
	tagged := mustHex("ffffffffffff" + "020000000004" + "8100e00a" + "0800" + "abcd")
	tr.WriteBatch([][]byte{tagged})
	untag := mustHex("ffffffffffff" + "020000000004" + "0800" + "abcd")
	expectFrame(t, a, untag, "untagged member, from trunk")
	expectFrame(t, b, untag, "untagged member, from trunk")
	expectNothing(t, c, "VLAN 0 host, from trunk")

	// Untagged traffic of the trunk stays in VLAN 0.
	c0 := frame(0xff, 3, "vlan0")
	tr.WriteBatch([][]byte{c0})
	expectFrame(t, c, c0, "VLAN 0 peer of the trunk")
	expectNothing(t, a, "VLAN 10 host, VLAN 0 frame")

	// A tag for a VLAN the port is not a member of is dropped.
	tr.WriteBatch([][]byte{mustHex("ffffffffffff" + "020000000004" + "81000014" + "0800")})
	expectNothing(t, a, "VLAN 20 frame")
}

func TestHubFloodsUnicast(t *testing.T) {
	s := newTestSwitch(t, Config{Hub: true})
	a, b, c := dial(t, s, 0), dial(t, s, 0), dial(t, s, 0)
	a.WriteBatch([][]byte{frame(0xff, 1, "a")})
	b.WriteBatch([][]byte{frame(0xff, 2, "b")})
	for _, x := range []*wire.Conn{a, b, c} {
		recvFrame(t, x, quiet)
		recvFrame(t, x, quiet)
	}
	ab := frame(2, 1, "a to b")
	a.WriteBatch([][]byte{ab})
	expectFrame(t, b, ab, "B")
	expectFrame(t, c, ab, "third port in hub mode")
}

func TestSecondEndpointAndPortReuse(t *testing.T) {
	s := newTestSwitch(t, Config{})
	mustCmd(t, s, "vlan/create 10")
	first := dial(t, s, 3)
	mustCmd(t, s, "port/setvlan 3 10")
	second := dial(t, s, 3)
	out := runCmd(t, s, "port/print 3")
	if strings.Count(out, "-- endpoint ID") != 2 {
		t.Fatalf("two endpoints expected:\n%s", out)
	}
	// A frame into port 3 from elsewhere reaches both endpoints.
	other := dial(t, s, 4)
	mustCmd(t, s, "port/setvlan 4 10")
	f := frame(0xff, 4, "to both")
	other.WriteBatch([][]byte{f})
	expectFrame(t, first, f, "first endpoint")
	expectFrame(t, second, f, "second endpoint")
	first.Close()
	second.Close()
	waitFor(t, func() bool { return strings.Contains(runCmd(t, s, "port/allprint 3"), "INACTIVE") })
	dial(t, s, 3)
	if out := runCmd(t, s, "port/print 3"); !strings.Contains(out, "Port 0003 untagged_vlan=0010 ACTIVE") {
		t.Fatalf("reused port lost its VLAN:\n%s", out)
	}
}

func TestEpcloseAndShutdownClientsSeeEOF(t *testing.T) {
	s := newTestSwitch(t, Config{})
	c := dial(t, s, 6)
	out := runCmd(t, s, "port/print 6")
	var id int
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "endpoint ID") {
			id = atoi(strings.Fields(l)[3])
		}
	}
	done := make(chan error, 1)
	go func() { done <- c.WaitClosed() }()
	mustCmd(t, s, "port/epclose 6 "+itoa(id))
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("client did not see EOF after port/epclose")
	}
}

func TestPortRequestsRefusedAndClosed(t *testing.T) {
	s := newTestSwitch(t, Config{NumPorts: 8})
	if _, err := wire.Dial(s.CtlDir(), wire.DialOptions{Port: 99, Timeout: 3 * time.Second}); err == nil ||
		!strings.Contains(err.Error(), "closed without reply") {
		t.Fatalf("port out of range: %v", err)
	}
	// The switch keeps serving: two ports still exchange frames.
	a, b := dial(t, s, 0), dial(t, s, 0)
	f := frame(0xff, 1, "still up")
	a.WriteBatch([][]byte{f})
	expectFrame(t, b, f, "after refusal")
	for _, junk := range [][]byte{{1, 2, 3}, bytes.Repeat([]byte{0xff}, 300), mustHex("cefaedfe02000000")} {
		conn, err := net.Dial("unix", filepath.Join(s.CtlDir(), "ctl"))
		if err != nil {
			t.Fatal(err)
		}
		conn.Write(junk)
		conn.SetReadDeadline(time.Now().Add(8 * time.Second))
		if n, err := conn.Read(make([]byte, 200)); err == nil {
			t.Fatalf("junk %x: got %d reply bytes", junk, n)
		}
		conn.Close()
	}
}

func TestStaleCtlDirReclaimedLiveRefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sw.ctl")
	os.Mkdir(dir, 0700)
	// A stale socket file: nobody listens.
	ln, _ := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, "ctl"), Net: "unix"})
	ln.SetUnlinkOnClose(false)
	ln.Close()
	s := newTestSwitch(t, Config{CtlDir: dir})
	if _, err := New(Config{CtlDir: dir, Group: -1, MgmtGroup: -1}); err == nil || !strings.Contains(err.Error(), "Address already in use") {
		t.Fatalf("second switch on a live dir: %v", err)
	}
	dial(t, s, 0)
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for i := 0; i < 100; i++ {
		if cond() {
			return
		}
		time.Sleep(30 * time.Millisecond)
	}
	t.Fatal("condition not reached")
}

func itoa(n int) string { return strconv.Itoa(n) }

// A receiver that is slow for a moment loses nothing of a burst the switch can hold: the
// kernel queues only 10 datagrams per socket, the endpoint's queue the rest.
func TestBurstToSlowReceiverIsQueued(t *testing.T) {
	s := newTestSwitch(t, Config{})
	a, b := dial(t, s, 1), dial(t, s, 2)
	b.WriteBatch([][]byte{frame(0xff, 2, "learn b")})
	recvFrame(t, a, 2*time.Second)
	const burst = 100
	for i := 0; i < burst; {
		n, err := a.WriteBatch([][]byte{frame(2, 1, "burst "+strconv.Itoa(i))})
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			time.Sleep(time.Millisecond) // the switch's socket for A is full for a moment
		}
		i += n
	}
	time.Sleep(200 * time.Millisecond) // B reads nothing meanwhile
	for i := 0; i < burst; i++ {
		want := frame(2, 1, "burst "+strconv.Itoa(i))
		if got := recvFrame(t, b, 2*time.Second); !bytes.Equal(got, want) {
			t.Fatalf("frame %d: got %q, want %q", i, got, want)
		}
	}
}
