package switchcore

import (
	"bytes"
	"strconv"
	"testing"
	"time"

	"github.com/vde-go/vde/switchcore/wire"
)

// Receivers that never read fill their output queues; together the queues stay within
// queueBudget, and the bytes come back when the endpoints go.
func TestOutQueuesShareABudget(t *testing.T) {
	s := newTestSwitch(t, Config{NumPorts: 32})
	s.logf = func(string, ...any) {}
	src := dial(t, s, 1)
	var stalled []interface{ Close() error }
	for p := 2; p < 24; p++ { // 22 queues of up to 1024 frames * 2 KiB: 44 MiB wanted
		stalled = append(stalled, dial(t, s, p))
	}
	f := frame(0xff, 1, "storm")
	for i := 0; i < outQueueLen+64; i++ {
		for {
			if n, _ := src.WriteBatch([][]byte{f}); n == 1 {
				break
			}
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.queueBytes.Load() < queueBudget-minSlotBuf && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := s.queueBytes.Load(); got > queueBudget || got < queueBudget-minSlotBuf {
		t.Fatalf("queues hold %d bytes; want the budget, %d, reached and not passed", got, queueBudget)
	}
	for _, c := range stalled {
		c.Close()
	}
	for s.queueBytes.Load() != 0 && time.Now().Before(deadline.Add(5*time.Second)) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := s.queueBytes.Load(); got != 0 {
		t.Fatalf("%d queue bytes still charged after the receivers left", got)
	}
}

// With flow control, a receiver slower than its sender loses nothing: the sender is
// slowed to its pace instead (its frames wait in its own socket while the receiver's
// queue is full). By default (FlowAuto) the same holds for a sender whose batches are
// all for that one receiver.
func TestSlowReceiverSlowsSenderLosesNothing(t *testing.T) {
	for _, mode := range []FlowMode{FlowAlways, FlowAuto} {
		t.Run(mode.String(), func(t *testing.T) {
			s := newTestSwitch(t, Config{FlowControl: mode})
			s.stallWait = 5 * time.Second // this receiver may be descheduled for long on a loaded machine
			a, b := dial(t, s, 1), dial(t, s, 2)
			b.WriteBatch([][]byte{frame(0xff, 2, "learn b")})
			recvFrame(t, a, 2*time.Second)
			slowReaderGetsAll(t, s, a, b, 2)
		})
	}
}

// With flow control, a receiver that stopped reading costs its senders one stallWait,
// then its frames are dropped and counted while the same sender's frames to another
// port all arrive.
func TestStalledReceiverDoesNotHoldBackOthers(t *testing.T) {
	s := newTestSwitch(t, Config{FlowControl: FlowAlways})
	// b's reader (this test) must not look stalled when it is descheduled for a while on a
	// loaded machine (with the 10 ms default, b's frames were dropped under CPU load); c,
	// which never reads, still costs the sender only this one wait.
	s.stallWait = 2 * time.Second
	a, b, c := dial(t, s, 1), dial(t, s, 2), dial(t, s, 3)
	b.WriteBatch([][]byte{frame(0xff, 2, "learn b")})
	c.WriteBatch([][]byte{frame(0xff, 3, "learn c")})
	recvFrame(t, a, 2*time.Second)
	recvFrame(t, a, 2*time.Second)
	recvFrame(t, b, 2*time.Second) // c's broadcast
	const total = 3 * outQueueLen
	go func() {
		for i := 0; i < total; i++ {
			if _, err := a.WriteBatch([][]byte{frame(3, 1, "to c"), frame(2, 1, strconv.Itoa(i))}); err != nil {
				return
			}
		}
	}()
	for i := 0; i < total; i++ {
		want := frame(2, 1, strconv.Itoa(i))
		if got := recvFrame(t, b, 5*time.Second); !bytes.Equal(got, want) {
			t.Fatalf("frame %d: got %q, want %q (port 2 drops: %d)", i, got, want, s.portDrops(2))
		}
	}
	if d := s.portDrops(3); d == 0 {
		t.Errorf("port 3 never read but counts no drops")
	}
}

// portDrops is port n's drop counter.
func (s *Switch) portDrops(n int) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ports[n].counters.drops.Load()
}

// Without flow control (--noflowcontrol, as in C) a full queue drops and counts at once: a
// sender flooding a receiver that does not read is never held up, while its frames to a
// third port that reads keep arriving in order. By default (FlowAuto) the same holds, but
// for a stallWait the first time a batch holds only frames for the receiver that does not
// read.
func TestFullQueueDropsWithoutFlowControl(t *testing.T) {
	t.Run("noflowcontrol", func(t *testing.T) {
		// were a reader to wait for c, the sender would hang
		fullQueueDrops(t, FlowNever, time.Hour)
	})
	t.Run("auto", func(t *testing.T) { fullQueueDrops(t, FlowAuto, 50*time.Millisecond) })
}

func fullQueueDrops(t *testing.T, mode FlowMode, stall time.Duration) {
	s := newTestSwitch(t, Config{FlowControl: mode})
	s.stallWait = stall
	a, b, c := dial(t, s, 1), dial(t, s, 2), dial(t, s, 3)
	b.WriteBatch([][]byte{frame(0xff, 2, "learn b")})
	c.WriteBatch([][]byte{frame(0xff, 3, "learn c")})
	recvFrame(t, a, 2*time.Second)
	recvFrame(t, a, 2*time.Second)
	recvFrame(t, b, 2*time.Second)
	const total = 3 * outQueueLen
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		for i := 0; i < total; i++ {
			if _, err := a.WriteBatch([][]byte{frame(3, 1, "to c"), frame(2, 1, strconv.Itoa(i))}); err != nil {
				return
			}
		}
	}()
	select {
	case <-sent:
	case <-time.After(10 * time.Second):
		t.Fatal("the sender is held up by a receiver that does not read")
	}
	last, got := -1, 0
	for {
		f := recvFrame(t, b, 500*time.Millisecond)
		if f == nil {
			break
		}
		n, err := strconv.Atoi(string(f[14:]))
		if err != nil || n <= last {
			t.Fatalf("after frame %d, b got %q", last, f)
		}
		last = n
		got++
	}
	if got == 0 {
		t.Fatal("b got none of its frames")
	}
	// What the queue and the kernel's socket buffer hold is not dropped (1771 of 3072
	// dropped here; how much the socket holds depends on net.core.wmem_default).
	if d := s.portDrops(3); d == 0 {
		t.Errorf("port 3 never read but counts no drops of %d frames", total)
	}
}

