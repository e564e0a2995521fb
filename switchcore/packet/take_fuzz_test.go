package packet

import (
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/vde-go/vde/tap"
)

// fakeRecv puts one packet into slot 0 as recvmmsg would: its virtio_net_hdr, its bytes,
// the length and flags, and (when status is not 0) a PACKET_AUXDATA message.
func fakeRecv(e *Endpoint, vnet [tap.VnetHdrLen]byte, pkt []byte, flags int32, status uint32, tci, tpid uint16) {
	if e.bufs == nil {
		e.allocRx()
	}
	e.vnet[0] = vnet
	n := copy(e.bufs[0][tagLen:], pkt)
	m := &e.hdrs[0]
	m.Len = uint32(tap.VnetHdrLen + len(pkt))
	m.Hdr.Flags = flags
	m.Hdr.Controllen = 0
	if n < len(pkt) {
		m.Hdr.Flags |= unix.MSG_TRUNC
	}
	if status != 0 {
		cm := (*unix.Cmsghdr)(unsafe.Pointer(&e.aux[0][0]))
		cm.Level, cm.Type = unix.SOL_PACKET, unix.PACKET_AUXDATA
		cm.SetLen(unix.CmsgLen(sizeofAuxdata))
		ad := (*unix.TpacketAuxdata)(unsafe.Pointer(&e.aux[0][unix.SizeofCmsghdr]))
		*ad = unix.TpacketAuxdata{Status: status, Vlan_tci: tci, Vlan_tpid: tpid}
		m.Hdr.Controllen = uint64(unix.CmsgSpace(sizeofAuxdata))
	}
	e.seg.Reset()
}

func TestTakeVLAN(t *testing.T) {
	e := &Endpoint{}
	f := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x88, 0xb5, 'x', 'y'}
	fakeRecv(e, [tap.VnetHdrLen]byte{}, f, 0, unix.TP_STATUS_VLAN_VALID, 0x2005, 0)
	dst := make([]byte, 100)
	want := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x81, 0, 0x20, 0x05, 0x88, 0xb5, 'x', 'y'}
	if n := e.take(0, dst); string(dst[:n]) != string(want) {
		t.Errorf("take = %x, want %x", dst[:n], want)
	}
	fakeRecv(e, [tap.VnetHdrLen]byte{}, f, 0, unix.TP_STATUS_VLAN_VALID|unix.TP_STATUS_VLAN_TPID_VALID, 7, 0x88a8)
	want = []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x88, 0xa8, 0, 7, 0x88, 0xb5, 'x', 'y'}
	if n := e.take(0, dst); string(dst[:n]) != string(want) {
		t.Errorf("take (802.1ad) = %x, want %x", dst[:n], want)
	}
	fakeRecv(e, [tap.VnetHdrLen]byte{}, f, 0, 0, 0, 0)
	if n := e.take(0, dst); string(dst[:n]) != string(f) {
		t.Errorf("take (untagged) = %x, want %x", dst[:n], f)
	}
	fakeRecv(e, [tap.VnetHdrLen]byte{}, f, unix.MSG_TRUNC, 0, 0, 0)
	if n := e.take(0, dst); n != 0 || e.Dropped() != 1 {
		t.Errorf("take (truncated) = %d, dropped %d", n, e.Dropped())
	}
	if n := e.take(0, dst[:10]); n != 0 {
		t.Errorf("take into a short buffer = %d", n)
	}
}

// FuzzTake: whatever header, auxiliary data and bytes the kernel hands over, take
// neither panics nor writes past the frame, and what it and the segments after it give
// fit the caller's buffer; with no offload flags and no tag a frame comes out unchanged.
func FuzzTake(f *testing.F) {
	f.Add(make([]byte, tap.VnetHdrLen), []byte("0123456789abcdefgh"), uint32(0), uint16(0), uint16(0), uint16(100))
	f.Add([]byte{1, 1, 0, 0, 0x10, 0, 34, 0, 16, 0}, make([]byte, 200), uint32(unix.TP_STATUS_VLAN_VALID), uint16(5), uint16(0), uint16(9235))
	e := &Endpoint{} // its buffers are 1 MiB: one for all runs
	f.Fuzz(func(t *testing.T, vh, pkt []byte, status uint32, tci, tpid, dstLen uint16) {
		if len(pkt) > rxPktMax {
			pkt = pkt[:rxPktMax]
		}
		var v [tap.VnetHdrLen]byte
		copy(v[:], vh)
		fakeRecv(e, v, pkt, 0, status, tci, tpid)
		dst := make([]byte, int(dstLen)%(2*9235))
		n := e.take(0, dst)
		if n < 0 || n > len(dst) {
			t.Fatalf("take = %d into %d bytes", n, len(dst))
		}
		plain := v == [tap.VnetHdrLen]byte{} && status&unix.TP_STATUS_VLAN_VALID == 0
		if plain && len(pkt) > 0 && len(pkt) <= len(dst) && (n != len(pkt) || string(dst[:n]) != string(pkt)) {
			t.Fatalf("a plain packet came out as %x, want %x", dst[:n], pkt)
		}
		for i := 0; e.seg.Pending(); i++ {
			if i > 1<<16 {
				t.Fatal("the segments do not end")
			}
			if m := e.seg.Next(dst); m > len(dst) {
				t.Fatalf("a segment of %d bytes into %d", m, len(dst))
			}
		}
	})
}
