package vxlan

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vde-go/vde/switchcore/wire"
)

// testPort is a UDP port for one test: VTEPs of a test share it on several loopback
// addresses, as VTEPs on several hosts share 4789.
func testPort() uint16 { return uint16(20000 + rand.IntN(40000)) }

// logLines collects what a cable logs.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *logLines) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// openAt opens a unicast cable on 127.0.0.<me> to the peers 127.0.0.<p>.
func openAt(t *testing.T, port uint16, me int, opts string, peers ...int) (*Cable, *logLines) {
	t.Helper()
	var list []string
	for _, p := range peers {
		list = append(list, fmt.Sprintf("127.0.0.%d", p))
	}
	arg := fmt.Sprintf("%s/port=%d/vni=42/local=127.0.0.%d%s", strings.Join(list, ","), port, me, opts)
	c, err := ParseConfig(arg, nil)
	if err != nil {
		t.Fatal(err)
	}
	logs := &logLines{}
	cb, err := Open(c, logs.logf)
	if err != nil {
		t.Fatalf("Open(%s): %v", arg, err)
	}
	t.Cleanup(func() { cb.Close() })
	return cb, logs
}

func frame(dst, src byte, payload string) []byte {
	f := []byte{2, 0, 0, 0, 0, dst, 2, 0, 0, 0, 0, src, 0x88, 0xb5}
	if dst == 0xff {
		copy(f, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	}
	return append(f, payload...)
}

// reader reads a cable in the background.
type reader struct {
	frames chan []byte
}

func readAll(cb *Cable) *reader {
	r := &reader{frames: make(chan []byte, 256)}
	go func() {
		bufs := make([][]byte, wire.BatchSize)
		for i := range bufs {
			bufs[i] = make([]byte, wire.MaxFrame+1)
		}
		sizes := make([]int, wire.BatchSize)
		for {
			n, err := cb.ReadBatch(bufs, sizes)
			if err != nil {
				close(r.frames)
				return
			}
			for i := 0; i < n; i++ {
				r.frames <- append([]byte(nil), bufs[i][:sizes[i]]...)
			}
		}
	}()
	return r
}

func (r *reader) expect(t *testing.T, who string, want []byte) {
	t.Helper()
	select {
	case got := <-r.frames:
		if !bytes.Equal(got, want) {
			t.Fatalf("%s got % x, want % x", who, got, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("%s got nothing, want % x", who, want)
	}
}

func (r *reader) expectNone(t *testing.T, who string) {
	t.Helper()
	select {
	case got := <-r.frames:
		t.Fatalf("%s got % x, want nothing", who, got)
	case <-time.After(200 * time.Millisecond):
	}
}

func write(t *testing.T, cb *Cable, frames ...[]byte) {
	t.Helper()
	if n, err := cb.WriteBatch(frames); err != nil || n != len(frames) {
		t.Fatalf("WriteBatch: %d, %v", n, err)
	}
}

// Head-end replication: floods go to every peer, a learned MAC only to its VTEP.
func TestCableUnicastPeers(t *testing.T) {
	port := testPort()
	a, _ := openAt(t, port, 1, "", 2, 3)
	b, _ := openAt(t, port, 2, "", 1)
	c, _ := openAt(t, port, 3, "", 1)
	ra, rb, rc := readAll(a), readAll(b), readAll(c)

	bcast := frame(0xff, 1, "hello all")
	write(t, a, bcast)
	rb.expect(t, "b", bcast)
	rc.expect(t, "c", bcast)

	// b and c answer; a learns where 02:..:0b and 02:..:0c are.
	fromB, fromC := frame(1, 0xb, "from b"), frame(1, 0xc, "from c")
	write(t, b, fromB)
	ra.expect(t, "a", fromB)
	write(t, c, fromC)
	ra.expect(t, "a", fromC)

	toC := frame(0xc, 1, "to c only")
	write(t, a, toC)
	rc.expect(t, "c", toC)
	rb.expectNone(t, "b")
	unknown := frame(0xd, 1, "to nobody known")
	write(t, a, unknown)
	rb.expect(t, "b", unknown)
	rc.expect(t, "c", unknown)

	if got := a.Stats().In.Load(); got != 2 {
		t.Errorf("a: In = %d, want 2", got)
	}
	if got := a.Stats().Out.Load(); got != 5 {
		t.Errorf("a: Out = %d, want 5 (2 floods to 2 peers, 1 unicast)", got)
	}
}

// Hostile datagrams are dropped, counted and logged once per kind; good frames still pass.
func TestCableHostile(t *testing.T) {
	port := testPort()
	a, logs := openAt(t, port, 1, "", 2)
	ra := readAll(a)
	// A peer's address from a port of its own (the kernel sends from hashed ports), and
	// a stranger.
	peer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	stranger, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 9)})
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	dst := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: int(port)}
	h := NewHeader(42)
	good := append(h[:], frame(1, 2, "good")...)
	bad := map[Drop][]byte{
		DropShort:    good[:8+13],
		DropFlags:    append([]byte{0x0c, 0, 0, 0, 0, 0, 42, 0}, good[8:]...),
		DropVNI:      append([]byte{0x08, 0, 0, 0, 0, 0, 43, 0}, good[8:]...),
		DropOversize: append(h[:], make([]byte, wire.MaxFrame+2)...),
	}
	for round := 0; round < 50; round++ {
		for _, b := range bad {
			peer.WriteToUDP(b, dst)
		}
		stranger.WriteToUDP(good, dst)
	}
	peer.WriteToUDP(good, dst)
	ra.expect(t, "a", good[8:])
	for d, want := range map[Drop]uint64{DropShort: 50, DropFlags: 50, DropVNI: 50, DropOversize: 50, DropStranger: 50} {
		if got := a.Stats().Dropped[d].Load(); got != want {
			t.Errorf("dropped %s: %d, want %d", d, got, want)
		}
	}
	perKind := map[string]int{}
	for _, l := range logs.get() {
		for d := Drop(0); d < nDrops; d++ {
			if strings.Contains(l, "("+d.String()+")") {
				perKind[d.String()]++
			}
		}
	}
	for k, n := range perKind {
		if n > 1 {
			t.Errorf("%d log lines about %s in one interval: %q", n, k, logs.get())
		}
	}
	if perKind["not from a peer"] != 1 || !strings.Contains(strings.Join(logs.get(), "\n"), "the last from 127.0.0.9:") {
		t.Errorf("no line names the stranger: %q", logs.get())
	}
}