// Storm control: a broadcast storm fills at most floodShare of a congested port's output
// queue, so unicast from another port to it still finds room and arrives, in full and in
// order, instead of being dropped with the storm's overflow.
func TestStormLeavesRoomForUnicast(t *testing.T) {
	s := newTestSwitch(t, Config{})
	s.logf = func(string, ...any) {}
	storm, b, c := dial(t, s, 1), dial(t, s, 2), dial(t, s, 3)
	b.WriteBatch([][]byte{frame(0xff, 2, "learn b")})
	recvFrame(t, c, 2*time.Second)
	const stormLen = 3 * outQueueLen
	bc := frame(0xff, 1, "storm")
	for i := 0; i < stormLen; i++ {
		storm.WriteBatch([][]byte{bc}) // b reads nothing meanwhile: its queue fills
	}
	waitFor(t, func() bool { return s.ports[1].counters.inPkts.Load() == stormLen })
	const unicast = 200
	for i := 0; i < unicast; i++ {
		c.WriteBatch([][]byte{frame(2, 3, strconv.Itoa(i))})
	}
	waitFor(t, func() bool { return s.ports[3].counters.inPkts.Load() == unicast })
	time.Sleep(100 * time.Millisecond) // the last of c's frames from its reader into b's queue
	stormGot, next := 0, 0
	for {
		f := recvFrame(t, b, 300*time.Millisecond)
		if f == nil {
			break
		}
		if bytes.Equal(f, bc) {
			stormGot++
			continue
		}
		if want := frame(2, 3, strconv.Itoa(next)); !bytes.Equal(f, want) {
			t.Fatalf("b got %q, want %q", f, want)
		}
		next++
	}
	if next != unicast {
		t.Errorf("b got %d of c's %d unicast frames during the storm (port 2 drops %d)", next, unicast, s.portDrops(2))
	}
	// The storm frames b got are the flood share of its queue plus what its socket took.
	t.Logf("b got %d storm frames of %d (flood share %d) and all %d unicast frames", stormGot, stormLen, floodShare, next)
}

// With flow control, flooded frames to a slow receiver wait for room in their share of
// its queue instead of being dropped: a broadcast burst arrives whole and in order.
func TestFlowControlFloodWaitsForItsShare(t *testing.T) {
	s := newTestSwitch(t, Config{FlowControl: FlowAlways})
	s.stallWait = 5 * time.Second // this receiver may be descheduled for long on a loaded machine
	a, b := dial(t, s, 1), dial(t, s, 2)
	slowReaderGetsAll(t, s, a, b, 0xff)
}

