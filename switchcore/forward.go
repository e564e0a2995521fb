package switchcore

import (
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"github.com/vde-go/vde/switchcore/wire"
	"github.com/vde-go/vde/tap"
)

// bufStride is the room of one receive buffer: the largest frame plus one byte, so an
// oversized datagram shows up as too long instead of silently fitting.
const bufStride = wire.MaxFrame + 1

// reader is the state one port reader goroutine owns: receive buffers, converted-frame
// buffers, and the per-destination batches it fills and flushes. Owning all of it is what
// keeps the frame path free of allocation and locks.
type reader struct {
	s      *Switch
	src    *endpoint // the endpoint read; nil for readers made by tests
	bufs   [][]byte
	sizes  []int
	conv   [][]byte // tag-converted copy of frame i, allocated on first use
	convOK []bool
	rb, wb *wire.Batch

	pend    [][][]byte  // frames queued for the endpoint in each slot
	flooded [][]bool    // for each frame in pend: flooded (broadcast, multicast, unknown)
	pendEp  []*endpoint // the endpoint of each slot with queued frames
	touched []int       // slots with queued frames, in first-use order
	// OUT counters of the port, summed per batch on the slot of its first endpoint, so
	// that a frame costs no shared atomic add.
	outPkts, outBytes []uint64
	stallTimer        *time.Timer // enqueue's, made at its first wait and reused
	notLearned        uint64      // new sources this batch found the MAC table full for
	noWait            bool        // never wait for room (the FSTP goroutine's sender)
	// BPDUs passed to FSTP: a token bucket refilled every second (fstpIn).
	bpduTokens int
	bpduAt     int64
	// lgSeen holds hashes of frames that flapped on this reader's port (loopguard.go),
	// made at the first flap: most readers never need it.
	lgSeen *[lgSeenSlots]uint64

	tap *frameTap // the plugins that watch this batch's frames, nil when none (plugin.go)

	// Offloads (offload.go), only in readers of offloading endpoints: offl[i] is what
	// packet i is, cur the frame's being switched (curDelta: the VLAN tag bytes its
	// variant for the current port gained or lost), pendOffl the queued frames'.
	offl      []wire.Offload
	cur       wire.Offload
	curDelta  int
	pendOffl  [][]wire.Offload
	seg       tap.Segmenter
	cutBufs   [][]byte
	cutFrames [][]byte
	cutFlood  []bool
}

func newReader(s *Switch) *reader {
	r := &reader{
		s:      s,
		sizes:  make([]int, wire.BatchSize),
		conv:   make([][]byte, wire.BatchSize),
		convOK: make([]bool, wire.BatchSize),
		rb:     wire.NewRawBatch(wire.BatchSize),
		wb:     wire.NewRawBatch(wire.BatchSize),

		bpduTokens: fstpBurst,
	}
	return r
}

// newSlab makes one batch of receive buffers, one slab: pages a small frame never
// touches are never made resident.
func newSlab() [][]byte {
	bufs := make([][]byte, wire.BatchSize)
	slab := make([]byte, wire.BatchSize*bufStride)
	for i := range bufs {
		bufs[i] = slab[i*bufStride : (i+1)*bufStride : (i+1)*bufStride]
	}
	return bufs
}

// slabPool holds the receive slabs of the switch's socket readers. A reader holds a slab
// only while its socket has frames, so a switch with 256 mostly idle ports needs a few
// slabs, not 256 of 295 KiB. sync.Pool keeps a slab per P without a shared lock.
type slabPool struct{ pool sync.Pool }

func newSlabPool() *slabPool {
	return &slabPool{pool: sync.Pool{New: func() any { return &slabRef{bufs: newSlab()} }}}
}

// slabRef lets a slab travel through the pool without an allocation per Put.
type slabRef struct{ bufs [][]byte }

