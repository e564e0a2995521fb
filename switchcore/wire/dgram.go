package wire

import (
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Datagram is a connected unix datagram socket carrying one frame per datagram: the data
// channel of a switch port, on either side.
type Datagram struct {
	file *os.File
	rc   syscall.RawConn
	fd   int

	readBatch *Batch // used by the single reader

	wmu        sync.Mutex // serialises WriteBatch callers sharing writeBatch
	writeBatch *Batch
	wi         *WriteInterest // nil: the runtime's registration, EPOLLOUT always on

	empty func() error // SetEmpty
}

// NewDatagram wraps fd, a unix datagram socket in non-blocking mode; the Datagram owns it.
// It keeps the runtime poller's registration as it is (see NewDatagramPoll).
func NewDatagram(fd int, name string) (*Datagram, error) {
	return NewDatagramPoll(fd, name, nil)
}

// NewDatagramPoll is NewDatagram for a switch port: with poll (non-nil), the runtime
// poller hears of the socket's writability only while a send waits for room
// (WriteInterest), since otherwise each frame the client reads wakes it for nothing.
// Clients keep the runtime's registration: it was measured to help only the switch, and
// with it the load generator of make bench moved our switch's round trip figures
// (p50 1.30-1.39x Debian's instead of 0.97-1.07x, same switch binary).
func NewDatagramPoll(fd int, name string, poll *RuntimePoll) (*Datagram, error) {
	f := os.NewFile(uintptr(fd), name)
	if f == nil {
		return nil, fmt.Errorf("datagram %s: bad fd %d", name, fd)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("datagram %s: %w", name, err)
	}
	d := &Datagram{file: f, rc: rc, fd: fd, readBatch: NewBatch(BatchSize), writeBatch: NewBatch(BatchSize)}
	if poll != nil {
		d.wi, _ = poll.WriteInterest(rc) // on failure d.wi is nil and EPOLLOUT stays on
		d.writeBatch.ArmOnWait(d.wi)
	}
	return d, nil
}

// WriteInterest is the socket's write interest with the runtime poller, for a sender with
// its own Batch (Batch.ArmOnWait) that does not share it with WriteBatchWait callers; nil
// if the socket keeps the runtime's registration.
func (d *Datagram) WriteInterest() *WriteInterest { return d.wi }

// SocketDatagram makes a non-blocking, close-on-exec unix datagram socket with buffers
// sized for bursts of frames.
func SocketDatagram() (int, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("socket(AF_UNIX, SOCK_DGRAM): %w", err)
	}
	return fd, nil
}

// FD is the socket's descriptor number (the C switch names data sockets after it).
func (d *Datagram) FD() int { return d.fd }

// RawConn gives callers with their own Batch lock-free, allocation-free access.
func (d *Datagram) RawConn() syscall.RawConn { return d.rc }

// SetEmpty says what a zero-length message means: f runs when ReadBatch meets one, and
// an error it returns ends the read (after the frames before it). Without it, such
// messages are skipped. Set it before the first read.
func (d *Datagram) SetEmpty(f func() error) { d.empty = f }

// ReadBatch implements Endpoint. Only one goroutine may read. Zero-length datagrams (the
// old libvdeplug's goodbye; see SetEmpty) and oversized ones are skipped.
func (d *Datagram) ReadBatch(frames [][]byte, sizes []int) (int, error) {
	for {
		n, err := d.readBatch.Recv(d.rc, frames, sizes)
		if err != nil {
			return 0, err
		}
		k := 0
		for i := 0; i < n; i++ {
			if sizes[i] == 0 && d.empty != nil {
				if err := d.empty(); err != nil {
					if k > 0 {
						return k, nil
					}
					return 0, err
				}
			}
			if sizes[i] == 0 || sizes[i] > len(frames[i]) {
				continue
			}
			if k != i {
				frames[k], frames[i] = frames[i], frames[k]
				sizes[k] = sizes[i]
			}
			k++
		}
		if k > 0 {
			return k, nil
		}
	}
}

// WriteBatch implements Endpoint; it may be called from several goroutines.
func (d *Datagram) WriteBatch(frames [][]byte) (int, error) {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	return d.writeBatch.Send(d.rc, frames)
}

// WriteBatchWait sends every frame, waiting while the peer's queue is full; closing the
// socket ends a wait. It may be called from several goroutines.
func (d *Datagram) WriteBatchWait(frames [][]byte) (int, error) {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	defer d.wi.Disarm(d.rc) // a no-op unless a send had to wait
	sent := 0
	for sent < len(frames) {
		n, err := d.writeBatch.SendWait(d.rc, frames[sent:])
		sent += n
		if err != nil {
			return sent, err
		}
	}
	return sent, nil
}

// SetReadDeadline makes a blocked ReadBatch return os.ErrDeadlineExceeded at t.
func (d *Datagram) SetReadDeadline(t time.Time) error { return d.file.SetReadDeadline(t) }

// Close closes the socket; a blocked ReadBatch returns an error.
func (d *Datagram) Close() error { return d.file.Close() }
