package switchcore

import "io"

// Config is everything a switch needs to start; the switch applet builds it from the
// command line, tests build it directly.
type Config struct {
	// NumPorts is the number of ports, numbered 0..NumPorts-1 as Debian's switch numbers
	// them; port 0 is reserved for explicit port-0 requests.
	NumPorts int
	// Hub makes every frame go to every port but its source (no learning, no VLANs).
	Hub bool
	// FlowControl (--flowcontrol, ours only) makes a reader that finds a receiver's
	// output queue full wait for room while the receiver keeps reading, instead of
	// dropping: its sender is slowed to the receiver's pace, as between two local
	// sockets, and loses nothing while the receiver keeps reading (a receiver that takes
	// nothing for stallWait, or a switch whose queue budget is spent, still drops). The price is head-of-line blocking: the same sender's
	// frames to other ports wait too, and two clients that block in send (libvdeplug,
	// so QEMU) and flood each other can hold each other up to stallWait each time. Off,
	// as in the C switch: a full queue drops and counts, and no port ever waits for another.
	FlowControl bool
	// MAC is the switch's own address (shown by showinfo); zero means random 00:ff:xx:xx:xx:xx.
	MAC [6]byte
	// Priority is the FSTP bridge priority (masked to 16 bits); kept for fstp/showinfo.
	Priority int
	// HashSize is the MAC table's bucket count as hash/showinfo reports it (power of two).
	HashSize int
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
