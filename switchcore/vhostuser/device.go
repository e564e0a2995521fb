package vhostuser

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// MaxQueuePairs is how many receive/transmit pairs a frontend may use (VIRTIO_NET_F_MQ).
const MaxQueuePairs = 8

// offeredFeatures are the virtio features the backend offers. No indirect descriptors or
// packed rings: guests work without them, and each is one more layout a hostile
// frontend could abuse.
const offeredFeatures = FeatVersion1 | FeatNetMrgRxbuf | FeatEventIdx | FeatProtocolFeatures |
	FeatNetMQ | FeatAnyLayout | offloadFeatures

// offloadFeatures let a guest send TSO packets and partial checksums (the switch passes
// them whole to ports that take them and cuts them for the others) and receive them.
const offloadFeatures = FeatNetCsum | FeatNetGuestCsum | FeatNetHostTSO4 | FeatNetHostTSO6 |
	FeatNetGuestTSO4 | FeatNetGuestTSO6

// offeredProtocol are the vhost-user protocol features the backend offers.
const offeredProtocol = ProtoMQ | ProtoReplyAck | ProtoMTU

// Options tune a device.
type Options struct {
	// Poll keeps the transmit side spinning instead of sleeping on the kick eventfd: a core
	// for the lowest latency, as OVS's PMD threads do.
	Poll bool
	// Logf reports protocol errors and the frontend's faults; nil discards them.
	Logf func(format string, args ...any)
}

// Device is one connected frontend: the vhost-user protocol on its socket, and the
// frames of its virtqueues as a wire.Endpoint (ReadBatch: what the guest sends; WriteBatch:
// what it receives).
type Device struct {
	conn *net.UnixConn
	opt  Options
	gone func() // Serve calls it when the frontend has gone, before closing
	name string // for messages: the socket path and the frontend's pid

	// mu is held for reading by each batch of the frame path and for writing by protocol
	// messages that change the memory table or the rings: a batch never sees them half-made.
	mu       sync.RWMutex
	features uint64
	protocol uint64
	mem      *memTable
	rings    [2 * MaxQueuePairs]*vring
	hdrLen   int  // virtio-net header: 12 with VERSION_1 or MRG_RXBUF, else 10
	mrg      bool // MRG_RXBUF: a received frame may span buffers
	mtu      int  // NET_SET_MTU, 0 if never set
	owned    bool

	rxMu    sync.Mutex // WriteBatch callers (every other port's reader) take turns
	segs    [][]byte   // WriteBatch's scratch (under rxMu)
	rxReady []*vring   // WriteBatch's scratch (under rxMu): the receive rings in use
	chains  []rxChain  // WriteBatch's scratch (under rxMu)

	ep     int // epoll set: the transmit rings' kick eventfds, edge-triggered, and wake
	wake   int // eventfd: the protocol side wakes a sleeping reader (ring started, close)
	events []unix.EpollEvent
	closed atomic.Bool
	// users counts Serve and the ReadBatch calls running; the last one out after Close
	// closes ep and wake (closing them under a user could hand their numbers to another
	// open meanwhile, and a late wake would write to it).
	users    atomic.Int32
	fdsOnce  sync.Once
	spinTo   int // ReadBatch's spin rounds left before it sleeps (adaptive polling)
	nextRing int // the transmit ring ReadBatch starts with (round robin)

	// A hand-over (handover.go) stops the device without ending it: readStop makes
	// ReadBatch return os.ErrDeadlineExceeded (SetReadDeadline), pausing makes Serve return
	// errPaused between two messages. key names the device in the switch's state.
	readStop atomic.Bool
	pausing  atomic.Bool
	key      string
	// parked says Serve returned for a pause and still holds its use (users), or that
	// Serve never ran (Restore): whoever ends the device then leaves for it. Guarded by
	// the server's mu.
	parked bool

	// Counters of what the frontend did wrong or could not take.
	Faults     atomic.Uint64 // bad descriptors, chains, addresses: frames dropped
	RxNoBuffer atomic.Uint64 // frames for the guest dropped: no receive buffer posted
	RxTooLong  atomic.Uint64 // frames for the guest dropped: larger than its buffers
	TxTooLong  atomic.Uint64 // frames from the guest dropped: larger than the switch takes
	// TxOffloadDropped counts packets with offloads dropped by ReadBatch (ReadOffload
	// takes them).
	TxOffloadDropped atomic.Uint64
	negotiated       atomic.Uint64 // the features, for TakesOffload outside mu
}

