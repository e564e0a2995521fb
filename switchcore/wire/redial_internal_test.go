package wire

// Redial's backoff and its reaction to each way a switch can let go, with connections
// made of socketpairs (the switch's ends held by the test) and a recorded timer.

import (
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fakeSwitchEnd is what a switch holds of one client: the far ends of its control stream
// and data socket.
type fakeSwitchEnd struct {
	ctl  *os.File
	data int
}

func (f *fakeSwitchEnd) close() {
	f.ctl.Close()
	if f.data >= 0 {
		unix.Close(f.data)
		f.data = -1
	}
}

// fakeConn is a Conn whose switch is the returned fakeSwitchEnd.
func fakeConn(t testing.TB) (*Conn, *fakeSwitchEnd) {
	t.Helper()
	ctl, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	data, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	cf := os.NewFile(uintptr(ctl[0]), "ctl")
	nc, err := net.FileConn(cf)
	cf.Close()
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewDatagram(data[0], "data")
	if err != nil {
		t.Fatal(err)
	}
	end := &fakeSwitchEnd{ctl: os.NewFile(uintptr(ctl[1]), "switch-ctl"), data: data[1]}
	t.Cleanup(end.close)
	c := &Conn{Datagram: d, ctl: nc.(*net.UnixConn), Switch: "/fake/sw"}
	t.Cleanup(func() { c.Close() })
	return c, end
}

// fakeDialer fails its first fails calls (with failErr, or ECONNREFUSED as for a switch
// that is not running), then connects; every connection's switch end goes to ends.
type fakeDialer struct {
	t       testing.TB
	mu      sync.Mutex
	fails   int
	failErr error
	calls   int
	ends    chan *fakeSwitchEnd
}

func (d *fakeDialer) dial() (*Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls++
	if d.fails > 0 {
		d.fails--
		if d.failErr != nil {
			return nil, d.failErr
		}
		return nil, fmt.Errorf("vde switch /fake/sw: %w", unix.ECONNREFUSED)
	}
	c, end := fakeConn(d.t)
	d.ends <- end
	return c, nil
}

func (d *fakeDialer) setFails(n int) {
	d.mu.Lock()
	d.fails = n
	d.mu.Unlock()
}

// recordedWaits is a timer that fires at once and remembers what it was asked to wait.
type recordedWaits struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (w *recordedWaits) after(d time.Duration) <-chan time.Time {
	w.mu.Lock()
	w.waits = append(w.waits, d)
	w.mu.Unlock()
	c := make(chan time.Time, 1)
	c <- time.Now()
	return c
}

func (w *recordedWaits) take() []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.waits
	w.waits = nil
	return out
}

type lines struct {
	mu sync.Mutex
	l  []string
}

func (l *lines) logf(format string, args ...any) {
	l.mu.Lock()
	l.l = append(l.l, fmt.Sprintf(format, args...))
	l.mu.Unlock()
}

func (l *lines) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.l)
}

func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func newTestRedial(t *testing.T) (*Redial, *fakeDialer, *recordedWaits, *lines, *fakeSwitchEnd) {
	c, end := fakeConn(t)
	d := &fakeDialer{t: t, ends: make(chan *fakeSwitchEnd, 16)}
	w := &recordedWaits{}
	l := &lines{}
	r := newRedial(c, "/fake/sw", d.dial, RedialOptions{Logf: l.logf}, w.after)
	t.Cleanup(func() { r.Close() })
	return r, d, w, l, end
}

func TestRedialBackoff(t *testing.T) {
	r, d, w, l, end := newTestRedial(t)
	d.setFails(9)
	end.close() // control EOF: the switch is gone
	next := <-d.ends
	want := []time.Duration{100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000}
	for i := range want {
		want[i] *= time.Millisecond
	}
	eventually(t, "the reconnection", r.Connected)
	if got := w.take(); !slices.Equal(got, want) {
		t.Errorf("waits %v, want %v", got, want)
	}
	d.mu.Lock()
	calls := d.calls
	d.mu.Unlock()
	if calls != 10 {
		t.Errorf("%d dial attempts, want 10", calls)
	}
	eventually(t, "the reconnected line", func() bool { return len(l.get()) == 2 })
	got := l.get()
	if got[0] != "switch /fake/sw closed the connection; reconnecting" || !strings.HasPrefix(got[1], "switch /fake/sw: reconnected after ") {
		t.Errorf("log %q", got)
	}

	// The next outage starts again at the shortest wait.
	d.setFails(1)
	next.close()
	<-d.ends
	eventually(t, "the second reconnection", r.Connected)
	if got := w.take(); !slices.Equal(got, []time.Duration{100 * time.Millisecond}) {
		t.Errorf("second outage waits %v, want [100ms]", got)
	}
}

