// Package packet attaches to an existing network interface as a frame endpoint, through
// AF_PACKET sockets: what vde_pcapplug does with libpcap, without libpcap (the binary
// stays static) and in both directions.
//
// Two sockets are bound to the interface. The reading one takes every frame the
// interface receives (ETH_P_ALL), in batches (recvmmsg), and none that leave it
// (PACKET_IGNORE_OUTGOING, or a socket filter on kernels before 4.20): not the frames
// this endpoint writes, and not the host's own traffic on the interface, which is not on
// the wire behind it. It puts the interface in promiscuous mode (PACKET_MR_PROMISC), a
// membership the kernel drops when the socket closes, however the process ends.
//
// What the kernel hands a packet socket is an skb as the stack has it, not as a wire
// would carry it: a local sender or a veth peer's TCP send of up to 64 KiB in one packet
// (GSO), checksums left to a device, and an 802.1Q tag taken out into metadata. The
// reader asks for a virtio_net_hdr before each packet (PACKET_VNET_HDR) and the tag as
// auxiliary data (PACKET_AUXDATA), and turns each packet into the frames a NIC would
// send: the tag put back, checksums completed, GSO packets cut into segments
// (tap.Segmenter). The writing socket (protocol 0: it receives nothing) sends frames as
// they are, in batches (sendmmsg); a third one, with PACKET_VNET_HDR, sends each run of
// consecutive TCP segments of one flow as one GSO packet (tap.Merger), which the
// interface's TSO or the kernel cuts again, and which a veth hands its peer whole.
package packet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/vde-go/vde/switchcore/wire"
	"github.com/vde-go/vde/tap"
)

// Errors of Open and ReadBatch, inside an *Error.
var (
	// ErrNotEthernet: the interface does not carry Ethernet frames (a TUN, a tunnel).
	ErrNotEthernet = errors.New("not an Ethernet interface")
	// ErrGone: the interface was deleted (or left the namespace) while attached.
	ErrGone = errors.New("interface is gone")
)

// Error is a failed step on a named interface.
type Error struct {
	// Interface is the interface's name.
	Interface string
	// Op is the step that failed: "socket", "bind", "PACKET_VNET_HDR", "read", ...
	Op string
	// Err is the cause: a syscall.Errno, ErrNotEthernet or ErrGone.
	Err error
}

func (e *Error) Error() string { return fmt.Sprintf("packet %s: %s: %v", e.Interface, e.Op, e.Err) }

func (e *Error) Unwrap() error { return e.Err }

// Config says which interface to attach to.
type Config struct {
	// Interface is the interface's name in the calling thread's network namespace.
	Interface string
	// NoPromisc leaves the interface out of promiscuous mode: only frames to its own
	// address, broadcast and the multicast groups it joined come in.
	NoPromisc bool
	// rxFilter, for tests: drop outgoing frames with the socket filter even where
	// PACKET_IGNORE_OUTGOING works.
	rxFilter bool
}

// ethHdrLen is an Ethernet header's length, which a link's MTU does not count.
const ethHdrLen = 14

// Geometry of the read side: packets per recvmmsg, and each packet's buffer, which holds
// the largest GSO packet the kernel builds (64 KiB of IP) behind a 4-byte headroom for
// the VLAN tag put back.
const (
	rxSlots  = 16
	tagLen   = 4
	rxPktMax = 65535 + 14 + 4
	rxBufLen = tagLen + rxPktMax
	auxSpace = (unix.SizeofCmsghdr + sizeofAuxdata + 7) &^ 7
	// sizeofAuxdata is sizeof(struct tpacket_auxdata).
	sizeofAuxdata = int(unsafe.Sizeof(unix.TpacketAuxdata{}))
	downPoll      = 100 * time.Millisecond
	rcvBufLen     = 4 << 20
)