// rxChain is a receive chain taken for the frame being written.
type rxChain struct {
	head       uint16
	first, end int // its buffers are segs[first:end]
	size       int
}

// NewDevice serves the vhost-user protocol on conn until the frontend goes or Close.
func NewDevice(conn *net.UnixConn, name string, opt Options) (*Device, error) {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("vhost-user: epoll: %w", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(ep)
		return nil, fmt.Errorf("vhost-user: eventfd: %w", err)
	}
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, wake, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Fd: int32(wake)}); err != nil {
		unix.Close(ep)
		unix.Close(wake)
		return nil, fmt.Errorf("vhost-user: epoll: %w", err)
	}
	d := &Device{conn: conn, opt: opt, name: name, ep: ep, wake: wake, hdrLen: 10,
		events: make([]unix.EpollEvent, 2*MaxQueuePairs+1)}
	for i := range d.rings {
		d.rings[i] = newVring()
	}
	d.users.Store(1) // Serve's
	return d, nil
}

func (d *Device) logf(format string, args ...any) {
	if d.opt.Logf != nil {
		d.opt.Logf("vhost-user %s: "+format, append([]any{d.name}, args...)...)
	}
}

// errPaused is what Serve returns when a hand-over paused it: the device is as it was,
// connected, for the next binary or for Serve again.
var errPaused = errors.New("paused for a hand-over")

// Serve reads and answers the frontend's messages until it disconnects or breaks the
// protocol; the error says which (nil for a clean disconnect). The device is closed then.
// Paused by a hand-over, it returns errPaused and closes nothing.
func (d *Device) Serve() error {
	err := d.serve()
	if err == errPaused {
		return err
	}
	if d.gone != nil {
		d.gone() // before Close: the switch unplugs the port, then reads EOF quietly
	}
	d.Close()
	d.leave()
	return err
}

func (d *Device) serve() error {
	r := newMsgReader(d.conn)
	for {
		if d.pausing.Load() {
			return errPaused
		}
		m, err := r.read()
		if err != nil {
			if d.pausing.Load() && errors.Is(err, os.ErrDeadlineExceeded) {
				return errPaused
			}
			if errors.Is(err, io.EOF) || d.closed.Load() {
				return nil
			}
			return err
		}
		reply, herr := d.handle(m)
		for _, fd := range m.fds { // every descriptor handle kept was set to -1
			if fd >= 0 {
				unix.Close(fd)
			}
		}
		if herr != nil && !(m.needReply() && d.protocol&ProtoReplyAck != 0 && reply == nil) {
			return fmt.Errorf("%v: %w", m.Request, herr)
		}
		if reply == nil && m.needReply() && d.protocol&ProtoReplyAck != 0 {
			var status uint64
			if herr != nil {
				d.logf("%v: %v", m.Request, herr)
				status = 1
			}
			reply = replyU64(m.Request, status)
		}
		if reply != nil {
			if _, err := d.conn.Write(reply); err != nil {
				return fmt.Errorf("%v: reply: %w", m.Request, err)
			}
		}
	}
}

// ring returns queue i, checked.
func (d *Device) ring(i uint32) (*vring, error) {
	if i >= uint32(len(d.rings)) {
		return nil, fmt.Errorf("%w: %d", ErrQueueIndex, i)
	}
	return d.rings[i], nil
}

