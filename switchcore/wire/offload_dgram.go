package wire

import (
	"encoding/binary"
	"fmt"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// OffloadHdrLen is the header before every packet of a data channel with offloads
// (VersionOffload): a virtio_net_hdr in the virtio 1.x layout (little endian, with
// num_buffers, which is always 1 here), as TAPs and vhost-user guests carry it.
const OffloadHdrLen = 12

// ParseOffloadHdr reads the offloads of a virtio_net_hdr (at least 10 bytes).
func ParseOffloadHdr(b []byte) Offload {
	le := binary.LittleEndian
	return Offload{Flags: b[0], GSOType: b[1], HdrLen: le.Uint16(b[2:]), GSOSize: le.Uint16(b[4:]),
		CsumStart: le.Uint16(b[6:]), CsumOffset: le.Uint16(b[8:])}
}

// PutOffloadHdr writes o as a virtio_net_hdr into b (at least 10 bytes; the 11th and
// 12th, num_buffers, if there, are the caller's).
func PutOffloadHdr(b []byte, o Offload) {
	le := binary.LittleEndian
	b[0], b[1] = o.Flags, o.GSOType
	le.PutUint16(b[2:], o.HdrLen)
	le.PutUint16(b[4:], o.GSOSize)
	le.PutUint16(b[6:], o.CsumStart)
	le.PutUint16(b[8:], o.CsumOffset)
}

// OffloadDatagram is a data channel with offloads (VersionOffload) on a connected unix
// datagram socket: each datagram is an OffloadHdrLen header and a packet. It is an
// OffloadEndpoint that always takes offloads; our switch and our clients (slirpvde) use it
// between themselves, so that a TSO packet crosses as one datagram instead of 45 frames.
type OffloadDatagram struct {
	*Datagram
	rd, wr offloadBatch
	wmu    sync.Mutex // serialises writers sharing wr
}

// offloadBatch is the scratch of one recvmmsg or sendmmsg of an offload channel: two
// iovecs a message, the header and the packet.
type offloadBatch struct {
	hdrs    []unix.Mmsghdr
	iovs    []unix.Iovec
	vnet    []byte // OffloadHdrLen a message
	cnt, n  int
	errno   syscall.Errno
	fn      func(fd uintptr) bool
	waitFor bool // the write waits for room (WriteOffloadWait)
}

func newOffloadBatch(size int) offloadBatch {
	return offloadBatch{hdrs: make([]unix.Mmsghdr, size), iovs: make([]unix.Iovec, 2*size), vnet: make([]byte, OffloadHdrLen*size)}
}

// NewOffloadDatagram wraps fd as NewDatagramPoll does, for a channel with offloads.
//
// Its calls are raw system calls (as NewRawBatch's): every one is MSG_DONTWAIT, so none
// blocks, and its users are the switch's forwarding goroutines and slirpvde's LAN port,
// where a scheduler-aware call let sysmon hand the processor off during each (see
// NewRawBatch, and slirp/port.go's measurement).
func NewOffloadDatagram(fd int, name string, poll *RuntimePoll) (*OffloadDatagram, error) {
	d, err := NewDatagramPoll(fd, name, poll)
	if err != nil {
		return nil, err
	}
	o := &OffloadDatagram{Datagram: d, rd: newOffloadBatch(BatchSize), wr: newOffloadBatch(BatchSize)}
	rd, wr := &o.rd, &o.wr
	rd.fn = func(fd uintptr) bool {
		rd.n, rd.errno = recvmmsg(fd, rd.hdrs[:rd.cnt], unix.MSG_DONTWAIT|unix.MSG_TRUNC, true)
		return rd.errno != unix.EAGAIN
	}
	wr.fn = func(fd uintptr) bool {
		wr.n, wr.errno = sendmmsg(fd, wr.hdrs[:wr.cnt], unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL, true)
		// A waiting send on a switch's socket turns its write interest on first (as
		// Batch.SendWait does); one that cannot be armed returns EAGAIN instead.
		return !(wr.waitFor && wr.errno == unix.EAGAIN && o.wi.Arm(fd))
	}
	return o, nil
}

// setup points message i at header i and frames[i], for up to len(hdrs) frames.
func (b *offloadBatch) setup(frames [][]byte) {
	n := min(len(frames), len(b.hdrs))
	for i := 0; i < n; i++ {
		iov := b.iovs[2*i : 2*i+2 : 2*i+2]
		iov[0].Base = &b.vnet[OffloadHdrLen*i]
		iov[0].SetLen(OffloadHdrLen)
		if f := frames[i]; len(f) > 0 {
			iov[1].Base = &f[0]
		} else {
			iov[1].Base = nil
		}
		iov[1].SetLen(len(frames[i]))
		b.hdrs[i].Hdr = unix.Msghdr{Iov: &iov[0], Iovlen: 2}
		b.hdrs[i].Len = 0
	}
	b.cnt = n
}

// ReadOffload implements OffloadEndpoint: it waits for packets and reads up to len(frames)
// of them (buffers of MaxPacket bytes), with their offloads. Runts, packets larger than
// their buffer and zero-length datagrams (a goodbye) are skipped. Only one goroutine may
// read.
func (o *OffloadDatagram) ReadOffload(frames [][]byte, sizes []int, offl []Offload) (int, error) {
	b := &o.rd
	for {
		b.setup(frames)
		if err := o.rc.Read(b.fn); err != nil {
			return 0, err
		}
		if b.errno != 0 {
			return 0, b.errno
		}
		k := 0
		for i := 0; i < b.n; i++ {
			size := int(b.hdrs[i].Len) - OffloadHdrLen
			if size <= 0 || size > len(frames[i]) {
				continue
			}
			if offl != nil {
				offl[k] = ParseOffloadHdr(b.vnet[OffloadHdrLen*i:])
			} else if !ParseOffloadHdr(b.vnet[OffloadHdrLen*i:]).Plain() {
				continue // ReadBatch takes plain frames only
			}
			if k != i {
				frames[k], frames[i] = frames[i], frames[k]
			}
			sizes[k] = size
			k++
		}
		if k > 0 {
			return k, nil
		}
	}
}

// ReadBatch implements Endpoint: ReadOffload without the packets that have offloads.
func (o *OffloadDatagram) ReadBatch(frames [][]byte, sizes []int) (int, error) {
	return o.ReadOffload(frames, sizes, nil)
}

// WriteOffload implements OffloadEndpoint: it sends what the peer's queue takes now and
// returns how many (the rest are the caller's to drop). It may be called from several
// goroutines.
func (o *OffloadDatagram) WriteOffload(frames [][]byte, offl []Offload) (int, error) {
	return o.write(frames, offl, false)
}

// WriteOffloadWait is WriteOffload that waits while the peer's queue is full (a client's
// sender, or a switch's queue writer); closing the socket ends the wait. On a switch's
// socket (NewOffloadDatagram with a RuntimePoll) the wait turns the write interest on:
// the caller turns it off (WriteInterest().Disarm) when it stops sending.
func (o *OffloadDatagram) WriteOffloadWait(frames [][]byte, offl []Offload) (int, error) {
	return o.write(frames, offl, true)
}

// WriteBatch implements Endpoint: plain frames, each behind a zero header.
func (o *OffloadDatagram) WriteBatch(frames [][]byte) (int, error) {
	return o.write(frames, nil, false)
}

// TakesOffload implements OffloadEndpoint: the channel was asked for with offloads.
func (o *OffloadDatagram) TakesOffload() bool { return true }

func (o *OffloadDatagram) write(frames [][]byte, offl []Offload, wait bool) (int, error) {
	o.wmu.Lock()
	defer o.wmu.Unlock()
	b := &o.wr
	b.waitFor = wait
	sent := 0
	for sent < len(frames) {
		b.setup(frames[sent:])
		for i := 0; i < b.cnt; i++ {
			h := b.vnet[OffloadHdrLen*i : OffloadHdrLen*(i+1)]
			var off Offload
			if offl != nil {
				off = offl[sent+i]
			}
			PutOffloadHdr(h, off)
			binary.LittleEndian.PutUint16(h[10:], 1) // num_buffers
		}
		if err := o.rc.Write(b.fn); err != nil {
			return sent, err
		}
		switch {
		case b.errno == unix.EAGAIN || b.errno == unix.ENOBUFS:
			return sent, nil
		case b.errno != 0:
			return sent, fmt.Errorf("sendmmsg: %w", b.errno)
		}
		sent += b.n
	}
	return sent, nil
}

var _ OffloadEndpoint = (*OffloadDatagram)(nil)
