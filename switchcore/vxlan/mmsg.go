package vxlan

import (
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rxBatch is the scratch of one recvmmsg: for each datagram its source address, and two
// iovecs, so that the VXLAN header lands in heads[i] and the frame straight in the
// caller's buffer, with no copy. It belongs to the endpoint's reader.
type rxBatch struct {
	hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	heads []Header
	names []unix.RawSockaddrInet6
	ctrl  []byte // room for each datagram's control messages (ctrlLen each), if any
	cnt   int
	n     int
	errno syscall.Errno
	fn    func(fd uintptr) bool
}

// ctrlLen is room for one IP_PKTINFO or IPV6_PKTINFO control message.
const ctrlLen = 64

func newRxBatch(size int, withCtrl bool) *rxBatch {
	b := &rxBatch{
		hdrs:  make([]unix.Mmsghdr, size),
		iovs:  make([]unix.Iovec, 2*size),
		heads: make([]Header, size),
		names: make([]unix.RawSockaddrInet6, size),
	}
	if withCtrl {
		b.ctrl = make([]byte, ctrlLen*size)
	}
	b.fn = func(fd uintptr) bool {
		b.n, b.errno = mmsg(unix.SYS_RECVMMSG, fd, b.hdrs[:b.cnt], unix.MSG_DONTWAIT|unix.MSG_TRUNC)
		return b.errno != unix.EAGAIN
	}
	return b
}

// recv reads up to len(frames) datagrams, waiting for at least one. For datagram i < n,
// b.heads[i] is its header, frames[i] holds its frame and size(i) the frame's length
// (negative if the datagram was too short for a header; larger than frames[i] if it was
// cut to fit).
func (b *rxBatch) recv(rc syscall.RawConn, frames [][]byte) (int, error) {
	b.setup(frames)
	for {
		if err := rc.Read(b.fn); err != nil {
			return 0, err
		}
		if b.errno == unix.EINTR {
			continue
		}
		if b.errno != 0 {
			return 0, b.errno
		}
		return b.n, nil
	}
}

// setup points the batch's messages at frames.
func (b *rxBatch) setup(frames [][]byte) {
	n := min(len(frames), len(b.hdrs))
	for i := 0; i < n; i++ {
		hv, fv := &b.iovs[2*i], &b.iovs[2*i+1]
		hv.Base = &b.heads[i][0]
		hv.SetLen(HeaderLen)
		fv.Base = &frames[i][0]
		fv.SetLen(len(frames[i]))
		h := &b.hdrs[i]
		h.Hdr = unix.Msghdr{
			Name:    (*byte)(unsafe.Pointer(&b.names[i])),
			Namelen: unix.SizeofSockaddrInet6,
			Iov:     hv,
			Iovlen:  2,
		}
		if b.ctrl != nil {
			h.Hdr.Control = &b.ctrl[i*ctrlLen]
			h.Hdr.SetControllen(ctrlLen)
		}
		h.Len = 0
		b.heads[i] = Header{}
	}
	b.cnt = n
}

// size is the length of datagram i's frame: its real length (MSG_TRUNC) less the header;
// negative when it is shorter than a header, beyond its buffer when it was cut.
func (b *rxBatch) size(i int) int { return int(b.hdrs[i].Len) - HeaderLen }

// source is datagram i's source address.
func (b *rxBatch) source(i int) (netip.AddrPort, bool) {
	return addrOf(&b.names[i], b.hdrs[i].Hdr.Namelen)
}

// txBatch is the scratch of sendmmsg: each message is the shared header and one frame, to
// one VTEP. It belongs to whoever holds the endpoint's send lock.
type txBatch struct {
	hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	dst   []*vtep
	head  *Header
	cnt   int // messages queued
	off   int // first message of the current call
	n     int
	errno syscall.Errno
	fn    func(fd uintptr) bool
}

func newTxBatch(size int, head *Header) *txBatch {
	b := &txBatch{
		hdrs: make([]unix.Mmsghdr, size),
		iovs: make([]unix.Iovec, 2*size),
		dst:  make([]*vtep, size),
		head: head,
	}
	b.fn = func(fd uintptr) bool {
		b.n, b.errno = mmsg(unix.SYS_SENDMMSG, fd, b.hdrs[b.off:b.cnt], unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
		return b.errno != unix.EAGAIN
	}
	return b
}

// full tells whether add has no room left.
func (b *txBatch) full() bool { return b.cnt == len(b.hdrs) }

// add queues frame to v, behind head (nil: the batch's header).
func (b *txBatch) add(v *vtep, frame []byte, head *Header) {
	if head == nil {
		head = b.head
	}
	i := b.cnt
	hv, fv := &b.iovs[2*i], &b.iovs[2*i+1]
	hv.Base = &head[0]
	hv.SetLen(HeaderLen)
	if len(frame) > 0 {
		fv.Base = &frame[0]
	} else {
		fv.Base = nil
	}
	fv.SetLen(len(frame))
	iovlen := 2
	if len(frame) == 0 {
		iovlen = 1
	}
	b.hdrs[i].Hdr = unix.Msghdr{
		Name:    (*byte)(unsafe.Pointer(&v.name)),
		Namelen: v.namelen,
		Iov:     hv,
		Iovlen:  uint64(iovlen),
	}
	b.dst[i] = v
	b.cnt++
}

// flush sends what is queued, waiting (through the runtime poller) while the socket's
// buffer is full. A message the kernel refuses (no route, too big) is skipped and given
// to failed; the error returned is the socket's (closed).
func (b *txBatch) flush(rc syscall.RawConn, failed func(v *vtep, errno syscall.Errno)) error {
	defer func() { b.cnt = 0 }()
	for b.off = 0; b.off < b.cnt; {
		if err := rc.Write(b.fn); err != nil {
			return err
		}
		switch b.errno {
		case 0:
			b.off += b.n
		case unix.EINTR:
		default:
			failed(b.dst[b.off], b.errno)
			b.off++
		}
	}
	return nil
}

func mmsg(trap, fd uintptr, hdrs []unix.Mmsghdr, flags int) (int, syscall.Errno) {
	if len(hdrs) == 0 {
		return 0, 0
	}
	r, _, e := unix.Syscall6(trap, fd, uintptr(unsafe.Pointer(&hdrs[0])), uintptr(len(hdrs)), uintptr(flags), 0, 0)
	return int(r), e
}