// learn takes VTEPs that are not peers, and sends a learned MAC's frames to them.
func TestCableLearn(t *testing.T) {
	port := testPort()
	a, _ := openAt(t, port, 1, "/learn", 2)
	x, _ := openAt(t, port, 9, "", 1) // 127.0.0.9 is not a's peer
	b, _ := openAt(t, port, 2, "", 1)
	ra, rx, rb := readAll(a), readAll(x), readAll(b)
	fromX := frame(1, 0x9, "from x")
	write(t, x, fromX)
	ra.expect(t, "a", fromX)
	toX := frame(0x9, 1, "to x")
	write(t, a, toX)
	rx.expect(t, "x", toX)
	rb.expectNone(t, "b")
}

// With hashsize=0 nothing is learned: every frame floods, as vdeplug4 does.
func TestCableNoTable(t *testing.T) {
	port := testPort()
	a, _ := openAt(t, port, 1, "/hashsize=0", 2, 3)
	b, _ := openAt(t, port, 2, "", 1)
	c, _ := openAt(t, port, 3, "", 1)
	ra, rb, rc := readAll(a), readAll(b), readAll(c)
	fromB := frame(1, 0xb, "from b")
	write(t, b, fromB)
	ra.expect(t, "a", fromB)
	toB := frame(0xb, 1, "to b")
	write(t, a, toB)
	rb.expect(t, "b", toB)
	rc.expect(t, "c", toB)
}

func TestFDB(t *testing.T) {
	tab := newFDB(4, 10)
	v1 := newVTEP(netip.MustParseAddrPort("192.0.2.1:4789"), 0)
	v2 := newVTEP(netip.MustParseAddrPort("192.0.2.2:4789"), 0)
	m1, m2 := []byte{2, 0, 0, 0, 0, 1}, []byte{2, 0, 0, 0, 0, 2}
	tab.learn(m1, v1, 100)
	tab.learn(m2, v2, 100)
	if tab.lookup(m1, 105) != v1 || tab.lookup(m2, 110) != v2 {
		t.Fatal("lookup after learn")
	}
	if tab.lookup(m1, 111) != nil {
		t.Fatal("an entry older than expiretime is still believed")
	}
	tab.learn(m1, v2, 120) // moved
	if tab.lookup(m1, 120) != v2 {
		t.Fatal("a moved MAC is not found behind its new VTEP")
	}
	tab.forget(v2)
	if tab.lookup(m1, 120) != nil || tab.lookup(m2, 120) != nil {
		t.Fatal("forget left entries of the VTEP")
	}
	if newFDB(0, 10) != nil {
		t.Fatal("hashsize=0 made a table")
	}
}

// The frame path allocates nothing: a flood to two peers, a read, a unicast back.
func TestCableAllocs(t *testing.T) {
	port := testPort()
	a, _ := openAt(t, port, 1, "", 2, 3)
	b, _ := openAt(t, port, 2, "", 1)
	c, _ := openAt(t, port, 3, "", 1)
	bufs := make([][]byte, wire.BatchSize)
	for i := range bufs {
		bufs[i] = make([]byte, wire.MaxFrame+1)
	}
	sizes := make([]int, wire.BatchSize)
	bcast := [][]byte{frame(0xff, 1, "x"), frame(0xff, 1, "y")}
	back := [][]byte{frame(1, 0xb, "z")}
	cbuf := make([][]byte, wire.BatchSize)
	for i := range cbuf {
		cbuf[i] = make([]byte, wire.MaxFrame+1)
	}
	step := func() {
		a.WriteBatch(bcast)
		got := 0
		for got < 2 {
			n, _ := b.ReadBatch(bufs, sizes)
			got += n
		}
		got = 0
		for got < 2 {
			n, _ := c.ReadBatch(cbuf, sizes)
			got += n
		}
		b.WriteBatch(back)
		a.ReadBatch(bufs, sizes)
	}
	step() // the first use makes the VTEPs
	if n := testing.AllocsPerRun(100, step); n != 0 {
		t.Errorf("%v allocations per round trip, want 0", n)
	}
}

// A peer that goes away and comes back (a VTEP restarted) gets frames again; meanwhile
// sending to it is no error.
func TestCablePeerComesBack(t *testing.T) {
	port := testPort()
	a, _ := openAt(t, port, 1, "", 2)
	b, _ := openAt(t, port, 2, "", 1)
	rb := readAll(b)
	write(t, a, frame(0xff, 1, "one"))
	rb.expect(t, "b", frame(0xff, 1, "one"))
	b.Close()
	for i := 0; i < 100; i++ {
		write(t, a, frame(0xff, 1, "into the void"))
	}
	b2, _ := openAt(t, port, 2, "", 1)
	rb2 := readAll(b2)
	write(t, a, frame(0xff, 1, "two"))
	rb2.expect(t, "b again", frame(0xff, 1, "two"))
}
