package vhostuser

import (
	"net"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vde-go/vde/switchcore/vhostuser/vhosttest"
)

// frontend is vhosttest's frontend connected over a socketpair to a Device of this
// process, whose insides the tests look at.
type frontend struct {
	*vhosttest.Frontend
	dev    *Device
	served chan error
}

// Short names for the frontend's layout.
const (
	feGuestBase = vhosttest.GuestBase
	feMemSize   = vhosttest.MemSize
	feBufSize   = vhosttest.BufSize
)

var one = [8]byte{1}

func u64(v uint64) []byte   { return vhosttest.U64(v) }
func state(i, n int) []byte { return vhosttest.State(i, n) }

// newFrontend connects a frontend to a new Device and negotiates feats.
func newFrontend(t testing.TB, feats uint64, opt Options) *frontend {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) *net.UnixConn {
		f := os.NewFile(uintptr(fd), "vhost-user")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		return c.(*net.UnixConn)
	}
	f := &frontend{served: make(chan error, 1)}
	f.dev, err = NewDevice(conn(fds[1]), "test", opt)
	if err != nil {
		t.Fatal(err)
	}
	go func() { f.served <- f.dev.Serve() }()
	f.Frontend = vhosttest.Connect(t, conn(fds[0]), feats)
	t.Cleanup(func() { // after the frontend's own Close (cleanups run last in, first out)
		f.Conn.Close()
		err := <-f.served
		f.served <- err
	})
	return f
}

func (f *frontend) send(req Request, p []byte)                { f.Send(uint32(req), p) }
func (f *frontend) sendFDs(req Request, p []byte, fds ...int) { f.SendFDs(uint32(req), p, fds...) }
