package vhostuser

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"

	"golang.org/x/sys/unix"

	"github.com/vde-go/vde/switchcore/wire"
)

// spinRounds is how many empty looks at the transmit rings ReadBatch takes after a busy
// batch before it asks for kicks and sleeps (adaptive polling): a frontend sending a
// stream refills the ring within microseconds, and a kick plus a wakeup costs more than
// that. An idle device sleeps after these and costs nothing.
const spinRounds = 64

// guard turns a fault on guest memory (a frontend that truncated its memory file under
// us: SIGBUS, with SetPanicOnFault) into an error for this batch instead of the death of
// the process. Other panics are bugs and go on.
func (d *Device) guard(err *error) {
	r := recover()
	if r == nil {
		return
	}
	if _, fault := r.(interface{ Addr() uintptr }); !fault {
		panic(r)
	}
	d.Faults.Add(1)
	*err = fmt.Errorf("vhost-user %s: fault on guest memory: %v", d.name, r)
}

// ReadBatch waits for frames the guest sends and copies up to len(frames) of them,
// without their virtio-net headers, into frames; sizes gets their lengths. It returns
// io.EOF once the device is closed. A packet with offloads (a TSO guest's) is dropped
// and counted: ReadOffload takes those.
func (d *Device) ReadBatch(frames [][]byte, sizes []int) (n int, err error) {
	return d.ReadOffload(frames, sizes, nil)
}

// ReadOffload implements wire.OffloadEndpoint: ReadBatch with each packet's offloads in
// offl, for buffers of wire.MaxPacket bytes.
func (d *Device) ReadOffload(frames [][]byte, sizes []int, offl []wire.Offload) (n int, err error) {
	d.users.Add(1)
	defer d.leave()
	for {
		if d.closed.Load() {
			return 0, io.EOF
		}
		if d.readStop.Load() {
			return 0, os.ErrDeadlineExceeded
		}
		n, more, err := d.tryTx(frames, sizes, offl)
		if n > 0 || err != nil {
			d.spinTo = spinRounds
			return n, err
		}
		if more {
			continue
		}
		if d.opt.Poll || d.spinTo > 0 {
			d.spinTo--
			runtime.Gosched()
			continue
		}
		if err := d.sleep(); err != nil {
			return 0, err
		}
	}
}

// tryTx takes what the transmit rings hold; when they hold nothing and the reader is
// done spinning, it asks for kicks, and more says frames came meanwhile.
func (d *Device) tryTx(frames [][]byte, sizes []int, offl []wire.Offload) (n int, more bool, err error) {
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	d.mu.RLock()
	defer d.mu.RUnlock()
	defer d.guard(&err)
	if n = d.pollTx(frames, sizes, offl); n > 0 {
		return n, false, nil
	}
	if d.opt.Poll || d.spinTo > 0 {
		return 0, false, nil
	}
	return 0, d.armTx(), nil
}

// pollTx takes frames from the started transmit rings, round robin, up to len(frames).
// Call with mu read-held.
func (d *Device) pollTx(frames [][]byte, sizes []int, offl []wire.Offload) int {
	n := 0
	for k := 0; k < MaxQueuePairs && n < len(frames); k++ {
		q := (d.nextRing + k) % MaxQueuePairs
		v := d.rings[2*q+1]
		if !v.ready() {
			continue
		}
		var o []wire.Offload
		if offl != nil {
			o = offl[n:]
		}
		n += d.takeTx(v, frames[n:], sizes[n:], o)
	}
	d.nextRing = (d.nextRing + 1) % MaxQueuePairs
	return n
}

// takeTx copies frames out of transmit ring v and returns their chains as used.
func (d *Device) takeTx(v *vring, frames [][]byte, sizes []int, offl []wire.Offload) int {
	avail, err := v.pending()
	if err != nil {
		d.breakRing(v, err)
		return 0
	}
	n := 0
	for k := 0; k < int(avail) && n < len(frames); k++ {
		head, err := v.head()
		if err != nil {
			d.breakRing(v, err)
			break
		}
		var hdr [12]byte
		size, err := v.readChain(d.mem, head, frames[n], d.hdrLen, hdr[:])
		v.putUsed(head, 0)
		o := wire.ParseOffloadHdr(hdr[:])
		switch {
		case err != nil:
			d.Faults.Add(1)
		case size > len(frames[n]):
			d.TxTooLong.Add(1)
		case offl == nil && !o.Plain():
			d.TxOffloadDropped.Add(1)
		default:
			if offl != nil {
				offl[n] = o
			}
			sizes[n] = size
			n++
		}
	}
	d.signal(v)
	return n
}

// breakRing stops using a ring whose driver broke the ring's rules; the frontend must
// reset it (a new kick) to be heard again. Other rings and ports go on.
func (d *Device) breakRing(v *vring, err error) {
	if v.broken == nil {
		v.broken = err
		d.Faults.Add(1)
		d.logf("ring stopped: %v", err)
	}
}

// signal publishes a ring's used entries and interrupts the driver if it asked for it.
func (d *Device) signal(v *vring) {
	if v.publish() && v.callFD >= 0 {
		one := [8]byte{1}
		unix.Write(v.callFD, one[:])
	}
}

// armTx asks the transmit rings for kicks, and reports whether frames came meanwhile.
func (d *Device) armTx() (more bool) {
	for q := 0; q < MaxQueuePairs; q++ {
		if v := d.rings[2*q+1]; v.ready() && v.notify(true) {
			more = true
		}
	}
	if more {
		d.disarmTx()
	}
	return more
}

