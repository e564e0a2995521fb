package tap

import (
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/vde-go/vde/switchcore/wire"
)

var _ wire.OffloadEndpoint = (*Device)(nil)

func offloadOf(h vnetHdr) wire.Offload {
	return wire.Offload{Flags: h.flags, GSOType: h.gsoType, HdrLen: h.hdrLen, GSOSize: h.gsoSize,
		CsumStart: h.csumStart, CsumOffset: h.csumOffs}
}

func hdrOf(o wire.Offload) vnetHdr {
	return vnetHdr{flags: o.Flags, gsoType: o.GSOType, hdrLen: o.HdrLen, gsoSize: o.GSOSize,
		csumStart: o.CsumStart, csumOffs: o.CsumOffset}
}

// TakesOffload implements wire.OffloadEndpoint: a TAP with IFF_VNET_HDR takes GSO packets
// and checksums left to do (the kernel finishes them, or hands them on unfinished).
func (d *Device) TakesOffload() bool { return d.vnet }

// ReadOffload implements wire.OffloadEndpoint: ReadBatch without cutting GSO packets or
// completing checksums; each packet comes whole with its offloads in offl. The buffers
// must hold wire.MaxPacket bytes (a shorter one drops a packet that does not fit).
func (d *Device) ReadOffload(frames [][]byte, sizes []int, offl []wire.Offload) (int, error) {
	if !d.vnet {
		clear(offl[:min(len(offl), len(frames))])
		return d.ReadBatch(frames, sizes)
	}
	d.roffl = offl
	defer func() { d.roffl = nil }()
	return d.ReadBatch(frames, sizes)
}

// readWhole reads one packet behind its virtio_net_hdr straight into buf (readv).
func (d *Device) readWhole(fd int, buf []byte, o *wire.Offload) (int, error) {
	n, err := d.readVnet(fd, buf)
	if n > 0 {
		*o = offloadOf(parseVnetHdr(d.vnetR[:]))
	}
	return n, err
}

// readVnet reads one packet with readv, its virtio_net_hdr into d.vnetR and the packet
// into buf, and returns the packet's length: 0 at EOF, -1 for a packet to drop (no more
// than a header, or cut to buf: tun returns the whole length).
func (d *Device) readVnet(fd int, buf []byte) (int, error) {
	iov := &d.riov
	iov[0].Base, iov[0].Len = &d.vnetR[0], vnetHdrLen
	iov[1].Base = &buf[0]
	iov[1].SetLen(len(buf))
	r, _, e := unix.Syscall(unix.SYS_READV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), 2)
	if e != 0 {
		return 0, e
	}
	n := int(r)
	if n == 0 {
		return 0, nil
	}
	if n <= vnetHdrLen || n-vnetHdrLen > len(buf) {
		return -1, nil
	}
	return n - vnetHdrLen, nil
}

// WriteOffload implements wire.OffloadEndpoint: plain frames go as WriteBatch sends them
// (runs of TCP segments merged), the others one write each behind their own header.
func (d *Device) WriteOffload(frames [][]byte, offl []wire.Offload) (int, error) {
	if !d.vnet {
		return d.WriteBatch(frames)
	}
	sent := 0
	for i := 0; i < len(frames); {
		j := i
		for j < len(frames) && offl[j].Plain() {
			j++
		}
		if j > i {
			n, err := d.WriteBatch(frames[i:j])
			sent += n
			if err != nil {
				return sent, err
			}
			i = j
			continue
		}
		ok, err := d.writeOffloaded(frames[i], offl[i])
		if err != nil {
			return sent, &Error{Name: d.name, Op: "write", Err: err}
		}
		if ok {
			sent++
		}
		i++
	}
	return sent, nil
}

// writeOffloaded writes one packet behind the header its offloads make; false when the
// device refused it (full, link down, a packet it does not take): dropped and counted.
func (d *Device) writeOffloaded(f []byte, o wire.Offload) (bool, error) {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	hdrOf(o).put(d.wvnet[:])
	iov := [2]unix.Iovec{iovec(d.wvnet[:]), iovec(f)}
	for {
		_, _, e := unix.Syscall(unix.SYS_WRITEV, uintptr(d.fd), uintptr(unsafe.Pointer(&iov[0])), 2)
		switch e {
		case 0:
			return true, nil
		case unix.EINTR:
			continue
		case unix.EAGAIN, unix.ENOBUFS, unix.ENOMEM, unix.EIO, unix.EINVAL, unix.EMSGSIZE:
			d.dropped.Add(1)
			return false, nil
		default:
			return false, e
		}
	}
}

// TakeOffload is Take for a packet whose header is given as a wire.Offload.
func (s *Segmenter) TakeOffload(o wire.Offload, pkt []byte, maxFrame int) int {
	var b [vnetHdrLen]byte
	hdrOf(o).put(b[:])
	return s.Take(b[:], pkt, maxFrame)
}
