package switchcore

import (
	"errors"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// When the process runs out of descriptors, accept fails with EMFILE (Linux checks for a
// free descriptor before it looks at the queue, so it fails even with nobody waiting), and
// a waiting client would sit in the listen backlog for ever. The switch keeps one
// descriptor in reserve: when a client is there and no descriptor is, it gives the reserve
// up, accepts the client, hangs up on it at once so that it learns it was refused, and
// takes the reserve back. One log line marks the start of such a spell and one its end.

// fdReserve is the spare descriptor and the state of the current out-of-descriptors spell.
type fdReserve struct {
	mu    sync.Mutex
	f     *os.File
	spell bool // refusing for lack of descriptors since the last client served
	shed  int  // clients refused in this spell
}

func (r *fdReserve) open(closing bool) {
	if r.f == nil && !closing {
		r.f, _ = os.Open(os.DevNull)
	}
}

// acceptLoop serves ln until the switch closes it. what names the socket in log lines.
// A client accepted ends an out-of-descriptors spell if servedOnAccept; otherwise serve
// calls endSpell once it has what it needs (a control client needs two more descriptors).
func (s *Switch) acceptLoop(ln *net.UnixListener, what string, servedOnAccept bool, serve func(*net.UnixConn)) {
	for {
		c, err := ln.AcceptUnix()
		if err == nil {
			if servedOnAccept {
				s.endSpell(what)
			}
			go serve(c)
			continue
		}
		if s.closing.Load() || errors.Is(err, net.ErrClosed) || s.ho.paused.Load() {
			return // closed, or stopped by a hand-over's deadline (handover.go)
		}
		if errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE) {
			s.startSpell(what, err)
			if s.shed(ln, what, servedOnAccept, serve) == nil {
				continue
			}
		} else {
			s.logf("accept on %s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// shed waits, without holding anything, for a client to arrive on ln while the process is
// out of descriptors. If descriptors have come free by then, the client is served;
// otherwise it is refused with the reserve descriptor.
func (s *Switch) shed(ln *net.UnixListener, what string, servedOnAccept bool, serve func(*net.UnixConn)) error {
	rc, err := ln.SyscallConn()
	if err != nil {
		return err
	}
	var served *net.UnixConn
	var aerr error
	// RawConn.Read forgets earlier readiness before it calls f, and f returns false only
	// after accept found the queue empty, so a client arriving later wakes it.
	err = rc.Read(func(fd uintptr) bool {
		nfd, _, e := unix.Accept4(int(fd), unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK)
		switch {
		case e == nil:
			served = fileConn(nfd)
			return true
		case e == unix.EAGAIN:
			return false
		case e == unix.EMFILE || e == unix.ENFILE:
			refused, empty := s.refuseOne(int(fd))
			if empty {
				return false
			}
			if !refused {
				aerr = e
			}
			return true
		default:
			aerr = e
			return true
		}
	})
	if served != nil {
		if servedOnAccept {
			s.endSpell(what)
		}
		go serve(served)
	}
	if err != nil {
		return err
	}
	return aerr
}

// refuseOne accepts one client on the listening socket fd with the reserve descriptor and
// hangs up on it. empty says that nobody was waiting after all.
func (s *Switch) refuseOne(fd int) (refused, empty bool) {
	r := &s.reserve
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		r.open(s.closing.Load())
		return false, false
	}
	r.f.Close()
	r.f = nil
	nfd, _, err := unix.Accept4(fd, unix.SOCK_CLOEXEC)
	if err == nil {
		unix.Close(nfd)
		r.shed++
	}
	r.open(s.closing.Load())
	return err == nil, err == unix.EAGAIN
}

// fileConn makes an accepted descriptor a connection; nil (and the client hung up on) if
// that fails, as it may for want of a descriptor to duplicate into.
func fileConn(nfd int) *net.UnixConn {
	f := os.NewFile(uintptr(nfd), "client")
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		c.Close()
		return nil
	}
	return uc
}

func (s *Switch) startSpell(what string, cause error) {
	r := &s.reserve
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.spell {
		r.spell, r.shed = true, 0
		s.logf("accept on %s: %s: refusing new clients until descriptors are free; ports already connected go on", what, errText(cause))
	}
}

// refusedForWant counts a client refused for want of descriptors after it was accepted.
func (s *Switch) refusedForWant(err error) {
	if errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE) {
		s.reserve.mu.Lock()
		s.reserve.shed++
		s.reserve.mu.Unlock()
	}
}

func (s *Switch) endSpell(what string) {
	r := &s.reserve
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.spell {
		r.spell = false
		s.logf("accept on %s: descriptors free again (clients refused meanwhile: %d)", what, r.shed)
	}
	r.open(s.closing.Load())
}
