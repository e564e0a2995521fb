// Package tap opens Linux TAP (and TUN) devices through /dev/net/tun as frame endpoints,
// sets their owner, group and persistence, and manages their link state and addresses
// through netlink.
//
// What the C tools do with the link, observed here with Debian's vde2 2.3.2 and vdeplug4
// (`vde_switch -t tapX`, `vde_plug vde://CTL tap://tapP`, `vde_plug2tap -s CTL tapQ`, each
// followed by `ip -d link show`): they only open the device with TUNSETIFF
// (IFF_TAP|IFF_NO_PI). The interface is left DOWN, with no address, not persistent
// ("persist off"), owned by nobody in particular, with the kernel's random MAC; it
// disappears when the tool closes it. Open does the same, and the link helpers in link.go
// are for callers that want more (ifupdown, tests).
//
// A TAP is created in the network namespace of the thread that opens it, and stays there;
// the netlink helpers also act in the calling thread's namespace.
package tap

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/vde-go/vde/switchcore/wire"
)

// CloneDevice is the TUN/TAP clone device.
const CloneDevice = "/dev/net/tun"

// MaxNameLen is the longest interface name the kernel takes (IFNAMSIZ - 1).
const MaxNameLen = unix.IFNAMSIZ - 1

// ErrNameTooLong is returned for names longer than MaxNameLen. (The C tools cut such a
// name to 15 bytes silently and then create a device of another name.)
var ErrNameTooLong = fmt.Errorf("interface name longer than %d bytes", MaxNameLen)

// Config says which device to open and what to set on it.
type Config struct {
	// Name is the interface name. Empty, or a pattern with "%d", lets the kernel pick
	// (tap0, tap1, ...); Device.Name tells which it picked. An existing persistent
	// device of that name is attached to, a missing one created.
	Name string
	// TUN opens a layer-3 TUN device (IFF_TUN) instead of a TAP (vde_tunctl -n).
	TUN bool
	// Owner is the uid allowed to attach to the device (TUNSETOWNER), when HasOwner.
	Owner    int
	HasOwner bool
	// Group is the gid allowed to attach to the device (TUNSETGROUP), when HasGroup.
	Group    int
	HasGroup bool
	// Persist keeps the device after the last descriptor closes (TUNSETPERSIST 1).
	Persist bool
	// Clone is the clone device to open; empty means CloneDevice (vde_tunctl -f).
	Clone string
	// VnetHdr opens a TAP with IFF_VNET_HDR and offloads on (TUNSETOFFLOAD: checksums,
	// TSO for IPv4 and IPv6), as QEMU opens one for a virtio NIC: WriteBatch hands the
	// kernel a run of consecutive TCP segments of one flow as one GSO packet, and the
	// kernel hands ReadBatch a TCP send of up to 64 KiB as one, which it cuts into
	// segments (gso.go). Frames read and written are the same either way. Ignored for a
	// TUN.
	VnetHdr bool
}

// Error is a failed step on a named device.
type Error struct {
	// Name is the interface name as given (or as the kernel picked it, after TUNSETIFF).
	Name string
	// Op is the step that failed: "open /dev/net/tun", "TUNSETIFF", "TUNSETOWNER",
	// "read", "write", "link up", ...
	Op string
	// Err is the cause, usually a syscall.Errno.
	Err error
}

func (e *Error) Error() string { return fmt.Sprintf("tap %s: %s: %v", e.Name, e.Op, e.Err) }

func (e *Error) Unwrap() error { return e.Err }