// readLoop moves frames from one endpoint into the switch until the endpoint closes.
func (s *Switch) readLoop(ep *endpoint) {
	r := newReader(s)
	r.src = ep
	var err error
	if ep.dgram != nil {
		var ref *slabRef
		get := func() [][]byte { ref = s.slabs.pool.Get().(*slabRef); return ref.bufs }
		put := func([][]byte) { s.slabs.pool.Put(ref); ref = nil }
		// release closes the socket only after ep.closed is set: the next batch ends the loop
		// (a reader that waits for room for this endpoint's frames is woken by its queue's done).
		r.rb.YieldVia(ep.dgram.WriteInterest())
		err = r.rb.RecvLoop(ep.dgram.RawConn(), get, put, r.sizes, func(frames [][]byte, n int) bool {
			r.bufs = frames
			r.forward(ep.port, n)
			r.bufs = nil
			return !ep.closed.Load() && !r.s.ho.paused.Load() // a hand-over stops the reader
		})
	} else if oe, ok := ep.data.(wire.OffloadEndpoint); ok {
		err = r.offloadLoop(ep, oe)
	} else {
		r.bufs = newSlab() // other endpoints read blocking, into their own slab
		for err == nil && !ep.closed.Load() {
			var n int
			if n, err = ep.data.ReadBatch(r.bufs, r.sizes); err == nil {
				r.forward(ep.port, n)
			}
		}
	}
	if err != nil && !ep.closed.Load() && !s.ho.paused.Load() {
		s.logf("port %d: endpoint %d: read: %v", ep.port.num, ep.id, err)
		if ep.ctl == nil {
			s.detach(ep) // nobody else ends an in-process endpoint that failed
		}
	}
}

// forward switches a batch of n frames received on src.
func (r *reader) forward(src *Port, n int) {
	v := r.s.view.Load()
	var sp *fwdPort
	if src.num < len(v.ports) {
		sp = v.ports[src.num]
	}
	if sp == nil {
		return // the port went inactive while these frames were in flight
	}
	if sp.lgBlocked {
		r.lgHeld(src, sp, n) // the loop guard blocks it (loopguard.go)
		return
	}
	now := r.s.now()
	r.tap = r.s.plugins.tap.Load()
	var inPkts, inBytes, bad uint64
	for i := 0; i < n; i++ {
		size := r.sizes[i]
		if size < wire.MinFrame || size > wire.MaxFrame {
			if r.offl == nil || r.offl[i].GSOType == wire.GSONone || size > wire.MaxPacket {
				bad++ // zero-length goodbyes of the old libvdeplug land here too
				continue
			}
		}
		if r.offl != nil {
			if !r.offl[i].Plain() && !r.offl[i].Fits(size) {
				bad++ // offloads that do not describe the packet: not passed on to a kernel
				continue
			}
			r.cur, r.curDelta = r.offl[i], 0
		}
		f := r.bufs[i][:size]
		inPkts++
		inBytes += uint64(size)
		r.convOK[i] = false
		if r.tap != nil {
			r.tap.in(src.num, f)
		}
		if v.hub {
			for _, dp := range v.hubPorts {
				if dp != sp {
					r.queue(dp, f, false) // a hub floods everything: no storm control
				}
			}
			continue
		}
		if !r.switchFrame(v, sp, f, i, now) {
			bad++
		}
	}
	c := &src.counters
	c.inPkts.Add(inPkts)
	c.inBytes.Add(inBytes)
	if bad > 0 {
		c.bad.Add(bad)
	}
	if r.notLearned > 0 {
		r.s.macs.full.Add(r.notLearned)
		r.notLearned = 0
	}
	r.flush()
	if r.tap != nil {
		r.tap.done()
		r.tap = nil
	}
}

