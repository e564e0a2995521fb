package vhostuser

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vde-go/vde/switchcore/vhostuser/vhosttest"
	"github.com/vde-go/vde/switchcore/wire"
)

const modern = FeatVersion1 | FeatNetMrgRxbuf | FeatEventIdx | FeatProtocolFeatures

// featureSets are the negotiations guests make: Linux and DPDK (modern, mergeable, event
// index), a legacy guest without any of it, and one with mergeable buffers alone.
var featureSets = map[string]uint64{
	"modern":    modern,
	"legacy":    0,
	"mrg-only":  FeatNetMrgRxbuf,
	"noeventid": FeatVersion1 | FeatNetMrgRxbuf | FeatProtocolFeatures,
}

func frame(n int, seed byte) []byte {
	f := make([]byte, n)
	for i := range f {
		f[i] = seed + byte(i)
	}
	return f
}

func newBufs(n int) ([][]byte, []int) {
	bufs := make([][]byte, n)
	for i := range bufs {
		bufs[i] = make([]byte, 9235)
	}
	return bufs, make([]int, n)
}

// readN reads frames from the device until it has n of them.
func readN(t *testing.T, d *Device, n int) [][]byte {
	t.Helper()
	bufs, sizes := newBufs(64)
	var got [][]byte
	for len(got) < n {
		k, err := d.ReadBatch(bufs, sizes)
		if err != nil {
			t.Fatalf("ReadBatch after %d frames: %v", len(got), err)
		}
		for i := 0; i < k; i++ {
			got = append(got, append([]byte(nil), bufs[i][:sizes[i]]...))
		}
	}
	return got
}

func TestFramesBothWays(t *testing.T) {
	for name, feats := range featureSets {
		t.Run(name, func(t *testing.T) {
			f := newFrontend(t, feats, Options{})
			// Guest to switch: a run larger than the ring, in pieces.
			var sent [][]byte
			for round := 0; round < 3; round++ {
				var batch [][]byte
				for i := 0; i < 200; i++ {
					batch = append(batch, frame(60+(i*7)%1454, byte(round*200+i)))
				}
				f.Transmit(round*200, batch...)
				sent = append(sent, batch...)
				got := readN(t, f.dev, len(batch))
				for i := range got {
					if !bytes.Equal(got[i], batch[i]) {
						t.Fatalf("round %d frame %d: got %d bytes, want %d", round, i, len(got[i]), len(batch[i]))
					}
				}
				if ids, _ := f.Rings[1].Used(); len(ids) != len(batch) {
					t.Fatalf("round %d: %d transmit buffers came back, want %d", round, len(ids), len(batch))
				}
			}
			// Switch to guest.
			f.PostRx(0, 100, feBufSize)
			var out [][]byte
			for i := 0; i < 50; i++ {
				out = append(out, frame(60+i*29, byte(i)))
			}
			if n, err := f.dev.WriteBatch(out); n != len(out) || err != nil {
				t.Fatalf("WriteBatch = %d, %v; want %d", n, err, len(out))
			}
			got, nbufs := f.Received()
			if len(got) != len(out) {
				t.Fatalf("guest received %d frames, want %d", len(got), len(out))
			}
			for i := range got {
				if !bytes.Equal(got[i], out[i]) || nbufs[i] != 1 {
					t.Fatalf("frame %d: %d bytes in %d buffers, want %d in 1", i, len(got[i]), nbufs[i], len(out[i]))
				}
			}
		})
	}
}

// A jumbo frame spans buffers with MRG_RXBUF, and is dropped (and counted) without it,
// leaving the buffers for the next frame.
func TestJumboReceive(t *testing.T) {
	jumbo := frame(9000, 3)
	small := frame(100, 9)
	for name, feats := range map[string]uint64{"mrg": modern, "nomrg": FeatVersion1} {
		t.Run(name, func(t *testing.T) {
			f := newFrontend(t, feats, Options{})
			f.PostRx(0, 8, 1500)
			n, _ := f.dev.WriteBatch([][]byte{jumbo, small})
			got, nbufs := f.Received()
			if feats&FeatNetMrgRxbuf != 0 {
				if n != 2 || len(got) != 2 || !bytes.Equal(got[0], jumbo) || nbufs[0] != 7 || !bytes.Equal(got[1], small) {
					t.Fatalf("wrote %d; got %d frames, buffers %v", n, len(got), nbufs)
				}
				return
			}
			if n != 1 || len(got) != 1 || !bytes.Equal(got[0], small) || f.dev.RxTooLong.Load() != 1 {
				t.Fatalf("wrote %d; got %d frames; too long %d", n, len(got), f.dev.RxTooLong.Load())
			}
		})
	}
}