// Device is an open TAP (or TUN) device: a wire.Endpoint whose frames are the device's
// packets, one read() per packet (a GSO packet is cut into frames) and one write() per
// frame or run of merged TCP segments, waiting through the Go runtime poller.
type Device struct {
	file  *os.File
	rc    syscall.RawConn
	fd    int
	name  string
	vnet  bool // every packet on fd has a virtio_net_hdr in front
	vnetR [vnetHdrLen]byte

	dropped  atomic.Uint64
	merged   atomic.Uint64 // frames that went to the kernel inside a merged packet
	gsoReads atomic.Uint64 // GSO packets read and cut into frames

	// Read scratch, used by the single reader; the closure is built once so that a
	// read allocates nothing.
	rframes [][]byte
	rsizes  []int
	rn      int
	rerr    error
	readFn  func(fd uintptr) bool
	riov    [2]unix.Iovec
	rbuf    []byte         // with offloads: where packets are read, up to 64 KiB
	roffl   []wire.Offload // ReadOffload's: packets are read whole into the caller's buffers
	cut     gsoCutter      // with offloads: the GSO packet being cut into frames

	wmu     sync.Mutex // serialises writers sharing the write scratch
	wframes [][]byte
	wsent   int
	werr    error
	writeFn func(fd uintptr) bool
	wparsed parsed
	wiov    [2 + maxGSOSegs]unix.Iovec
	wvnet   [vnetHdrLen]byte // a merged packet's virtio_net_hdr
	wplain  [vnetHdrLen]byte // all zero: a frame as it is
	whdr    [maxGSOHdr]byte
}

var _ wire.Endpoint = (*Device)(nil)

// Open opens or creates the TAP name as the C tools do (IFF_TAP|IFF_NO_PI, nothing set
// on the link), and with IFF_VNET_HDR, which only `ip -d link` shows ("vnet_hdr on"):
// it lets writes merge TCP segments.
func Open(name string) (*Device, error) { return OpenConfig(Config{Name: name, VnetHdr: true}) }

// OpenConfig opens or creates a device as c says. The descriptor is non-blocking and
// close-on-exec.
func OpenConfig(c Config) (*Device, error) {
	if len(c.Name) > MaxNameLen {
		return nil, &Error{Name: c.Name, Op: "name", Err: ErrNameTooLong}
	}
	clone := c.Clone
	if clone == "" {
		clone = CloneDevice
	}
	fd, err := unix.Open(clone, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &Error{Name: c.Name, Op: "open " + clone, Err: err}
	}
	name, err := setup(fd, c)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	return newDevice(fd, name, c.VnetHdr && !c.TUN)
}

// newDevice wraps fd, a non-blocking descriptor set up for the device name, which it owns
// from now on (it is closed if newDevice fails).
func newDevice(fd int, name string, vnet bool) (*Device, error) {
	f := os.NewFile(uintptr(fd), name)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, &Error{Name: name, Op: "poller", Err: err}
	}
	d := &Device{file: f, rc: rc, fd: fd, name: name, vnet: vnet}
	if d.vnet {
		d.rbuf = make([]byte, readBufLen)
	}
	d.readFn = d.read
	d.writeFn = d.write
	return d, nil
}

// setup attaches fd to the device and applies c; it returns the device's name.
func setup(fd int, c Config) (string, error) {
	ifr, err := unix.NewIfreq(c.Name)
	if err != nil {
		return "", &Error{Name: c.Name, Op: "name", Err: err}
	}
	flags := uint16(unix.IFF_TAP | unix.IFF_NO_PI)
	if c.TUN {
		flags = unix.IFF_TUN | unix.IFF_NO_PI
	} else if c.VnetHdr {
		flags |= unix.IFF_VNET_HDR
	}
	ifr.SetUint16(flags)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		return "", &Error{Name: c.Name, Op: "TUNSETIFF", Err: err}
	}
	name := ifr.Name()
	// The header's size and byte order and the offloads are the device's, not this
	// descriptor's: a persistent TAP keeps what its last user (QEMU, an earlier switch)
	// set, so they are set afresh either way, as QEMU does.
	offloads := 0
	if c.VnetHdr && !c.TUN {
		if err := unix.IoctlSetPointerInt(fd, unix.TUNSETVNETHDRSZ, vnetHdrLen); err != nil {
			return "", &Error{Name: name, Op: fmt.Sprintf("TUNSETVNETHDRSZ %d", vnetHdrLen), Err: err}
		}
		// Native byte order: neither cross-endian flag (QEMU sets little endian for
		// virtio 1.0, which a big-endian host would keep; EINVAL where the kernel has none).
		for _, op := range []struct {
			req  uint
			name string
		}{{unix.TUNSETVNETBE, "TUNSETVNETBE 0"}, {unix.TUNSETVNETLE, "TUNSETVNETLE 0"}} {
			if err := unix.IoctlSetPointerInt(fd, op.req, 0); err != nil && err != unix.EINVAL {
				return "", &Error{Name: name, Op: op.name, Err: err}
			}
		}
		offloads = unix.TUN_F_CSUM | unix.TUN_F_TSO4 | unix.TUN_F_TSO6 | unix.TUN_F_TSO_ECN
	}
	if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, offloads); err != nil {
		return "", &Error{Name: name, Op: fmt.Sprintf("TUNSETOFFLOAD %#x", offloads), Err: err}
	}
	if c.HasOwner {
		if err := unix.IoctlSetInt(fd, unix.TUNSETOWNER, c.Owner); err != nil {
			return "", &Error{Name: name, Op: fmt.Sprintf("TUNSETOWNER %d", c.Owner), Err: err}
		}
	}
	if c.HasGroup {
		if err := unix.IoctlSetInt(fd, unix.TUNSETGROUP, c.Group); err != nil {
			return "", &Error{Name: name, Op: fmt.Sprintf("TUNSETGROUP %d", c.Group), Err: err}
		}
	}
	if c.Persist {
		if err := unix.IoctlSetInt(fd, unix.TUNSETPERSIST, 1); err != nil {
			return "", &Error{Name: name, Op: "TUNSETPERSIST 1", Err: err}
		}
	}
	return name, nil
}