// Endpoint is an interface attached through packet sockets: a wire.Endpoint whose frames
// are what the interface receives and what it is to send.
type Endpoint struct {
	name    string
	ifindex int
	rx, tx  *os.File
	rxrc    syscall.RawConn
	txrc    syscall.RawConn
	closed  atomic.Bool

	dropped atomic.Uint64

	// Read side, owned by the one reader.
	hdrs   []unix.Mmsghdr
	iovs   []unix.Iovec // two per packet: the virtio_net_hdr, the packet
	vnet   [][tap.VnetHdrLen]byte
	bufs   [][]byte
	aux    [][auxSpace]byte
	cnt, n int // packets the last recvmmsg asked for and got
	next   int // the next of them to turn into frames
	errno  syscall.Errno
	readFn func(fd uintptr) bool
	seg    tap.Segmenter
	failed error // what ended reading for good (ErrGone)

	wmu sync.Mutex
	txb *wire.Batch
	// Merged TCP segments go out on a third socket, with PACKET_VNET_HDR, as one GSO
	// packet each (nil if the kernel has no such option: no merging).
	gso      *os.File
	gsorc    syscall.RawConn
	merger   tap.Merger
	mvnet    [tap.VnetHdrLen]byte
	mhdr     [tap.MaxMergedHdr]byte
	miov     [2 + tap.MaxMergedSegs]unix.Iovec
	mn       int // iovecs in use
	merrno   syscall.Errno
	mwriteFn func(fd uintptr) bool
	merged   atomic.Uint64
	// mtu is the link's MTU when the endpoint opened: a segment longer than it goes
	// alone (and is dropped, as the kernel checks frames but not GSO segments).
	mtu int
}

var _ wire.Endpoint = (*Endpoint)(nil)

// Open attaches to the interface c names. It does not look at the link's state: a
// link that is down gives no frames until it is up again.
func Open(c Config) (*Endpoint, error) {
	fail := func(op string, err error) (*Endpoint, error) {
		return nil, &Error{Interface: c.Interface, Op: op, Err: err}
	}
	rx, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fail("socket", err)
	}
	e := &Endpoint{name: c.Interface}
	e.rx = os.NewFile(uintptr(rx), "packet:"+c.Interface)
	if err := e.setupRx(rx, c); err != nil {
		e.rx.Close()
		return nil, err
	}
	tx, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		e.rx.Close()
		return fail("socket", err)
	}
	e.tx = os.NewFile(uintptr(tx), "packet:"+c.Interface)
	if err := unix.Bind(tx, &unix.SockaddrLinklayer{Ifindex: e.ifindex}); err != nil {
		e.Close()
		return fail("bind", err)
	}
	if e.rxrc, err = e.rx.SyscallConn(); err == nil {
		e.txrc, err = e.tx.SyscallConn()
	}
	if err != nil {
		e.Close()
		return fail("poller", err)
	}
	e.txb = wire.NewBatch(wire.BatchSize)
	e.readFn = e.recv
	e.mwriteFn = e.writeMerged
	e.openGSO()
	return e, nil
}

// openGSO opens the socket for merged packets; without it the endpoint sends every
// frame as it is.
func (e *Endpoint) openGSO() {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return
	}
	if unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1) != nil ||
		unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: e.ifindex}) != nil {
		unix.Close(fd)
		return
	}
	f := os.NewFile(uintptr(fd), "packet:"+e.name)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return
	}
	e.gso, e.gsorc = f, rc
}

// setupRx finds the interface and sets the reading socket up, binding it last, so that
// nothing comes in before the options are in force.
func (e *Endpoint) setupRx(fd int, c Config) error {
	fail := func(op string, err error) error { return &Error{Interface: c.Interface, Op: op, Err: err} }
	ifr, err := unix.NewIfreq(c.Interface)
	if err != nil {
		return fail("name", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr); err != nil {
		return fail("SIOCGIFINDEX", err)
	}
	e.ifindex = int(ifr.Uint32())
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFMTU, ifr); err != nil {
		return fail("SIOCGIFMTU", err)
	}
	e.mtu = int(ifr.Uint32())
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFHWADDR, ifr); err != nil {
		return fail("SIOCGIFHWADDR", err)
	}
	// What libpcap reads as DLT_EN10MB (ifr_hwaddr.sa_family).
	if t := ifr.Uint16(); t != unix.ARPHRD_ETHER && t != unix.ARPHRD_LOOPBACK {
		return fail(fmt.Sprintf("hardware type %d", t), ErrNotEthernet)
	}
	for _, o := range []struct {
		name string
		opt  int
	}{{"PACKET_VNET_HDR", unix.PACKET_VNET_HDR}, {"PACKET_AUXDATA", unix.PACKET_AUXDATA}} {
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, o.opt, 1); err != nil {
			return fail(o.name, err)
		}
	}
	ignore := errors.New("forced")
	if !c.rxFilter {
		ignore = unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1)
	}
	if ignore != nil {
		if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &dropOutgoing); err != nil {
			return fail("SO_ATTACH_FILTER", err)
		}
	}
	if !c.NoPromisc {
		mr := unix.PacketMreq{Ifindex: int32(e.ifindex), Type: unix.PACKET_MR_PROMISC}
		if err := unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mr); err != nil {
			return fail("PACKET_MR_PROMISC", err)
		}
	}
	// A burst from a fast wire should wait in the socket, not be dropped at it.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvBufLen) != nil {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvBufLen)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: e.ifindex}); err != nil {
		return fail("bind", err)
	}
	return nil
}

