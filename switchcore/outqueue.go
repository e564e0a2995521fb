package switchcore

import (
	"sync"
	"sync/atomic"

	"github.com/vde-go/vde/switchcore/wire"
)

// outQueueLen bounds the frames a switch holds for one slow receiver. The kernel lets a
// unix datagram socket queue only net.unix.max_dgram_qlen (10) datagrams; without this
// queue a burst beyond that is lost even when the receiver is about to read. 1024 is a
// NIC's usual txqueuelen: with 128, a TCP sender's burst into a slirp router that was
// briefly descheduled overflowed it (17k-23k retransmissions in 5 s of iperf3, against
// under 600 now, and 0.8 -> 1.1 Gbit/s). Slots get their buffers only when used.
const outQueueLen = 1024

// outQueue holds frames for an endpoint whose socket was full, and a writer goroutine
// sends them as soon as the socket is writable again. Readers that find frames queued
// queue theirs behind them, so one source's frames stay in order. The lock is per
// endpoint and taken only while that endpoint is congested.
type outQueue struct {
	ep      *endpoint
	pending atomic.Int32 // frames queued; readers check it without the lock

	mu   sync.Mutex
	bufs [][]byte // ring storage, owned and reused
	lens []int
	head int
	n    int
	kick chan struct{}
	done chan struct{}
}

func newOutQueue(ep *endpoint) *outQueue {
	q := &outQueue{ep: ep, bufs: make([][]byte, outQueueLen), lens: make([]int, outQueueLen), kick: make(chan struct{}, 1), done: make(chan struct{})}
	go q.writer()
	return q
}

// push copies frames into the queue and returns how many did not fit (dropped).
func (q *outQueue) push(frames [][]byte) (dropped int) {
	q.mu.Lock()
	for _, f := range frames {
		if q.n == outQueueLen {
			dropped++
			continue
		}
		i := (q.head + q.n) % outQueueLen
		if cap(q.bufs[i]) < len(f) {
			q.bufs[i] = make([]byte, max(len(f), 2048))
		}
		q.lens[i] = copy(q.bufs[i][:cap(q.bufs[i])], f)
		q.n++
	}
	q.pending.Store(int32(q.n))
	q.mu.Unlock()
	select {
	case q.kick <- struct{}{}:
	default:
	}
	return dropped
}

// writer drains the queue, waiting for the socket to become writable between sends.
func (q *outQueue) writer() {
	b := wire.NewBatch(wire.BatchSize)
	batch := make([][]byte, 0, wire.BatchSize)
	rc := q.ep.dgram.RawConn()
	for {
		select {
		case <-q.done:
			return
		case <-q.kick:
		}
		for {
			q.mu.Lock()
			batch = batch[:0]
			for k := 0; k < q.n && k < wire.BatchSize; k++ {
				i := (q.head + k) % outQueueLen
				batch = append(batch, q.bufs[i][:q.lens[i]])
			}
			q.mu.Unlock()
			if len(batch) == 0 {
				break
			}
			// Slots being sent stay counted in n, so push never overwrites them.
			sent, err := b.SendWait(rc, batch)
			if err != nil {
				if q.ep.closed.Load() {
					return
				}
				sent = len(batch) // a peer that fails (gone, refused) loses these frames
				q.ep.port.counters.drops.Add(uint64(len(batch)))
			}
			q.mu.Lock()
			q.head = (q.head + sent) % outQueueLen
			q.n -= sent
			q.pending.Store(int32(q.n))
			q.mu.Unlock()
		}
	}
}

// stop ends the writer; closing the endpoint's socket ends a send it waits in.
func (q *outQueue) stop() { close(q.done) }