// Name is the interface name (the kernel's pick if Config.Name was empty or a pattern).
func (d *Device) Name() string { return d.name }

// FD is the device's descriptor number (the C switch names the TAP endpoint after it).
// Do not change its mode; the Device reads and writes it through the runtime poller.
func (d *Device) FD() int { return d.fd }

// Dropped counts frames that could not be written (link down, queue full, not a valid
// frame for the device) and received frames too large for the caller's buffer.
func (d *Device) Dropped() uint64 { return d.dropped.Load() }

// ReadBatch implements wire.Endpoint. It blocks until at least one frame is there, then
// takes every frame already queued, up to len(frames), one read() per packet (a GSO
// packet gives many frames, and what does not fit comes first in the next call). Only
// one goroutine may read at a time.
func (d *Device) ReadBatch(frames [][]byte, sizes []int) (int, error) {
	if len(frames) == 0 {
		return 0, nil
	}
	d.rframes, d.rsizes, d.rn, d.rerr = frames, sizes, 0, nil
	for d.cut.pending() && d.rn < len(frames) {
		d.emitCut()
	}
	if d.rn > 0 {
		// The rest of a GSO packet; reading more waits for the next call.
		n := d.rn
		d.rframes, d.rsizes = nil, nil
		return n, nil
	}
	err := d.rc.Read(d.readFn)
	n, rerr := d.rn, d.rerr
	d.rframes, d.rsizes = nil, nil
	if err != nil {
		return 0, &Error{Name: d.name, Op: "read", Err: err}
	}
	if n == 0 && rerr != nil {
		return 0, &Error{Name: d.name, Op: "read", Err: rerr}
	}
	return n, nil
}

// read is the RawConn.Read callback: frames until EAGAIN or the batch is full. Returning
// false asks the poller to wait for readability.
func (d *Device) read(fd uintptr) bool {
	for d.rn < len(d.rframes) {
		if d.cut.pending() {
			d.emitCut()
			continue
		}
		var n int
		var err error
		if d.roffl != nil {
			n, err = d.readWhole(int(fd), d.rframes[d.rn], &d.roffl[d.rn])
		} else {
			n, err = d.readOne(int(fd), d.rframes[d.rn])
		}
		switch err {
		case nil:
		case unix.EAGAIN:
			return d.rn > 0
		case unix.EINTR:
			continue
		case unix.EFAULT, unix.EINVAL, unix.EMSGSIZE:
			// The kernel refused this read, and the packet is gone.
			d.dropped.Add(1)
			continue
		default:
			if d.rn == 0 {
				d.rerr = err // EBADFD: the interface was deleted
			}
			return true
		}
		if n == 0 {
			if d.rn == 0 {
				d.rerr = errors.New("end of file")
			}
			return true
		}
		if n == gsoRead {
			d.gsoReads.Add(1)
			continue // cut at the top of the loop
		}
		if n < 0 {
			d.dropped.Add(1) // a packet that is not what its virtio_net_hdr says (readOne)
			continue
		}
		d.rsizes[d.rn] = n
		d.rn++
	}
	return true
}