// A data socket that fails (the switch closed it but not the control stream) is an
// outage too: the write that saw it reports success (the frames are dropped and
// counted), and the Redial dials again.
func TestRedialDataSocketFailure(t *testing.T) {
	r, d, _, l, end := newTestRedial(t)
	unix.Close(end.data)
	end.data = -1
	frame := make([]byte, 60)
	n, err := r.WriteBatch([][]byte{frame, frame})
	if n != 2 || err != nil {
		t.Fatalf("WriteBatch on a failed data socket = %d, %v; want 2, nil", n, err)
	}
	next := <-d.ends
	eventually(t, "the reconnection", r.Connected)
	if r.Dropped() != 2 {
		t.Errorf("Dropped() = %d, want 2", r.Dropped())
	}
	eventually(t, "the log lines", func() bool { return len(l.get()) == 2 })
	if got := l.get(); !strings.HasPrefix(got[0], "switch /fake/sw: data socket: ") {
		t.Errorf("lost line %q", got[0])
	}
	// Frames flow on the new connection.
	if n, err := r.WriteBatch([][]byte{[]byte("0123456789abcdef")}); n != 1 || err != nil {
		t.Fatalf("WriteBatch after reconnecting = %d, %v", n, err)
	}
	buf := make([]byte, 100)
	m, _, err := unix.Recvfrom(next.data, buf, unix.MSG_DONTWAIT)
	if err != nil || string(buf[:m]) != "0123456789abcdef" {
		t.Errorf("switch end got %q, %v", buf[:m], err)
	}
	// And the other way, to a reader that waited through the outage.
	unix.Write(next.data, []byte("fedcba9876543210"))
	bufs, sizes := [][]byte{make([]byte, 100)}, []int{0}
	if n, err := r.ReadBatch(bufs, sizes); n != 1 || err != nil || string(bufs[0][:sizes[0]]) != "fedcba9876543210" {
		t.Errorf("ReadBatch = %d, %v, %q", n, err, bufs[0][:sizes[0]])
	}
}

// A reader blocked across an outage gets the first frame of the new connection.
func TestRedialReaderWaitsThroughOutage(t *testing.T) {
	r, d, _, _, end := newTestRedial(t)
	got := make(chan string, 1)
	go func() {
		bufs, sizes := [][]byte{make([]byte, 100)}, []int{0}
		n, err := r.ReadBatch(bufs, sizes)
		if err != nil || n != 1 {
			got <- fmt.Sprintf("error %v", err)
			return
		}
		got <- string(bufs[0][:sizes[0]])
	}()
	d.setFails(3)
	end.close()
	next := <-d.ends
	eventually(t, "the reconnection", r.Connected)
	unix.Write(next.data, []byte("after the outage"))
	select {
	case s := <-got:
		if s != "after the outage" {
			t.Errorf("reader got %q", s)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("reader still waiting")
	}
}

// A switch that is back but refuses is said once per reason, however often it is tried;
// one that is not there is not mentioned at all (TestRedialBackoff).
func TestRedialSaysWhySwitchRefuses(t *testing.T) {
	r, d, _, l, end := newTestRedial(t)
	d.mu.Lock()
	d.fails, d.failErr = 5, errors.New("vde switch /fake/sw: switch refused the connection (closed without reply)")
	d.mu.Unlock()
	end.close()
	<-d.ends
	eventually(t, "the reconnection", r.Connected)
	eventually(t, "the reconnected line", func() bool { return len(l.get()) == 3 })
	got := l.get()
	if got[1] != "vde switch /fake/sw: switch refused the connection (closed without reply); still trying" {
		t.Errorf("log %q", got)
	}
}
