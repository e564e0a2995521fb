package vhostuser

import (
	"encoding/binary"
	"errors"
	"sync/atomic"
	"unsafe"
)

// A split virtqueue as the virtio 1.x spec lays it out in guest memory:
//
//	descriptor table  num × {addr u64, len u32, flags u16, next u16}
//	available ring    flags u16, idx u16, ring[num] u16, used_event u16
//	used ring         flags u16, idx u16, ring[num] {id u32, len u32}, avail_event u16
//
// The driver (the frontend) owns the available ring and the descriptors, the device (we)
// the used ring. Everything is little-endian: we offer VERSION_1, and legacy x86 guests
// are little-endian too.

const (
	descNext     = 1 // VRING_DESC_F_NEXT
	descWrite    = 2 // VRING_DESC_F_WRITE: device-writable
	descIndirect = 4 // VRING_DESC_F_INDIRECT

	availNoInterrupt = 1 // VRING_AVAIL_F_NO_INTERRUPT
	usedNoNotify     = 1 // VRING_USED_F_NO_NOTIFY

	maxQueueSize = 32768
)

var (
	errChain     = errors.New("descriptor chain loops or is longer than the ring")
	errHead      = errors.New("descriptor index out of range")
	errIndirect  = errors.New("indirect descriptor (not negotiated)")
	errDirection = errors.New("descriptor of the wrong direction")
	errAvail     = errors.New("available index ran ahead of the ring")
)

// vring is one split virtqueue, as the device sees it.
type vring struct {
	num      uint16 // queue size (SET_VRING_NUM)
	addr     VringAddr
	addrSet  bool
	desc     []byte // translated from addr by the current memory table; nil until then
	avail    []byte
	used     []byte
	availOdd bool // the available ring's address is 2 mod 4 (see availIdx)

	lastAvail uint16 // the next available entry to take
	usedIdx   uint16 // the used index after our pending entries
	pubUsed   uint16 // the used index the driver has seen
	usedFlags uint16

	eventIdx bool // VIRTIO_RING_F_EVENT_IDX negotiated
	kickFD   int  // -1: none (polled ring), as SET_VRING_KICK's NOFD says
	callFD   int  // -1: never signal
	started  bool // a kick arrived (SET_VRING_KICK) and GET_VRING_BASE has not stopped it
	enabled  bool // SET_VRING_ENABLE (or on start, without protocol features)
	broken   error

	fence uint32 // target of the full barrier the notification handshake needs
}

func newVring() *vring { return &vring{kickFD: -1, callFD: -1} }

// ready says the frame path may use the ring.
func (v *vring) ready() bool {
	return v.started && v.enabled && v.desc != nil && v.broken == nil
}

// translate maps the ring's three parts through mem. On success the used index the
// driver holds wins over SET_VRING_BASE's when they differ (a frontend that restarted
// with buffers still in flight), as DPDK's vhost library does.
func (v *vring) translate(mem *memTable) error {
	v.desc, v.avail, v.used = nil, nil, nil
	if !v.addrSet || mem == nil || v.num == 0 {
		return nil
	}
	n := uint64(v.num)
	d, err := mem.user(v.addr.Desc, 16*n)
	if err != nil {
		return err
	}
	a, err := mem.user(v.addr.Avail, 6+2*n)
	if err != nil {
		return err
	}
	u, err := mem.user(v.addr.Used, 6+8*n)
	if err != nil {
		return err
	}
	// The spec aligns the descriptor table to 16, the available ring to 2 and the used
	// ring to 4; the atomic accesses below need exactly that.
	if uintptr(unsafe.Pointer(&d[0]))%16 != 0 || uintptr(unsafe.Pointer(&a[0]))%2 != 0 ||
		uintptr(unsafe.Pointer(&u[0]))%4 != 0 {
		return errors.New("misaligned ring")
	}
	v.desc, v.avail, v.used = d, a, u
	v.availOdd = uintptr(unsafe.Pointer(&a[0]))%4 == 2
	if cur := v.usedIndex(); cur != v.usedIdx {
		v.lastAvail, v.usedIdx = cur, cur
	}
	v.pubUsed = v.usedIdx
	return nil
}

// availIdx loads the driver's available index. The 32-bit atomic load orders it before
// the reads of the ring entries and descriptors that follow (and keeps the compiler from
// caching it); the ring is 2-aligned, so the word holding idx starts at 0 or at 2.
func (v *vring) availIdx() uint16 {
	if v.availOdd {
		return uint16(atomic.LoadUint32((*uint32)(unsafe.Pointer(&v.avail[2]))))
	}
	return uint16(atomic.LoadUint32((*uint32)(unsafe.Pointer(&v.avail[0]))) >> 16)
}

func (v *vring) availFlags() uint16 { return binary.LittleEndian.Uint16(v.avail[0:]) }

// usedEvent is the driver's used_event: signal it once the used index passes it.
func (v *vring) usedEvent() uint16 {
	return binary.LittleEndian.Uint16(v.avail[4+2*int(v.num):])
}

func (v *vring) usedIndex() uint16 { return binary.LittleEndian.Uint16(v.used[2:]) }

