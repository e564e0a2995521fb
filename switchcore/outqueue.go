package switchcore

import (
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/vde-go/vde/switchcore/wire"
)

// outQueueLen bounds the frames a switch holds for one slow receiver. The kernel lets a
// unix datagram socket queue only net.unix.max_dgram_qlen (10) datagrams; without this
// queue a burst beyond that is lost even when the receiver is about to read. 1024 is a
// NIC's usual txqueuelen: with 128, a TCP sender's burst into a slirp router that was
// briefly descheduled overflowed it (17k-23k retransmissions in 5 s of iperf3, against
// under 600 now, and 0.8 -> 1.1 Gbit/s). Slots get their buffers only when used.
const outQueueLen = 1024

// queueBudget bounds the buffer memory of all the output queues of a switch together: a
// switch with 256 ports whose receivers all stall (a broadcast storm) must not grow by
// 1024 frames per port (a 256-port storm took 105 MiB). One congested receiver can still
// queue its full 1024 frames (2 MiB of 2 KiB buffers); when
// many are congested at once they share the budget, and a frame that finds it spent is
// dropped and counted like any frame of a full queue. Buffers stay with their slot once
// given (no allocation per frame), and go back to the budget when the endpoint goes.
const queueBudget = 16 << 20

// outQueueBytes bounds the bytes one queue holds, as outQueueLen bounds its frames: 1024
// full-size frames are 1.5 MiB, but 1024 GSO packets of an offload channel (our slirpvde)
// would be 64 MiB. A queue at this bound is full: the reader waits for room or drops as
// for a queue of outQueueLen frames (1024 jumbo frames would be 9 MiB: such a burst now
// waits at 900).
const outQueueBytes = 8 << 20

// floodShare is how much of a port's output queue flooded frames (broadcast, multicast,
// unknown unicast) may fill; the rest is kept for frames to a known destination. Without
// it, one client's broadcast storm keeps every other port's queue full of its frames, and
// unicast between two other ports finds no room (a ping between two TAP hosts lost 43%
// during a storm of 330k broadcasts/s; the switches of a LAN call this storm control).
const floodShare = outQueueLen / 2

// minSlotBuf is the smallest buffer a slot gets, so that a slot's first frame, usually
// no longer than a full-size Ethernet frame, sizes it for good.
const minSlotBuf = 2048

// outQueue holds frames for an endpoint whose socket was full, and a writer goroutine
// sends them as soon as the socket is writable again. Readers that find frames queued
// queue theirs behind them, so one source's frames stay in order. The lock is per
// endpoint and taken only while that endpoint is congested.
//
// A frame that finds the queue full is dropped and counted. With Config.FlowControl a
// reader waits for room instead (reader.enqueue) as long as the writer keeps sending,
// like a local socket's sender: the frames stay in its source's socket, and the source
// blocks instead of spending CPU on frames that are thrown away. A receiver that stops
// reading marks the queue stalled after stallWait, and then frames for it are dropped
// (and counted) at once.
type outQueue struct {
	ep      *endpoint
	pending atomic.Int32  // frames queued; readers check it without the lock
	queued  atomic.Int64  // bytes queued (outQueueBytes); written under mu
	floods  atomic.Int32  // flooded frames among them (floodShare)
	budget  *atomic.Int64 // the switch's queue buffer bytes in use (queueBudget)
	sent    atomic.Uint64 // frames the writer has sent: progress, for stall detection
	stalled atomic.Bool   // the receiver took nothing for stallWait while the queue was full
	room    chan struct{} // a token after each send that made room: wakes one waiting reader

	// od is the endpoint's data channel when it carries offloads (a client of ours that
	// asked for one): each slot then keeps its packet's offloads, and the writer sends
	// them with it.
	od *wire.OffloadDatagram

	mu        sync.Mutex
	bufs      [][]byte // ring storage, made at the first congestion, owned and reused
	lens      []int
	offl      []wire.Offload // with od: each slot's offloads
	flooded   []bool         // slot holds a flooded frame
	allocated int64          // bytes of bufs charged to the budget
	stopped   bool
	head      int
	n         int
	kick      chan struct{}
	done      chan struct{}
}

