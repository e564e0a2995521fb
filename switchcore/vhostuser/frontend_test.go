package vhostuser

import (
	"encoding/binary"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// frontend is an in-tree vhost-user frontend and virtio-net driver for tests: the part of
// QEMU plus a guest (or of DPDK's virtio_user) that a backend meets. It owns a memfd as
// guest memory, lays out both rings of queue pair 0 in it, and speaks the protocol over a
// socketpair whose other end is a Device.
type frontend struct {
	t      testing.TB
	conn   *net.UnixConn
	dev    *Device
	served chan error
	memfd  int
	mem    []byte
	feats  uint64
	rings  [2]*drvRing
	kick   [2]int
	call   [2]int
}

const (
	feGuestBase = 0x40000000     // where the memfd sits in guest physical addresses
	feUserBase  = 0x7f0000000000 // and in the frontend's own address space
	feMemSize   = 4 << 20
	feRingSize  = 256
	feBufSize   = 2048
)

// drvRing is the driver's view of one split ring: buffer i of the ring is descriptor i.
type drvRing struct {
	f                          *frontend
	num                        int
	descOff, availOff, usedOff int
	bufOff                     int
	availIdx, lastUsed         uint16
}

func (r *drvRing) desc(i int) []byte { return r.f.mem[r.descOff+16*i : r.descOff+16*i+16] }
func (r *drvRing) buf(i int) []byte {
	return r.f.mem[r.bufOff+feBufSize*i : r.bufOff+feBufSize*(i+1)]
}
func (r *drvRing) gpa(off int) uint64 { return feGuestBase + uint64(off) }

func (r *drvRing) setDesc(i int, addr uint64, n uint32, flags, next uint16) {
	d := r.desc(i)
	binary.LittleEndian.PutUint64(d, addr)
	binary.LittleEndian.PutUint32(d[8:], n)
	binary.LittleEndian.PutUint16(d[12:], flags)
	binary.LittleEndian.PutUint16(d[14:], next)
}

// offer puts chain head i in the available ring and publishes it.
func (r *drvRing) offer(heads ...int) {
	for _, h := range heads {
		binary.LittleEndian.PutUint16(r.f.mem[r.availOff+4+2*(int(r.availIdx)%r.num):], uint16(h))
		r.availIdx++
	}
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&r.f.mem[r.availOff])), uint32(r.availIdx)<<16)
}

// used returns the used entries the device published since the last call.
func (r *drvRing) used() (ids []int, lens []int) {
	idx := uint16(atomic.LoadUint32((*uint32)(unsafe.Pointer(&r.f.mem[r.usedOff]))) >> 16)
	for ; r.lastUsed != idx; r.lastUsed++ {
		e := r.f.mem[r.usedOff+4+8*(int(r.lastUsed)%r.num):]
		ids = append(ids, int(binary.LittleEndian.Uint32(e)))
		lens = append(lens, int(binary.LittleEndian.Uint32(e[4:])))
	}
	return ids, lens
}

// drain forgets the used entries published so far.
func (r *drvRing) drain() {
	r.lastUsed = uint16(atomic.LoadUint32((*uint32)(unsafe.Pointer(&r.f.mem[r.usedOff]))) >> 16)
}

// newFrontend connects a frontend to a new Device and negotiates feats.
func newFrontend(t testing.TB, feats uint64, opt Options) *frontend {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) *net.UnixConn {
		f := os.NewFile(uintptr(fd), "vhost-user")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		return c.(*net.UnixConn)
	}
	f := &frontend{t: t, conn: conn(fds[0]), feats: feats, served: make(chan error, 1)}
	f.dev, err = NewDevice(conn(fds[1]), "test", opt)
	if err != nil {
		t.Fatal(err)
	}
	go func() { f.served <- f.dev.Serve() }()
	f.memfd, err = unix.MemfdCreate("guest", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Ftruncate(f.memfd, feMemSize); err != nil {
		t.Fatal(err)
	}
	f.mem, err = unix.Mmap(f.memfd, 0, feMemSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.close)
	for q := range f.rings {
		base := q * 0x10000
		f.rings[q] = &drvRing{f: f, num: feRingSize, descOff: base, availOff: base + 16*feRingSize,
			usedOff: base + 0x8000, bufOff: 0x100000 + q*feRingSize*feBufSize}
		f.kick[q], _ = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
		f.call[q], _ = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	}

	if got := f.get(ReqGetFeatures); got&feats != feats {
		t.Fatalf("GET_FEATURES %#x lacks %#x", got, feats)
	}
	f.send(ReqSetOwner, nil)
	f.send(ReqSetFeatures, u64(feats))
	if feats&FeatProtocolFeatures != 0 {
		f.get(ReqGetProtocolFeatures)
		f.send(ReqSetProtocolFeatures, u64(ProtoReplyAck|ProtoMQ))
	}
	region := make([]byte, 8+32)
	binary.LittleEndian.PutUint32(region, 1)
	binary.LittleEndian.PutUint64(region[8:], feGuestBase)
	binary.LittleEndian.PutUint64(region[16:], feMemSize)
	binary.LittleEndian.PutUint64(region[24:], feUserBase)
	f.sendFDs(ReqSetMemTable, region, f.memfd)
	for q, r := range f.rings {
		f.send(ReqSetVringNum, state(q, feRingSize))
		f.send(ReqSetVringBase, state(q, 0))
		a := make([]byte, 40)
		binary.LittleEndian.PutUint32(a, uint32(q))
		binary.LittleEndian.PutUint64(a[8:], feUserBase+uint64(r.descOff))
		binary.LittleEndian.PutUint64(a[16:], feUserBase+uint64(r.usedOff))
		binary.LittleEndian.PutUint64(a[24:], feUserBase+uint64(r.availOff))
		f.send(ReqSetVringAddr, a)
		f.sendFDs(ReqSetVringCall, u64(uint64(q)), f.call[q])
		f.sendFDs(ReqSetVringKick, u64(uint64(q)), f.kick[q])
		if feats&FeatProtocolFeatures != 0 {
			f.send(ReqSetVringEnable, state(q, 1))
		}
	}
	f.sync()
	return f
}