// switchFrame classifies, learns and forwards frame i; false means it was dropped as invalid.
func (r *reader) switchFrame(v *view, sp *fwdPort, f []byte, i int, now int64) bool {
	var vid uint16
	tagged := binary.BigEndian.Uint16(f[12:14]) == tpid8021Q
	if tagged {
		if len(f) < 18 {
			return false
		}
		vid = binary.BigEndian.Uint16(f[14:16]) & 0x0fff
		if sp.untagged != vid && !sp.tagged.has(vid) {
			return false
		}
	} else {
		vid = sp.untagged
		if vid == NoVLAN {
			return false
		}
	}
	vl := v.vlans[vid]
	if vl == nil {
		return false
	}
	if v.fstp { // BPDUs go to the protocol; a blocked port neither learns nor forwards
		if isBPDUDest(f) {
			return r.fstpIn(sp.num, vid, tagged, f, now)
		}
		if sp.blocked.has(vid) {
			return true
		}
	}
	if f[6]&1 == 0 {
		r.learn(v, f, vid, sp.num, now)
	}
	if f[0]&1 == 0 {
		if dst := r.s.macs.lookup(makeKey(f[0:6], vid)); dst >= 0 {
			if dst == sp.num {
				return true
			}
			if dst < len(v.ports) {
				if dp := v.ports[dst]; dp != nil {
					switch {
					case dp.untagged == vid:
						r.queue(dp, r.variant(i, f, tagged, false, vid), false)
					case dp.tagged.has(vid):
						r.queue(dp, r.variant(i, f, tagged, true, vid), false)
					}
					return true
				}
			}
		}
	}
	for _, dp := range vl.untagged {
		if dp != sp {
			r.queue(dp, r.variant(i, f, tagged, false, vid), true)
		}
	}
	for _, dp := range vl.tagged {
		if dp != sp {
			r.queue(dp, r.variant(i, f, tagged, true, vid), true)
		}
	}
	return true
}

// variant returns frame i as it must leave a port that wants it tagged (wantTag) or not:
// unchanged when the tag-ness matches, else a converted copy made once per frame. It is
// nil when the tag would make the frame longer than wire.MaxFrame (a client's receive
// buffer would cut it): such a frame cannot leave a tagged port.
func (r *reader) variant(i int, f []byte, tagged, wantTag bool, vid uint16) []byte {
	r.curDelta = 0
	if tagged == wantTag {
		return f
	}
	if wantTag && len(f)+4 > wire.MaxFrame && r.cur.GSOType == wire.GSONone {
		return nil
	}
	if wantTag {
		r.curDelta = 4
	} else {
		r.curDelta = -4
	}
	if !r.convOK[i] {
		if cap(r.conv[i]) < len(f)+4 { // a GSO packet's needs more, once
			r.conv[i] = make([]byte, max(wire.MaxFrame, len(f))+4)
		}
		if wantTag {
			r.conv[i] = insertTag(r.conv[i][:cap(r.conv[i])], f, vid)
		} else {
			r.conv[i] = stripTag(r.conv[i][:cap(r.conv[i])], f)
		}
		r.convOK[i] = true
	}
	return r.conv[i]
}

// learn learns the source of frame f, which came from port on VLAN vid.
func (r *reader) learn(v *view, f []byte, vid uint16, port int, now int64) {
	k := makeKey(f[6:12], vid)
	res, old := r.s.macs.learn(k, port, now)
	switch res {
	case learnFull:
		r.notLearned++
	case learnNew:
		if r.s.debugSubs.Load() > 0 {
			r.s.event(catHashAdd, hashEventText(k, port))
		}
	case learnFlap:
		if v.lg {
			r.flap(v, f, k, port, old)
		}
	case learnMoved:
		m := k.mac()
		r.s.logf("MAC %02x:%02x:%02x:%02x:%02x:%02x moved from port %d to port %d", m[0], m[1], m[2], m[3], m[4], m[5], old, port)
	}
}

func hashEventText(k macKey, port int) string {
	m := k.mac()
	vl := k.vlan()
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x VLAN %02x:%02x Port %d", m[0], m[1], m[2], m[3], m[4], m[5], vl&0xff, vl>>8, port)
}