// emitCut puts the next segment of the GSO packet being cut into the batch; the reader's
// frames are wire.MaxFrame long, or the packet would not have been taken (readOne).
func (d *Device) emitCut() {
	f := d.rframes[d.rn]
	if len(f) < d.cut.data+d.cut.mss {
		d.cut.pkt = nil // a caller with short buffers: drop the rest
		d.dropped.Add(1)
		return
	}
	d.rsizes[d.rn] = d.cut.next(f)
	d.rn++
}

// readBufLen holds the largest GSO packet a TAP hands over (the kernel keeps them under
// 64 KiB): 64 KiB of IPv6 payload behind its header, an Ethernet header and a VLAN tag.
const readBufLen = maxGSOLen + ipv6HdrLen + ethHdrLen + 4

// gsoRead is readOne's answer for a GSO packet now in d.cut.
const gsoRead = -2

// readOne reads one packet into buf and returns its length. With offloads it reads into
// the device's buffer behind the virtio_net_hdr (readv): a GSO packet is handed to d.cut
// (gsoRead), any other is copied to buf, its checksum completed if the kernel left it
// to the device. n < 0 otherwise: a packet to drop.
func (d *Device) readOne(fd int, buf []byte) (int, error) {
	if !d.vnet {
		n, err := unix.Read(fd, buf)
		if n > len(buf) {
			return -1, nil // tun cuts a packet to the buffer but returns its whole length
		}
		return n, err
	}
	n, err := d.readVnet(fd, d.rbuf)
	if n <= 0 {
		return n, err
	}
	pkt := d.rbuf[:n]
	h := parseVnetHdr(d.vnetR[:])
	if h.gsoType != vnetGSONone {
		if !d.cut.start(pkt, h, wire.MaxFrame) {
			return -1, nil
		}
		return gsoRead, nil
	}
	if n > len(buf) || h.flags&vnetFlagNeedsCsum != 0 && !completeChecksum(pkt, h) {
		return -1, nil
	}
	return copy(buf, pkt), nil
}

// WriteBatch implements wire.Endpoint: one write() per frame, or per run of TCP segments
// merged into one GSO packet (Config.VnetHdr), never waiting. Frames the
// device refuses (EAGAIN, EIO while the link is down, EINVAL for a runt) are dropped and
// counted; n is how many it took. The error is set only when the device itself is gone
// or closed. Several goroutines may write at once.
func (d *Device) WriteBatch(frames [][]byte) (int, error) {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	d.wframes, d.wsent, d.werr = frames, 0, nil
	err := d.rc.Write(d.writeFn)
	sent, werr := d.wsent, d.werr
	d.wframes = nil
	if err == nil {
		err = werr
	}
	if err != nil {
		return sent, &Error{Name: d.name, Op: "write", Err: err}
	}
	return sent, nil
}

// write is the RawConn.Write callback; it always reports done, so it never waits.
func (d *Device) write(fd uintptr) bool {
	if d.vnet {
		d.wparsed.reset(len(d.wframes))
	}
	single := 0 // frames before this index go one by one: their merged packet was refused
	for i := 0; i < len(d.wframes); {
		r := run{start: i, n: 1}
		if d.vnet && i >= single {
			r = nextRun(d.wframes, i, &d.wparsed)
		}
		err := d.writeRun(int(fd), r)
		if r.n > 1 && (err == unix.EINVAL || err == unix.EMSGSIZE || err == unix.ENOMEM || err == unix.ENOBUFS) {
			// The kernel refused the merged packet, or had no room for 64 KiB: give
			// it the frames one by one.
			single = i + r.n
			continue
		}
		switch err {
		case nil:
			d.wsent += r.n
			if r.n > 1 {
				d.merged.Add(uint64(r.n))
			}
		case unix.EAGAIN, unix.ENOBUFS, unix.ENOMEM:
			// Full: the rest would fail too.
			d.dropped.Add(uint64(len(d.wframes) - i))
			return true
		case unix.EIO, unix.EINVAL, unix.EMSGSIZE:
			d.dropped.Add(uint64(r.n)) // link down, or a frame the device does not take
		default:
			d.dropped.Add(uint64(len(d.wframes) - i))
			d.werr = err
			return true
		}
		i += r.n
	}
	return true
}

