package switchcore

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vde-go/vde/switchcore/wire"
	"github.com/vde-go/vde/tap"
	"github.com/vde-go/vde/tap/taptest"
	"golang.org/x/sys/unix"
)

// handoverSetup is switch A with three datagram clients on ports 1, 2 and 3 that have
// exchanged frames (so A learned their addresses), VLAN 10 with port 3 tagged in it and
// port 5 inactive in it with an ACL.
func handoverSetup(t *testing.T) (s *Switch, a, b, c *wire.Conn) {
	s = newTestSwitch(t, Config{NumPorts: 16, MgmtPath: t.TempDir() + "/mgmt"})
	a, b, c = dial(t, s, 1), dial(t, s, 2), dial(t, s, 3)
	for _, cmd := range []string{"vlan/create 10", "vlan/addport 10 3", "port/create 5", "vlan/addport 10 5", "port/setuser 5 root", "port/allocatable 5 0"} {
		if out := runCmd(t, s, cmd); !strings.Contains(out, "1000 Success") {
			t.Fatalf("%s: %q", cmd, out)
		}
	}
	exchange(t, a, b, 1, 2, "before")
	// The first frame found b unknown and was flooded to c too.
	if got := recvFrame(t, c, 5*time.Second); !bytes.Equal(got, frame(2, 1, "before")) {
		t.Fatalf("c: the flooded frame: got %x", got)
	}
	exchange(t, b, a, 2, 1, "before")
	return s, a, b, c
}

// exchange sends a unicast frame from x (address src) to y (address dst) and checks that
// y gets it.
func exchange(t *testing.T, x, y *wire.Conn, src, dst byte, payload string) {
	t.Helper()
	f := frame(dst, src, payload)
	if _, err := x.WriteBatch([][]byte{f}); err != nil {
		t.Fatal(err)
	}
	// Before the switch knows dst it floods the frame, after it forwards it: either way
	// y gets it.
	if got := recvFrame(t, y, 5*time.Second); !bytes.Equal(got, f) {
		t.Fatalf("%d -> %d %q: got %x", src, dst, payload, got)
	}
}