// queue adds f to the outgoing batch of every endpoint of dp; flood says it is flooded
// (broadcast, multicast or unknown destination), which limits its room in a congested
// output queue (floodShare). A nil f (a frame too long for dp once tagged) is counted as
// dropped there.
func (r *reader) queue(dp *fwdPort, f []byte, flood bool) {
	if f == nil {
		dp.port.counters.drops.Add(1)
		return
	}
	if r.tap != nil {
		r.tap.out(dp.num, f)
	}
	for i, ep := range dp.eps {
		slot := ep.slot
		if slot >= len(r.pend) {
			r.grow(slot + 1)
		}
		if len(r.pend[slot]) == 0 {
			r.touched = append(r.touched, slot)
			r.pendEp[slot] = ep
		}
		r.pend[slot] = append(r.pend[slot], f)
		r.flooded[slot] = append(r.flooded[slot], flood)
		if r.offl != nil {
			r.queueOffload(slot)
		}
		if i == 0 { // counted once per port, however many endpoints it has
			r.outPkts[slot]++
			r.outBytes[slot] += uint64(len(f))
		}
	}
}

func (r *reader) grow(n int) {
	for len(r.pend) < n {
		// No room yet: a batch grows by append to what this reader sends there (with
		// 32 frames' room for every slot, 256 readers that each broadcast once held
		// 30 MB of empty batches).
		r.pend = append(r.pend, nil)
		r.flooded = append(r.flooded, nil)
		r.pendEp = append(r.pendEp, nil)
		r.outPkts = append(r.outPkts, 0)
		r.outBytes = append(r.outBytes, 0)
		if r.offl != nil {
			r.pendOffl = append(r.pendOffl, nil)
		}
	}
}

// flush sends every queued batch with one sendmmsg per endpoint. What a full receiver
// cannot take now waits in its bounded queue; unless flow control is on (enqueue),
// nobody waits for it.
func (r *reader) flush() {
	for _, slot := range r.touched {
		ep, frames := r.pendEp[slot], r.pend[slot]
		if n := r.outPkts[slot]; n > 0 {
			c := &ep.port.counters
			c.outPkts.Add(n)
			c.outBytes.Add(r.outBytes[slot])
			r.outPkts[slot], r.outBytes[slot] = 0, 0
		}
		switch {
		case ep.closed.Load():
		case r.offl != nil:
			r.sendOffload(ep, frames, r.pendOffl[slot], r.flooded[slot], len(r.touched) == 1)
			r.pendOffl[slot] = r.pendOffl[slot][:0]
		default:
			r.send(ep, frames, r.flooded[slot], len(r.touched) == 1)
		}
		r.pend[slot] = frames[:0]
		r.flooded[slot] = r.flooded[slot][:0]
		r.pendEp[slot] = nil
	}
	r.touched = r.touched[:0]
}

// stallWait is how long a reader that waits for room in a full output queue (FlowMode)
// waits while its writer sends nothing (Switch.stallWait; tests on loaded machines raise
// it). A receiver that is merely slower than its senders keeps taking frames, and its
// senders are slowed to its pace (their frames wait in their own sockets, as between two
// local sockets); one that stopped reading costs each waiting sender one to two
// stallWaits (progress is checked when the timer fires), and then its frames are dropped
// at once until it reads again.
const stallWait = 10 * time.Millisecond

// maxWaitHops bounds waitCycle's walk; a longer circle of waiting readers is broken by
// stallWait instead.
const maxWaitHops = 8

