package switchcore

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vde-go/vde/switchcore/wire"
)

// newTestSwitch starts a switch in a temporary directory and stops it at the end.
func newTestSwitch(t testing.TB, cfg Config) *Switch {
	t.Helper()
	if cfg.CtlDir == "" {
		cfg.CtlDir = t.TempDir() + "/sw.ctl"
	}
	cfg.Group, cfg.MgmtGroup = -1, -1
	cfg.Log = func(f string, a ...any) { t.Logf("switch: "+f, a...) }
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func dial(t testing.TB, s *Switch, port int) *wire.Conn {
	t.Helper()
	c, err := wire.Dial(s.CtlDir(), wire.DialOptions{Port: port, Description: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func frame(dst, src byte, payload string) []byte {
	f := []byte{2, 0, 0, 0, 0, dst, 2, 0, 0, 0, 0, src, 0x08, 0x00}
	if dst == 0xff {
		copy(f[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	}
	return append(f, payload...)
}

// recvFrame waits up to d for one frame on c; nil means none came.
func recvFrame(t testing.TB, c *wire.Conn, d time.Duration) []byte {
	t.Helper()
	bufs := [][]byte{make([]byte, wire.MaxFrame+10)}
	sizes := []int{0}
	c.SetReadDeadline(time.Now().Add(d))
	defer c.SetReadDeadline(time.Time{})
	if n, _ := c.ReadBatch(bufs, sizes); n > 0 {
		return bufs[0][:sizes[0]]
	}
	return nil
}

func runCmd(t testing.TB, s *Switch, line string) string {
	t.Helper()
	ss := s.newSession(nil, nil, nil)
	defer ss.end()
	var w bytes.Buffer
	s.runLine(ss, line, &w)
	return w.String()
}

func TestUnicastLearnsAndForwards(t *testing.T) {
	s := newTestSwitch(t, Config{})
	a, b, c := dial(t, s, 0), dial(t, s, 0), dial(t, s, 0)
	// A broadcasts: B and C see it, the switch learns A.
	if _, err := a.WriteBatch([][]byte{frame(0xff, 1, "hello")}); err != nil {
		t.Fatal(err)
	}
	for _, x := range []*wire.Conn{b, c} {
		if f := recvFrame(t, x, 2*time.Second); !bytes.Equal(f, frame(0xff, 1, "hello")) {
			t.Fatalf("broadcast not delivered: %x", f)
		}
	}
	// B answers A by unicast: only A gets it.
	b.WriteBatch([][]byte{frame(1, 2, "reply")})
	if f := recvFrame(t, a, 2*time.Second); !bytes.Equal(f, frame(1, 2, "reply")) {
		t.Fatalf("unicast not delivered: %x", f)
	}
	if f := recvFrame(t, c, 300*time.Millisecond); f != nil {
		t.Fatalf("learned unicast flooded to a third port: %x", f)
	}
	out := runCmd(t, s, "hash/print")
	if !strings.Contains(out, "Addr: 02:00:00:00:00:01 VLAN 0000 to port: 001") {
		t.Fatalf("hash/print:\n%s", out)
	}
}

func TestJumboFrameIntact(t *testing.T) {
	s := newTestSwitch(t, Config{})
	a, b := dial(t, s, 0), dial(t, s, 0)
	big := frame(0xff, 1, strings.Repeat("x", 9000-14))
	a.WriteBatch([][]byte{big})
	if f := recvFrame(t, b, 2*time.Second); !bytes.Equal(f, big) {
		t.Fatalf("9000-byte frame: got %d bytes", len(f))
	}
	tooBig := frame(0xff, 1, strings.Repeat("x", wire.MaxFrame+1-14))
	a.WriteBatch([][]byte{tooBig, frame(0xff, 1, "x")[:13]})
	if f := recvFrame(t, b, 300*time.Millisecond); f != nil {
		t.Fatalf("oversized or short frame forwarded: %d bytes", len(f))
	}
}

func TestPortPrintDescription(t *testing.T) {
	s := newTestSwitch(t, Config{})
	dial(t, s, 5)
	out := runCmd(t, s, "port/print 5")
	want := fmt.Sprintf("Port 0005 untagged_vlan=0000 ACTIVE - Unnamed Allocatable\n")
	if !strings.Contains(out, want) || !strings.Contains(out, "module unix prog   : test user=") {
		t.Fatalf("port/print 5:\n%s", out)
	}
}
