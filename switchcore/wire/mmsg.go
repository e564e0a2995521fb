package wire

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Batch is the reusable scratch for one recvmmsg or sendmmsg call: the message headers and
// their iovecs. A Batch belongs to one goroutine at a time; owning it is what makes the
// frame path allocation-free.
type Batch struct {
	hdrs []unix.Mmsghdr
	iovs []unix.Iovec

	// The closures handed to syscall.RawConn are built once, so a call allocates nothing.
	readFn, writeFn, writeWaitFn func(fd uintptr) bool
	pooledReadFn                 func(fd uintptr) bool
	// RecvPooled's buffers: taken from get when data is there, given back to put when a
	// read finds none.
	get       func() [][]byte
	put       func([][]byte)
	frames    [][]byte
	cnt, n    int
	errno     syscall.Errno
	truncated int
}

// NewBatch returns scratch for batches of up to size frames.
func NewBatch(size int) *Batch {
	b := &Batch{hdrs: make([]unix.Mmsghdr, size), iovs: make([]unix.Iovec, size)}
	b.readFn = func(fd uintptr) bool {
		b.n, b.errno = recvmmsg(fd, b.hdrs[:b.cnt], unix.MSG_DONTWAIT|unix.MSG_TRUNC)
		return b.errno != unix.EAGAIN
	}
	b.pooledReadFn = func(fd uintptr) bool {
		if b.frames == nil {
			b.frames = b.get()
			b.setup(b.frames)
		}
		b.n, b.errno = recvmmsg(fd, b.hdrs[:b.cnt], unix.MSG_DONTWAIT|unix.MSG_TRUNC)
		if b.errno == unix.EAGAIN {
			b.put(b.frames)
			b.frames = nil
			return false
		}
		return true
	}
	b.writeFn = func(fd uintptr) bool {
		b.n, b.errno = sendmmsg(fd, b.hdrs[:b.cnt], unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
		return true
	}
	b.writeWaitFn = func(fd uintptr) bool {
		b.n, b.errno = sendmmsg(fd, b.hdrs[:b.cnt], unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
		return b.errno != unix.EAGAIN
	}
	return b
}

// Size is the most frames one call moves.
func (b *Batch) Size() int { return len(b.hdrs) }

func (b *Batch) setup(frames [][]byte) {
	n := min(len(frames), len(b.hdrs))
	for i := 0; i < n; i++ {
		f := frames[i]
		iov := &b.iovs[i]
		if len(f) > 0 {
			iov.Base = &f[0]
		} else {
			iov.Base = nil
		}
		iov.SetLen(len(f))
		h := &b.hdrs[i].Hdr
		*h = unix.Msghdr{Iov: iov, Iovlen: 1}
		b.hdrs[i].Len = 0
	}
	b.cnt = n
}

// Recv reads up to len(frames) datagrams from rc into frames, waiting (through the runtime
// poller) until at least one is there. sizes[i] is the datagram's real length; a value
// larger than len(frames[i]) means the datagram was too big and is cut (callers drop it).
func (b *Batch) Recv(rc syscall.RawConn, frames [][]byte, sizes []int) (int, error) {
	b.setup(frames)
	if err := rc.Read(b.readFn); err != nil {
		return 0, err
	}
	if b.errno != 0 {
		return 0, b.errno
	}
	for i := 0; i < b.n; i++ {
		sizes[i] = int(b.hdrs[i].Len)
	}
	return b.n, nil
}

// RecvPooled is Recv for a reader that should hold no buffers while it waits: get
// supplies buffers once the socket is readable, and a read that finds nothing gives them
// back to put before waiting. It returns the buffers the frames are in (the caller gives
// them back to put when done with them) and how many frames there are.
func (b *Batch) RecvPooled(rc syscall.RawConn, get func() [][]byte, put func([][]byte), sizes []int) ([][]byte, int, error) {
	b.get, b.put = get, put
	err := rc.Read(b.pooledReadFn)
	frames := b.frames
	b.frames = nil
	if err == nil && b.errno != 0 {
		err = b.errno
	}
	if err != nil {
		if frames != nil {
			put(frames)
		}
		return nil, 0, err
	}
	for i := 0; i < b.n; i++ {
		sizes[i] = int(b.hdrs[i].Len)
	}
	return frames, b.n, nil
}

// Send sends frames on rc without waiting: it returns how many the kernel took before the
// peer's queue filled (EAGAIN is not an error, just a short count) and the first other error.
func (b *Batch) Send(rc syscall.RawConn, frames [][]byte) (int, error) {
	sent := 0
	for sent < len(frames) {
		b.setup(frames[sent:])
		if err := rc.Write(b.writeFn); err != nil {
			return sent, err
		}
		switch {
		case b.errno == unix.EAGAIN || b.errno == unix.ENOBUFS:
			return sent, nil
		case b.errno != 0:
			return sent, b.errno
		}
		sent += b.n
		if b.n < b.cnt {
			// A short count means the next frame would block or failed; sending it again
			// tells which, and the caller only cares about the count.
			continue
		}
	}
	return sent, nil
}

// SendWait sends at least one of frames, waiting (through the runtime poller) while the
// peer's queue is full; it returns how many were sent. Closing the socket ends the wait.
func (b *Batch) SendWait(rc syscall.RawConn, frames [][]byte) (int, error) {
	b.setup(frames)
	if err := rc.Write(b.writeWaitFn); err != nil {
		return 0, err
	}
	if b.errno != 0 {
		return 0, b.errno
	}
	return b.n, nil
}

func recvmmsg(fd uintptr, hdrs []unix.Mmsghdr, flags int) (int, syscall.Errno) {
	r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&hdrs[0])), uintptr(len(hdrs)), uintptr(flags), 0, 0)
	return int(r), e
}

func sendmmsg(fd uintptr, hdrs []unix.Mmsghdr, flags int) (int, syscall.Errno) {
	r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&hdrs[0])), uintptr(len(hdrs)), uintptr(flags), 0, 0)
	return int(r), e
}
