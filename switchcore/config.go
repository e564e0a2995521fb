package switchcore

import (
	"io"
	"strconv"

	"github.com/vde-go/vde/switchcore/wire"
)

// Config is everything a switch needs to start; the switch applet builds it from the
// command line, tests build it directly.
type Config struct {
	// NumPorts is the number of ports, numbered 0..NumPorts-1 as Debian's switch numbers
	// them; port 0 is reserved for explicit port-0 requests.
	NumPorts int
	// Hub makes every frame go to every port but its source (no learning, no VLANs).
	Hub bool
	// FlowControl says what a reader does with frames for a receiver whose output
	// queue is full: drop them, or wait for room (FlowMode).
	FlowControl FlowMode
	// MAC is the switch's own address (shown by showinfo); zero means random 00:ff:xx:xx:xx:xx.
	MAC [6]byte
	// Priority is the FSTP bridge priority (masked to 16 bits), the first two bytes of
	// the bridge id.
	Priority int
	// FSTP starts the fast spanning tree protocol (-F; fstp/setfstp turns it on and off).
	// It is ignored in hub mode.
	FSTP bool
	// NoLoopGuard starts the switch with its loop guard off (loopguard/set turns it on
	// and off). The guard blocks a port through which the same addresses come back at
	// storm rates, for loops of switches that run no FSTP; it stands aside while FSTP runs.
	NoLoopGuard bool
	// InProcess finds, for Restore, the in-process endpoint a hand-over's state names by
	// its HandoverKey (a vhost-user device its owner restored first); nil: none can be.
	InProcess func(key string) (wire.Endpoint, error)
	// HashSize is the MAC table's bucket count as hash/showinfo reports it (power of two).
	HashSize int
	// Expire is how many seconds a learned MAC address stays without traffic from it
	// (hash/setexpire); 0 means the C switch's 100.
	Expire int
	// CtlDir is the control directory (-s).
	CtlDir string
	// Mode is the mode of the ctl socket and data sockets; ModeSet tells whether -m was given.
	Mode    uint32
	ModeSet bool
	// DirMode is the mode of the control directory; DirModeSet tells whether --dirmode was given.
	DirMode    uint32
	DirModeSet bool
	// Group is the gid owning the directory and sockets, or -1.
	Group int
	// MgmtPath is the management socket (-M), empty for none.
	MgmtPath string
	// MgmtMode is the mode of the mgmt socket and of port-0 data sockets (default 0600).
	MgmtMode uint32
	// MgmtGroup is the gid of the mgmt socket, or -1.
	MgmtGroup int
	// Version is printed in the management banner ("VDE switch V.<Version>").
	Version string
	// Log receives one line per event worth logging (no trailing newline); nil discards.
	Log func(format string, args ...any)
	// Stdout is where an rc-less console writes when needed; unused by the core itself.
	Stdout io.Writer
}

// FlowMode is what a reader does with frames for a receiver whose output queue is full.
// Waiting slows the sender to the receiver's pace, as between two local sockets, and
// loses nothing while the receiver keeps reading; a receiver that takes nothing for
// stallWait, a switch whose queue budget is spent, or a wait that would close a circle of
// readers each waiting for the next one's client (waitCycle) still drops. Dropping is
// what the C switch does: the frames are counted, and nobody waits for anybody.
type FlowMode int

const (
	// FlowAuto (the default) waits only when the reader's whole batch is for that one
	// receiver (endpoint): no frame of that batch for another port waits, and a sender
	// that feeds a receiver slower than itself loses nothing and stops spending CPU on
	// frames that would be thrown away. While the reader waits, the sender's next frames,
	// to any port, wait in its socket: a sender that streams to a slow receiver is paced
	// by it for all its traffic, which the C switch never does. A batch that also holds
	// frames for other endpoints drops what does not fit, as in C.
	FlowAuto FlowMode = iota
	// FlowAlways (--flowcontrol) waits for any full receiver. The price is head-of-line
	// blocking: the same sender's frames to other ports wait too.
	FlowAlways
	// FlowNever (--noflowcontrol) drops at once, as the C switch does.
	FlowNever
)

// String names the mode after its option ("auto" for the default).
func (m FlowMode) String() string {
	switch m {
	case FlowAuto:
		return "auto"
	case FlowAlways:
		return "flowcontrol"
	case FlowNever:
		return "noflowcontrol"
	}
	return "FlowMode(" + strconv.Itoa(int(m)) + ")"
}
