package wire

import (
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// datagramPair is a connected pair of non-blocking datagram sockets: a as a Datagram (so
// registered with the runtime poller), b as a bare descriptor the test reads from.
func datagramPair(t *testing.T) (*Datagram, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewDatagramPoll(fds[0], "a", &RuntimePoll{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close(); unix.Close(fds[1]) })
	return d, fds[1]
}

func eventsOf(t *testing.T, w *WriteInterest, d *Datagram) uint32 {
	t.Helper()
	events, data, ok := registration(w.epfd, d.FD())
	if !ok {
		t.Fatalf("fd %d is not in the interest list of epoll fd %d", d.FD(), w.epfd)
	}
	if data != w.data {
		t.Fatalf("registration data %#x, want the runtime's %#x", data, w.data)
	}
	return events
}

func quietWrites(t *testing.T, d *Datagram) *WriteInterest {
	t.Helper()
	w := d.WriteInterest()
	if w == nil {
		var p RuntimePoll
		_, err := p.WriteInterest(d.RawConn())
		t.Fatalf("NewDatagramPoll left the runtime's registration (EPOLLOUT on): %v", err)
	}
	return w
}

func TestWriteInterestTogglesEPOLLOUT(t *testing.T) {
	d, _ := datagramPair(t)
	w := quietWrites(t, d)
	if got := eventsOf(t, w, d); got != readEvents {
		t.Fatalf("after NewDatagramPoll: events %#x, want %#x (no EPOLLOUT)", got, readEvents)
	}
	d.RawConn().Control(func(fd uintptr) { w.Arm(fd) })
	if got := eventsOf(t, w, d); got != runtimeEvents {
		t.Fatalf("after Arm: events %#x, want %#x", got, runtimeEvents)
	}
	w.Disarm(d.RawConn())
	if got := eventsOf(t, w, d); got != readEvents {
		t.Fatalf("after Disarm: events %#x, want %#x", got, readEvents)
	}
	// Sockets made with one RuntimePoll share what it found.
	var p RuntimePoll
	var ws []*WriteInterest
	for i := 0; i < 2; i++ {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
		if err != nil {
			t.Fatal(err)
		}
		d, err := NewDatagramPoll(fds[0], "p", &p)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close(); unix.Close(fds[1]) })
		ws = append(ws, quietWrites(t, d))
	}
	if ws[0].epfd != w.epfd || ws[1].epfd != w.epfd || p.epfd != w.epfd {
		t.Fatalf("epoll fds %d, %d (RuntimePoll %d), want the runtime's %d", ws[0].epfd, ws[1].epfd, p.epfd, w.epfd)
	}
}

// A send that finds the peer's queue full must still wake when the peer reads, although
// the socket was registered without write interest.
func TestSendWaitWakesWithWriteInterestOff(t *testing.T) {
	d, peer := oneWayPair(t)
	w := quietWrites(t, d)
	b := NewRawBatch(BatchSize)
	b.ArmOnWait(w)
	frame := make([]byte, 64)
	// Fill the peer's queue (max_dgram_qlen, or its buffer).
	filled := 0
	for {
		n, err := b.Send(d.RawConn(), [][]byte{frame})
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		filled++
	}
	if filled == 0 {
		t.Fatal("the peer's queue took nothing")
	}
	done := make(chan error, 1)
	go func() {
		_, err := b.SendWait(d.RawConn(), [][]byte{frame})
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("SendWait returned (%v) while the peer's queue was full", err)
	case <-time.After(100 * time.Millisecond):
	}
	buf := make([]byte, 128)
	for i := 0; i < filled; i++ {
		if _, err := unix.Read(peer, buf); err != nil {
			t.Fatalf("draining the peer: %v", err)
		}
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("SendWait still waits 10 s after the peer drained its queue: the write edge was lost")
	}
	if got := eventsOf(t, w, d); got != runtimeEvents {
		t.Fatalf("during the wait's aftermath: events %#x, want EPOLLOUT armed (%#x)", got, runtimeEvents)
	}
	w.Disarm(d.RawConn())
}