var one = [8]byte{1}

func u64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

func state(i, n int) []byte {
	b := binary.LittleEndian.AppendUint32(nil, uint32(i))
	return binary.LittleEndian.AppendUint32(b, uint32(n))
}

func (f *frontend) sendFDs(req Request, p []byte, fds ...int) {
	f.t.Helper()
	b := make([]byte, headerSize+len(p))
	binary.LittleEndian.PutUint32(b, uint32(req))
	binary.LittleEndian.PutUint32(b[4:], flagVersion)
	binary.LittleEndian.PutUint32(b[8:], uint32(len(p)))
	copy(b[headerSize:], p)
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	if _, _, err := f.conn.WriteMsgUnix(b, oob, nil); err != nil {
		f.t.Fatalf("%v: %v", req, err)
	}
}

func (f *frontend) send(req Request, p []byte) { f.sendFDs(req, p) }

// get sends a request that has a reply and returns the reply's u64.
func (f *frontend) get(req Request) uint64 {
	f.t.Helper()
	f.send(req, nil)
	return f.reply(req)
}

func (f *frontend) reply(req Request) uint64 {
	f.t.Helper()
	b := make([]byte, headerSize+8)
	if _, err := f.conn.Read(b); err != nil {
		f.t.Fatalf("%v reply: %v", req, err)
	}
	if Request(binary.LittleEndian.Uint32(b)) != req {
		f.t.Fatalf("reply to %v is for %v", req, Request(binary.LittleEndian.Uint32(b)))
	}
	return binary.LittleEndian.Uint64(b[headerSize:])
}

// sync waits until the device has handled everything sent so far.
func (f *frontend) sync() {
	f.t.Helper()
	f.get(ReqGetQueueNum)
}

func (f *frontend) close() {
	f.conn.Close()
	<-f.served
	unix.Munmap(f.mem)
	unix.Close(f.memfd)
	for q := range f.rings {
		unix.Close(f.kick[q])
		unix.Close(f.call[q])
	}
}

func (f *frontend) hdrLen() int {
	if f.feats&(FeatVersion1|FeatNetMrgRxbuf) != 0 {
		return 12
	}
	return 10
}

// transmit puts frames on the transmit ring (queue 1), each in one descriptor behind a
// zero header, starting at descriptor first, and kicks.
func (f *frontend) transmit(first int, frames ...[]byte) { f.transmitHdr(first, nil, frames...) }

// transmitHdr is transmit with hdr as every frame's virtio-net header.
func (f *frontend) transmitHdr(first int, hdr []byte, frames ...[]byte) {
	r := f.rings[1]
	for k, fr := range frames {
		i := (first + k) % r.num
		b := r.buf(i)
		clear(b[:f.hdrLen()])
		copy(b[:f.hdrLen()], hdr)
		n := copy(b[f.hdrLen():], fr)
		r.setDesc(i, r.gpa(r.bufOff+feBufSize*i), uint32(f.hdrLen()+n), 0, 0)
		r.offer(i)
	}
	unix.Write(f.kick[1], one[:])
}

// postRx offers n receive buffers of size bytes each (at most feBufSize), one descriptor
// per chain, from descriptor first on.
func (f *frontend) postRx(first, n, size int) {
	r := f.rings[0]
	for k := 0; k < n; k++ {
		i := (first + k) % r.num
		r.setDesc(i, r.gpa(r.bufOff+feBufSize*i), uint32(size), descWrite, 0)
		r.offer(i)
	}
}

// received returns the frames the device wrote to the receive ring, joining the buffers
// of a merged frame, and their num_buffers.
func (f *frontend) received() (frames [][]byte, nbufs []int) {
	r := f.rings[0]
	ids, lens := r.used()
	for k := 0; k < len(ids); {
		b := r.buf(ids[k])[:lens[k]]
		nb := 1
		if f.hdrLen() == 12 {
			nb = int(binary.LittleEndian.Uint16(b[10:]))
		}
		fr := append([]byte(nil), b[f.hdrLen():]...)
		for j := 1; j < nb && k+j < len(ids); j++ {
			fr = append(fr, r.buf(ids[k+j])[:lens[k+j]]...)
		}
		frames, nbufs = append(frames, fr), append(nbufs, nb)
		k += nb
	}
	return frames, nbufs
}
