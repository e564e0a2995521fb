package slirp

import (
	"errors"
	"io"
	"net"
	"sync"
	"syscall"

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
			if _, werr := host.Write((*bp)[:n]); werr != nil {
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
	sc, ok := host.(syscall.Conn)
	var raw syscall.RawConn
	if ok {
		raw, _ = sc.SyscallConn()
	}
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
				n, rerr = unix.Read(int(fd), *bp)
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
