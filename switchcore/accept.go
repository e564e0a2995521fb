package switchcore

import (
	"errors"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// When the process runs out of descriptors, accept fails and the client would wait in the
// listen backlog for ever. The switch keeps one descriptor in reserve: it gives it up to
// accept the waiting client and hang up on it at once, so the client learns it was
// refused, then takes it back. One log line marks the start of such a spell and one its end.

// fdReserve is the spare descriptor and the state of the current out-of-descriptors spell.
type fdReserve struct {
	mu    sync.Mutex
	f     *os.File
	spell bool // refusing for lack of descriptors since the last accepted client
	shed  int  // clients refused in this spell
}

func (r *fdReserve) open(closing bool) {
	if r.f == nil && !closing {
		r.f, _ = os.Open(os.DevNull)
	}
}

// acceptLoop serves ln until the switch closes it. what names the socket in log lines.
func (s *Switch) acceptLoop(ln *net.UnixListener, what string, serve func(*net.UnixConn)) {
	for {
		c, err := ln.AcceptUnix()
		if err == nil {
			s.endSpell(what)
			go serve(c)
			continue
		}
		if s.closing.Load() || errors.Is(err, net.ErrClosed) {
			return
		}
		if errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE) {
			if s.shedOne(ln, what, err) {
				continue
			}
		} else {
			s.logf("accept on %s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// shedOne refuses one waiting client with the reserve descriptor; it reports whether one
// was refused.
func (s *Switch) shedOne(ln *net.UnixListener, what string, cause error) bool {
	r := &s.reserve
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.spell {
		r.spell, r.shed = true, 0
		s.logf("accept on %s: %s: refusing new clients until descriptors are free; ports already connected go on", what, errText(cause))
	}
	if r.f == nil {
		r.open(s.closing.Load())
		return false
	}
	r.f.Close()
	r.f = nil
	c, err := ln.AcceptUnix()
	if err == nil {
		c.Close()
		r.shed++
	}
	r.open(s.closing.Load())
	return err == nil
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