// handle acts on one message and returns the reply, if the request has one.
func (d *Device) handle(m *message) ([]byte, error) {
	switch m.Request {
	case ReqGetFeatures:
		return replyU64(m.Request, offeredFeatures), nil
	case ReqGetProtocolFeatures:
		return replyU64(m.Request, offeredProtocol), nil
	case ReqGetQueueNum:
		return replyU64(m.Request, MaxQueuePairs), nil
	case ReqSetFeatures:
		if extra := m.u64 &^ (offeredFeatures | FeatLogAll); extra != 0 {
			return nil, fmt.Errorf("features %#x were not offered", extra)
		}
		d.mu.Lock()
		d.setFeatures(m.u64)
		d.mu.Unlock()
	case ReqSetProtocolFeatures:
		if extra := m.u64 &^ offeredProtocol; extra != 0 {
			return nil, fmt.Errorf("protocol features %#x were not offered", extra)
		}
		d.protocol = m.u64
	case ReqSetOwner:
		d.owned = true
	case ReqResetOwner, ReqResetDevice:
		d.mu.Lock()
		for i := range d.rings {
			d.stopRing(i)
			d.rings[i] = newVring()
		}
		d.features = 0
		d.negotiated.Store(0)
		d.mu.Unlock()
	case ReqSetMemTable:
		t, err := mapRegions(m.mem, m.fds)
		if err != nil {
			return nil, err
		}
		d.mu.Lock()
		if d.closed.Load() { // Close ran meanwhile: it unmapped what it found, not t
			d.mu.Unlock()
			t.unmap()
			return nil, nil
		}
		old := d.mem
		d.mem = t
		var terr error
		for _, v := range d.rings {
			if err := v.translate(t); err != nil && terr == nil {
				terr = err
			}
		}
		d.mu.Unlock()
		old.unmap()
		d.wakeReader()
		return nil, terr
	case ReqSetVringNum:
		v, err := d.ring(m.state.Index)
		if err != nil {
			return nil, err
		}
		if m.state.Num == 0 || m.state.Num > maxQueueSize {
			return nil, fmt.Errorf("queue %d: size %d", m.state.Index, m.state.Num)
		}
		d.mu.Lock()
		v.num = uint16(m.state.Num) // 32768 fits; 0 was refused
		err = v.translate(d.mem)
		d.mu.Unlock()
		return nil, err
	case ReqSetVringAddr:
		v, err := d.ring(m.addr.Index)
		if err != nil {
			return nil, err
		}
		d.mu.Lock()
		v.addr, v.addrSet = m.addr, true
		err = v.translate(d.mem)
		d.mu.Unlock()
		if err != nil {
			return nil, fmt.Errorf("queue %d: %w", m.addr.Index, err)
		}
	case ReqSetVringBase:
		v, err := d.ring(m.state.Index)
		if err != nil {
			return nil, err
		}
		d.mu.Lock()
		v.lastAvail, v.usedIdx, v.pubUsed = uint16(m.state.Num), uint16(m.state.Num), uint16(m.state.Num)
		d.mu.Unlock()
	case ReqGetVringBase:
		v, err := d.ring(m.state.Index)
		if err != nil {
			return nil, err
		}
		d.mu.Lock()
		base := v.lastAvail
		d.stopRing(int(m.state.Index))
		d.mu.Unlock()
		return replyState(m.Request, VringState{Index: m.state.Index, Num: uint32(base)}), nil
	case ReqSetVringKick, ReqSetVringCall, ReqSetVringErr:
		idx := uint32(m.u64 & 0xff)
		v, err := d.ring(idx)
		if err != nil {
			return nil, err
		}
		fd := -1
		if m.u64&kickNoFD == 0 {
			if len(m.fds) != 1 {
				return nil, fmt.Errorf("queue %d: %w: %d", idx, ErrFDCount, len(m.fds))
			}
			fd, m.fds[0] = m.fds[0], -1
		}
		d.mu.Lock()
		if d.closed.Load() {
			m.fds[0] = fd // Close ran meanwhile: Serve closes it with the rest
			d.mu.Unlock()
			return nil, nil
		}
		switch m.Request {
		case ReqSetVringKick:
			d.setKick(int(idx), fd)
		case ReqSetVringCall:
			if v.callFD >= 0 {
				unix.Close(v.callFD)
			}
			v.callFD = fd
		default:
			if fd >= 0 {
				unix.Close(fd) // we never report ring errors
			}
		}
		d.mu.Unlock()
		d.wakeReader()
	case ReqSetVringEnable:
		v, err := d.ring(m.state.Index)
		if err != nil {
			return nil, err
		}
		d.mu.Lock()
		v.enabled = m.state.Num != 0
		d.mu.Unlock()
		d.wakeReader()
	case ReqNetSetMTU:
		if m.u64 < 68 || m.u64 > 9216 {
			return nil, fmt.Errorf("MTU %d out of range 68-9216", m.u64)
		}
		d.mtu = int(m.u64)
	case ReqSendRARP, ReqSetVringEndian:
		// RARP after migration: the guest's next frame teaches the switch its port anyway.
	case ReqSetBackendReqFD, ReqSetLogFD, ReqSetLogBase:
		// Not offered (no BACKEND_REQ, no LOG_SHMFD); a frontend sending them anyway gets
		// its descriptor closed (Serve closes every one handle did not keep).
	default:
		return nil, fmt.Errorf("unsupported request")
	}
	return nil, nil
}