func newOutQueue(ep *endpoint, budget *atomic.Int64) *outQueue {
	q := &outQueue{ep: ep, budget: budget, kick: make(chan struct{}, 1), done: make(chan struct{}), room: make(chan struct{}, 1)}
	q.od, _ = ep.data.(*wire.OffloadDatagram)
	go q.writer()
	return q
}

// push copies frames into the queue, in order, until one does not fit (the queue is full,
// the switch's budget spent, or a flooded frame (flood[i]) finds the flood share used),
// and returns how many it consumed. With dropFlood a flooded frame over the share is
// dropped instead, and push goes on with the next frame: consumed counts it, dropped
// says how many those were.
//
// offl holds the frames' offloads (nil: all plain); only a queue of an offload channel
// keeps them, and only such a queue is given packets that have any.
func (q *outQueue) push(frames [][]byte, offl []wire.Offload, flood []bool, dropFlood bool) (consumed, dropped int) {
	q.mu.Lock()
	if q.stopped {
		q.mu.Unlock()
		return 0, 0
	}
	if q.bufs == nil {
		q.bufs, q.lens = make([][]byte, outQueueLen), make([]int, outQueueLen)
	}
	if q.flooded == nil {
		q.flooded = make([]bool, outQueueLen)
	}
	if q.od != nil && q.offl == nil {
		q.offl = make([]wire.Offload, outQueueLen)
	}
	taken, floods := 0, int(q.floods.Load())
	queued := q.queued.Load()
	for k, f := range frames {
		if q.n == outQueueLen || (q.n > 0 && queued+int64(len(f)) > outQueueBytes) {
			break
		}
		if flood[k] && floods >= floodShare {
			if !dropFlood {
				break
			}
			consumed++
			dropped++
			continue
		}
		i := (q.head + q.n) % outQueueLen
		if cap(q.bufs[i]) < len(f) {
			size := int64(max(len(f), minSlotBuf))
			if q.budget.Add(size) > queueBudget {
				q.budget.Add(-size)
				if !q.reclaimLocked(size) {
					break
				}
			}
			q.budget.Add(-int64(cap(q.bufs[i])))
			q.allocated += size - int64(cap(q.bufs[i]))
			q.bufs[i] = make([]byte, size)
		}
		q.lens[i] = copy(q.bufs[i][:cap(q.bufs[i])], f)
		queued += int64(q.lens[i])
		if q.offl != nil {
			q.offl[i] = wire.Offload{}
			if offl != nil {
				q.offl[i] = offl[k]
			}
		}
		q.flooded[i] = flood[k]
		if flood[k] {
			floods++
		}
		q.n++
		taken++
		consumed++
	}
	q.floods.Store(int32(floods))
	q.pending.Store(int32(q.n))
	q.queued.Store(queued)
	q.mu.Unlock()
	if taken > 0 {
		select {
		case q.kick <- struct{}{}:
		default:
		}
	}
	return consumed, dropped
}

// fullFor reports whether a frame of size bytes (flooded or not) finds no room for its
// kind: what a reader with Config.FlowControl waits for.
func (q *outQueue) fullFor(flood bool, size int) bool {
	return q.pending.Load() >= outQueueLen || (flood && q.floods.Load() >= floodShare) ||
		(q.pending.Load() > 0 && q.queued.Load()+int64(size) > outQueueBytes)
}

