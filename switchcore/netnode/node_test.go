package netnode

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vde-go/vde/switchcore/wire"
	"golang.org/x/sys/unix"
)

// frame is an Ethernet frame from MAC 02:..:src to MAC 02:..:dst (0xff: broadcast).
func frame(dst, src byte, payload string) []byte {
	f := []byte{2, 0, 0, 0, 0, dst, 2, 0, 0, 0, 0, src, 0x88, 0xb5}
	if dst == 0xff {
		copy(f, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	}
	return append(f, payload...)
}

// reader delivers what an endpoint receives on a channel.
func reader(e wire.Endpoint) <-chan []byte {
	ch := make(chan []byte, 64)
	go func() {
		defer close(ch)
		bufs := [][]byte{make([]byte, wire.MaxFrame)}
		sizes := []int{0}
		for {
			n, err := e.ReadBatch(bufs, sizes)
			if err != nil {
				return
			}
			if n == 1 {
				ch <- bytes.Clone(bufs[0][:sizes[0]])
			}
		}
	}()
	return ch
}

// expect waits for a frame holding payload on ch; want false: checks none comes.
func expect(t *testing.T, ch <-chan []byte, payload string, want bool) {
	t.Helper()
	wait := 2 * time.Second
	if !want {
		wait = 150 * time.Millisecond
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case f := <-ch:
			if bytes.Contains(f, []byte(payload)) {
				if !want {
					t.Fatalf("got %q, which should not have come", payload)
				}
				return
			}
		case <-timer.C:
			if want {
				t.Fatalf("no frame %q within %v", payload, wait)
			}
			return
		}
	}
}

func send(t *testing.T, e wire.Endpoint, f []byte) {
	t.Helper()
	if n, err := e.WriteBatch([][]byte{f}); n != 1 || err != nil {
		t.Fatalf("send: %d, %v", n, err)
	}
}