// With no receive buffer posted, frames for the guest are dropped and counted: the switch
// never waits for a guest.
func TestNoReceiveBuffers(t *testing.T) {
	f := newFrontend(t, modern, Options{})
	if n, err := f.dev.WriteBatch([][]byte{frame(64, 1), frame(64, 2)}); n != 0 || err != nil {
		t.Fatalf("WriteBatch = %d, %v; want 0, nil", n, err)
	}
	if f.dev.RxNoBuffer.Load() != 2 {
		t.Fatalf("RxNoBuffer = %d, want 2", f.dev.RxNoBuffer.Load())
	}
}

// A sleeping reader wakes for a kick, and the driver is signalled when its buffers come
// back only as it asked (event index).
func TestKickWakesReader(t *testing.T) {
	f := newFrontend(t, modern, Options{})
	got := make(chan [][]byte)
	go func() {
		bufs, sizes := newBufs(8)
		n, err := f.dev.ReadBatch(bufs, sizes)
		if err != nil {
			got <- nil
			return
		}
		got <- [][]byte{bufs[0][:sizes[0]][:n*0+sizes[0]]}
	}()
	time.Sleep(20 * time.Millisecond) // let it go to sleep: the kick path is under test
	want := frame(80, 5)
	f.Transmit(0, want)
	select {
	case g := <-got:
		if g == nil || !bytes.Equal(g[0], want) {
			t.Fatalf("woken reader got %v", g)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a kick did not wake the reader")
	}
	var v [8]byte
	if n, _ := unix.Read(f.Call[1], v[:]); n != 8 {
		t.Fatal("the driver was not signalled for its transmit buffer")
	}
}

// Closing the frontend's socket ends a sleeping ReadBatch with io.EOF.
func TestDisconnectEndsReader(t *testing.T) {
	f := newFrontend(t, modern, Options{})
	done := make(chan error)
	go func() {
		bufs, sizes := newBufs(4)
		_, err := f.dev.ReadBatch(bufs, sizes)
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	f.Conn.Close()
	select {
	case err := <-done:
		if !errors.Is(err, io.EOF) {
			t.Fatalf("ReadBatch after disconnect: %v, want EOF", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("disconnect did not wake the reader")
	}
	if n, err := f.dev.WriteBatch([][]byte{frame(64, 1)}); n != 0 || err == nil {
		t.Fatalf("WriteBatch after disconnect = %d, %v", n, err)
	}
}

// Hostile descriptors: each costs its own frame (or the ring), never the process, and
// never a read outside the frontend's memory.
func TestHostileTransmit(t *testing.T) {
	cases := []struct {
		desc  string
		setup func(r *vhosttest.Ring)
		// ringBroken: the ring stops; otherwise the bad frame is skipped and the next read.
		ringBroken bool
	}{
		{"address outside memory", func(r *vhosttest.Ring) { r.SetDesc(0, 0x1000, 100, 0, 0) }, false},
		{"length past the region's end", func(r *vhosttest.Ring) { r.SetDesc(0, feGuestBase+feMemSize-50, 100, 0, 0) }, false},
		{"address wraps", func(r *vhosttest.Ring) { r.SetDesc(0, ^uint64(0)-10, 100, 0, 0) }, false},
		{"chain loops", func(r *vhosttest.Ring) { r.SetDesc(0, r.GPA(r.BufOff), 100, descNext, 0) }, false},
		{"next out of range", func(r *vhosttest.Ring) { r.SetDesc(0, r.GPA(r.BufOff), 100, descNext, 60000) }, false},
		{"indirect", func(r *vhosttest.Ring) { r.SetDesc(0, r.GPA(r.BufOff), 16, descIndirect, 0) }, false},
		{"writable in a transmit chain", func(r *vhosttest.Ring) { r.SetDesc(0, r.GPA(r.BufOff), 100, descWrite, 0) }, false},
		{"head out of range", func(r *vhosttest.Ring) {
			binary.LittleEndian.PutUint16(r.F.Mem[r.AvailOff+4:], 999)
		}, true},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			f := newFrontend(t, modern, Options{})
			r := f.Rings[1]
			good := frame(100, 1)
			f.Transmit(0, frame(100, 0), good)
			c.setup(r)
			if c.ringBroken {
				bufs, sizes := newBufs(4)
				done := make(chan int)
				go func() { n, _ := f.dev.ReadBatch(bufs, sizes); done <- n }()
				select {
				case n := <-done:
					t.Fatalf("a broken ring gave %d frames", n)
				case <-time.After(100 * time.Millisecond):
				}
				if f.dev.Faults.Load() == 0 {
					t.Fatal("no fault counted")
				}
				// The receive ring of the same frontend still works.
				f.PostRx(0, 1, feBufSize)
				if n, _ := f.dev.WriteBatch([][]byte{good}); n != 1 {
					t.Fatal("receive ring stopped with the transmit ring")
				}
				f.Conn.Close()
				<-done
				return
			}
			got := readN(t, f.dev, 1)
			if !bytes.Equal(got[0], good) || f.dev.Faults.Load() != 1 {
				t.Fatalf("got %d bytes, faults %d; want the good frame and 1 fault", len(got[0]), f.dev.Faults.Load())
			}
		})
	}
}

// A frontend that shrinks its memory file under the device gets a fault on its batch, not
// a dead switch.
func TestTruncatedMemory(t *testing.T) {
	f := newFrontend(t, modern, Options{})
	f.Transmit(0, frame(100, 1))
	unix.Ftruncate(f.MemFD, 0)
	bufs, sizes := newBufs(4)
	_, err := f.dev.ReadBatch(bufs, sizes)
	if err == nil || f.dev.Faults.Load() == 0 {
		t.Fatalf("ReadBatch on truncated memory: %v, faults %d", err, f.dev.Faults.Load())
	}
	if _, err := f.dev.WriteBatch([][]byte{frame(64, 1)}); err == nil {
		t.Fatal("WriteBatch on truncated memory: no error")
	}
}

// The frame path allocates nothing per batch.
func TestBatchAllocs(t *testing.T) {
	f := newFrontend(t, modern, Options{})
	bufs, sizes := newBufs(32)
	frames := make([][]byte, 32)
	for i := range frames {
		frames[i] = frame(64, byte(i))
	}
	step := 0
	allocs := testing.AllocsPerRun(50, func() {
		f.Transmit(step*32, frames...)
		f.PostRx(step*32, 32, feBufSize)
		step++
		if n, err := f.dev.ReadBatch(bufs, sizes); n != 32 || err != nil {
			t.Fatalf("ReadBatch = %d, %v", n, err)
		}
		if n, _ := f.dev.WriteBatch(frames); n != 32 {
			t.Fatalf("WriteBatch = %d", n)
		}
		f.Rings[0].Drain()
		f.Rings[1].Drain()
	})
	if allocs > 0 {
		t.Fatalf("%.1f allocations per batch pair", allocs)
	}
}

// Protocol errors end the connection with an error naming the request.
func TestProtocolErrors(t *testing.T) {
	cases := []struct {
		req  Request
		p    []byte
		want string
	}{
		{ReqSetFeatures, u64(FeatRingPacked), "not offered"},
		{ReqSetVringNum, state(99, 256), "queue index"},
		{ReqSetVringNum, state(0, 0), "size 0"},
		{ReqSetVringKick, u64(40), "queue index"},
		{ReqSetMemTable, make([]byte, 8), "region count"},
		{Request(999), nil, "unsupported"},
	}
	for _, c := range cases {
		t.Run(fmt.Sprint(c.req), func(t *testing.T) {
			f := newFrontend(t, modern, Options{})
			f.send(c.req, c.p)
			err := <-f.served
			f.served <- nil // for close
			if err == nil || !bytes.Contains([]byte(err.Error()), []byte(c.want)) {
				t.Fatalf("Serve = %v, want an error containing %q", err, c.want)
			}
		})
	}
}

// GET_VRING_BASE stops a ring and answers where it stopped; a new kick restarts it there.
func TestStopAndRestart(t *testing.T) {
	f := newFrontend(t, modern, Options{})
	f.Transmit(0, frame(64, 1), frame(64, 2))
	readN(t, f.dev, 2)
	f.send(ReqGetVringBase, state(1, 0))
	b := make([]byte, headerSize+8)
	if _, err := f.Conn.Read(b); err != nil {
		t.Fatal(err)
	}
	if base := binary.LittleEndian.Uint32(b[headerSize+4:]); base != 2 {
		t.Fatalf("GET_VRING_BASE = %d, want 2", base)
	}
	f.Transmit(2, frame(64, 3))
	bufs, sizes := newBufs(4)
	f.dev.mu.RLock()
	n := f.dev.pollTx(bufs, sizes, nil)
	f.dev.mu.RUnlock()
	if n != 0 {
		t.Fatal("a stopped ring gave frames")
	}
	kick, _ := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	f.sendFDs(ReqSetVringKick, u64(1), kick)
	unix.Close(kick)
	if got := readN(t, f.dev, 1); got[0][0] != 3 {
		t.Fatalf("after restart got frame %d, want 3", got[0][0])
	}
}

// A TSO guest's packet comes out of ReadOffload with its header's offloads (ReadBatch
// drops it), and WriteOffload writes offloads into the header of a guest that takes them.
func TestOffloads(t *testing.T) {
	feats := uint64(modern | FeatNetCsum | FeatNetHostTSO4 | FeatNetGuestCsum | FeatNetGuestTSO4 | FeatNetGuestTSO6)
	f := newFrontend(t, feats, Options{})
	if !f.dev.TakesOffload() {
		t.Fatal("a guest with GUEST_TSO4/6 and GUEST_CSUM does not take offloads")
	}
	want := wire.Offload{Flags: wire.OffloadNeedsCsum, GSOType: wire.GSOTCPv4, HdrLen: 54, GSOSize: 1448, CsumStart: 34, CsumOffset: 16}
	var hdr [12]byte
	wire.PutOffloadHdr(hdr[:], want)
	pkt := frame(1900, 1) // longer than the MTU: one descriptor of the test's 2 KiB buffers
	f.TransmitHdr(0, hdr[:], pkt)
	bufs, sizes := newBufs(4)
	offl := make([]wire.Offload, 4)
	n, err := f.dev.ReadOffload(bufs, sizes, offl)
	if n != 1 || err != nil || offl[0] != want || !bytes.Equal(bufs[0][:sizes[0]], pkt) {
		t.Fatalf("ReadOffload = %d, %v, %+v", n, err, offl[0])
	}
	f.TransmitHdr(1, hdr[:], pkt)
	f.Transmit(2, frame(64, 2))
	if got := readN(t, f.dev, 1); len(got[0]) != 64 || f.dev.TxOffloadDropped.Load() != 1 {
		t.Fatalf("ReadBatch gave %d bytes, dropped %d offloaded packets", len(got[0]), f.dev.TxOffloadDropped.Load())
	}
	f.PostRx(0, 4, feBufSize)
	if n, _ := f.dev.WriteOffload([][]byte{pkt}, []wire.Offload{want}); n != 1 {
		t.Fatal("WriteOffload took nothing")
	}
	r := f.Rings[0]
	ids, lens := r.Used()
	if len(ids) != 1 || lens[0] != 12+len(pkt) || wire.ParseOffloadHdr(r.Buf(ids[0])) != want {
		t.Fatalf("guest got %v %v, header %+v", ids, lens, wire.ParseOffloadHdr(r.Buf(ids[0])))
	}
	g := newFrontend(t, modern, Options{})
	if g.dev.TakesOffload() {
		t.Fatal("a guest without GUEST_TSO takes offloads")
	}
}

// flowHash keeps a flow on one queue and spreads flows over queues.
func TestFlowHash(t *testing.T) {
	pkt := func(sport int) []byte {
		f := make([]byte, 60)
		f[12], f[13], f[14], f[23] = 0x08, 0x00, 0x45, 6
		binary.BigEndian.PutUint16(f[34:], uint16(sport))
		return f
	}
	if flowHash(pkt(1000)) != flowHash(pkt(1000)) {
		t.Fatal("one flow, two hashes")
	}
	var perQueue [2]int
	for p := 0; p < 1000; p++ {
		perQueue[flowHash(pkt(p))%2]++
	}
	if perQueue[0] < 400 || perQueue[1] < 400 {
		t.Fatalf("1000 flows over 2 queues: %v", perQueue)
	}
}