// reclaimLocked gives the switch's budget back the buffers of this queue's free slots,
// largest first in slot order, until size more bytes fit in it, and charges size if
// they do. Slots keep their buffers for reuse, so a queue whose slots took turns holding
// GSO packets (64 KiB) would otherwise hold the budget with buffers it does not use, and
// refuse the next packet with the queue nearly empty. Call with mu held.
func (q *outQueue) reclaimLocked(size int64) bool {
	for k := q.n; k < outQueueLen; k++ {
		j := (q.head + k) % outQueueLen
		if c := int64(cap(q.bufs[j])); c > minSlotBuf {
			q.bufs[j] = nil
			q.budget.Add(-c)
			q.allocated -= c
			if q.budget.Load()+size <= queueBudget {
				break
			}
		}
	}
	if q.budget.Add(size) > queueBudget {
		q.budget.Add(-size)
		return false
	}
	return true
}

// signalRoom hands a waiting reader (if any) the token that says the queue has room.
func (q *outQueue) signalRoom() {
	select {
	case q.room <- struct{}{}:
	default:
	}
}

// writer drains the queue, waiting for the socket to become writable between sends. The
// runtime poller hears of the socket's writability only while the writer waits for it
// (wire.WriteInterest): otherwise every frame the client reads would wake it.
func (q *outQueue) writer() {
	b := wire.NewRawBatch(wire.BatchSize)
	batch := make([][]byte, 0, wire.BatchSize)
	var offl []wire.Offload
	var rc syscall.RawConn
	var wi *wire.WriteInterest // the writer is the socket's only waiting sender
	if q.od != nil {
		rc, wi = q.od.RawConn(), q.od.WriteInterest()
		offl = make([]wire.Offload, 0, wire.BatchSize)
	} else {
		rc, wi = q.ep.dgram.RawConn(), q.ep.dgram.WriteInterest()
	}
	b.ArmOnWait(wi)
	for {
		select {
		case <-q.done:
			return
		case <-q.kick:
		}
		for {
			q.mu.Lock()
			batch = batch[:0]
			offl = offl[:0]
			for k := 0; k < q.n && k < wire.BatchSize; k++ {
				i := (q.head + k) % outQueueLen
				batch = append(batch, q.bufs[i][:q.lens[i]])
				if q.od != nil {
					offl = append(offl, q.offl[i])
				}
			}
			q.mu.Unlock()
			if len(batch) == 0 {
				wi.Disarm(rc)
				break
			}
			// Slots being sent stay counted in n, so push never overwrites them.
			var sent int
			var err error
			if q.od != nil {
				sent, err = q.od.WriteOffloadWait(batch, offl)
			} else {
				sent, err = b.SendWait(rc, batch)
			}
			if err != nil {
				if q.ep.closed.Load() {
					return
				}
				sent = len(batch) // a peer that fails (gone, refused) loses these frames
				q.ep.port.counters.drops.Add(uint64(len(batch)))
			}
			q.mu.Lock()
			if q.stopped {
				q.mu.Unlock()
				return
			}
			floods, queued := q.floods.Load(), q.queued.Load()
			for k := 0; k < sent; k++ {
				j := (q.head + k) % outQueueLen
				if q.flooded[j] {
					floods--
				}
				queued -= int64(q.lens[j])
			}
			q.floods.Store(floods)
			q.queued.Store(queued)
			q.head = (q.head + sent) % outQueueLen
			q.n -= sent
			q.pending.Store(int32(q.n))
			q.mu.Unlock()
			if sent > 0 {
				q.sent.Add(uint64(sent))
				q.stalled.Store(false)
				q.signalRoom()
			}
		}
	}
}

// stop ends the writer (closing the endpoint's socket ends a send it waits in) and gives
// the queue's buffers back to the budget.
func (q *outQueue) stop() {
	q.mu.Lock()
	q.stopped = true
	q.budget.Add(-q.allocated)
	q.allocated, q.bufs, q.lens, q.flooded, q.offl, q.n = 0, nil, nil, nil, nil, 0
	q.pending.Store(0)
	q.floods.Store(0)
	q.queued.Store(0)
	q.mu.Unlock()
	close(q.done)
}