// pending is how many available entries wait; a driver claiming more than the ring holds
// is broken.
func (v *vring) pending() (uint16, error) {
	n := v.availIdx() - v.lastAvail
	if n > v.num {
		return 0, errAvail
	}
	return n, nil
}

// head takes the next available descriptor chain's head.
func (v *vring) head() (uint16, error) {
	h := binary.LittleEndian.Uint16(v.avail[4+2*int(v.lastAvail%v.num):])
	if h >= v.num {
		return 0, errHead
	}
	v.lastAvail++
	return h, nil
}

// desc reads descriptor i.
func (v *vring) descAt(i uint16) (addr uint64, length uint32, flags, next uint16) {
	d := v.desc[16*int(i):]
	return binary.LittleEndian.Uint64(d), binary.LittleEndian.Uint32(d[8:]),
		binary.LittleEndian.Uint16(d[12:]), binary.LittleEndian.Uint16(d[14:])
}

// putUsed records chain head as used with length n; the driver sees it at publish.
func (v *vring) putUsed(head uint16, n uint32) {
	e := v.used[4+8*int(v.usedIdx%v.num):]
	binary.LittleEndian.PutUint32(e, uint32(head))
	binary.LittleEndian.PutUint32(e[4:], n)
	v.usedIdx++
}

// publish makes the used entries visible and reports whether the driver wants a signal
// for them. The store of flags and index together is atomic (an XCHG on amd64: a full
// barrier, which the read of used_event after it needs).
func (v *vring) publish() (signal bool) {
	old, cur := v.pubUsed, v.usedIdx
	if old == cur {
		return false
	}
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&v.used[0])), uint32(v.usedFlags)|uint32(cur)<<16)
	v.pubUsed = cur
	if v.eventIdx {
		return cur-v.usedEvent()-1 < cur-old
	}
	return v.availFlags()&availNoInterrupt == 0
}

// notify asks the driver to kick when it adds buffers (true) or not (false), and after
// asking, tells whether buffers arrived meanwhile (the caller then goes on instead of
// sleeping: the driver may have looked before our request landed).
func (v *vring) notify(on bool) (more bool) {
	if v.eventIdx {
		if !on {
			return false // the driver kicks only when crossing avail_event, which stays behind
		}
		binary.LittleEndian.PutUint16(v.used[4+8*int(v.num):], v.lastAvail)
	} else {
		if on {
			v.usedFlags &^= usedNoNotify
		} else {
			v.usedFlags |= usedNoNotify
		}
		atomic.StoreUint32((*uint32)(unsafe.Pointer(&v.used[0])), uint32(v.usedFlags)|uint32(v.pubUsed)<<16)
	}
	if !on {
		return false
	}
	atomic.AddUint32(&v.fence, 1) // full barrier: our request before the re-read
	return v.availIdx() != v.lastAvail
}

// readChain copies the device-readable chain at head into dst, the first skip bytes (the
// virtio-net header) into hdr instead. It returns the bytes copied to dst, and n >
// len(dst) when the frame did not fit (nothing beyond dst is written).
func (v *vring) readChain(mem *memTable, head uint16, dst []byte, skip int, hdr []byte) (n int, err error) {
	i := head
	for hops := 0; ; hops++ {
		if hops >= int(v.num) {
			return 0, errChain
		}
		addr, length, flags, next := v.descAt(i)
		if flags&descIndirect != 0 {
			return 0, errIndirect
		}
		if flags&descWrite != 0 {
			return 0, errDirection
		}
		b, err := mem.guest(addr, length)
		if err != nil {
			return 0, err
		}
		if skip > 0 {
			k := min(skip, len(b))
			hdr = hdr[copy(hdr, b[:k]):]
			b, skip = b[k:], skip-k
		}
		if n < len(dst) {
			copy(dst[n:], b)
		}
		n += len(b)
		if flags&descNext == 0 {
			return n, nil
		}
		if next >= v.num {
			return 0, errHead
		}
		i = next
	}
}

// writable collects the device-writable buffers of the chain at head into segs (reused),
// returning them and their total size.
func (v *vring) writable(mem *memTable, head uint16, segs [][]byte) ([][]byte, int, error) {
	total := 0
	i := head
	for hops := 0; ; hops++ {
		if hops >= int(v.num) {
			return segs, 0, errChain
		}
		addr, length, flags, next := v.descAt(i)
		if flags&descIndirect != 0 {
			return segs, 0, errIndirect
		}
		if flags&descWrite == 0 {
			return segs, 0, errDirection
		}
		b, err := mem.guest(addr, length)
		if err != nil {
			return segs, 0, err
		}
		segs = append(segs, b)
		total += len(b)
		if flags&descNext == 0 {
			return segs, total, nil
		}
		if next >= v.num {
			return segs, 0, errHead
		}
		i = next
	}
}

// scatter writes src across segs, from byte off of the first; it returns the new position
// (segment index and offset).
func scatter(segs [][]byte, si, off int, src []byte) (int, int) {
	for len(src) > 0 && si < len(segs) {
		k := copy(segs[si][off:], src)
		src, off = src[k:], off+k
		if off == len(segs[si]) {
			si, off = si+1, 0
		}
	}
	return si, off
}