// enqueue queues frames (flood[i]: frame i is flooded) behind those already waiting in q
// and returns how many it dropped because q was full, or its flood share used. Whether it
// first waits for room, while the receiver keeps taking frames, is the FlowMode's call;
// alone says the frames are all the reader's batch holds.
//
// offl holds the frames' offloads, nil for plain frames (see outQueue.push).
func (r *reader) enqueue(q *outQueue, frames [][]byte, offl []wire.Offload, flood []bool, alone bool) (dropped int) {
	mode := r.s.cfg.FlowControl
	wait := !r.noWait && (mode == FlowAlways || (mode == FlowAuto && alone))
	k, dropped := q.push(frames, offl, flood, !wait)
	if k == len(frames) {
		return dropped
	}
	// Wait only for a queue that is full: one refused for the switch-wide budget gets
	// no room signal when it drains, and its receiver is not slow.
	if !wait || q.stalled.Load() || !q.fullFor(flood[k], len(frames[k])) {
		return dropped + len(frames) - k
	}
	var srcDone chan struct{} // closed when the source endpoint goes: stop waiting for it
	if r.src != nil {
		r.src.waitsFor.Store(q.ep)
		defer r.src.waitsFor.Store(nil)
		if r.waitCycle(q.ep) {
			return dropped + len(frames) - k
		}
		if r.src.queue != nil {
			srcDone = r.src.queue.done
		}
	}
	if r.stallTimer == nil {
		r.stallTimer = time.NewTimer(r.s.stallWait)
	} else {
		r.stallTimer.Reset(r.s.stallWait)
	}
	progress := q.sent.Load()
	for k < len(frames) {
		select {
		case <-q.room:
			var o []wire.Offload
			if offl != nil {
				o = offl[k:]
			}
			n, _ := q.push(frames[k:], o, flood[k:], false)
			k += n
		case <-r.stallTimer.C:
			if p := q.sent.Load(); p != progress {
				progress = p
				r.stallTimer.Reset(r.s.stallWait)
				continue
			}
			q.stalled.Store(true)
			return dropped + len(frames) - k
		case <-q.done:
			return dropped + len(frames) - k
		case <-srcDone:
			return dropped + len(frames) - k
		}
	}
	r.stallTimer.Stop()
	if q.pending.Load() < outQueueLen {
		q.signalRoom() // the token this reader took may have been meant for another one too
	}
	return dropped
}

// waitCycle reports whether waiting for room at dst would close a circle: dst's reader
// waits (so dst's client may be blocked sending to the switch, reading nothing), for a
// receiver whose reader waits ... for this reader's own port. Clients that block in send
// (libvdeplug, so QEMU) and feed each other would otherwise hold each other up for
// stallWait. The reader has published its own wait before it looks, so of two readers
// closing a circle at once at least one sees it.
func (r *reader) waitCycle(dst *endpoint) bool {
	e := dst
	for range maxWaitHops {
		w := e.waitsFor.Load()
		if w == nil {
			return false
		}
		if w.port == r.src.port {
			return true
		}
		e = w
	}
	return false
}

// send sends frames to ep, queueing what its socket cannot take now; alone says they are
// all the reader's batch holds (FlowAuto).
func (r *reader) send(ep *endpoint, frames [][]byte, flood []bool, alone bool) {
	var sent, dropped int
	var err error
	switch {
	case ep.queue != nil && ep.queue.pending.Load() > 0:
		dropped = r.enqueue(ep.queue, frames, nil, flood, alone) // behind the frames already waiting
	case ep.dgram != nil:
		sent, err = r.wb.Send(ep.dgram.RawConn(), frames)
		if err == nil && sent < len(frames) {
			dropped = r.enqueue(ep.queue, frames[sent:], nil, flood[sent:], alone)
		} else {
			dropped = len(frames) - sent
		}
	case ep.queue != nil && ep.queue.od != nil:
		r.sendChannel(ep, frames, nil, flood, alone)
		return
	default:
		sent, err = ep.data.WriteBatch(frames)
		dropped = len(frames) - sent
	}
	r.sent(ep, dropped, err)
}

// sendChannel sends frames (with their offloads, nil: plain) to ep's offload channel,
// queueing what its socket cannot take now, as send does for a plain channel.
func (r *reader) sendChannel(ep *endpoint, frames [][]byte, offl []wire.Offload, flood []bool, alone bool) {
	q := ep.queue
	var sent, dropped int
	var err error
	if q.pending.Load() == 0 {
		sent, err = q.od.WriteOffload(frames, offl)
	}
	if err == nil && sent < len(frames) {
		var o []wire.Offload
		if offl != nil {
			o = offl[sent:]
		}
		dropped = r.enqueue(q, frames[sent:], o, flood[sent:], alone)
	} else {
		dropped = len(frames) - sent
	}
	r.sent(ep, dropped, err)
}

// sent counts what a send to ep dropped and logs its first error.
func (r *reader) sent(ep *endpoint, dropped int, err error) {
	if dropped > 0 {
		ep.port.counters.drops.Add(uint64(dropped))
	}
	if err != nil && !ep.closed.Load() && !ep.errLog.Swap(true) {
		r.s.logf("send_sockaddr port %d: %s", ep.port.num, errText(err))
	}
}
