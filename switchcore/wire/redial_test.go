package wire_test

// Redial against real in-process switches (switchcore), closed and started again on the
// same directory as a restarted vde_switch would be.

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vde-go/vde/switchcore"
	"github.com/vde-go/vde/switchcore/wire"
)

// reconnectTimeout bounds every wait for a redial; no test asserts on speed.
const reconnectTimeout = 20 * time.Second

func startSwitch(t testing.TB, dir string) *switchcore.Switch {
	t.Helper()
	s, err := switchcore.New(switchcore.Config{CtlDir: dir, Group: -1, MgmtGroup: -1,
		Log: func(f string, a ...any) { t.Logf("switch: "+f, a...) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// logLines collects a Redial's log lines.
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

func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(reconnectTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", reconnectTimeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func testFrame(dst, src byte, payload string) []byte {
	f := []byte{2, 0, 0, 0, 0, dst, 2, 0, 0, 0, 0, src, 0x88, 0xb5}
	return append(f, payload...)
}

// reader reads an Endpoint into a channel until it fails.
func reader(e wire.Endpoint) (<-chan []byte, <-chan error) {
	out, errc := make(chan []byte, 256), make(chan error, 1)
	go func() {
		bufs := [][]byte{make([]byte, wire.MaxFrame+1), make([]byte, wire.MaxFrame+1)}
		sizes := make([]int, len(bufs))
		for {
			n, err := e.ReadBatch(bufs, sizes)
			if err != nil {
				errc <- err
				close(out)
				return
			}
			for i := 0; i < n; i++ {
				out <- bytes.Clone(bufs[i][:sizes[i]])
			}
		}
	}()
	return out, errc
}

// exchange sends frames with tag from a to b until one arrives (frames sent while the
// switch is away are dropped, so the first may be lost).
func exchange(t testing.TB, from wire.Endpoint, to <-chan []byte, src, dst byte, tag string) {
	t.Helper()
	deadline := time.Now().Add(reconnectTimeout)
	for {
		if _, err := from.WriteBatch([][]byte{testFrame(dst, src, tag)}); err != nil {
			t.Fatalf("send %s: %v", tag, err)
		}
		select {
		case f, ok := <-to:
			if !ok {
				t.Fatalf("receiver ended while waiting for %s", tag)
			}
			if bytes.Contains(f, []byte(tag)) {
				return
			}
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no frame %s within %v", tag, reconnectTimeout)
		}
	}
}

func TestRedialResumesAfterSwitchRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sw")
	sw := startSwitch(t, dir)
	var logs logLines
	open := func() *wire.Redial {
		e, err := wire.Open("vde://"+dir+"[3]", wire.OpenOptions{Reconnect: true, Logf: logs.logf, Description: "redial-test"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
		return e.(*wire.Redial)
	}
	r := open()
	other, err := wire.Dial(dir, wire.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rx, _ := reader(r)
	otherRx, _ := reader(other)
	exchange(t, r, otherRx, 1, 2, "before-a")
	exchange(t, other, rx, 2, 1, "before-b")

	sw.Close()
	waitUntil(t, "the Redial to notice", func() bool { return !r.Connected() })
	other.Close()
	// Frames written meanwhile are dropped and counted, not errors.
	for i := 0; i < 5; i++ {
		if n, err := r.WriteBatch([][]byte{testFrame(2, 1, "lost")}); n != 1 || err != nil {
			t.Fatalf("WriteBatch while away = %d, %v; want 1, nil", n, err)
		}
	}
	if d := r.Dropped(); d < 5 {
		t.Errorf("Dropped() = %d, want >= 5", d)
	}
	time.Sleep(300 * time.Millisecond) // a few failed attempts on the stale socket

	sw2 := startSwitch(t, dir)
	waitUntil(t, "the Redial to reconnect", r.Connected)
	other2, err := wire.Dial(dir, wire.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other2.Close() })
	otherRx2, _ := reader(other2)
	exchange(t, r, otherRx2, 1, 2, "after-a")
	exchange(t, other2, rx, 2, 1, "after-b")

	if port := switchPortOf(t, sw2, "redial-test"); port != 3 {
		t.Errorf("reconnected on port %d, want the URL's [3]", port)
	}
	// The line comes just after the Redial is connected again.
	waitUntil(t, "the reconnected line", func() bool { return len(logs.get()) >= 2 })
	lines := logs.get()
	if len(lines) != 2 || !strings.Contains(lines[0], "switch "+dir+" closed the connection; reconnecting") ||
		!strings.Contains(lines[1], "switch "+dir+": reconnected after") {
		t.Errorf("log lines %q, want one lost and one reconnected line", lines)
	}
}

// switchPortOf is the port on which sw lists the endpoint described as descr (-1: none).
func switchPortOf(t testing.TB, sw *switchcore.Switch, descr string) int {
	t.Helper()
	var out bytes.Buffer
	sw.Console(strings.NewReader("port/print\n"), &out, nil)
	port := -1
	for _, line := range strings.Split(out.String(), "\n") {
		var p int
		if n, _ := fmt.Sscanf(line, "Port %d", &p); n == 1 {
			port = p
		}
		if strings.Contains(line, descr) {
			return port
		}
	}
	t.Logf("port/print:\n%s", out.String())
	return -1
}

func TestRedialCloseWhileAway(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sw")
	sw := startSwitch(t, dir)
	e, err := wire.Open(dir, wire.OpenOptions{Reconnect: true})
	if err != nil {
		t.Fatal(err)
	}
	r := e.(*wire.Redial)
	_, errc := reader(r)
	sw.Close()
	waitUntil(t, "the Redial to notice", func() bool { return !r.Connected() })
	r.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, wire.ErrRedialClosed) {
			t.Errorf("ReadBatch after Close: %v, want ErrRedialClosed", err)
		}
	case <-time.After(reconnectTimeout):
		t.Fatal("ReadBatch still waiting after Close")
	}
	if _, err := r.WriteBatch([][]byte{testFrame(1, 2, "x")}); err == nil {
		t.Error("WriteBatch after Close succeeded")
	}
	// A switch started now must not be dialled by the closed Redial.
	startSwitch(t, dir)
	time.Sleep(200 * time.Millisecond)
	if r.Connected() {
		t.Error("closed Redial reconnected")
	}
}

// Without Reconnect, a vde:// endpoint is a plain *Conn that ends with the switch, and
// Join says which switch let go.
func TestJoinNamesTheSwitch(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sw")
	sw := startSwitch(t, dir)
	e, err := wire.Open(dir, wire.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := e.(*wire.Conn); !ok {
		t.Fatalf("Open without Reconnect = %T, want *wire.Conn", e)
	}
	null, _ := wire.Open("null://", wire.OpenOptions{})
	done := make(chan error, 1)
	go func() { done <- wire.Join(e, null) }()
	sw.Close()
	select {
	case err := <-done:
		var gone *wire.SwitchGoneError
		if !errors.As(err, &gone) || !errors.Is(err, wire.ErrPeerClosed) || gone.Switch != dir {
			t.Fatalf("Join = %v (%T), want a SwitchGoneError for %s", err, err, dir)
		}
		if want := "switch " + dir + " closed the connection"; err.Error() != want {
			t.Errorf("message %q, want %q", err, want)
		}
	case <-time.After(reconnectTimeout):
		t.Fatal("Join did not end when the switch closed")
	}
}
