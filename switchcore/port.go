package switchcore

import (
	"net"
	"sync/atomic"

	"github.com/vde-go/vde/switchcore/wire"
)

// Port is a numbered switch port. It outlives its endpoints and keeps its configuration
// (VLANs, access control, counters) while inactive, as the C switch does. Configuration
// fields are guarded by Switch.mu; the frame path reads them only through a view.
type Port struct {
	num         int
	untagged    uint16  // untagged VLAN, NoVLAN for none
	tagged      vlanSet // tagged memberships
	allocatable bool    // may be handed to clients asking for any port
	user, group int     // access control, -1 = unrestricted
	curUser     int     // uid of the attached endpoints, -1 when inactive
	eps         []*endpoint

	counters portCounters
}

// portCounters are updated from many reader goroutines.
type portCounters struct {
	inPkts, inBytes   atomic.Uint64
	outPkts, outBytes atomic.Uint64
	drops             atomic.Uint64 // frames a full or gone receiver did not take
	bad               atomic.Uint64 // frames dropped on input: too short, too long, wrong VLAN
}

func (c *portCounters) reset() {
	c.inPkts.Store(0)
	c.inBytes.Store(0)
	c.outPkts.Store(0)
	c.outBytes.Store(0)
	c.drops.Store(0)
	c.bad.Store(0)
}

func newPort(num int) *Port {
	return &Port{num: num, allocatable: true, user: -1, group: -1, curUser: -1}
}

func (p *Port) active() bool { return len(p.eps) > 0 }

// member reports whether the port belongs to vlan, tagged or untagged.
func (p *Port) member(vlan uint16) bool {
	return p.untagged == vlan || p.tagged.has(vlan)
}

// endpoint is one attached client (control connection + data socket) of a port.
type endpoint struct {
	id       int // the switch-side control fd, as port/epclose and port/print show it
	port     *Port
	module   string
	descr    string
	ctl      *net.UnixConn  // nil for endpoints attached in-process (TAPs)
	data     wire.Endpoint  // the frames
	dgram    *wire.Datagram // data as a datagram socket, for batched zero-copy sends; or nil
	dataPath string         // NNN.F, unlinked on close
	queue    *outQueue      // frames waiting for a full dgram socket; nil for others
	slot     int            // index into readers' per-destination batches
	closed   atomic.Bool
	errLog   atomic.Bool // a send error was logged already
	// waitsFor is the endpoint whose full queue this endpoint's reader waits for room in,
	// or nil (reader.waitCycle).
	waitsFor atomic.Pointer[endpoint]
}
