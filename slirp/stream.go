package slirp

import (
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/waiter"
)

// streamBufSize is how much one copy of a NATed TCP stream moves at most. Each write to
// a host socket costs a syscall, the host's loopback receive path run inside it and a
// wakeup of the reader there, so a copy takes all the netstack holds (with a guest that
// sends one frame per datagram that was about 9 KB per wakeup). 64 KiB is the most the
// loopback takes in one packet. Buffers are taken only once data is ready, so an idle
// flow holds none (io.Copy held 32 KiB each way for the life of the flow); a flow whose
// receiver stopped reading holds one per blocked direction, 4096 such flows 256 MiB each
// way, as before.
const streamBufSize = 64 << 10

var streamBufs = sync.Pool{New: func() any { b := make([]byte, streamBufSize); return &b }}

// guestStream is the guest's side of a NATed TCP connection: the netstack endpoint and
// its wait queue (to wait for data without holding a buffer) and the net.Conn over them.
// ep and wq are nil for a connection dialled through gonet (a -L forward).
type guestStream struct {
	conn *gonet.TCPConn
	ep   tcpip.Endpoint
	wq   *waiter.Queue
}

// halfCloser is a connection whose sending side closes alone (TCP, unix streams).
type halfCloser interface {
	net.Conn
	CloseWrite() error
}

// splice copies both ways until both directions end, passing half-closes on, then
// closes both connections.
func splice(g guestStream, host net.Conn) {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		guestToHost(g, host)
		if hc, ok := host.(halfCloser); ok {
			hc.CloseWrite()
		} else {
			host.Close()
		}
	}()
	go func() {
		defer wg.Done()
		hostToGuest(host, g.conn)
		g.conn.CloseWrite()
	}()
	wg.Wait()
	g.conn.Close()
	host.Close()
}

// guestToHost copies what the guest sends to host until the guest's side ends or a
// write fails.
func guestToHost(g guestStream, host net.Conn) {
	if g.ep == nil {
		bp := streamBufs.Get().(*[]byte)
		defer streamBufs.Put(bp)
		io.CopyBuffer(struct{ io.Writer }{host}, struct{ io.Reader }{g.conn}, *bp)
		return
	}
	raw := rawConn(host)
	const events = waiter.ReadableEvents | waiter.EventHUp | waiter.EventErr
	entry, notify := waiter.NewChannelEntry(events)
	g.wq.EventRegister(&entry)
	defer g.wq.EventUnregister(&entry)
	for {
		// Readable also when the guest closed or reset: Read then says so.
		for g.ep.Readiness(events) == 0 {
			<-notify
		}
		bp := streamBufs.Get().(*[]byte)
		n, err := g.conn.Read(*bp)
		if n > 0 {
			var werr error
			if raw != nil {
				werr = writeRaw(raw, (*bp)[:n])
			} else {
				_, werr = host.Write((*bp)[:n])
			}
			if werr != nil {
				err = werr
			}
		}
		streamBufs.Put(bp)
		if err != nil {
			return
		}
	}
}

// hostToGuest copies what the host sends to the guest until the host's side ends or a
// write fails. It reads the socket itself (not io.Copy) to take a buffer only once data
// is there.
func hostToGuest(host net.Conn, guest net.Conn) {
	raw := rawConn(host)
	if raw == nil {
		bp := streamBufs.Get().(*[]byte)
		defer streamBufs.Put(bp)
		io.CopyBuffer(struct{ io.Writer }{guest}, struct{ io.Reader }{host}, *bp)
		return
	}
	for {
		var bp *[]byte
		var n int
		var rerr error
		err := raw.Read(func(fd uintptr) bool {
			bp = streamBufs.Get().(*[]byte)
			for {
				n, rerr = readRaw(fd, *bp)
				if rerr != unix.EINTR {
					break
				}
			}
			if rerr == unix.EAGAIN {
				streamBufs.Put(bp)
				bp = nil
				return false
			}
			return true
		})
		if err == nil && rerr == nil && n > 0 {
			_, err = guest.Write((*bp)[:n])
		} else if err == nil {
			err = errors.Join(rerr, io.EOF) // n == 0: the host closed its side
		}
		if bp != nil {
			streamBufs.Put(bp)
		}
		if err != nil {
			return
		}
	}
}

// rawConn is the host socket's raw access, nil if it has none.
func rawConn(c net.Conn) syscall.RawConn {
	if sc, ok := c.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			return raw
		}
	}
	return nil
}

// The host sockets are non-blocking, so their reads and writes are raw system calls that
// never block, made without telling the Go scheduler (see port): a write to the host's
// loopback runs the receiver's whole TCP path inside it, long enough that, with both
// processors busy, the runtime's sysmon handed the processor to another thread during
// each one.

// readRaw is read(2) on fd without the scheduler; n is 0 on an error.
func readRaw(fd uintptr, b []byte) (int, error) {
	n, _, e := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// writeRaw writes all of b to raw's socket, waiting through the runtime poller while its
// send buffer is full.
func writeRaw(raw syscall.RawConn, b []byte) error {
	var werr error
	err := raw.Write(func(fd uintptr) bool {
		for len(b) > 0 {
			n, _, e := unix.RawSyscall(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
			switch e {
			case 0:
				b = b[n:]
			case unix.EINTR:
			case unix.EAGAIN:
				return false
			default:
				werr = e
				return true
			}
		}
		return true
	})
	if err != nil {
		return err
	}
	return werr
}
