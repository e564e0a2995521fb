package ptp

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vde-go/vde/switchcore/wire"
	"golang.org/x/sys/unix"
)

func frame(payload string) []byte {
	return append([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x88, 0xb5}, payload...)
}

// recvFrame reads one frame from e within a second, or fails.
func recvFrame(t *testing.T, e wire.Endpoint) []byte {
	t.Helper()
	type result struct {
		f   []byte
		err error
	}
	ch := make(chan result, 1)
	go func() {
		bufs, sizes := [][]byte{make([]byte, wire.MaxFrame)}, []int{0}
		n, err := e.ReadBatch(bufs, sizes)
		if n == 1 {
			ch <- result{bytes.Clone(bufs[0][:sizes[0]]), nil}
			return
		}
		ch <- result{nil, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("read: %v", r.err)
		}
		return r.f
	case <-time.After(time.Second):
		t.Fatal("no frame within 1s")
	}
	return nil
}

func send(t *testing.T, e wire.Endpoint, payload string) {
	t.Helper()
	if n, err := e.WriteBatch([][]byte{frame(payload)}); n != 1 || err != nil {
		t.Fatalf("send: %d, %v", n, err)
	}
}

func TestPtpTwoEnds(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c")
	first, err := Open(path, wire.OpenOptions{Mode: 0600})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	st, err := os.Lstat(path)
	if err != nil || st.Mode()&os.ModeSocket == 0 || st.Mode().Perm() != 0600 {
		t.Fatalf("%s after the first end: %v, %v; want a socket of mode 0600", path, st, err)
	}
	second, err := Open(path, wire.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Lstat(path + "+"); err != nil || st.Mode().Perm() != 0700 {
		t.Fatalf("%s+ after the second end: %v, %v; want mode 0700", path, st, err)
	}
	send(t, second, "2to1")
	if f := recvFrame(t, first); !bytes.Contains(f, []byte("2to1")) {
		t.Fatalf("first end got %q", f)
	}
	send(t, first, "1to2")
	if f := recvFrame(t, second); !bytes.Contains(f, []byte("1to2")) {
		t.Fatalf("second end got %q", f)
	}
	if third, err := Open(path, wire.OpenOptions{}); err == nil {
		third.Close()
		t.Fatal("a third end opened")
	} else if !strings.Contains(err.Error(), "both ends are taken") {
		t.Errorf("a third end: %v", err)
	}

	// The second end goes; the first forgets it when it sends, and a new one gets in.
	second.Close()
	if _, err := os.Lstat(path + "+"); !os.IsNotExist(err) {
		t.Errorf("%s+ after the second end closed: %v", path, err)
	}
	send(t, first, "to-nobody")
	again, err := Open(path, wire.OpenOptions{})
	if err != nil {
		t.Fatalf("a new second end: %v", err)
	}
	defer again.Close()
	send(t, first, "1to-new")
	if f := recvFrame(t, again); !bytes.Contains(f, []byte("1to-new")) {
		t.Fatalf("the new second end got %q", f)
	}

	// A stale first-end socket (its plug was killed) is taken over.
	first.Close()
	fd, _ := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM, 0)
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	unix.Close(fd) // the name stays, nobody answers
	anew, err := Open(path, wire.OpenOptions{})
	if err != nil {
		t.Fatalf("over a stale socket: %v", err)
	}
	defer anew.Close()
	send(t, again, "to-anew") // the second end's old peer is gone: it reconnects
	send(t, again, "to-anew")
	if f := recvFrame(t, anew); !bytes.Contains(f, []byte("to-anew")) {
		t.Fatalf("the new first end got %q", f)
	}
}

func TestPtpZeroLengthResets(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c")
	first, err := Open(path, wire.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	second, err := Open(path, wire.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	send(t, first, "connect") // the first end is now connected to the second
	recvFrame(t, second)
	// A zero-length datagram from the second end: the first end forgets its peer (the
	// kernel drops what was queued for it then), so that anybody may connect to it.
	m := second.(*msgSocket)
	if err := m.control(func(fd int) error { return unix.Send(fd, nil, 0) }); err != nil {
		t.Fatal(err)
	}
	go func() { // its reader sees the empty datagram, and waits for more till Close
		bufs, sizes := [][]byte{make([]byte, wire.MaxFrame)}, []int{0}
		first.ReadBatch(bufs, sizes)
	}()
	probe, _ := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM, 0)
	defer unix.Close(probe)
	deadline := time.Now().Add(time.Second)
	for unix.Connect(probe, &unix.SockaddrUnix{Name: path}) != nil {
		if time.Now().After(deadline) {
			t.Fatal("the first end is still connected after a zero-length datagram")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSeqpacket(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	a, err := OpenSeqpacket(strconv.Itoa(fds[0]), wire.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := OpenSeqpacket("0x"+strconv.FormatInt(int64(fds[1]), 16), wire.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	send(t, a, "a2b")
	if f := recvFrame(t, b); !bytes.Contains(f, []byte("a2b")) {
		t.Fatalf("got %q", f)
	}
	a.Close()
	bufs, sizes := [][]byte{make([]byte, wire.MaxFrame)}, []int{0}
	if _, err := b.ReadBatch(bufs, sizes); !errors.Is(err, io.EOF) {
		t.Errorf("read after the peer closed: %v, want EOF", err)
	}

	f, err := os.CreateTemp(t.TempDir(), "x")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if e, err := OpenSeqpacket(strconv.Itoa(int(f.Fd())), wire.OpenOptions{}); err == nil {
		e.Close()
		t.Error("seqpacket:// opened a regular file")
	}
}

func TestParseFD(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
	}{
		{"3", 3}, {"0", 0}, {"010", 8}, {"0x1f", 31}, {"0X10", 16}, {" 7", 7}, {"2147483647", 1<<31 - 1},
		{"", -1}, {"/tmp/x", -1}, {"-1", -1}, {"3x", -1}, {"09", -1}, {"0x", -1}, {"2147483648", -1}, {"1_0", -1},
	} {
		got, err := ParseFD(tc.in)
		if tc.want < 0 {
			if err == nil {
				t.Errorf("ParseFD(%q) = %d, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseFD(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

// FuzzParseFD: any argument gives a descriptor number or an error, and a number written
// back in decimal reads the same.
func FuzzParseFD(f *testing.F) {
	for _, s := range []string{"3", "0x1f", "017", "", "x", "-1", " 9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseFD(s)
		if err != nil {
			return
		}
		if n < 0 {
			t.Fatalf("ParseFD(%q) = %d", s, n)
		}
		if m, err := ParseFD(strconv.Itoa(n)); err != nil || m != n {
			t.Fatalf("ParseFD(%q) = %d, but ParseFD(%d) = %d, %v", s, n, n, m, err)
		}
	})
}
