package wire

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Backoff of a Redial between failed attempts: it starts at DefaultRedialMin and doubles
// up to DefaultRedialMax.
const (
	DefaultRedialMin = 100 * time.Millisecond
	DefaultRedialMax = 5 * time.Second
)

// RedialOptions say how a Redial retries and reports.
type RedialOptions struct {
	// Min is the first wait after a failed attempt; 0 means DefaultRedialMin.
	Min time.Duration
	// Max is the longest wait between attempts; 0 means DefaultRedialMax.
	Max time.Duration
	// Logf gets one line when the switch is lost and one when it is back (not one per
	// attempt); nil means silence.
	Logf func(format string, args ...any)
}

// Redial is an Endpoint on a switch that outlives the switch: when the switch lets go
// (an EOF on the control stream, a failed data socket), it dials again, waiting Min,
// then twice as long each time up to Max, and carries on with the new connection, which
// asks for the same port. Meanwhile ReadBatch waits and WriteBatch drops (and counts)
// what it is given, so that whatever is on the other side of a plug stays open.
//
// A Redial is not a ClosedNotifier: only Close ends it.
type Redial struct {
	dial func() (*Conn, error)
	name string
	o    RedialOptions

	cur     atomic.Pointer[redialLink] // nil while no switch is attached
	mu      sync.Mutex                 // guards changed
	changed chan struct{}              // closed (and replaced) whenever cur changes
	done    chan struct{}
	once    sync.Once
	dropped atomic.Uint64

	// after, when set (by tests), replaces the backoff timer.
	after func(time.Duration) <-chan time.Time
}

// redialLink is one connection of a Redial; lost is closed (once) when it fails.
type redialLink struct {
	c    *Conn
	lost chan struct{}
	once sync.Once
	err  error // why, set before lost is closed
}

func newRedialLink(c *Conn) *redialLink { return &redialLink{c: c, lost: make(chan struct{})} }

func (l *redialLink) fail(err error) {
	l.once.Do(func() {
		l.err = err
		close(l.lost)
	})
}

// ErrRedialClosed is what a closed Redial's ReadBatch returns.
var ErrRedialClosed = fmt.Errorf("redial: %w", os.ErrClosed)

// NewRedial takes over c, a connection dial made, and dials again with dial whenever the
// switch lets go of it. name is the switch as the log lines call it.
func NewRedial(c *Conn, name string, dial func() (*Conn, error), o RedialOptions) *Redial {
	return newRedial(c, name, dial, o, nil)
}

