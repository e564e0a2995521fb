// Package capture streams the frames a VDE switch receives and sends as pcapng, for
// `vde capture` and Wireshark's extcap interface. It knows no command line: the switch
// feeds a Session from its frame path and hands it the client's connection; the client
// side (Dial) asks a switch's management socket for the stream.
package capture

import (
	"fmt"
	"io"
	"sort"
	"sync/atomic"
	"time"

	"github.com/vde-go/vde/switchcore/wire"
)

// Direction says whether a frame came into the switch by a port or left by it.
type Direction uint8

const (
	// In is a frame the switch received from the port.
	In Direction = 1
	// Out is a frame the switch sent to the port.
	Out Direction = 2
)

const (
	// DefaultSlots is how many frames a session's ring holds unless Config.Slots says.
	DefaultSlots = 1024
	// MaxSlots bounds Config.Slots (each slot is Snaplen bytes).
	MaxSlots = 1 << 16
	// Snaplen is the most bytes of a frame a capture keeps: every frame a switch forwards.
	Snaplen = wire.MaxFrame
)

// Config describes a capture session.
type Config struct {
	// NumPorts is the switch's number of ports: port numbers are below it.
	NumPorts int
	// Ports are the ports captured, each its own pcapng interface; none means all.
	Ports []int
	// Count ends the stream after that many frames; 0 never does.
	Count uint64
	// Slots is how many frames the ring holds while the writer is behind, rounded up to
	// a power of two; 0 means DefaultSlots.
	Slots int
	// Active are the ports in use when the session starts: a capture of all ports
	// describes them at once, and any other port when its first frame comes.
	Active []int
	// Describe gives a port's interface name and description; nil names it "portN".
	Describe func(port int) (name, descr string)
	// Application is what the section header names as the program that wrote it.
	Application string
}

// Stats are what a session wrote and lost.
type Stats struct {
	// Frames is how many frames were written.
	Frames uint64
	// Dropped is how many frames the ring had no room for.
	Dropped uint64
}

// Session is one capture: the switch's frame path puts frames in with Frame, and Run
// writes them out as pcapng. Frame never blocks and allocates nothing: a frame that finds
// the ring full is counted as dropped on its port, and the count is written in the next
// packet block of that port's interface (epb_dropcount) and in the interface statistics
// (isb_ifdrop) when the stream ends.
type Session struct {
	cfg     Config
	want    []bool // by port; nil: every port
	ring    *ring
	drops   []atomic.Uint64 // by port
	pending atomic.Bool     // a frame was put since the writer was last woken
	wake    chan struct{}
}

// New makes a session and its ring. It fails for a port outside the switch.
func New(cfg Config) (*Session, error) {
	if cfg.NumPorts <= 0 {
		return nil, fmt.Errorf("capture: %d ports", cfg.NumPorts)
	}
	if cfg.Slots <= 0 {
		cfg.Slots = DefaultSlots
	}
	if cfg.Slots > MaxSlots {
		return nil, fmt.Errorf("capture: ring of %d frames (at most %d)", cfg.Slots, MaxSlots)
	}
	n := 1
	for n < cfg.Slots {
		n <<= 1
	}
	s := &Session{cfg: cfg, ring: newRing(n, Snaplen), drops: make([]atomic.Uint64, cfg.NumPorts),
		wake: make(chan struct{}, 1)}
	if len(cfg.Ports) > 0 {
		s.want = make([]bool, cfg.NumPorts)
		for _, p := range cfg.Ports {
			if p < 0 || p >= cfg.NumPorts {
				return nil, fmt.Errorf("capture: port %d: no such port (0 to %d)", p, cfg.NumPorts-1)
			}
			s.want[p] = true
		}
	}
	return s, nil
}

// Frame records f passing port in direction dir, if the session captures that port. It
// is called on the switch's frame path: it copies f, takes no lock and never waits.
func (s *Session) Frame(port int, dir Direction, f []byte) {
	if uint(port) >= uint(len(s.drops)) || s.want != nil && !s.want[port] {
		return
	}
	if !s.ring.put(time.Now().UnixNano(), port, dir, s.drops[port].Load(), f) {
		s.drops[port].Add(1)
		return
	}
	if !s.pending.Load() {
		s.pending.Store(true)
	}
}

// Wake tells the writer that frames are waiting; the frame path calls it once per batch.
func (s *Session) Wake() {
	if s.pending.Load() && s.pending.Swap(false) {
		select {
		case s.wake <- struct{}{}:
		default: // already told
		}
	}
}

