package switchcore

import (
	"testing"
	"time"

	"github.com/vde-go/vde/switchcore/wire"
)

// forwardRig is a switch with two attached clients A (port 1) and B (port 2) whose MACs are
// learned, and a reader positioned as port 1's reader goroutine with a full batch of
// unicast frames A->B in its buffers.
type forwardRig struct {
	s    *Switch
	r    *reader
	src  *Port
	b    *wire.Conn
	stop chan struct{}
}

func newForwardRig(tb testing.TB, size int) *forwardRig {
	s := newTestSwitch(tb, Config{Log: nil})
	s.logf = func(string, ...any) {}
	a, b := dial(tb, s, 1), dial(tb, s, 2)
	a.WriteBatch([][]byte{frame(0xff, 1, "learn a")})
	b.WriteBatch([][]byte{frame(0xff, 2, "learn b")})
	recvFrame(tb, a, time.Second)
	recvFrame(tb, b, time.Second)
	s.mu.Lock()
	src := s.ports[1]
	s.mu.Unlock()
	r := newReader(s)
	r.bufs = newSlab()
	f := frame(2, 1, string(make([]byte, size-14)))
	for i := range r.bufs {
		copy(r.bufs[i], f)
		r.sizes[i] = len(f)
	}
	rig := &forwardRig{s: s, r: r, src: src, b: b, stop: make(chan struct{})}
	// An output-queue slot gets its buffer the first time B's reader lags that far behind
	// (once per slot, not per frame): give them all theirs now.
	rig.s.mu.Lock()
	for _, p := range rig.s.ports {
		if p == nil {
			continue
		}
		for _, ep := range p.eps {
			if q := ep.queue; q != nil {
				q.mu.Lock()
				q.bufs, q.lens, q.flooded = make([][]byte, outQueueLen), make([]int, outQueueLen), make([]bool, outQueueLen)
				for i := range q.bufs {
					q.bufs[i] = make([]byte, minSlotBuf)
				}
				q.allocated = outQueueLen * minSlotBuf
				q.budget.Add(q.allocated)
				q.mu.Unlock()
			}
		}
	}
	rig.s.mu.Unlock()
	// Drain B so that sends measure forwarding, not a full queue.
	go func() {
		bufs := make([][]byte, wire.BatchSize)
		for i := range bufs {
			bufs[i] = make([]byte, wire.MaxFrame+1)
		}
		sizes := make([]int, wire.BatchSize)
		for {
			if _, err := b.ReadBatch(bufs, sizes); err != nil {
				return
			}
		}
	}()
	tb.Cleanup(func() { close(rig.stop) })
	return rig
}

// TestForwardAllocatesNothing holds the data path to its promise: a batch of known
// unicast frames, switched and sent, allocates nothing.
func TestForwardAllocatesNothing(t *testing.T) {
	rig := newForwardRig(t, 64)
	rig.r.forward(rig.src, wire.BatchSize) // first use sizes the per-destination batches
	if n := testing.AllocsPerRun(200, func() { rig.r.forward(rig.src, wire.BatchSize) }); n != 0 {
		t.Fatalf("forward allocates %.1f times per batch", n)
	}
}

func benchmarkForward(b *testing.B, size int) {
	rig := newForwardRig(b, size)
	rig.r.forward(rig.src, wire.BatchSize)
	b.ReportAllocs()
	b.SetBytes(int64(size * wire.BatchSize))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rig.r.forward(rig.src, wire.BatchSize)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*wire.BatchSize), "ns/frame")
}

func BenchmarkForwardUnicast64(b *testing.B)   { benchmarkForward(b, 64) }
func BenchmarkForwardUnicast1500(b *testing.B) { benchmarkForward(b, 1500) }
