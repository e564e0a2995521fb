// Package vhosttest is an in-tree vhost-user frontend and virtio-net driver for tests: the
// part of QEMU plus a guest (or of DPDK's virtio_user) that a backend meets, small enough
// to make misbehave on purpose. It owns a memfd as guest memory, lays out both rings of
// queue pair 0 in it, and speaks the protocol on a unix stream socket. Its constants are
// its own reading of the vhost-user and virtio specs, not the backend's.
package vhosttest

import (
	"encoding/binary"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Requests, flags and features the frontend uses (QEMU's docs/interop/vhost-user.rst).
const (
	ReqGetFeatures         = 1
	ReqSetFeatures         = 2
	ReqSetOwner            = 3
	ReqSetMemTable         = 5
	ReqSetVringNum         = 8
	ReqSetVringAddr        = 9
	ReqSetVringBase        = 10
	ReqGetVringBase        = 11
	ReqSetVringKick        = 12
	ReqSetVringCall        = 13
	ReqGetProtocolFeatures = 15
	ReqSetProtocolFeatures = 16
	ReqGetQueueNum         = 17
	ReqSetVringEnable      = 18

	HeaderSize = 12
	flagV1     = 1

	FeatMrgRxbuf         = 1 << 15
	FeatEventIdx         = 1 << 29
	FeatProtocolFeatures = 1 << 30
	FeatVersion1         = 1 << 32
	ProtoMQ              = 1 << 0
	ProtoReplyAck        = 1 << 3

	DescNext     = 1
	DescWrite    = 2
	DescIndirect = 4
)

// Memory layout: the memfd sits at GuestBase in guest physical addresses and at UserBase
// in the frontend's own; RingSize descriptors per ring, each with a BufSize buffer.
const (
	GuestBase = 0x40000000
	UserBase  = 0x7f0000000000
	MemSize   = 4 << 20
	RingSize  = 256
	BufSize   = 2048
)

// Frontend is one connected frontend with its guest memory and rings.
type Frontend struct {
	T        testing.TB
	Conn     *net.UnixConn
	MemFD    int
	Mem      []byte
	Features uint64
	Rings    [2]*Ring // 0: receive (the backend writes), 1: transmit (the backend reads)
	Kick     [2]int   // eventfds the frontend writes to kick the backend
	Call     [2]int   // eventfds the backend writes to signal the frontend
}

// Ring is the driver's view of one split ring: buffer i of the ring is descriptor i.
type Ring struct {
	F                          *Frontend
	Num                        int
	DescOff, AvailOff, UsedOff int
	BufOff                     int
	AvailIdx, LastUsed         uint16
}

// Desc is descriptor i's 16 bytes.
func (r *Ring) Desc(i int) []byte { return r.F.Mem[r.DescOff+16*i : r.DescOff+16*i+16] }

// Buf is the buffer of descriptor i.
func (r *Ring) Buf(i int) []byte { return r.F.Mem[r.BufOff+BufSize*i : r.BufOff+BufSize*(i+1)] }

// GPA is the guest physical address of an offset into the memory.
func (r *Ring) GPA(off int) uint64 { return GuestBase + uint64(off) }

// SetDesc writes descriptor i.
func (r *Ring) SetDesc(i int, addr uint64, n uint32, flags, next uint16) {
	d := r.Desc(i)
	binary.LittleEndian.PutUint64(d, addr)
	binary.LittleEndian.PutUint32(d[8:], n)
	binary.LittleEndian.PutUint16(d[12:], flags)
	binary.LittleEndian.PutUint16(d[14:], next)
}

// Offer puts chain heads in the available ring and publishes them.
func (r *Ring) Offer(heads ...int) {
	for _, h := range heads {
		binary.LittleEndian.PutUint16(r.F.Mem[r.AvailOff+4+2*(int(r.AvailIdx)%r.Num):], uint16(h))
		r.AvailIdx++
	}
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&r.F.Mem[r.AvailOff])), uint32(r.AvailIdx)<<16)
}

// Used returns the used entries the backend published since the last call.
func (r *Ring) Used() (ids []int, lens []int) {
	idx := r.usedIdx()
	for ; r.LastUsed != idx; r.LastUsed++ {
		e := r.F.Mem[r.UsedOff+4+8*(int(r.LastUsed)%r.Num):]
		ids = append(ids, int(binary.LittleEndian.Uint32(e)))
		lens = append(lens, int(binary.LittleEndian.Uint32(e[4:])))
	}
	return ids, lens
}