// node opens scheme://dir[opts] and joins two clients to it.
func node(t *testing.T, scheme, opts string) (host wire.Endpoint, dir string, c1, c2 wire.Endpoint) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "n")
	host, err := wire.Open(scheme+"://"+dir+opts, wire.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { host.Close() })
	var cs [2]wire.Endpoint
	for i := range cs {
		c, err := wire.Dial(dir, wire.DialOptions{Description: "test"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		cs[i] = c
	}
	return host, dir, cs[0], cs[1]
}

func TestSwitchLearns(t *testing.T) {
	host, dir, c1, c2 := node(t, "switch", "[hashsize=32/expiretime=30]")
	h, r1, r2 := reader(host), reader(c1), reader(c2)
	send(t, c1, frame(0xff, 1, "from-c1"))
	expect(t, h, "from-c1", true)
	expect(t, r2, "from-c1", true)
	send(t, host, frame(1, 9, "host-to-c1"))
	expect(t, r1, "host-to-c1", true)
	expect(t, r2, "host-to-c1", false)
	send(t, c2, frame(9, 2, "c2-to-host"))
	expect(t, h, "c2-to-host", true)
	expect(t, r1, "c2-to-host", false)
	// 802.1Q frames go through as they are, learned per VLAN.
	tagged := func(dst, src byte, vid int, payload string) []byte {
		f := frame(dst, src, payload)
		return append(f[:12:12], append([]byte{0x81, 0, byte(vid >> 8), byte(vid), 0x88, 0xb5}, f[14:]...)...)
	}
	send(t, c1, tagged(0xff, 1, 5, "tagged-bcast"))
	for _, r := range []<-chan []byte{h, r2} {
		select {
		case f := <-r:
			if !bytes.Equal(f, tagged(0xff, 1, 5, "tagged-bcast")) {
				t.Fatalf("a tagged broadcast arrived as % x", f)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("a tagged broadcast did not arrive")
		}
	}
	send(t, host, tagged(1, 9, 5, "tagged-to-c1"))
	expect(t, r1, "tagged-to-c1", true)
	expect(t, r2, "tagged-to-c1", false)
	send(t, host, tagged(1, 9, 6, "other-vlan-to-c1")) // c1 unknown on VLAN 6: flooded
	expect(t, r2, "other-vlan-to-c1", true)
	host.Close()
	if _, err := os.Lstat(dir); !os.IsNotExist(err) {
		t.Errorf("%s still there after Close: %v", dir, err)
	}
}

func TestHubFloods(t *testing.T) {
	host, _, c1, c2 := node(t, "hub", "")
	h, r1, r2 := reader(host), reader(c1), reader(c2)
	send(t, c1, frame(0xff, 1, "from-c1"))
	expect(t, h, "from-c1", true)
	expect(t, r2, "from-c1", true)
	send(t, host, frame(1, 9, "host-to-c1"))
	expect(t, r1, "host-to-c1", true)
	expect(t, r2, "host-to-c1", true)
	expect(t, r1, "from-c1", false)
}

func TestNodeRefusesAPathInUse(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "file"), nil, 0600); err != nil {
		t.Fatal(err)
	}
	if e, err := wire.Open("switch://"+dir, wire.OpenOptions{}); err == nil {
		e.Close()
		t.Fatalf("switch://%s opened over a directory with a file in it", dir)
	}
	host, err := wire.Open("switch://"+filepath.Join(dir, "n"), wire.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	if e, err := wire.Open("hub://"+filepath.Join(dir, "n"), wire.OpenOptions{}); err == nil {
		e.Close()
		t.Fatal("a second node opened over a live one")
	}
}

func TestMultiFansOut(t *testing.T) {
	host, dir, c1, c2 := node(t, "multi", "[mode=0660]")
	h, r1, r2 := reader(host), reader(c1), reader(c2)
	send(t, host, frame(1, 9, "host-to-c1"))
	expect(t, r1, "host-to-c1", true)
	expect(t, r2, "host-to-c1", true)
	send(t, c1, frame(0xff, 1, "c1-bcast"))
	expect(t, h, "c1-bcast", true)
	expect(t, r2, "c1-bcast", false)
	if st, err := os.Lstat(filepath.Join(dir, "ctl")); err != nil || st.Mode().Perm() != 0660 {
		t.Errorf("ctl: %v, %v; want mode 0660", st, err)
	}
	host.Close()
	if _, err := os.Lstat(dir); !os.IsNotExist(err) {
		t.Errorf("%s still there after Close: %v", dir, err)
	}
	c1.(*wire.Conn).WaitClosed() // the links hear the node go
}

func TestBondingTakesTurns(t *testing.T) {
	host, _, c1, c2 := node(t, "bonding", "")
	h, r1, r2 := reader(host), reader(c1), reader(c2)
	for i := 0; i < 4; i++ {
		send(t, host, frame(0xff, 9, "turn"+string(rune('0'+i))))
	}
	// Two frames each, alternating.
	got := map[string]int{}
	for _, r := range []<-chan []byte{r1, r2} {
		for k := 0; k < 2; k++ {
			select {
			case f := <-r:
				got[string(f[len(f)-5:])]++
			case <-time.After(2 * time.Second):
				t.Fatalf("links got %v; want 2 frames each", got)
			}
		}
		expect(t, r, "turn", false)
	}
	if len(got) != 4 {
		t.Errorf("links got %v; want each of the 4 frames once", got)
	}
	send(t, c2, frame(0xff, 2, "c2-bcast"))
	expect(t, h, "c2-bcast", true)
	expect(t, r1, "c2-bcast", false)
}

func TestNodeTakesOverADeadOne(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "n")
	if err := os.Mkdir(dir, 0700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"ctl", "fd7", "001.9"} { // bound, then left by a killed node
		fd, _ := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
		if err := unix.Bind(fd, &unix.SockaddrUnix{Name: filepath.Join(dir, name)}); err != nil {
			t.Fatal(err)
		}
		unix.Close(fd)
	}
	for _, scheme := range []string{"switch", "multi"} {
		host, err := wire.Open(scheme+"://"+dir, wire.OpenOptions{})
		if err != nil {
			t.Fatalf("%s:// over a dead node's directory: %v", scheme, err)
		}
		if !listening(filepath.Join(dir, "ctl")) {
			t.Errorf("%s://: ctl not listed as listening", scheme)
		}
		if e, err := wire.Open("hub://"+dir, wire.OpenOptions{}); err == nil {
			e.Close()
			t.Fatalf("hub:// opened over a live %s://", scheme)
		}
		host.Close()
		if _, err := os.Lstat(dir); !os.IsNotExist(err) {
			t.Errorf("%s://: %s still there after Close: %v", scheme, dir, err)
		}
		os.Mkdir(dir, 0700)
	}
}
