package switchcore

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/vde-go/vde/switchcore/wire"
)

// dialOffload attaches a client that asks for a data channel with offloads.
func dialOffload(t *testing.T, s *Switch, port int) *wire.Conn {
	t.Helper()
	c, err := wire.Dial(s.CtlDir(), wire.DialOptions{Port: port, Description: "offload", Offload: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if c.Offload() == nil {
		t.Fatal("our switch refused a data channel with offloads")
	}
	return c
}

// recvOffload reads one packet with its offloads.
func recvOffload(t *testing.T, c *wire.Conn) ([]byte, wire.Offload) {
	t.Helper()
	bufs, sizes, offl := [][]byte{make([]byte, wire.MaxPacket)}, []int{0}, []wire.Offload{{}}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	n, err := c.ReadOffload(bufs, sizes, offl)
	if err != nil || n != 1 {
		t.Fatalf("read: %d, %v", n, err)
	}
	return bufs[0][:sizes[0]], offl[0]
}

// TestOffloadDatagramClients: two clients of ours with offload channels exchange a TSO
// packet as one datagram, with its offloads; a plain client gets it cut into frames with
// their checksums done; plain frames go both ways between the kinds; a hand-over carries
// the offload channels.
func TestOffloadDatagramClients(t *testing.T) {
	s := newTestSwitch(t, Config{NumPorts: 8})
	a, b := dialOffload(t, s, 1), dialOffload(t, s, 2)
	plain := dial(t, s, 3)
	// b's broadcast teaches the switch where b is.
	if _, err := b.WriteBatch([][]byte{frame(0xff, 2, "b here")}); err != nil {
		t.Fatal(err)
	}
	if got, o := recvOffload(t, a); !bytes.Equal(got, frame(0xff, 2, "b here")) || !o.Plain() {
		t.Fatalf("a got %x %+v", got, o)
	}
	if got := recvFrame(t, plain, 5*time.Second); !bytes.Equal(got, frame(0xff, 2, "b here")) {
		t.Fatalf("the plain client got %x", got)
	}

	pkt, o := gsoPacket(1, 2, 20000, 1448, false)
	if _, err := a.WriteOffload([][]byte{pkt}, []wire.Offload{o}); err != nil {
		t.Fatal(err)
	}
	got, gotO := recvOffload(t, b)
	if !bytes.Equal(got, pkt) || gotO != o {
		t.Fatalf("b got %d bytes %+v, want the %d-byte packet whole with %+v", len(got), gotO, len(pkt), o)
	}

	// Broadcast a TSO packet: whole to b, cut for the plain client.
	bpkt, bo := gsoPacket(1, 0xff, 5000, 1000, false)
	copy(bpkt[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	if _, err := a.WriteOffload([][]byte{bpkt}, []wire.Offload{bo}); err != nil {
		t.Fatal(err)
	}
	if got, gotO := recvOffload(t, b); len(got) != len(bpkt) || gotO != bo {
		t.Fatalf("b got %d bytes %+v of the broadcast, want it whole", len(got), gotO)
	}
	total := 0
	for total < 5000 {
		f := recvFrame(t, plain, 5*time.Second)
		if f == nil || !tcpChecksumOK(f) || len(f) > 14+20+20+1000 {
			t.Fatalf("the plain client got a bad segment (%d bytes so far): %x", total, f)
		}
		total += len(f) - 14 - 20 - 20
	}

	// A hand-over keeps the channels' kind.
	state, files, err := s.Handover()
	if err != nil {
		t.Fatal(err)
	}
	restore(t, s, "B", state, files)
	if _, err := a.WriteOffload([][]byte{pkt}, []wire.Offload{o}); err != nil {
		t.Fatal(err)
	}
	if got, gotO := recvOffload(t, b); !bytes.Equal(got, pkt) || gotO != o {
		t.Fatalf("after the hand-over b got %d bytes %+v", len(got), gotO)
	}
	if _, err := plain.WriteBatch([][]byte{frame(2, 3, "plain to b")}); err != nil {
		t.Fatal(err)
	}
	if got, gotO := recvOffload(t, b); !bytes.Equal(got, frame(2, 3, "plain to b")) || !gotO.Plain() {
		t.Fatalf("after the hand-over b got %x %+v", got, gotO)
	}
}

// TestOffloadChannelQueues: a receiver on an offload channel that reads late loses
// nothing the switch's queue can hold: plain frames and TSO packets wait in it (the
// kernel's own queue holds 10 datagrams) and come out in order, with their offloads.
func TestOffloadChannelQueues(t *testing.T) {
	s := newTestSwitch(t, Config{NumPorts: 8, FlowControl: FlowNever})
	a, b := dialOffload(t, s, 1), dialOffload(t, s, 2)
	if _, err := b.WriteBatch([][]byte{frame(0xff, 2, "b here")}); err != nil {
		t.Fatal(err)
	}
	recvOffload(t, a)
	const plain, tso = 100, 40
	var frames [][]byte
	var offl []wire.Offload
	for i := 0; i < plain; i++ {
		frames, offl = append(frames, frame(2, 1, fmt.Sprintf("plain %03d", i))), append(offl, wire.Offload{})
	}
	for i := 0; i < tso; i++ {
		p, o := gsoPacket(1, 2, 8000+i, 1448, false)
		frames, offl = append(frames, p), append(offl, o)
	}
	for i := 0; i < len(frames); i += 8 {
		end := min(i+8, len(frames))
		if n, err := a.WriteOffload(frames[i:end], offl[i:end]); n != end-i || err != nil {
			t.Fatalf("send: %d, %v", n, err)
		}
	}
	for i := range frames {
		got, o := recvOffload(t, b)
		if !bytes.Equal(got, frames[i]) || o != offl[i] {
			t.Fatalf("packet %d: got %d bytes %+v, want %d bytes %+v (drops on port 2: %d)", i, len(got), o, len(frames[i]), offl[i], s.Stats().Ports[1].Drops)
		}
	}
}

// TestOffloadChannelRefusesBadHeaders: a client's packet whose offloads do not describe
// it (an unknown GSO type, a checksum field past its end) is counted bad and goes to no
// port, where a TAP would hand it to the kernel.
func TestOffloadChannelRefusesBadHeaders(t *testing.T) {
	s := newTestSwitch(t, Config{NumPorts: 8})
	a, b := dialOffload(t, s, 1), dialOffload(t, s, 2)
	pkt, o := gsoPacket(1, 2, 5000, 1448, false)
	bad := []wire.Offload{o, o}
	bad[0].GSOType = 9
	bad[1].CsumStart = uint16(len(pkt))
	if _, err := a.WriteOffload([][]byte{pkt, pkt}, bad); err != nil {
		t.Fatal(err)
	}
	if _, err := a.WriteOffload([][]byte{frame(2, 1, "good")}, []wire.Offload{{}}); err != nil {
		t.Fatal(err)
	}
	if got, _ := recvOffload(t, b); !bytes.Equal(got, frame(2, 1, "good")) {
		t.Fatalf("b got %d bytes, want only the good frame", len(got))
	}
	if st := s.Stats(); st.Ports[0].Bad != 2 {
		t.Fatalf("port 1 bad frames: %d, want 2", st.Ports[0].Bad)
	}
}

// TestOffloadChannelQueueBytes: a queue holds at most outQueueBytes, not 1024 GSO
// packets (64 MiB), and its slots give the switch's buffer budget back when they are
// free: burst after burst of 60 KiB packets to a receiver that reads late each fills the
// queue to its byte bound again, rather than finding the budget held by idle slots.
func TestOffloadChannelQueueBytes(t *testing.T) {
	s := newTestSwitch(t, Config{NumPorts: 8, FlowControl: FlowNever})
	a, b := dialOffload(t, s, 1), dialOffload(t, s, 2)
	if _, err := b.WriteBatch([][]byte{frame(0xff, 2, "b here")}); err != nil {
		t.Fatal(err)
	}
	recvOffload(t, a)
	pkt, o := gsoPacket(1, 2, 60000, 1448, false)
	for round := 0; round < 3; round++ {
		for i := 0; i < 300; i += 10 {
			frames, offl := make([][]byte, 10), make([]wire.Offload, 10)
			for k := range frames {
				frames[k], offl[k] = pkt, o
			}
			if _, err := a.WriteOffload(frames, offl); err != nil {
				t.Fatal(err)
			}
		}
		// What the queue took arrives; then nothing more.
		got := 0
		bufs, sizes, offs := [][]byte{make([]byte, wire.MaxPacket)}, []int{0}, []wire.Offload{{}}
		for {
			b.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			n, err := b.ReadOffload(bufs, sizes, offs)
			if err != nil || n == 0 {
				break
			}
			got++
		}
		b.SetReadDeadline(time.Time{})
		maxQueued := outQueueBytes/len(pkt) + 1
		if got < maxQueued || got > maxQueued+16 {
			t.Fatalf("round %d: b got %d of 300 packets; want the queue's %d and the kernel's few", round, got, maxQueued)
		}
		if q := s.queueBytes.Load(); q > queueBudget {
			t.Fatalf("round %d: %d bytes of queue buffers, over the budget", round, q)
		}
		// Small frames take their turn through the slots in between.
		for i := 0; i < 200; i++ {
			a.WriteOffload([][]byte{frame(2, 1, "small")}, []wire.Offload{{}})
		}
		for i := 0; i < 200; i++ {
			b.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			if n, err := b.ReadOffload(bufs, sizes, offs); err != nil || n == 0 {
				break
			}
		}
	}
}