// iface is the writer's account of one pcapng interface.
type iface struct {
	id       uint32
	captured uint64
	dropped  uint64 // the port's frames lost before the last one written
}

// writer is the state of Run.
type writer struct {
	s      *Session
	ng     *ngWriter
	ifaces []*iface // by port
	order  []int    // ports in interface order
	stats  Stats
	start  time.Time
}

// Run writes the pcapng stream to w until stop is closed, Count frames are written or a
// write fails (the reader went away). At the end it writes every interface's statistics.
func (s *Session) Run(w io.Writer, stop <-chan struct{}) (Stats, error) {
	wr := &writer{s: s, ifaces: make([]*iface, s.cfg.NumPorts), start: time.Now(),
		ng: newNgWriter(w, s.cfg.Application)}
	first := s.cfg.Ports
	if len(first) == 0 {
		first = s.cfg.Active
	}
	first = uniquePorts(first, s.cfg.NumPorts)
	if len(first) == 0 {
		// A stream describes an interface before its first packet, as it always has
		// (pcapgo's writer needed one): with no port in use, port 1 (the first a client
		// gets) is as good as any.
		first = []int{min(1, s.cfg.NumPorts-1)}
	}
	for _, p := range first {
		if _, err := wr.iface(p); err != nil {
			return wr.stats, err
		}
	}
	if err := wr.ng.flush(); err != nil {
		return wr.stats, err
	}
	for {
		done, err := wr.drain()
		if err != nil {
			return wr.stats, err
		}
		if done {
			return wr.stats, wr.finish()
		}
		if err := wr.ng.flush(); err != nil {
			return wr.stats, err
		}
		select {
		case <-s.wake:
		case <-stop:
			if _, err := wr.drain(); err != nil {
				return wr.stats, err
			}
			return wr.stats, wr.finish()
		}
	}
}

// uniquePorts sorts ports, without repeats and without those outside the switch.
func uniquePorts(ports []int, n int) []int {
	out := make([]int, 0, len(ports))
	for _, p := range ports {
		if p >= 0 && p < n {
			out = append(out, p)
		}
	}
	sort.Ints(out)
	j := 0
	for i, p := range out {
		if i == 0 || p != out[j-1] {
			out[j] = p
			j++
		}
	}
	return out[:j]
}

// iface gives port's interface, describing it in the stream first if it is new.
func (wr *writer) iface(port int) (*iface, error) {
	if f := wr.ifaces[port]; f != nil {
		return f, nil
	}
	name, descr := fmt.Sprintf("port%d", port), ""
	if wr.s.cfg.Describe != nil {
		name, descr = wr.s.cfg.Describe(port)
	}
	id, err := wr.ng.addInterface(name, descr)
	if err != nil {
		return nil, err
	}
	f := &iface{id: id}
	wr.ifaces[port] = f
	wr.order = append(wr.order, port)
	return f, nil
}

// drain writes the frames waiting in the ring; done is true when Count is reached.
func (wr *writer) drain() (done bool, err error) {
	r := wr.s.ring
	count := wr.s.cfg.Count
	for sl := r.peek(); sl != nil; sl = r.peek() {
		if count > 0 && wr.stats.Frames >= count {
			return true, nil
		}
		port := int(sl.port)
		f, err := wr.iface(port)
		if err != nil {
			return false, err
		}
		var lost uint64
		if sl.lost > f.dropped { // frames lost between this one and the port's last
			lost = sl.lost - f.dropped
			f.dropped = sl.lost
		}
		err = wr.ng.packet(f.id, sl.ts, sl.dir, lost, sl.buf, int(sl.size))
		r.release(sl)
		if err != nil {
			return false, err
		}
		f.captured++
		wr.stats.Frames++
	}
	return count > 0 && wr.stats.Frames >= count, nil
}

// finish writes each interface's statistics (frames seen and dropped since the start)
// and flushes the stream.
func (wr *writer) finish() error {
	for p := range wr.s.drops {
		if wr.s.drops[p].Load() > 0 {
			if _, err := wr.iface(p); err != nil { // a port that lost all its frames
				return err
			}
		}
	}
	now, start := time.Now().UnixNano(), wr.start.UnixNano()
	for _, p := range wr.order {
		f := wr.ifaces[p]
		d := wr.s.drops[p].Load()
		wr.stats.Dropped += d
		if err := wr.ng.stats(f.id, now, start, now, f.captured+d, d); err != nil {
			return err
		}
	}
	return wr.ng.flush()
}
