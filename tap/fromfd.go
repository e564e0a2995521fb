package tap

// A TAP descriptor handed over by another process (vde_switch's upgrade in place, issue 22):
// the device is open and set up already; what is left is to check it and to wrap it.

import (
	"fmt"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// FromFD makes a Device of fd, a descriptor of the TAP (or TUN) name that another Device
// opened (and set up: OpenConfig) and passed on. It does not attach again (no TUNSETIFF):
// it asks the descriptor which device it is on (TUNGETIFF), which must be name, with a
// virtio_net_hdr in front of every packet if and only if vnetHdr, and sets the offloads
// that go with it afresh (a Device closed since may have turned them off). The descriptor
// is made non-blocking for the runtime poller and close-on-exec; the Device owns it from
// now on, also when FromFD fails (it is closed then).
func FromFD(fd int, name string, vnetHdr bool) (*Device, error) {
	vnet, err := checkFD(fd, name, vnetHdr)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	return newDevice(fd, name, vnet)
}

// checkFD checks that fd is on the device name and sets it up for FromFD; it reports
// whether packets have a virtio_net_hdr.
func checkFD(fd int, name string, vnetHdr bool) (bool, error) {
	ifr, err := unix.NewIfreq("")
	if err != nil {
		return false, &Error{Name: name, Op: "TUNGETIFF", Err: err}
	}
	if err := unix.IoctlIfreq(fd, unix.TUNGETIFF, ifr); err != nil {
		return false, &Error{Name: name, Op: fmt.Sprintf("TUNGETIFF on descriptor %d", fd), Err: err}
	}
	if got := ifr.Name(); got != name {
		return false, &Error{Name: name, Op: "TUNGETIFF", Err: fmt.Errorf("descriptor %d is on %q", fd, got)}
	}
	flags := ifr.Uint16()
	tun := flags&unix.IFF_TUN != 0
	hasVnet := flags&unix.IFF_VNET_HDR != 0
	if hasVnet != (vnetHdr && !tun) {
		return false, &Error{Name: name, Op: "TUNGETIFF", Err: fmt.Errorf("vnet_hdr is %v, want %v", hasVnet, vnetHdr && !tun)}
	}
	if hasVnet {
		sz, err := unix.IoctlGetInt(fd, unix.TUNGETVNETHDRSZ)
		if err != nil {
			return false, &Error{Name: name, Op: "TUNGETVNETHDRSZ", Err: err}
		}
		if sz != vnetHdrLen {
			return false, &Error{Name: name, Op: "TUNGETVNETHDRSZ", Err: fmt.Errorf("header of %d bytes, want %d", sz, vnetHdrLen)}
		}
		offloads := unix.TUN_F_CSUM | unix.TUN_F_TSO4 | unix.TUN_F_TSO6 | unix.TUN_F_TSO_ECN
		if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, offloads); err != nil {
			return false, &Error{Name: name, Op: fmt.Sprintf("TUNSETOFFLOAD %#x", offloads), Err: err}
		}
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		return false, &Error{Name: name, Op: "non-blocking", Err: err}
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC); err != nil {
		return false, &Error{Name: name, Op: "close-on-exec", Err: err}
	}
	return hasVnet, nil
}

// VnetHdr says every packet on the descriptor has a virtio_net_hdr in front (what FromFD
// takes to use the descriptor again).
func (d *Device) VnetHdr() bool { return d.vnet }

// SyscallConn is the descriptor's raw connection, to duplicate it for a hand-over. Do not
// change its mode.
func (d *Device) SyscallConn() (syscall.RawConn, error) { return d.rc, nil }

// SetReadDeadline makes a blocked or later ReadBatch (or ReadOffload) return an error
// once t passes (os.ErrDeadlineExceeded within it); the zero time clears it. A frame
// already read, or the rest of a GSO packet being cut, is returned before that error.
func (d *Device) SetReadDeadline(t time.Time) error { return d.file.SetReadDeadline(t) }

// CloseHandedOver closes this Device's descriptor only, leaving the device as it is set
// up (offloads on) for the process that took a duplicate of it (FromFD); Close would turn
// the offloads off under it.
func (d *Device) CloseHandedOver() error { return d.file.Close() }