// oneWayPair is a client socket bound to a path and a Datagram connected to it, not the
// other way round, as a switch's port socket is to its client's: the client's queue then
// holds net.unix.max_dgram_qlen datagrams, and a sender waits for the client to read.
func oneWayPair(t *testing.T) (*Datagram, int) {
	t.Helper()
	path := t.TempDir() + "/client"
	peer, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(peer) })
	if err := unix.Bind(peer, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	fd, err := SocketDatagram()
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	d, err := NewDatagramPoll(fd, "one-way", &RuntimePoll{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d, peer
}

// WriteBatchWait turns write interest on for its wait and off again when it is done.
func TestWriteBatchWaitDisarmsAfterWaiting(t *testing.T) {
	d, peer := oneWayPair(t)
	w := quietWrites(t, d)
	frames := make([][]byte, 64) // more than the client's queue takes
	for i := range frames {
		frames[i] = make([]byte, 64)
	}
	done := make(chan error, 1)
	go func() {
		_, err := d.WriteBatchWait(frames)
		done <- err
	}()
	// The send fills the queue and waits, with EPOLLOUT armed.
	deadline := time.Now().Add(10 * time.Second)
	for eventsOf(t, w, d) != runtimeEvents {
		if time.Now().After(deadline) {
			t.Fatal("WriteBatchWait never armed EPOLLOUT: it did not wait, or waits unarmed")
		}
		time.Sleep(time.Millisecond)
	}
	buf := make([]byte, 128)
	pfd := []unix.PollFd{{Fd: int32(peer), Events: unix.POLLIN}}
	for got := 0; got < len(frames); {
		if _, err := unix.Poll(pfd, 10000); err != nil && err != unix.EINTR {
			t.Fatal(err)
		}
		if _, err := unix.Read(peer, buf); err == nil {
			got++
		} else if err != unix.EAGAIN {
			t.Fatal(err)
		} else if pfd[0].Revents == 0 {
			t.Fatalf("10 s without a frame after %d of %d: the waiting send lost its write edge", got, len(frames))
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := eventsOf(t, w, d); got != readEvents {
		t.Fatalf("after WriteBatchWait: events %#x, want %#x (EPOLLOUT off again)", got, readEvents)
	}
}

// countingConn counts how often RawConn.Read's callback is started: once per Read, and
// once more after each wait in the poller.
type countingConn struct {
	syscall.RawConn
	starts int
}

func (c *countingConn) Read(f func(fd uintptr) bool) error {
	return c.RawConn.Read(func(fd uintptr) bool {
		c.starts++
		return f(fd)
	})
}

// A reader that yields after each full batch by requeueing its readiness must go back to
// the poller after each one, and must still read everything that was queued, with no new
// datagram arriving to make an edge.
func TestRecvLoopYieldViaReadsTheBacklog(t *testing.T) {
	d, peer := datagramPair(t) // a socketpair: no queue limit but the buffer's
	w := quietWrites(t, d)
	const frames = 4 * BatchSize // the buffer takes about 270 of 64 bytes
	for i := 0; i < frames; i++ {
		if _, err := unix.Write(peer, make([]byte, 64)); err != nil {
			t.Fatalf("queueing frame %d: %v", i, err)
		}
	}
	b := NewRawBatch(BatchSize)
	b.YieldVia(w)
	bufs := make([][]byte, BatchSize)
	for i := range bufs {
		bufs[i] = make([]byte, 128)
	}
	sizes := make([]int, BatchSize)
	got := 0
	rc := &countingConn{RawConn: d.RawConn()}
	done := make(chan error, 1)
	go func() {
		done <- b.RecvLoop(rc, func() [][]byte { return bufs }, func([][]byte) {}, sizes, func(_ [][]byte, n int) bool {
			got += n
			return got < frames
		})
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		d.Close()
		t.Fatalf("RecvLoop read %d of %d queued frames, then waited 10 s: a yield lost the readiness", got, frames)
	}
	if rc.starts < frames/BatchSize {
		t.Fatalf("the read callback started %d times for %d full batches: RecvLoop did not go back to the poller after each", rc.starts, frames/BatchSize)
	}
	if ev := eventsOf(t, w, d); ev != readEvents {
		t.Fatalf("after the yields: events %#x, want %#x unchanged", ev, readEvents)
	}
}

// A client's datagram keeps the runtime's registration.
func TestNewDatagramKeepsTheRuntimeRegistration(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewDatagram(fds[0], "client")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close(); unix.Close(fds[1]) })
	if d.WriteInterest() != nil {
		t.Fatal("NewDatagram took write interest out of the runtime's registration")
	}
	epfd := findRuntimeEpoll(d.FD())
	if epfd < 0 {
		t.Fatalf("fd %d is not registered with the runtime's events", d.FD())
	}
}