// settle waits (without a bound: the test's own timeout is the bound) until the process
// has at most want goroutines, and returns how many it has.
func settle(want int) int {
	for i := 0; ; i++ {
		runtime.GC()
		n := runtime.NumGoroutine()
		if n <= want || i == 2000 {
			return n
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestHandoverRestore: A hands over to B in the same process; the clients, untouched, go
// on through B, which shows the same ports and MAC table, while A is gone without a
// goroutine or a descriptor left.
func TestHandoverRestore(t *testing.T) {
	s, a, b, c := handoverSetup(t)
	portsBefore := runCmd(t, s, "port/allprint")
	vlansBefore := runCmd(t, s, "vlan/allprint")
	macsBefore := s.macs.len()
	fds, gor := openFDs(t), runtime.NumGoroutine()

	state, files, err := s.Handover()
	if err != nil {
		t.Fatal(err)
	}
	b2 := restore(t, s, "B", state, files)
	if got := runCmd(t, b2, "port/allprint"); got != portsBefore {
		t.Fatalf("port/allprint on B:\n%s\non A before:\n%s", got, portsBefore)
	}
	if got := runCmd(t, b2, "vlan/allprint"); got != vlansBefore {
		t.Fatalf("vlan/allprint on B:\n%s\non A before:\n%s", got, vlansBefore)
	}
	if b2.macs.len() != macsBefore || b2.macs.lookup(makeKey([]byte{2, 0, 0, 0, 0, 1}, 0)) != 1 || b2.macs.lookup(makeKey([]byte{2, 0, 0, 0, 0, 2}, 0)) != 2 {
		t.Fatalf("MAC table on B: %d entries (A had %d), 02:..:01 on port %d, 02:..:02 on port %d", b2.macs.len(), macsBefore,
			b2.macs.lookup(makeKey([]byte{2, 0, 0, 0, 0, 1}, 0)), b2.macs.lookup(makeKey([]byte{2, 0, 0, 0, 0, 2}, 0)))
	}
	exchange(t, a, b, 1, 2, "after")
	exchange(t, b, a, 2, 1, "after")
	// The unicast went to b only: B forwarded it by the MAC table it was handed.
	if got := recvFrame(t, c, 200*time.Millisecond); got != nil {
		t.Fatalf("c got a frame for b: %x", got)
	}
	// Sent while no switch reads, it waits in the kernel's queue of the data socket; a
	// second hand-over, from B to C, forwards it.
	state, files, err = b2.Handover()
	if err != nil {
		t.Fatal(err)
	}
	paused := frame(2, 1, "during the hand-over")
	if _, err := a.WriteBatch([][]byte{paused}); err != nil {
		t.Fatal(err)
	}
	b2 = restore(t, b2, "C", state, files)
	if got := recvFrame(t, b, 5*time.Second); !bytes.Equal(got, paused) {
		t.Fatalf("the frame sent during the hand-over: got %x", got)
	}
	// A new client attaches to B through the handed-over ctl socket and reaches a.
	d := dial(t, b2, 4)
	exchange(t, d, a, 4, 1, "newcomer")
	d.Close()
	// B runs as many goroutines and holds as many descriptors as A did.
	if n := settle(gor); n > gor {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines after the hand-over, %d before:\n%s", n, gor, buf[:runtime.Stack(buf, true)])
	}
	for i := 0; openFDs(t) > fds && i < 200; i++ {
		time.Sleep(5 * time.Millisecond) // d's descriptors go when B's waiter sees its EOF
	}
	// Fewer is no leak: what the race detector's runtime keeps open varies.
	if n := openFDs(t); n > fds {
		t.Fatalf("%d descriptors open after the hand-over, %d before", n, fds)
	}
}

// restore restores the state and files old handed over as a switch called name, and
// releases old.
func restore(t *testing.T, old *Switch, name string, state []byte, files []*os.File) *Switch {
	t.Helper()
	s, err := Restore(Config{Log: func(f string, args ...any) { t.Logf(name+": "+f, args...) }}, state, files)
	if err != nil {
		old.Resume()
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := old.Release(); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestHandoverResume: a hand-over that fails leaves A serving as before.
func TestHandoverResume(t *testing.T) {
	s, a, b, _ := handoverSetup(t)
	fds, gor := openFDs(t), runtime.NumGoroutine()
	_, files, err := s.Handover()
	if err != nil {
		t.Fatal(err)
	}
	paused := frame(2, 1, "during the pause")
	if _, err := a.WriteBatch([][]byte{paused}); err != nil {
		t.Fatal(err)
	}
	// Commands that would change what was handed over (or stop the switch) wait for the
	// outcome: busy now, served again after the resume.
	for _, cmd := range []string{"vlan/create 20", "shutdown"} {
		if out := runCmd(t, s, cmd); out != "1016 Device or resource busy\n" {
			t.Fatalf("%s during the hand-over: %q", cmd, out)
		}
	}
	for _, f := range files {
		f.Close()
	}
	if err := s.Resume(); err != nil {
		t.Fatal(err)
	}
	if out := runCmd(t, s, "vlan/create 20"); out != "1000 Success\n" {
		t.Fatalf("vlan/create after the resume: %q", out)
	}
	if got := recvFrame(t, b, 5*time.Second); !bytes.Equal(got, paused) {
		t.Fatalf("the frame sent during the pause: got %x", got)
	}
	exchange(t, b, a, 2, 1, "resumed")
	if n := settle(gor); n > gor {
		t.Fatalf("%d goroutines after resuming, %d before", n, gor)
	}
	if n := openFDs(t); n != fds {
		t.Fatalf("%d descriptors open after resuming, %d before", n, fds)
	}
	if err := s.Resume(); err == nil {
		t.Fatal("a second Resume succeeded")
	}
}

// TestHandoverRefusesInProcessEndpoints: an in-process endpoint that cannot cross (not a
// HandoverEndpoint) makes a hand-over refuse, and the switch serves on.
func TestHandoverRefusesInProcessEndpoints(t *testing.T) {
	s := newTestSwitch(t, Config{})
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[1])
	x, err := wire.NewDatagram(fds[0], "in-process")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AttachEndpoint(x, 99, "other", "in-process datagram"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Handover(); err == nil || !strings.Contains(err.Error(), "endpoint 99 (other) is neither a datagram client, a TAP nor a vhost-user device") {
		t.Fatalf("Handover with an in-process endpoint: %v", err)
	}
	c := dial(t, s, 0) // the switch still serves
	c.Close()
}

// inProcessEndpoint is a HandoverEndpoint, as a vhost-user device is one: frames the test
// puts in come out of ReadBatch; what the switch writes is counted.
type inProcessEndpoint struct {
	key     string
	in      chan []byte
	stop    chan struct{} // closed by a past read deadline, remade by the zero time
	written chan []byte
	mu      chan struct{} // a one-slot lock for stop
}

func newInProcessEndpoint(key string) *inProcessEndpoint {
	e := &inProcessEndpoint{key: key, in: make(chan []byte, 16), stop: make(chan struct{}), written: make(chan []byte, 16), mu: make(chan struct{}, 1)}
	return e
}

func (e *inProcessEndpoint) stopCh() chan struct{} {
	e.mu <- struct{}{}
	defer func() { <-e.mu }()
	return e.stop
}

func (e *inProcessEndpoint) ReadBatch(frames [][]byte, sizes []int) (int, error) {
	select {
	case f := <-e.in:
		sizes[0] = copy(frames[0], f)
		return 1, nil
	case <-e.stopCh():
		return 0, os.ErrDeadlineExceeded
	}
}

func (e *inProcessEndpoint) WriteBatch(frames [][]byte) (int, error) {
	for _, f := range frames {
		e.written <- append([]byte(nil), f...)
	}
	return len(frames), nil
}

func (e *inProcessEndpoint) Close() error        { return nil }
func (e *inProcessEndpoint) HandoverKey() string { return e.key }

func (e *inProcessEndpoint) SetReadDeadline(t time.Time) error {
	e.mu <- struct{}{}
	defer func() { <-e.mu }()
	select {
	case <-e.stop:
		if t.IsZero() {
			e.stop = make(chan struct{})
		}
	default:
		if !t.IsZero() {
			close(e.stop)
		}
	}
	return nil
}

// TestHandoverInProcessEndpoint: a HandoverEndpoint crosses under its key: the restored
// switch asks Config.InProcess for it, and it keeps its port, id and description; a
// switch with nothing to ask refuses the state.
func TestHandoverInProcessEndpoint(t *testing.T) {
	s, a, b, c := handoverSetup(t)
	e := newInProcessEndpoint("/run/vhost.sock#0")
	port, err := s.AttachEndpointAs(e, 42, 0, "vhost-user", "vhost-user sock=/run/vhost.sock pid=7")
	if err != nil {
		t.Fatal(err)
	}
	e.in <- frame(1, 9, "from the guest")
	// A port coming up flushes its VLAN's addresses (as a topology change does), so the
	// frame is flooded: the counters settle once every client has it.
	for _, x := range []*wire.Conn{a, b, c} {
		if got := recvFrame(t, x, 5*time.Second); !bytes.Equal(got, frame(1, 9, "from the guest")) {
			t.Fatalf("got %x", got)
		}
	}
	portsBefore := runCmd(t, s, "port/allprint")
	state, files, err := s.Handover()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Restore(Config{}, state, files); err == nil || !strings.Contains(err.Error(), `in-process endpoint "/run/vhost.sock#0": nothing here restores it`) {
		t.Fatalf("Restore without Config.InProcess: %v", err)
	}
	state, files, err = func() ([]byte, []*os.File, error) { // Restore closed the files
		if err := s.Resume(); err != nil {
			t.Fatal(err)
		}
		return s.Handover()
	}()
	if err != nil {
		t.Fatal(err)
	}
	asked := ""
	b2, err := Restore(Config{InProcess: func(key string) (wire.Endpoint, error) {
		asked = key
		e.SetReadDeadline(time.Time{}) // its owner restores it reading, as a new device is
		return e, nil
	}}, state, files)
	if err != nil {
		s.Resume()
		t.Fatal(err)
	}
	t.Cleanup(func() { b2.Close() })
	if err := s.Release(); err != nil {
		t.Fatal(err)
	}
	if asked != e.key {
		t.Fatalf("Restore asked for %q, want %q", asked, e.key)
	}
	if got := runCmd(t, b2, "port/allprint"); got != portsBefore {
		t.Fatalf("port/allprint after:\n%s\nbefore:\n%s", got, portsBefore)
	}
	e.in <- frame(1, 9, "after")
	if got := recvFrame(t, a, 5*time.Second); !bytes.Equal(got, frame(1, 9, "after")) {
		t.Fatalf("a after the hand-over: got %x", got)
	}
	if _, err := a.WriteBatch([][]byte{frame(9, 1, "to the guest")}); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-e.written:
		if !bytes.Equal(got, frame(9, 1, "to the guest")) {
			t.Fatalf("the endpoint got %x", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("port %d's endpoint got nothing after the hand-over", port)
	}
}

// TestRestoreRefusesWrongFiles: a state whose descriptors were not all passed.
func TestRestoreRefusesWrongFiles(t *testing.T) {
	s, _, _, _ := handoverSetup(t)
	state, files, err := s.Handover()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Resume()
	if _, err := Restore(Config{}, state, files[:len(files)-1]); err == nil || !strings.Contains(err.Error(), "descriptors") {
		t.Fatalf("Restore with a descriptor missing: %v", err)
	}
	if _, err := Restore(Config{}, state[:len(state)-1], nil); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("Restore of a truncated state: %v", err)
	}
}

// TestHandoverRestoredNamesDoNotCollide: a restored endpoint keeps the old switch's data socket
// name (<ctldir>/NNN.fd, fd the old switch's descriptor) and id. When the new switch gives
// that descriptor number to a newcomer's data socket on the same port, the newcomer must
// get another name (attach removes the name it binds: a libvdeplug client, which sends to
// the name, would lose its data path) and another id (port/epclose picks by id).
func TestHandoverRestoredNamesDoNotCollide(t *testing.T) {
	// Low descriptors held from the start, so that the old switch's sockets for a come
	// after them and four of them can be freed below a's data socket's number later.
	var held []int
	closeHeld := func(fd int) {
		for i, h := range held {
			if h == fd {
				unix.Close(fd)
				held = append(held[:i], held[i+1:]...)
				return
			}
		}
	}
	defer func() {
		for _, fd := range held {
			unix.Close(fd)
		}
	}()
	devNull := func() int {
		fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, fd)
		return fd
	}
	var low []int
	for i := 0; i < 4; i++ {
		low = append(low, devNull())
	}
	s, a, b, _ := handoverSetup(t)
	var old *endpoint
	s.mu.Lock()
	for _, ep := range s.ports[1].eps {
		old = ep
	}
	s.mu.Unlock()
	dataFD := -1
	old.dgram.RawConn().Control(func(fd uintptr) { dataFD = int(fd) })
	if dataFD <= low[3] {
		t.Fatalf("a's data socket on the old switch is descriptor %d, not above the held %v", dataFD, low)
	}
	state, files, err := s.Handover()
	if err != nil {
		t.Fatal(err)
	}
	s2 := restore(t, s, "B", state, files)
	var restored *endpoint
	s2.mu.Lock()
	for _, ep := range s2.ports[1].eps {
		restored = ep
	}
	s2.mu.Unlock()
	if restored.dataPath != old.dataPath || restored.id != old.id {
		t.Fatalf("restored endpoint: id %d name %s, was id %d name %s", restored.id, restored.dataPath, old.id, old.dataPath)
	}
	// The old switch's descriptor dataFD is free now. Fill every free descriptor up to it,
	// then free it and the four low ones: the newcomer's dial takes two (its control
	// connection, its data socket), the switch's accept one, its O_PATH look at the
	// client's socket one, and its data socket for the newcomer gets dataFD.
	for fd := devNull(); fd < dataFD; fd = devNull() {
	}
	if held[len(held)-1] != dataFD {
		t.Fatalf("descriptor %d was taken again before the newcomer dialled", dataFD)
	}
	closeHeld(dataFD)
	for _, fd := range low {
		closeHeld(fd)
	}
	d := dial(t, s2, 1)
	var newcomer *endpoint
	s2.mu.Lock()
	for _, ep := range s2.ports[1].eps {
		if ep != restored {
			newcomer = ep
		}
	}
	s2.mu.Unlock()
	newFD := -1
	newcomer.dgram.RawConn().Control(func(fd uintptr) { newFD = int(fd) })
	if newFD != dataFD {
		t.Fatalf("the newcomer's data socket is descriptor %d, not %d: the collision was not reproduced", newFD, dataFD)
	}
	t.Logf("the newcomer's data socket is descriptor %d, as a's was on the old switch: named %s (a's: %s), id %d (a's: %d)",
		newFD, newcomer.dataPath, restored.dataPath, newcomer.id, restored.id)
	if newcomer.dataPath == restored.dataPath {
		t.Fatalf("the newcomer's data socket took the restored endpoint's name %s", restored.dataPath)
	}
	if newcomer.id == restored.id {
		t.Fatalf("the newcomer took the restored endpoint's id %d", restored.id)
	}
	exchange(t, d, b, 4, 2, "newcomer")
	d.Close()
	for i := 0; i < 1000; i++ {
		s2.mu.Lock()
		n := len(s2.ports[1].eps)
		s2.mu.Unlock()
		if n == 1 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The newcomer's detach removed its own name, not a's.
	if _, err := os.Stat(restored.dataPath); err != nil {
		t.Fatalf("a's data socket name after the newcomer left: %v", err)
	}
	exchange(t, a, b, 1, 2, "after the newcomer")
}

// arpWho is an ARP request from 02:00:00:00:00:src (sender ip) for target.
func arpWho(src byte, ip, target netip.Addr) []byte {
	f := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, src, 0x08, 0x06}
	f = binary.BigEndian.AppendUint16(f, 1)      // Ethernet
	f = binary.BigEndian.AppendUint16(f, 0x0800) // IPv4
	f = append(f, 6, 4, 0, 1)                    // sizes, request
	f = append(f, 2, 0, 0, 0, 0, src)
	f = append(f, ip.AsSlice()...)
	f = append(f, 0, 0, 0, 0, 0, 0)
	f = append(f, target.AsSlice()...)
	return append(f, make([]byte, 60-len(f))...)
}

// arpAnswered waits for the reply to arpWho(src, ip, ...) on c, skipping what else the
// TAP's kernel side sends (IPv6 router solicitations and the like).
func arpAnswered(t *testing.T, c *wire.Conn, src byte, ip netip.Addr) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		f := recvFrame(t, c, time.Until(deadline))
		if len(f) >= 42 && bytes.Equal(f[0:6], []byte{2, 0, 0, 0, 0, src}) && f[12] == 8 && f[13] == 6 && f[21] == 2 && bytes.Equal(f[38:42], ip.AsSlice()) {
			return
		}
	}
	t.Fatalf("no ARP reply to %v", ip)
}

// TestHandoverTAP: a switch with a TAP (vde_switch -t) resumes after a failed hand-over,
// then hands over twice; the restored
// switches read and write the same device through the passed descriptor (tap.FromFD), and
// an ARP request a client sends while no switch reads is answered by the TAP's kernel side
// after the restore.
func TestHandoverTAP(t *testing.T) {
	taptest.InNewNetns(t)
	s := newTestSwitch(t, Config{NumPorts: 8})
	d, err := tap.Open("vho0")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AttachEndpoint(d, d.FD(), "tuntap", "vho0"); err != nil {
		d.Close()
		t.Fatal(err)
	}
	host := netip.MustParseAddr("10.9.22.1")
	if err := tap.AddAddr("vho0", netip.PrefixFrom(host, 24)); err != nil {
		t.Fatal(err)
	}
	if err := tap.SetUp("vho0"); err != nil {
		t.Fatal(err)
	}
	a := dial(t, s, 2)
	ask := func(i byte) {
		t.Helper()
		if _, err := a.WriteBatch([][]byte{arpWho(2, netip.AddrFrom4([4]byte{10, 9, 22, 10 + i}), host)}); err != nil {
			t.Fatal(err)
		}
	}
	ask(0)
	arpAnswered(t, a, 2, netip.AddrFrom4([4]byte{10, 9, 22, 10}))
	// The counters go on counting the ARP exchanges: compare the rest.
	ports := func(s *Switch) string {
		var keep []string
		for _, l := range strings.Split(runCmd(t, s, "port/allprint"), "\n") {
			if !strings.Contains(l, " pkts ") {
				keep = append(keep, l)
			}
		}
		return strings.Join(keep, "\n")
	}
	portsBefore := ports(s)
	if !strings.Contains(portsBefore, "module tuntap      : vho0") {
		t.Fatalf("port/allprint shows no TAP:\n%s", portsBefore)
	}
	fds := openFDs(t)
	// A hand-over that fails: the switch reads the TAP again.
	if _, files, err := s.Handover(); err != nil {
		t.Fatal(err)
	} else {
		for _, f := range files {
			f.Close()
		}
	}
	if err := s.Resume(); err != nil {
		t.Fatal(err)
	}
	ask(9)
	arpAnswered(t, a, 2, netip.AddrFrom4([4]byte{10, 9, 22, 19}))

	for i, name := range []string{"B", "C"} {
		state, files, err := s.Handover()
		if err != nil {
			t.Fatal(err)
		}
		ask(byte(1 + i)) // waits in the switch's data socket
		s = restore(t, s, name, state, files)
		arpAnswered(t, a, 2, netip.AddrFrom4([4]byte{10, 9, 22, 11 + byte(i)}))
		if got := ports(s); got != portsBefore {
			t.Fatalf("port/allprint on %s:\n%s\nbefore:\n%s", name, got, portsBefore)
		}
	}
	ask(5)
	arpAnswered(t, a, 2, netip.AddrFrom4([4]byte{10, 9, 22, 15}))
	info, err := tap.LinkInfo("vho0")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("vho0 after two hand-overs: %+v", info)
	if n := openFDs(t); n > fds {
		t.Fatalf("%d descriptors open after the hand-overs, %d before", n, fds)
	}
}

// mgmtSession opens a mgmt session on s and reads its banner and first prompt.
func mgmtSession(t *testing.T, path string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	readTo(t, r, "vde$ ")
	return c, r
}

// readTo reads r up to and including want, and returns what it read.
func readTo(t *testing.T, r *bufio.Reader, want string) string {
	t.Helper()
	var got []byte
	for !bytes.HasSuffix(got, []byte(want)) {
		b, err := r.ReadByte()
		if err != nil {
			t.Fatalf("reading to %q: %v after %q", want, err, got)
		}
		got = append(got, b)
	}
	return string(got)
}

// TestHandoverSaysGoodbye: a hand-over ends every mgmt session (EndSessions) with the C
// switch's goodbye line; the one whose upgrade command handed over gets the command's answer
// first. Neither gets anything after it.
func TestHandoverSaysGoodbye(t *testing.T) {
	path := t.TempDir() + "/mgmt"
	s := newTestSwitch(t, Config{MgmtPath: path})
	restoredc := make(chan *Switch, 1)
	s.SetUpgrade(func(string) error {
		state, files, err := s.Handover()
		if err != nil {
			return err
		}
		b, err := Restore(Config{Log: t.Logf}, state, files)
		if err != nil {
			s.Resume()
			return err
		}
		s.EndSessions() // where vde_switch's upgrader execs
		restoredc <- b
		return s.Release()
	})
	_, other := mgmtSession(t, path)
	asker, ar := mgmtSession(t, path)
	if _, err := io.WriteString(asker, "upgrade\n"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		desc string
		r    *bufio.Reader
		want string
	}{{"asker", ar, "1000 Success\n9999 END OF SESSION\n"}, {"other", other, "9999 END OF SESSION\n"}} {
		got, err := io.ReadAll(tc.r)
		if err != nil || string(got) != tc.want {
			t.Errorf("%s: read %q, %v; want %q then EOF", tc.desc, got, err, tc.want)
		}
	}
	var restored *Switch
	select {
	case restored = <-restoredc:
	case <-time.After(10 * time.Second):
		t.Fatal("no switch restored")
	}
	t.Cleanup(func() { restored.Close() })
	// The restored switch serves the mgmt socket.
	c, r := mgmtSession(t, path)
	io.WriteString(c, "showinfo\n")
	if got := readTo(t, r, "1000 Success\n"); !strings.Contains(got, "VDE switch") && !strings.Contains(got, "Numports") {
		t.Errorf("showinfo on the restored switch: %q", got)
	}
}

// TestHandoverFailedKeepsSessions: a hand-over that fails before the exec (Handover then
// Resume, as vde_switch's upgrader does when the memfd or the exec cannot be made) leaves
// every mgmt session working: the one that asked gets the failure as its answer and a
// prompt, another one answers a command as before.
func TestHandoverFailedKeepsSessions(t *testing.T) {
	path := t.TempDir() + "/mgmt"
	s := newTestSwitch(t, Config{MgmtPath: path})
	s.SetUpgrade(func(string) error {
		_, files, err := s.Handover()
		if err != nil {
			return err
		}
		for _, f := range files {
			f.Close()
		}
		if err := s.Resume(); err != nil {
			return err
		}
		return unix.ENOEXEC // the exec failed
	})
	other, or := mgmtSession(t, path)
	asker, ar := mgmtSession(t, path)
	io.WriteString(asker, "upgrade\n")
	if got, want := readTo(t, ar, "vde$ "), "1008 Exec format error\n\nvde$ "; got != want {
		t.Fatalf("the asker after a failed upgrade: %q, want %q", got, want)
	}
	for _, tc := range []struct {
		desc string
		c    net.Conn
		r    *bufio.Reader
	}{{"asker", asker, ar}, {"other", other, or}} {
		io.WriteString(tc.c, "port/showinfo\n")
		if got := readTo(t, tc.r, "vde$ "); !strings.HasSuffix(got, "1000 Success\n\nvde$ ") || strings.Contains(got, "END OF SESSION") {
			t.Errorf("%s: port/showinfo after the failed upgrade: %q", tc.desc, got)
		}
	}
}