// dropOutgoing is the socket filter for kernels without PACKET_IGNORE_OUTGOING: a frame
// whose packet type is PACKET_OUTGOING is cut to 0 bytes (dropped), any other is kept.
var dropOutgoing = unix.SockFprog{Len: 4, Filter: &[]unix.SockFilter{
	{Code: unix.BPF_LD | unix.BPF_B | unix.BPF_ABS, K: skfAdPkttype},
	{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 0, Jf: 1, K: unix.PACKET_OUTGOING},
	{Code: unix.BPF_RET | unix.BPF_K, K: 0},
	{Code: unix.BPF_RET | unix.BPF_K, K: 0xffffffff},
}[0]}

// skfAdPkttype is SKF_AD_OFF + SKF_AD_PKTTYPE (-0x1000 + 4), the ancillary load of the
// skb's packet type, as the filter's unsigned offset.
const skfAdPkttype = 0xfffff004

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// Name is the interface's name.
func (e *Endpoint) Name() string { return e.name }

// Index is the interface's index.
func (e *Endpoint) Index() int { return e.ifindex }

// Dropped counts packets that did not become frames (too large for the caller's buffer,
// a header that does not fit) and frames the interface would not send (longer than its
// MTU, its queue full, the link down).
func (e *Endpoint) Dropped() uint64 { return e.dropped.Load() }

// ReadBatch implements wire.Endpoint. It blocks until the interface has received at
// least one frame, then hands over what one recvmmsg brought, up to len(frames) (the
// rest, and the rest of a packet cut into segments, come first in the next call). A link
// that goes down makes it wait until the link is up again; an interface that goes away
// ends it with ErrGone. Only one goroutine may read at a time.
func (e *Endpoint) ReadBatch(frames [][]byte, sizes []int) (int, error) {
	if e.failed != nil {
		return 0, e.failed
	}
	if e.bufs == nil {
		e.allocRx()
	}
	out := 0
	for out < len(frames) {
		if e.seg.Pending() {
			if n := e.seg.Next(frames[out]); n > 0 {
				sizes[out] = n
				out++
			} else {
				e.dropped.Add(1)
			}
			continue
		}
		if e.next < e.n {
			if n := e.take(e.next, frames[out]); n > 0 {
				sizes[out] = n
				out++
			}
			e.next++
			continue
		}
		if out > 0 {
			return out, nil
		}
		if err := e.read(); err != nil {
			return 0, err
		}
	}
	return out, nil
}

func (e *Endpoint) allocRx() {
	e.hdrs = make([]unix.Mmsghdr, rxSlots)
	e.iovs = make([]unix.Iovec, 2*rxSlots)
	e.vnet = make([][tap.VnetHdrLen]byte, rxSlots)
	e.aux = make([][auxSpace]byte, rxSlots)
	e.bufs = make([][]byte, rxSlots)
	for i := range e.bufs {
		e.bufs[i] = make([]byte, rxBufLen)
		e.iovs[2*i] = unix.Iovec{Base: &e.vnet[i][0]}
		e.iovs[2*i].SetLen(tap.VnetHdrLen)
		e.iovs[2*i+1] = unix.Iovec{Base: &e.bufs[i][tagLen]}
		e.iovs[2*i+1].SetLen(rxPktMax)
	}
}

// read fills the slots with one recvmmsg, waiting through the runtime poller.
func (e *Endpoint) read() error {
	for {
		e.next, e.n, e.errno = 0, 0, 0
		for i := range e.hdrs {
			h := &e.hdrs[i].Hdr
			*h = unix.Msghdr{Iov: &e.iovs[2*i], Iovlen: 2, Control: &e.aux[i][0]}
			h.SetControllen(auxSpace)
		}
		e.cnt = len(e.hdrs)
		if err := e.rxrc.Read(e.readFn); err != nil {
			return &Error{Interface: e.name, Op: "read", Err: err}
		}
		switch e.errno {
		case 0:
			return nil
		case unix.EINTR, unix.EINVAL, unix.EFAULT:
			// EINVAL: a packet the kernel cannot describe in a virtio_net_hdr (a GSO
			// type other than TCP's); it is gone.
			if e.errno == unix.EINVAL {
				e.dropped.Add(1)
			}
		case unix.ENETDOWN:
			if err := e.waitUp(); err != nil {
				return err
			}
		default:
			return &Error{Interface: e.name, Op: "read", Err: e.errno}
		}
	}
}

