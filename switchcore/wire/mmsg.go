package wire

import (
	"runtime"
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
	raw                          bool           // NewRawBatch
	waitArm                      *WriteInterest // ArmOnWait
	yieldVia                     *WriteInterest // YieldVia
	cnt, n                       int
	errno                        syscall.Errno
}

// NewBatch returns scratch for batches of up to size frames.
func NewBatch(size int) *Batch { return newBatch(size, false) }

// NewRawBatch is NewBatch for the switch's forwarding goroutines, which do little but
// these calls: it makes them as raw system calls, without telling the Go scheduler
// (they never block: every one is MSG_DONTWAIT). A scheduler-aware call from a switch
// whose processors were all idle wakes the runtime's sysmon thread, which cost 19% of the
// switch's CPU in the round-trip row of make bench. Other users (clients, the load
// generator of make bench) keep NewBatch: their goroutines share processors with busier
// ones.
func NewRawBatch(size int) *Batch { return newBatch(size, true) }

func newBatch(size int, raw bool) *Batch {
	b := &Batch{hdrs: make([]unix.Mmsghdr, size), iovs: make([]unix.Iovec, size), raw: raw}
	b.readFn = func(fd uintptr) bool {
		b.n, b.errno = recvmmsg(fd, b.hdrs[:b.cnt], unix.MSG_DONTWAIT|unix.MSG_TRUNC, b.raw)
		return b.errno != unix.EAGAIN
	}
	b.writeFn = func(fd uintptr) bool {
		b.n, b.errno = sendmmsg(fd, b.hdrs[:b.cnt], unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL, b.raw)
		return true
	}
	b.writeWaitFn = func(fd uintptr) bool {
		b.n, b.errno = sendmmsg(fd, b.hdrs[:b.cnt], unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL, b.raw)
		// Armed before the wait, so that a socket writable by now is reported. A socket
		// that cannot be armed would never be reported: SendWait returns EAGAIN instead.
		return b.errno != unix.EAGAIN || !b.waitArm.Arm(fd)
	}
	return b
}

// ArmOnWait makes SendWait turn w's write interest on before it waits for room; the
// caller turns it off (w.Disarm) when it stops sending.
func (b *Batch) ArmOnWait(w *WriteInterest) { b.waitArm = w }

// YieldVia makes RecvLoop yield after a full batch by requeueing the socket's readiness
// with the runtime poller (w.Requeue) and waiting for it, rather than by
// runtime.Gosched; w must be the socket's.
func (b *Batch) YieldVia(w *WriteInterest) { b.yieldVia = w }

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

// RecvLoop reads batches of datagrams from rc and hands each to deliver: the frames, and
// how many there are (sizes[i] is frame i's real length, as with Recv). It returns when
// deliver returns false (nil), or the socket fails or is closed. The reader holds a
// reference on the socket while it runs, so the owner must make deliver return false
// before it closes the socket: Close waits for that reference. The buffers come from get
// only while there is something to read and go back to put after deliver returns, so an
// idle reader holds none.
//
// The loop stays inside one RawConn.Read: a batch shorter than the buffers means the
// socket was empty when it was read, so it waits for the poller's next readiness edge
// right away instead of making another recvmmsg to find EAGAIN (an edge that came while
// deliver ran is kept, since the poller state is reset only when Read starts).
func (b *Batch) RecvLoop(rc syscall.RawConn, get func() [][]byte, put func([][]byte), sizes []int, deliver func(frames [][]byte, n int) bool) error {
	var failed syscall.Errno
	err := rc.Read(func(fd uintptr) bool {
		for {
			frames := get()
			b.setup(frames)
			n, errno := recvmmsg(fd, b.hdrs[:b.cnt], unix.MSG_DONTWAIT|unix.MSG_TRUNC, b.raw)
			switch errno {
			case 0:
			case unix.EINTR:
				put(frames)
				continue // the readiness edge is spent: read again, do not wait for another
			case unix.EAGAIN:
				put(frames)
				return false
			default:
				put(frames)
				failed = errno
				return true
			}
			for i := 0; i < n; i++ {
				sizes[i] = int(b.hdrs[i].Len)
			}
			more := deliver(frames, n)
			put(frames)
			if !more {
				return true
			}
			if n < b.cnt {
				return false
			}
			// A full batch: more is waiting. Raw calls never hand the processor back, so
			// a reader that is never short of frames (a broadcast storm) would hold it
			// until the runtime preempts it, 10 ms on: the console and the other ports'
			// readers wait their turn instead, behind a poll of the network (YieldVia).
			if b.yieldVia.Requeue(fd) {
				return false
			}
			runtime.Gosched()
		}
	})
	if err == nil && failed != 0 {
		err = failed
	}
	return err
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

func recvmmsg(fd uintptr, hdrs []unix.Mmsghdr, flags int, raw bool) (int, syscall.Errno) {
	return mmsg(unix.SYS_RECVMMSG, fd, hdrs, flags, raw)
}

func sendmmsg(fd uintptr, hdrs []unix.Mmsghdr, flags int, raw bool) (int, syscall.Errno) {
	return mmsg(unix.SYS_SENDMMSG, fd, hdrs, flags, raw)
}

func mmsg(trap, fd uintptr, hdrs []unix.Mmsghdr, flags int, raw bool) (int, syscall.Errno) {
	var r uintptr
	var e syscall.Errno
	if raw {
		r, _, e = unix.RawSyscall6(trap, fd, uintptr(unsafe.Pointer(&hdrs[0])), uintptr(len(hdrs)), uintptr(flags), 0, 0)
	} else {
		r, _, e = unix.Syscall6(trap, fd, uintptr(unsafe.Pointer(&hdrs[0])), uintptr(len(hdrs)), uintptr(flags), 0, 0)
	}
	return int(r), e
}