// slowReaderGetsAll sends 3 queues' worth of frames to dst from a (port 1) as fast as the
// switch takes them, while b (port 2) reads them a little slower: with flow control every
// frame arrives, in order, and port 2 counts no drop.
func slowReaderGetsAll(t *testing.T, s *Switch, a, b *wire.Conn, dst byte) {
	t.Helper()
	const total = 3 * outQueueLen
	go func() {
		for i := 0; i < total; i++ {
			if _, err := a.WriteBatch([][]byte{frame(dst, 1, strconv.Itoa(i))}); err != nil {
				return
			}
		}
	}()
	for i := 0; i < total; i++ {
		if i%64 == 63 {
			time.Sleep(time.Millisecond) // slower than the sender, never stopped for long
		}
		want := frame(dst, 1, strconv.Itoa(i))
		if got := recvFrame(t, b, 5*time.Second); !bytes.Equal(got, want) {
			t.Fatalf("frame %d: got %q, want %q (port 2 drops: %d)", i, got, want, s.portDrops(2))
		}
	}
	if d := s.portDrops(2); d != 0 {
		t.Errorf("port 2 counts %d drops", d)
	}
}

// Two clients that feed each other and read nothing while they are blocked in send (as
// libvdeplug's do) would hold each other's readers in a circle of waits: each reader
// waits for room at the other's receiver, whose client is blocked sending to it. The
// second reader to wait sees the circle and drops instead, even with a stallWait far
// longer than the test.
func TestAutoFlowBreaksACircleOfWaits(t *testing.T) {
	s := newTestSwitch(t, Config{})
	s.stallWait = time.Hour
	a, b := dial(t, s, 1), dial(t, s, 2)
	a.WriteBatch([][]byte{frame(0xff, 1, "learn a")})
	b.WriteBatch([][]byte{frame(0xff, 2, "learn b")})
	recvFrame(t, a, 2*time.Second)
	recvFrame(t, b, 2*time.Second)
	// Each sends for a while, blocking in send when the switch does not take its frames,
	// and reads nothing meanwhile.
	blast := func(c *wire.Conn, f []byte, done chan<- struct{}) {
		defer close(done)
		end := time.Now().Add(time.Second)
		for time.Now().Before(end) {
			c.WriteBatch([][]byte{f, f, f, f, f, f, f, f})
		}
	}
	da, db := make(chan struct{}), make(chan struct{})
	go blast(a, frame(2, 1, "a to b"), da)
	go blast(b, frame(1, 2, "b to a"), db)
	// Without the check both readers wait for an hour, and both clients stay blocked.
	timeout := time.After(20 * time.Second)
	select {
	case <-da:
	case <-db:
	case <-timeout:
		t.Fatalf("both clients are still blocked in send (drops: port 1 %d, port 2 %d)", s.portDrops(1), s.portDrops(2))
	}
	// The client back from send reads again, as the other one will once it is back.
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		for {
			select {
			case <-da:
				select {
				case <-db:
					return
				default:
				}
			default:
			}
			for _, c := range []*wire.Conn{a, b} {
				for recvFrame(t, c, 10*time.Millisecond) != nil {
				}
			}
		}
	}()
	defer func() { <-drained }()
	for _, d := range []chan struct{}{da, db} {
		select {
		case <-d:
		case <-timeout:
			t.Fatalf("a client is still blocked in send (drops: port 1 %d, port 2 %d)", s.portDrops(1), s.portDrops(2))
		}
	}
	if s.portDrops(1)+s.portDrops(2) == 0 {
		t.Error("no frame was dropped, yet neither client read while both sent")
	}
	t.Logf("drops: port 1 %d, port 2 %d", s.portDrops(1), s.portDrops(2))
}

// An endpoint whose reader waits for room at a receiver that does not read is still
// detached at once (port/epclose, or its client going): the wait ends with it, and
// closing the socket, which waits for the reader to let go of it, does not hang.
func TestDetachWhileWaitingForRoom(t *testing.T) {
	s := newTestSwitch(t, Config{})
	s.stallWait = time.Hour
	a, b := dial(t, s, 1), dial(t, s, 2)
	b.WriteBatch([][]byte{frame(0xff, 2, "learn b")})
	recvFrame(t, a, 2*time.Second)
	s.mu.Lock()
	src := s.ports[1].eps[0]
	s.mu.Unlock()
	go func() {
		f := frame(2, 1, "to b")
		for !src.closed.Load() {
			if _, err := a.WriteBatch([][]byte{f, f, f, f}); err != nil {
				return
			}
		}
	}()
	waitFor(t, func() bool { return src.waitsFor.Load() != nil })
	detached := make(chan struct{})
	go func() { s.detach(src); close(detached) }() // as port/epclose does
	select {
	case <-detached:
	case <-time.After(5 * time.Second):
		t.Fatal("detach waits for the reader, which waits for room at a receiver that does not read")
	}
}