// recv is the RawConn.Read callback. Returning false asks the poller to wait.
func (e *Endpoint) recv(fd uintptr) bool {
	r, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&e.hdrs[0])), uintptr(e.cnt),
		unix.MSG_DONTWAIT|unix.MSG_TRUNC, 0, 0)
	if errno == unix.EAGAIN {
		return false
	}
	e.n, e.errno = int(r), errno
	if errno != 0 {
		e.n = 0
	}
	return true
}

// waitUp waits, after the kernel said the link went down, until it is up again (the
// socket then gets frames again by itself), the interface is gone, or the endpoint is
// closed.
func (e *Endpoint) waitUp() error {
	for {
		if e.closed.Load() {
			return &Error{Interface: e.name, Op: "read", Err: net.ErrClosed}
		}
		up, gone := e.linkState()
		if gone {
			e.failed = &Error{Interface: e.name, Op: "read", Err: ErrGone}
			return e.failed
		}
		if up {
			return nil
		}
		time.Sleep(downPoll)
	}
}

// linkState asks, by index and through the socket (so in its namespace, whichever
// thread asks), whether the interface is there and up.
func (e *Endpoint) linkState() (up, gone bool) {
	gone = true
	e.rxrc.Control(func(fd uintptr) {
		ifr, err := unix.NewIfreq("")
		if err != nil {
			return
		}
		ifr.SetUint32(uint32(e.ifindex))
		if unix.IoctlIfreq(int(fd), unix.SIOCGIFNAME, ifr) != nil || unix.IoctlIfreq(int(fd), unix.SIOCGIFFLAGS, ifr) != nil {
			return
		}
		up, gone = ifr.Uint16()&unix.IFF_UP != 0, false
	})
	return up, gone
}

// take turns packet i of the last recvmmsg into a frame in dst and returns its length,
// or starts cutting it (0, and e.seg is pending), or drops it (0).
func (e *Endpoint) take(i int, dst []byte) int {
	m := &e.hdrs[i]
	if m.Hdr.Flags&unix.MSG_TRUNC != 0 || m.Len <= tap.VnetHdrLen {
		e.dropped.Add(1)
		return 0
	}
	size := int(m.Len) - tap.VnetHdrLen
	buf := e.bufs[i]
	pkt := buf[tagLen : tagLen+size]
	vh := e.vnet[i][:]
	if tci, tpid, ok := e.vlan(i); ok && size >= 12 {
		// The tag goes back between the addresses and the type, as it was on the wire;
		// the offsets the kernel gave count from the frame's start, which moved.
		copy(buf[:12], buf[tagLen:tagLen+12])
		binary.BigEndian.PutUint16(buf[12:], tpid)
		binary.BigEndian.PutUint16(buf[14:], tci)
		pkt = buf[:tagLen+size]
		if vh[0]&vnetNeedsCsum != 0 {
			binary.NativeEndian.PutUint16(vh[6:], binary.NativeEndian.Uint16(vh[6:])+tagLen)
		}
	}
	n := e.seg.Take(vh, pkt, len(dst))
	switch {
	case n == 0:
		return 0 // cut by ReadBatch
	case n < 0 || n > len(dst):
		e.dropped.Add(1)
		return 0
	}
	return copy(dst, pkt)
}

// vnetNeedsCsum is VIRTIO_NET_HDR_F_NEEDS_CSUM.
const vnetNeedsCsum = 1

// vlan reads the tag the kernel took out of packet i, from its PACKET_AUXDATA.
func (e *Endpoint) vlan(i int) (tci, tpid uint16, ok bool) {
	h := &e.hdrs[i].Hdr
	if int(h.Controllen) < unix.SizeofCmsghdr+sizeofAuxdata {
		return 0, 0, false
	}
	cm := (*unix.Cmsghdr)(unsafe.Pointer(&e.aux[i][0]))
	if cm.Level != unix.SOL_PACKET || cm.Type != unix.PACKET_AUXDATA {
		return 0, 0, false
	}
	ad := (*unix.TpacketAuxdata)(unsafe.Pointer(&e.aux[i][unix.SizeofCmsghdr]))
	if ad.Status&unix.TP_STATUS_VLAN_VALID == 0 {
		return 0, 0, false
	}
	tpid = 0x8100
	if ad.Status&unix.TP_STATUS_VLAN_TPID_VALID != 0 {
		tpid = ad.Vlan_tpid
	}
	return ad.Vlan_tci, tpid, true
}