// setKick installs the kick descriptor of ring i and starts it. Call with mu held.
func (d *Device) setKick(i int, fd int) {
	v := d.rings[i]
	if v.kickFD >= 0 {
		unix.EpollCtl(d.ep, unix.EPOLL_CTL_DEL, v.kickFD, nil)
		unix.Close(v.kickFD)
	}
	v.kickFD = fd
	if fd >= 0 && i%2 == 1 { // transmit rings wake the reader; receive rings are never waited on
		unix.EpollCtl(d.ep, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Fd: int32(fd)})
	}
	v.started = true
	if d.features&FeatProtocolFeatures == 0 {
		v.enabled = true // without protocol features a ring is enabled once started
	}
	v.broken = nil
}

// stopRing stops ring i (GET_VRING_BASE, reset): no more frames until the next kick.
// Call with mu held.
func (d *Device) stopRing(i int) {
	v := d.rings[i]
	v.started = false
	if v.kickFD >= 0 {
		unix.EpollCtl(d.ep, unix.EPOLL_CTL_DEL, v.kickFD, nil)
		unix.Close(v.kickFD)
		v.kickFD = -1
	}
}

// SetReadDeadline is what a hand-over needs of a read deadline (the switch stops every
// reader with one in the past): a time not after now makes ReadBatch return
// os.ErrDeadlineExceeded, at once if it waits; the zero time lets it read again. A time
// in the future is taken as none.
func (d *Device) SetReadDeadline(t time.Time) error {
	d.readStop.Store(!t.IsZero() && !t.After(time.Now()))
	d.wakeReader()
	return nil
}

// ReportFaults implements wire.FaultReporter: the device's fault counters by reason.
func (d *Device) ReportFaults(fn func(reason string, n uint64)) {
	fn("bad_descriptor", d.Faults.Load())
	fn("rx_no_buffer", d.RxNoBuffer.Load())
	fn("rx_too_long", d.RxTooLong.Load())
	fn("tx_too_long", d.TxTooLong.Load())
	fn("tx_offload_dropped", d.TxOffloadDropped.Load())
}

// HandoverKey names the device in the switch's hand-over state; the server that restores
// it (Restore) finds it by this name.
func (d *Device) HandoverKey() string { return d.key }

func (d *Device) wakeReader() {
	var one = [8]byte{1}
	unix.Write(d.wake, one[:])
}

// Close disconnects the frontend and ends the frame path: a ReadBatch waiting returns
// io.EOF. Guest memory is unmapped once no batch uses it.
func (d *Device) Close() error {
	if d.closed.Swap(true) {
		return nil
	}
	d.conn.Close()
	d.wakeReader()
	d.mu.Lock()
	for i, v := range d.rings {
		d.stopRing(i)
		if v.callFD >= 0 {
			unix.Close(v.callFD)
			v.callFD = -1
		}
		v.desc, v.avail, v.used = nil, nil, nil
	}
	d.mem.unmap()
	d.mem = nil
	d.mu.Unlock()
	return nil
}

// leave ends one user's use of ep and wake.
func (d *Device) leave() {
	if d.users.Add(-1) == 0 {
		d.closeFDs()
	}
}

func (d *Device) closeFDs() {
	d.fdsOnce.Do(func() {
		unix.Close(d.ep)
		unix.Close(d.wake)
	})
}
