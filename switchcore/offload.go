package switchcore

import (
	"github.com/vde-go/vde/switchcore/wire"
)

// Packets with offloads (wire.Offload: a GSO packet up to 64 KiB, or a frame whose
// checksum is left to do) come from endpoints that read them so (TAPs with IFF_VNET_HDR,
// vhost-user guests that negotiated TSO). They cross the switch whole to the endpoints
// that take them whole (wire.OffloadEndpoint.TakesOffload) and are cut into frames, with
// their checksums completed, for every other port: the one cutter is tap.Segmenter. Only
// readers of such endpoints carry offloads; the datagram path pays one nil check.

// offloadBatch is how many packets an offloading reader takes per batch: its buffers
// are wire.MaxPacket long, and 16 of them (1 MiB) are a TSO stream's worth.
const offloadBatch = 16

// newOffloadSlab makes an offloading reader's buffers.
func newOffloadSlab() [][]byte {
	bufs := make([][]byte, offloadBatch)
	slab := make([]byte, offloadBatch*wire.MaxPacket)
	for i := range bufs {
		bufs[i] = slab[i*wire.MaxPacket : (i+1)*wire.MaxPacket : (i+1)*wire.MaxPacket]
	}
	return bufs
}

// offloadLoop reads an offloading endpoint until it fails or closes.
func (r *reader) offloadLoop(ep *endpoint, oe wire.OffloadEndpoint) error {
	r.bufs = newOffloadSlab()
	r.offl = make([]wire.Offload, len(r.bufs))
	for !ep.closed.Load() {
		n, err := oe.ReadOffload(r.bufs, r.sizes[:len(r.bufs)], r.offl)
		if err != nil {
			return err
		}
		r.forward(ep.port, n)
	}
	return nil
}

// queueOffload records the offloads of the frame just queued in slot; tag is the VLAN
// tag's bytes the frame gained (4) or lost (-4) on its way to that port, which move the
// headers the offloads point into.
func (r *reader) queueOffload(slot int) {
	o := r.cur
	if !o.Plain() && r.curDelta != 0 {
		o.CsumStart = uint16(int(o.CsumStart) + r.curDelta)
		if o.HdrLen != 0 {
			o.HdrLen = uint16(int(o.HdrLen) + r.curDelta)
		}
	}
	r.pendOffl[slot] = append(r.pendOffl[slot], o)
}

// sendOffload sends a slot's batch with its offloads: whole to an endpoint that takes
// them, cut into frames for any other.
func (r *reader) sendOffload(ep *endpoint, frames [][]byte, offl []wire.Offload, flood []bool, alone bool) {
	plain := true
	for _, o := range offl {
		if !o.Plain() {
			plain = false
			break
		}
	}
	if plain {
		r.send(ep, frames, flood, alone)
		return
	}
	if ep.queue != nil && ep.queue.od != nil {
		r.sendChannel(ep, frames, offl, flood, alone)
		return
	}
	if oe, ok := ep.data.(wire.OffloadEndpoint); ok && oe.TakesOffload() {
		sent, err := oe.WriteOffload(frames, offl)
		r.sent(ep, len(frames)-sent, err)
		return
	}
	frames, flood, dropped := r.segment(frames, offl, flood)
	r.sent(ep, dropped, nil)
	if len(frames) > 0 {
		r.send(ep, frames, flood, alone)
	}
}

// segment cuts the GSO packets of a batch into frames and completes the checksums left
// to do, into the reader's cut buffers (the packets themselves stay as they are: they may
// also go whole to another port). It returns the frames to send and how many packets it
// had to drop (not what their headers say).
func (r *reader) segment(frames [][]byte, offl []wire.Offload, flood []bool) ([][]byte, []bool, int) {
	out, fl := r.cutFrames[:0], r.cutFlood[:0]
	k, dropped := 0, 0
	for i, f := range frames {
		o := offl[i]
		if o.Plain() {
			out, fl = append(out, f), append(fl, flood[i])
			continue
		}
		src := f
		if o.GSOType == wire.GSONone { // a checksum to complete: on a copy
			if len(f) > wire.MaxFrame {
				dropped++
				continue
			}
			b := r.cutBuf(k)
			k++
			src = b[:copy(b, f)]
		}
		switch n := r.seg.TakeOffload(o, src, wire.MaxFrame); {
		case n < 0:
			dropped++
		case n > 0:
			out, fl = append(out, src[:n]), append(fl, flood[i])
		default:
			for r.seg.Pending() {
				b := r.cutBuf(k)
				k++
				m := r.seg.Next(b)
				if m < 0 {
					dropped++
					break
				}
				out, fl = append(out, b[:m]), append(fl, flood[i])
			}
		}
	}
	r.cutFrames, r.cutFlood = out, fl
	return out, fl, dropped
}

// cutBuf is the reader's k-th cut buffer, made at first use and kept.
func (r *reader) cutBuf(k int) []byte {
	for len(r.cutBufs) <= k {
		r.cutBufs = append(r.cutBufs, make([]byte, wire.MaxFrame))
	}
	return r.cutBufs[k]
}