// writeRun writes the frames of r as one packet: a frame as it is (behind an empty
// virtio_net_hdr if the device wants one), or a merged TCP packet whose payloads go
// straight from the frames (writev).
func (d *Device) writeRun(fd int, r run) error {
	f := d.wframes[r.start]
	if !d.vnet {
		for {
			_, err := unix.Write(fd, f)
			if err != unix.EINTR {
				return err
			}
		}
	}
	iov := d.wiov[:0]
	if r.n == 1 {
		iov = append(iov, iovec(d.wplain[:]))
		if len(f) > 0 {
			iov = append(iov, iovec(f))
		}
	} else {
		first := d.wparsed.segs[r.start]
		hl := mergedHeader(d.whdr[:], d.wvnet[:], d.wframes[r.start], r, first)
		iov = append(iov, iovec(d.wvnet[:]), iovec(d.whdr[:hl]))
		for j := r.start; j < r.start+r.n; j++ {
			s := d.wparsed.segs[j]
			iov = append(iov, iovec(d.wframes[j][s.data:s.end]))
		}
	}
	var err error
	for {
		_, _, e := unix.Syscall(unix.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
		if e != unix.EINTR {
			if e != 0 {
				err = e
			}
			break
		}
	}
	clear(iov) // hold no frame past the call
	return err
}

func iovec(b []byte) unix.Iovec {
	v := unix.Iovec{Base: &b[0]}
	v.SetLen(len(b))
	return v
}

// SetPersist sets or clears the device's persist flag (TUNSETPERSIST).
func (d *Device) SetPersist(on bool) error {
	v := 0
	if on {
		v = 1
	}
	return d.ioctlInt(unix.TUNSETPERSIST, v, fmt.Sprintf("TUNSETPERSIST %d", v))
}

// SetOwner sets the uid allowed to attach to the device (TUNSETOWNER). The kernel has
// no way to unset it again (-1 is refused).
func (d *Device) SetOwner(uid int) error {
	return d.ioctlInt(unix.TUNSETOWNER, uid, fmt.Sprintf("TUNSETOWNER %d", uid))
}

// SetGroup sets the gid allowed to attach to the device (TUNSETGROUP); like the owner,
// it cannot be unset.
func (d *Device) SetGroup(gid int) error {
	return d.ioctlInt(unix.TUNSETGROUP, gid, fmt.Sprintf("TUNSETGROUP %d", gid))
}

func (d *Device) ioctlInt(req uint, v int, op string) error {
	var err error
	if cerr := d.rc.Control(func(fd uintptr) { err = unix.IoctlSetInt(int(fd), req, v) }); cerr != nil {
		err = cerr
	}
	if err != nil {
		return &Error{Name: d.name, Op: op, Err: err}
	}
	return nil
}

// Close closes the descriptor; a blocked ReadBatch returns an error. A device that is not
// persistent disappears with its last descriptor.
func (d *Device) Close() error {
	if d.vnet {
		// A persistent TAP would hand its next user, who may not expect them (the C
		// tools), GSO packets and checksums left to the device.
		d.rc.Control(func(fd uintptr) { unix.IoctlSetInt(int(fd), unix.TUNSETOFFLOAD, 0) })
	}
	return d.file.Close()
}

// Create makes (or updates) a persistent device as c says and closes it again, as
// `vde_tunctl -t NAME` does; it returns the device's name.
func Create(c Config) (string, error) {
	c.Persist = true
	d, err := OpenConfig(c)
	if err != nil {
		return "", err
	}
	return d.name, d.Close()
}

// Release clears the persist flag of the device name, so that it disappears once nobody
// has it open (`vde_tunctl -d NAME`). Set c.TUN for a TUN device; c.Name is ignored.
func Release(name string, c Config) error {
	c.Name, c.Persist, c.HasOwner, c.HasGroup = name, false, false, false
	d, err := OpenConfig(c)
	if err != nil {
		return err
	}
	if err := d.SetPersist(false); err != nil {
		d.Close()
		return err
	}
	return d.Close()
}
