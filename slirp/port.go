package slirp

import (
	"sync"
	"syscall"

	"github.com/vde-go/vde/switchcore/wire"
)

// port is the router's side of its switch port. On a switch's datagram socket (a
// *wire.Conn) it reads and writes with raw system calls (wire.NewRawBatch) on the socket
// itself, as the switch's forwarding goroutines do: every call is MSG_DONTWAIT, so none
// blocks, and a scheduler-aware call made by a router whose processors are both busy
// lets the runtime's sysmon thread hand the processor to another thread while it runs.
// With a per-frame guest (one datagram per frame, tens of thousands a second) sysmon's
// wakeups and handoffs took a fifth of the router's CPU in the vp-ours row of make bench
// (perf); with raw calls here and on the host sockets (stream.go) the router's CPU per MB
// there went from 4.4-4.6 to 3.4-3.8 ms guest→host and from 6.9-7.4 to 4.8-5.2 ms
// host→guest (alternating runs).
// Any other endpoint (a Redial, a stdin/stdout stream) keeps its own ReadBatch and
// WriteBatch. A channel with offloads (our switch took slirpvde's request for one) goes
// through its own reads and writes, which carry each packet's virtio_net_hdr.
type port struct {
	ep wire.Endpoint
	rc syscall.RawConn       // nil: through ep, or od
	od *wire.OffloadDatagram // a channel with offloads, or nil

	rb  *wire.Batch // the reader's
	wmu sync.Mutex  // serialises the netstack's writers on wb
	wb  *wire.Batch
}

func newPort(ep wire.Endpoint) *port {
	l := &port{ep: ep}
	if c, ok := ep.(*wire.Conn); ok && c.Offload() != nil {
		l.od = c.Offload()
	} else if ok {
		l.rc = c.RawConn()
		l.rb, l.wb = wire.NewRawBatch(wire.BatchSize), wire.NewRawBatch(wire.BatchSize)
	}
	return l
}

// offload says that the port reads packets with offloads, into buffers of
// wire.MaxPacket bytes (read's offl).
func (l *port) offload() bool { return l.od != nil }

// read waits for a batch of frames; sizes[i] larger than len(frames[i]) is a datagram
// too big for its buffer and 0 an empty one: the caller skips both. On a channel with
// offloads offl[i] gets packet i's.
func (l *port) read(frames [][]byte, sizes []int, offl []wire.Offload) (int, error) {
	if l.od != nil {
		return l.od.ReadOffload(frames, sizes, offl)
	}
	if l.rc == nil {
		return l.ep.ReadBatch(frames, sizes)
	}
	return l.rb.Recv(l.rc, frames, sizes)
}

// writeOffload sends packets with their offloads, on a channel that carries them (the
// link gives it none otherwise), waiting as write does.
func (l *port) writeOffload(frames [][]byte, offl []wire.Offload) {
	l.od.WriteOffloadWait(frames, offl)
}

// write sends frames, waiting while the switch's queue is full as wire.Conn.WriteBatch
// does (a plug's blocking send()); an error drops the rest.
func (l *port) write(frames [][]byte) {
	if l.od != nil {
		l.od.WriteOffloadWait(frames, nil)
		return
	}
	if l.rc == nil {
		l.ep.WriteBatch(frames)
		return
	}
	l.wmu.Lock()
	defer l.wmu.Unlock()
	for len(frames) > 0 {
		n, err := l.wb.SendWait(l.rc, frames)
		if err != nil {
			return
		}
		frames = frames[n:]
	}
}