func (d *Device) disarmTx() {
	for q := 0; q < MaxQueuePairs; q++ {
		if v := d.rings[2*q+1]; v.ready() {
			v.notify(false)
		}
	}
}

// sleep waits for a kick or a wake. Rings without a kick descriptor are polled every
// millisecond.
func (d *Device) sleep() error {
	timeout := -1
	d.mu.RLock()
	for q := 0; q < MaxQueuePairs; q++ {
		if v := d.rings[2*q+1]; v.ready() && v.kickFD < 0 {
			timeout = 1
		}
	}
	d.mu.RUnlock()
	for {
		_, err := unix.EpollWait(d.ep, d.events, timeout)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("vhost-user %s: epoll: %w", d.name, err)
		}
		break
	}
	d.mu.RLock()
	d.disarmTx()
	d.mu.RUnlock()
	return nil
}

// WriteBatch copies frames into the guest's receive buffers (queue 0) and returns how
// many it took; frames it cannot take (no buffer posted, too long for the buffers, a
// bad descriptor) are dropped, as a NIC drops what its ring has no room for. It never
// waits for the guest.
func (d *Device) WriteBatch(frames [][]byte) (n int, err error) {
	return d.WriteOffload(frames, nil)
}

// TakesOffload implements wire.OffloadEndpoint: the guest negotiated receiving TSO
// packets and partial checksums.
func (d *Device) TakesOffload() bool {
	const all = FeatNetGuestCsum | FeatNetGuestTSO4 | FeatNetGuestTSO6
	return d.negotiated.Load()&all == all
}

// WriteOffload implements wire.OffloadEndpoint: WriteBatch with each packet's offloads
// written into its virtio-net header (nil: all plain).
func (d *Device) WriteOffload(frames [][]byte, offl []wire.Offload) (n int, err error) {
	if d.closed.Load() {
		return 0, io.EOF
	}
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	d.mu.RLock()
	defer d.mu.RUnlock()
	d.rxMu.Lock()
	defer d.rxMu.Unlock()
	rx := d.rxReady[:0]
	for q := 0; q < MaxQueuePairs; q++ {
		if v := d.rings[2*q]; v.ready() {
			rx = append(rx, v)
		}
	}
	d.rxReady = rx
	if len(rx) == 0 {
		return 0, nil
	}
	defer d.guard(&err)
	for i, f := range frames {
		var o wire.Offload
		if offl != nil {
			o = offl[i]
		}
		v := rx[0]
		if len(rx) > 1 { // multiqueue: a flow keeps its queue, flows spread over them
			v = rx[flowHash(f)%uint32(len(rx))]
		}
		if v.broken == nil && d.putRx(v, f, o) {
			n++
		}
	}
	for _, v := range rx {
		d.signal(v)
	}
	return n, nil
}

// flowHash spreads frames over receive queues as a NIC's RSS would: by addresses, and for
// TCP and UDP over IPv4 by ports, so that one flow stays on one queue (in order).
func flowHash(f []byte) uint32 {
	h := uint32(2166136261)
	mix := func(b []byte) {
		for _, c := range b {
			h = (h ^ uint32(c)) * 16777619
		}
	}
	if len(f) >= 38 && f[12] == 0x08 && f[13] == 0x00 && f[14] == 0x45 {
		mix(f[26:34]) // IPv4 source and destination
		if f[23] == 6 || f[23] == 17 {
			mix(f[34:38]) // ports
		}
		return h
	}
	mix(f[:min(len(f), 12)])
	return h
}

// putRx writes one frame, behind a virtio-net header, into as many receive chains as it
// takes (one without MRG_RXBUF).
func (d *Device) putRx(v *vring, f []byte, o wire.Offload) bool {
	need := d.hdrLen + len(f)
	avail, err := v.pending()
	if err != nil {
		d.breakRing(v, err)
		return false
	}
	segs, chains := d.segs[:0], d.chains[:0]
	have := 0
	for have < need {
		if len(chains) == int(avail) || (!d.mrg && len(chains) == 1) {
			// Not enough room: give the chains back untouched for the next frame.
			v.lastAvail -= uint16(len(chains))
			d.segs, d.chains = segs, chains
			if len(chains) == 0 {
				d.RxNoBuffer.Add(1)
			} else {
				d.RxTooLong.Add(1)
			}
			return false
		}
		head, err := v.head()
		if err != nil {
			v.lastAvail -= uint16(len(chains))
			d.breakRing(v, err)
			return false
		}
		first := len(segs)
		var size int
		segs, size, err = v.writable(d.mem, head, segs)
		if err != nil {
			// Give the chains taken back as used and empty: the driver gets its buffers
			// back, and the bad chain is not met again.
			for _, c := range chains {
				v.putUsed(c.head, 0)
			}
			v.putUsed(head, 0)
			d.segs, d.chains = segs[:first], chains
			d.Faults.Add(1)
			return false
		}
		chains = append(chains, rxChain{head: head, first: first, end: len(segs), size: size})
		have += size
	}
	var hdr [12]byte
	wire.PutOffloadHdr(hdr[:], o)
	binary.LittleEndian.PutUint16(hdr[10:], uint16(len(chains))) // num_buffers
	h := hdr[:d.hdrLen]
	si, off := scatter(segs, 0, 0, h)
	scatter(segs, si, off, f)
	left := need
	for _, c := range chains {
		w := min(c.size, left)
		v.putUsed(c.head, uint32(w))
		left -= w
	}
	d.segs, d.chains = segs, chains
	return true
}
