package ptp

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"unsafe"

	"github.com/vde-go/vde/switchcore/wire"
	"golang.org/x/sys/unix"
)

func init() {
	wire.RegisterScheme("ptp", Open)
}

// defaultMode is the mode of a ptp socket when vde_plug's -m does not say (vde_plug's
// own default, 0700).
const defaultMode = 0700

// Open opens ptp://PATH as Debian's vdeplug4 4.0.1 does. The first end binds PATH and
// answers whoever writes to it; its first frame connects it to PATH+. The second end finds
// PATH taken (a connect to it succeeds), connects to it and binds PATH+. A socket file
// nobody answers on is stale and removed; a third end fails with "address in use". The
// argument is the path as it is: no brackets, no quotes. o.Mode (default 0700) and
// o.Group apply to the socket file an end binds.
//
// An end whose connection fails (its peer went away) or that reads a zero-length datagram
// forgets its peer and connects again with its next frame, so either end may be restarted.
func Open(path string, o wire.OpenOptions) (wire.Endpoint, error) {
	if path == "" {
		return nil, errors.New("ptp: no path")
	}
	e, ferr := openEnd(path, path+"+", true, o)
	if ferr == nil {
		return e, nil
	}
	e, merr := openEnd(path+"+", path, false, o)
	switch {
	case errors.Is(merr, unix.EPERM) || errors.Is(merr, unix.EADDRINUSE):
		// The first end talks to another second end (or did, and has not sent since it
		// went away: it forgets it with its next frame).
		return nil, fmt.Errorf("ptp %s: both ends are taken: %w", path, merr)
	case merr != nil:
		return nil, fmt.Errorf("ptp %s: %w", path, merr)
	}
	return e, nil
}

// openEnd binds self and sends to peer; the second end (first false) connects to peer
// before anything else, and fails if it cannot.
func openEnd(self, peer string, first bool, o wire.OpenOptions) (wire.Endpoint, error) {
	fd, err := wire.SocketDatagram()
	if err != nil {
		return nil, err
	}
	fail := func(err error) (wire.Endpoint, error) {
		unix.Close(fd)
		return nil, err
	}
	if !first {
		if err := unix.Connect(fd, &unix.SockaddrUnix{Name: peer}); err != nil {
			return fail(err)
		}
	}
	if err := reclaim(fd, self); err != nil {
		return fail(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: self}); err != nil {
		return fail(err)
	}
	if o.HasGroup {
		if err := os.Chown(self, -1, o.Group); err != nil {
			os.Remove(self)
			return fail(err)
		}
	}
	mode := o.Mode
	if mode == 0 {
		mode = defaultMode
	}
	unix.Chmod(self, mode) // best effort, as in C
	m, err := newMsgSocket(fd, self)
	if err != nil {
		os.Remove(self)
		return nil, err
	}
	peerAddr := &unix.SockaddrUnix{Name: peer}
	m.SetEmpty(func() error { // the C plug's reset: forget the peer
		m.control(disconnect)
		return nil
	})
	m.sendFailed = func(errno syscall.Errno) bool {
		switch errno {
		case unix.ENOTCONN, unix.EDESTADDRREQ:
			return m.control(func(fd int) error { return unix.Connect(fd, peerAddr) }) == nil
		case unix.ECONNREFUSED:
			return true // the peer is gone and the kernel forgot it: ENOTCONN next
		}
		return false
	}
	m.closed = func() { os.Remove(self) }
	return m, nil
}

// reclaim checks a socket file at path before fd binds there: if something answers
// there, the path is taken (EADDRINUSE); if nobody does, the file is stale and removed.
// fd stays as it was (a connect that fails leaves a datagram socket's peer alone).
func reclaim(fd int, path string) error {
	st, err := os.Lstat(path)
	if err != nil || st.Mode()&os.ModeSocket == 0 {
		return nil // bind tells
	}
	switch err := unix.Connect(fd, &unix.SockaddrUnix{Name: path}); {
	case err == nil:
		return unix.EADDRINUSE
	case errors.Is(err, unix.ECONNREFUSED):
		os.Remove(path)
	}
	return nil
}

// disconnect dissolves a datagram socket's association (connect to AF_UNSPEC).
func disconnect(fd int) error {
	sa := struct{ family uint16 }{unix.AF_UNSPEC}
	_, _, e := unix.Syscall(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&sa)), unsafe.Sizeof(sa))
	if e != 0 {
		return e
	}
	return nil
}
