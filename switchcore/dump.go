package switchcore

import (
	"strconv"
	"sync/atomic"
)

// dump shows every frame in hex to the sessions that subscribed to dump/packetin or
// dump/packetout (debug/add), as VDE2's dump.so does.

var (
	catDumpIn  = &debugCat{"dump/packetin", 0101, "dump incoming packet"}
	catDumpOut = &debugCat{"dump/packetout", 0102, "dump outgoing packet"}
)

var dumpPlugin = &pluginDef{
	name: "dump",
	help: "dump packets",
	commands: []command{
		menu("dump", "DUMP Packets"),
		{path: "dump/active", syntax: "0/1", help: "start dumping data", run: cmdDumpActive},
	},
	cats:  []*debugCat{catDumpIn, catDumpOut},
	start: func(s *Switch) pluginState { return &dumpState{s: s} },
}

// dumpState is a loaded dump plugin.
type dumpState struct {
	s      *Switch
	active atomic.Bool
}

func (d *dumpState) stop() { d.active.Store(false) }

// frame sends "Pkt: Port NNNN len=NNNN xx xx ... " to the sessions subscribed to cat.
// Nothing is formatted while nobody is subscribed to any category.
func (d *dumpState) frame(cat *debugCat, port int, f []byte) {
	if d.s.debugSubs.Load() == 0 || !d.s.anySubscribed(cat) {
		return
	}
	const hexdigits = "0123456789abcdef"
	b := make([]byte, 0, 24+3*len(f))
	b = append(b, "Pkt: Port "...)
	b = appendPadded(b, port, 4)
	b = append(b, " len="...)
	b = appendPadded(b, len(f), 4)
	b = append(b, ' ')
	for _, x := range f {
		b = append(b, hexdigits[x>>4], hexdigits[x&15], ' ')
	}
	d.s.event(cat, string(b))
}

// appendPadded appends n in decimal, zero-padded to width (printf's %0Nd).
func appendPadded(b []byte, n, width int) []byte {
	s := strconv.Itoa(n)
	for i := len(s); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, s...)
}

// cmdDumpActive starts or stops the dump; it always succeeds, as in C.
func cmdDumpActive(c *cmdCtx) error {
	c.s.plugins.mu.Lock()
	d := c.s.plugins.dump
	if d != nil {
		d.active.Store(atoi(c.arg) != 0)
		c.s.plugins.retapLocked()
	}
	c.s.plugins.mu.Unlock()
	return nil
}

// anySubscribed reports whether some session subscribed to cat.
func (s *Switch) anySubscribed(cat *debugCat) bool {
	s.sessMu.Lock()
	defer s.sessMu.Unlock()
	for ss := range s.sessions {
		if ss.subs[cat] {
			return true
		}
	}
	return false
}