func newRedial(c *Conn, name string, dial func() (*Conn, error), o RedialOptions, after func(time.Duration) <-chan time.Time) *Redial {
	if o.Min <= 0 {
		o.Min = DefaultRedialMin
	}
	if o.Max < o.Min {
		o.Max = max(DefaultRedialMax, o.Min)
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	r := &Redial{dial: dial, name: name, o: o, changed: make(chan struct{}), done: make(chan struct{}), after: after}
	l := newRedialLink(c)
	r.set(l)
	go r.run(l)
	return r
}

// set publishes l (nil: disconnected) and wakes the waiters.
func (r *Redial) set(l *redialLink) {
	r.mu.Lock()
	r.cur.Store(l)
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

// Dropped is how many frames WriteBatch dropped while no switch was attached.
func (r *Redial) Dropped() uint64 { return r.dropped.Load() }

// Connected reports whether a switch is attached now.
func (r *Redial) Connected() bool { return r.cur.Load() != nil }

// Conn is the current connection, nil while none.
func (r *Redial) Conn() *Conn {
	if l := r.cur.Load(); l != nil {
		return l.c
	}
	return nil
}

func (r *Redial) closed() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// run watches the current link and replaces it when it fails.
func (r *Redial) run(l *redialLink) {
	for {
		var reason error
		select {
		case <-r.done:
			return
		case <-l.c.Closed():
			reason = l.c.CloseReason()
		case <-l.lost:
			reason = l.err
		}
		if r.closed() {
			return
		}
		l.fail(reason)
		r.set(nil)
		l.c.Close()
		lostAt, dropped := time.Now(), r.dropped.Load()
		r.o.Logf("%v; reconnecting", reason)
		c := r.redial()
		if c == nil {
			return
		}
		l = newRedialLink(c)
		r.set(l)
		if r.closed() { // Close ran between the dial and set: it did not see c
			c.Close()
			return
		}
		r.o.Logf("switch %s: reconnected after %v (%d frames dropped meanwhile)",
			r.name, time.Since(lostAt).Round(100*time.Millisecond), r.dropped.Load()-dropped)
	}
}

// redial dials until it succeeds (the connection) or the Redial is closed (nil). While
// no switch is there it is silent; a switch that is there but refuses (its port is taken,
// it has fewer ports) is logged once per different reason.
func (r *Redial) redial() *Conn {
	delay := r.o.Min
	said := ""
	for {
		c, err := r.dial()
		if err == nil {
			if r.closed() {
				c.Close()
				return nil
			}
			return c
		}
		if !switchAbsent(err) && err.Error() != said {
			said = err.Error()
			r.o.Logf("%v; still trying", err)
		}
		if !r.sleep(delay) {
			return nil
		}
		delay = min(2*delay, r.o.Max)
	}
}

// switchAbsent tells the errors of dialling a switch that is not running (no
// directory, no ctl socket, a stale one) from those of a switch that refused.
func switchAbsent(err error) bool {
	return errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ECONNREFUSED) || errors.Is(err, unix.ENOENT)
}

// sleep waits d; false means the Redial was closed meanwhile.
func (r *Redial) sleep(d time.Duration) bool {
	var wait <-chan time.Time
	if r.after != nil {
		wait = r.after(d)
	} else {
		t := time.NewTimer(d)
		defer t.Stop()
		wait = t.C
	}
	select {
	case <-r.done:
		return false
	case <-wait:
		return true
	}
}

// next waits for a link other than prev; it fails only when the Redial is closed.
func (r *Redial) next(prev *redialLink) (*redialLink, error) {
	// The common case, a batch read on a link that is up: no lock.
	if l := r.cur.Load(); l != nil && l != prev && !r.closed() {
		return l, nil
	}
	for {
		r.mu.Lock()
		l, changed := r.cur.Load(), r.changed
		r.mu.Unlock()
		if r.closed() {
			return nil, ErrRedialClosed
		}
		if l != nil && l != prev {
			return l, nil
		}
		select {
		case <-changed:
		case <-r.done:
			return nil, ErrRedialClosed
		}
	}
}

// ReadBatch implements Endpoint: it reads from the switch attached now, waiting through
// outages. Only one goroutine may read.
func (r *Redial) ReadBatch(frames [][]byte, sizes []int) (int, error) {
	var prev *redialLink
	for {
		l, err := r.next(prev)
		if err != nil {
			return 0, err
		}
		n, err := l.c.ReadBatch(frames, sizes)
		if err == nil {
			return n, nil
		}
		if r.closed() {
			return 0, ErrRedialClosed
		}
		l.fail(&SwitchGoneError{Switch: r.name, Err: err})
		prev = l
	}
}

// WriteBatch implements Endpoint: it sends to the switch attached now, waiting while its
// queue is full as Conn does; without a switch the frames are dropped and counted, and
// reported as sent.
func (r *Redial) WriteBatch(frames [][]byte) (int, error) {
	l := r.cur.Load()
	if l == nil {
		if r.closed() {
			return 0, ErrRedialClosed
		}
		r.dropped.Add(uint64(len(frames)))
		return len(frames), nil
	}
	n, err := l.c.WriteBatch(frames)
	if err != nil {
		if r.closed() {
			return n, ErrRedialClosed
		}
		if errors.Is(err, ErrPeerClosed) {
			l.fail(err) // the switch is gone: dial again
		}
		// Otherwise (a frame too big, say) only the rest of this batch is lost.
		r.dropped.Add(uint64(len(frames) - n))
	}
	return len(frames), nil
}

// Close detaches from the switch and stops redialling; a waiting ReadBatch returns.
func (r *Redial) Close() error {
	var err error
	r.once.Do(func() {
		close(r.done)
		if l := r.cur.Load(); l != nil {
			err = l.c.Close()
		}
	})
	return err
}
