package capture

import (
	"sync/atomic"
)

// ring is a bounded queue of frame copies with many producers (the switch's port readers)
// and one consumer (the session's writer). Its slots and their buffers are allocated when
// the session starts, so that putting a frame allocates nothing, and it takes no lock: a
// producer claims a slot with one compare-and-swap on tail, copies the frame in and
// publishes it through the slot's sequence number (Dmitry Vyukov's bounded queue). A full
// ring refuses the frame at once; the caller counts it as dropped.
type ring struct {
	slots []slot
	mask  uint64
	_     [56]byte // keep tail off head's cache line: producers and the consumer write them
	tail  atomic.Uint64
	_     [56]byte
	head  uint64 // the consumer's alone
}

// slot is one frame copy. seq is the slot's turn: i (free for the producer at position
// i), i+1 (filled, for the consumer at position i), i+len (free again, one lap later).
type slot struct {
	seq  atomic.Uint64
	ts   int64 // nanoseconds since the Unix epoch
	port int32
	dir  Direction
	size int32 // the frame's length on the wire; buf holds at most cap(buf) bytes of it
	// lost is how many frames of the port the ring had refused before this one.
	lost uint64
	buf  []byte
}

// newRing makes a ring of n slots (a power of two) of snap bytes each.
func newRing(n, snap int) *ring {
	r := &ring{slots: make([]slot, n), mask: uint64(n - 1)}
	mem := make([]byte, n*snap) // one allocation: the kernel backs only the pages frames touch
	for i := range r.slots {
		r.slots[i].seq.Store(uint64(i))
		r.slots[i].buf = mem[i*snap : i*snap : (i+1)*snap]
	}
	return r
}

// put copies f into the ring; false means the ring was full and f is not in it.
func (r *ring) put(ts int64, port int, dir Direction, lost uint64, f []byte) bool {
	pos := r.tail.Load()
	var s *slot
claim:
	for {
		s = &r.slots[pos&r.mask]
		seq := s.seq.Load()
		switch {
		case seq == pos:
			if r.tail.CompareAndSwap(pos, pos+1) {
				break claim
			}
			pos = r.tail.Load()
		case seq < pos:
			return false // the consumer has not emptied this slot since the last lap
		default:
			pos = r.tail.Load() // another producer took it: try the next one
		}
	}
	s.ts, s.port, s.dir, s.size, s.lost = ts, int32(port), dir, int32(len(f)), lost
	s.buf = s.buf[:copy(s.buf[:cap(s.buf)], f)]
	s.seq.Store(pos + 1)
	return true
}

// peek returns the oldest filled slot, or nil when there is none (or its producer is still
// copying into it). The consumer calls release when done with it.
func (r *ring) peek() *slot {
	s := &r.slots[r.head&r.mask]
	if s.seq.Load() != r.head+1 {
		return nil
	}
	return s
}

// release hands the slot peek returned back to the producers, one lap on.
func (r *ring) release(s *slot) {
	s.seq.Store(r.head + r.mask + 1)
	r.head++
}