// WriteBatch implements wire.Endpoint: frames go to the interface in batches (sendmmsg),
// never waiting, except that a run of consecutive TCP segments of one flow goes as one
// GSO packet (tap.Merger), which the interface's TSO, or the kernel, cuts again, and
// which a veth hands its peer's stack whole, as GRO would. A frame the interface does not
// take (longer than its MTU, its queue full, the link down) is dropped and counted; the
// error is set only when the endpoint is closed or its socket fails otherwise. Several
// goroutines may write at once.
func (e *Endpoint) WriteBatch(frames [][]byte) (int, error) {
	e.wmu.Lock()
	defer e.wmu.Unlock()
	if e.gso == nil {
		return e.send(frames)
	}
	e.merger.Reset(len(frames))
	sent, from := 0, 0 // frames[from:i] go as they are
	flush := func(to int) error {
		n, err := e.send(frames[from:to])
		sent += n
		from = to
		return err
	}
	for i := 0; i < len(frames); {
		n, hl := e.merger.Run(frames, i, e.mvnet[:], e.mhdr[:])
		if n == 1 || len(frames[i]) > e.mtu+ethHdrLen {
			i++
			continue
		}
		if err := flush(i); err != nil {
			return sent, err
		}
		switch ok, err := e.sendMerged(frames, i, n, hl); {
		case err != nil:
			return sent, err
		case ok:
			sent += n
			from = i + n
		}
		// Else the kernel refused the merged packet: its frames go as they are.
		i += n
	}
	err := flush(len(frames))
	return sent, err
}

// sendMerged writes frames[i:i+n] as one packet, behind the header Run wrote. ok is
// false when the kernel refused the packet as such (the frames may go one by one); a
// full queue or a link that is down drops them, which counts as done.
func (e *Endpoint) sendMerged(frames [][]byte, i, n, hl int) (ok bool, err error) {
	iov := e.miov[:0]
	iov = append(iov, iovec(e.mvnet[:]), iovec(e.mhdr[:hl]))
	for j := i; j < i+n; j++ {
		iov = append(iov, iovec(e.merger.Payload(frames, j)))
	}
	e.mn = len(iov)
	err = e.gsorc.Write(e.mwriteFn)
	clear(e.miov[:e.mn]) // hold no frame past the call
	if err != nil {
		e.dropped.Add(uint64(n))
		return false, &Error{Interface: e.name, Op: "write", Err: err}
	}
	switch e.merrno {
	case 0:
		e.merged.Add(uint64(n))
		return true, nil
	case unix.EAGAIN, unix.ENOBUFS, unix.ENOMEM, unix.ENETDOWN, unix.ENXIO, unix.ENODEV:
		e.dropped.Add(uint64(n))
		return true, nil
	}
	return false, nil
}

// writeMerged is the RawConn.Write callback of sendMerged: one writev, never waiting.
func (e *Endpoint) writeMerged(fd uintptr) bool {
	for {
		_, _, errno := unix.Syscall(unix.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&e.miov[0])), uintptr(e.mn))
		if errno != unix.EINTR {
			e.merrno = errno
			return true
		}
	}
}

func iovec(b []byte) unix.Iovec {
	v := unix.Iovec{Base: &b[0]}
	v.SetLen(len(b))
	return v
}

// Merged counts frames that went to the interface inside a merged packet.
func (e *Endpoint) Merged() uint64 { return e.merged.Load() }

// send sends frames as they are, in batches.
func (e *Endpoint) send(frames [][]byte) (int, error) {
	sent, at := 0, 0
	for at < len(frames) {
		n, err := e.txb.Send(e.txrc, frames[at:])
		sent += n
		at += n
		if err == nil {
			e.dropped.Add(uint64(len(frames) - at)) // the queue is full: the rest too
			break
		}
		switch err {
		case unix.EMSGSIZE, unix.EINVAL:
			e.dropped.Add(1) // this frame only
			at++
		case unix.ENETDOWN, unix.ENXIO, unix.ENODEV, unix.ENOMEM:
			e.dropped.Add(uint64(len(frames) - at))
			return sent, nil
		default:
			e.dropped.Add(uint64(len(frames) - at))
			return sent, &Error{Interface: e.name, Op: "write", Err: err}
		}
	}
	return sent, nil
}

// Close closes both sockets (the kernel drops the promiscuous membership); a blocked
// ReadBatch returns an error.
func (e *Endpoint) Close() error {
	e.closed.Store(true)
	var err error
	for _, f := range []*os.File{e.tx, e.gso} {
		if f != nil {
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
	}
	if rerr := e.rx.Close(); err == nil {
		err = rerr
	}
	return err
}