// Drain forgets the used entries published so far, allocating nothing.
func (r *Ring) Drain() { r.LastUsed = r.usedIdx() }

func (r *Ring) usedIdx() uint16 {
	return uint16(atomic.LoadUint32((*uint32)(unsafe.Pointer(&r.F.Mem[r.UsedOff]))) >> 16)
}

var one = [8]byte{1}

// U64 is a u64 payload.
func U64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

// State is a vring-state payload.
func State(i, n int) []byte {
	b := binary.LittleEndian.AppendUint32(nil, uint32(i))
	return binary.LittleEndian.AppendUint32(b, uint32(n))
}

// Dial connects to a backend's socket and sets up queue pair 0 with feats.
func Dial(t testing.TB, path string, feats uint64) *Frontend {
	t.Helper()
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatalf("vhost-user frontend: %v", err)
	}
	return Connect(t, c, feats)
}

// Connect sets up queue pair 0 with feats over conn: guest memory, both rings, kick and
// call eventfds, enabled. Everything is closed at the test's cleanup.
func Connect(t testing.TB, conn *net.UnixConn, feats uint64) *Frontend {
	t.Helper()
	f := &Frontend{T: t, Conn: conn, Features: feats}
	var err error
	f.MemFD, err = unix.MemfdCreate("guest", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Ftruncate(f.MemFD, MemSize); err != nil {
		t.Fatal(err)
	}
	f.Mem, err = unix.Mmap(f.MemFD, 0, MemSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	for q := range f.Rings {
		base := q * 0x10000
		f.Rings[q] = &Ring{F: f, Num: RingSize, DescOff: base, AvailOff: base + 16*RingSize,
			UsedOff: base + 0x8000, BufOff: 0x100000 + q*RingSize*BufSize}
		f.Kick[q], _ = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
		f.Call[q], _ = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	}
	if got := f.Get(ReqGetFeatures); got&feats != feats {
		t.Fatalf("GET_FEATURES %#x lacks %#x", got, feats)
	}
	f.Send(ReqSetOwner, nil)
	f.Send(ReqSetFeatures, U64(feats))
	if feats&FeatProtocolFeatures != 0 {
		f.Get(ReqGetProtocolFeatures)
		f.Send(ReqSetProtocolFeatures, U64(ProtoReplyAck|ProtoMQ))
	}
	region := make([]byte, 8+32)
	binary.LittleEndian.PutUint32(region, 1)
	binary.LittleEndian.PutUint64(region[8:], GuestBase)
	binary.LittleEndian.PutUint64(region[16:], MemSize)
	binary.LittleEndian.PutUint64(region[24:], UserBase)
	f.SendFDs(ReqSetMemTable, region, f.MemFD)
	for q, r := range f.Rings {
		f.Send(ReqSetVringNum, State(q, RingSize))
		f.Send(ReqSetVringBase, State(q, 0))
		a := make([]byte, 40)
		binary.LittleEndian.PutUint32(a, uint32(q))
		binary.LittleEndian.PutUint64(a[8:], UserBase+uint64(r.DescOff))
		binary.LittleEndian.PutUint64(a[16:], UserBase+uint64(r.UsedOff))
		binary.LittleEndian.PutUint64(a[24:], UserBase+uint64(r.AvailOff))
		f.Send(ReqSetVringAddr, a)
		f.SendFDs(ReqSetVringCall, U64(uint64(q)), f.Call[q])
		f.SendFDs(ReqSetVringKick, U64(uint64(q)), f.Kick[q])
		if feats&FeatProtocolFeatures != 0 {
			f.Send(ReqSetVringEnable, State(q, 1))
		}
	}
	f.Sync()
	return f
}

// SendFDs sends one message with descriptors.
func (f *Frontend) SendFDs(req uint32, p []byte, fds ...int) {
	f.T.Helper()
	b := make([]byte, HeaderSize+len(p))
	binary.LittleEndian.PutUint32(b, req)
	binary.LittleEndian.PutUint32(b[4:], flagV1)
	binary.LittleEndian.PutUint32(b[8:], uint32(len(p)))
	copy(b[HeaderSize:], p)
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	if _, _, err := f.Conn.WriteMsgUnix(b, oob, nil); err != nil {
		f.T.Fatalf("request %d: %v", req, err)
	}
}

// Send sends one message.
func (f *Frontend) Send(req uint32, p []byte) { f.SendFDs(req, p) }

// Get sends a request that has a reply and returns the reply's u64.
func (f *Frontend) Get(req uint32) uint64 {
	f.T.Helper()
	f.Send(req, nil)
	return f.Reply(req)
}

// Reply reads the reply to req and returns its first u64.
func (f *Frontend) Reply(req uint32) uint64 {
	f.T.Helper()
	b := make([]byte, HeaderSize+8)
	if _, err := f.Conn.Read(b); err != nil {
		f.T.Fatalf("request %d: reply: %v", req, err)
	}
	if got := binary.LittleEndian.Uint32(b); got != req {
		f.T.Fatalf("reply to request %d is for %d", req, got)
	}
	return binary.LittleEndian.Uint64(b[HeaderSize:])
}

// Sync waits until the backend has handled everything sent so far.
func (f *Frontend) Sync() {
	f.T.Helper()
	f.Get(ReqGetQueueNum)
}

// Close disconnects and frees the memory and eventfds.
func (f *Frontend) Close() {
	f.Conn.Close()
	if f.Mem != nil {
		unix.Munmap(f.Mem)
		f.Mem = nil
		unix.Close(f.MemFD)
		for q := range f.Rings {
			unix.Close(f.Kick[q])
			unix.Close(f.Call[q])
		}
	}
}

// HdrLen is the virtio-net header's length under the negotiated features.
func (f *Frontend) HdrLen() int {
	if f.Features&(FeatVersion1|FeatMrgRxbuf) != 0 {
		return 12
	}
	return 10
}

// Transmit puts frames on the transmit ring (queue 1), each in one descriptor behind a
// zero header, from descriptor first on, and kicks.
func (f *Frontend) Transmit(first int, frames ...[]byte) { f.TransmitHdr(first, nil, frames...) }

// TransmitHdr is Transmit with hdr as every frame's virtio-net header.
func (f *Frontend) TransmitHdr(first int, hdr []byte, frames ...[]byte) {
	r := f.Rings[1]
	for k, fr := range frames {
		i := (first + k) % r.Num
		b := r.Buf(i)
		clear(b[:f.HdrLen()])
		copy(b[:f.HdrLen()], hdr)
		n := copy(b[f.HdrLen():], fr)
		r.SetDesc(i, r.GPA(r.BufOff+BufSize*i), uint32(f.HdrLen()+n), 0, 0)
		r.Offer(i)
	}
	f.KickTx()
}

// KickTx kicks the transmit ring.
func (f *Frontend) KickTx() { unix.Write(f.Kick[1], one[:]) }

// PostRx offers n receive buffers of size bytes each (at most BufSize), one descriptor
// per chain, from descriptor first on.
func (f *Frontend) PostRx(first, n, size int) {
	r := f.Rings[0]
	for k := 0; k < n; k++ {
		i := (first + k) % r.Num
		r.SetDesc(i, r.GPA(r.BufOff+BufSize*i), uint32(size), DescWrite, 0)
		r.Offer(i)
	}
}

// Received returns the frames the backend wrote to the receive ring, joining the buffers
// of a merged frame, and their num_buffers.
func (f *Frontend) Received() (frames [][]byte, nbufs []int) {
	r := f.Rings[0]
	ids, lens := r.Used()
	for k := 0; k < len(ids); {
		b := r.Buf(ids[k])[:lens[k]]
		nb := 1
		if f.HdrLen() == 12 {
			nb = int(binary.LittleEndian.Uint16(b[10:]))
		}
		fr := append([]byte(nil), b[f.HdrLen():]...)
		for j := 1; j < nb && k+j < len(ids); j++ {
			fr = append(fr, r.Buf(ids[k+j])[:lens[k+j]]...)
		}
		frames, nbufs = append(frames, fr), append(nbufs, nb)
		k += nb
	}
	return frames, nbufs
}

// String names the frontend for messages.
func (f *Frontend) String() string {
	return fmt.Sprintf("vhosttest frontend on %v", f.Conn.RemoteAddr())
}
