package switchcore

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sync"
	"testing"

	"github.com/vde-go/vde/switchcore/wire"
)

// offloadEndpoint is a captureEndpoint that takes offloads (as a TAP with IFF_VNET_HDR or
// a TSO guest does) and records them.
type offloadEndpoint struct {
	*captureEndpoint
	mu    sync.Mutex
	offl  []wire.Offload
	takes bool
}

func (e *offloadEndpoint) ReadOffload(f [][]byte, s []int, o []wire.Offload) (int, error) {
	return e.ReadBatch(f, s)
}

func (e *offloadEndpoint) WriteOffload(frames [][]byte, offl []wire.Offload) (int, error) {
	e.mu.Lock()
	e.offl = append(e.offl, offl...)
	e.mu.Unlock()
	return e.WriteBatch(frames)
}

func (e *offloadEndpoint) TakesOffload() bool { return e.takes }

// gsoPacket is an Ethernet/IPv4/TCP packet of payload bytes as a TSO sender hands it
// over: the IP length and checksum of one segment's worth left to the cutter, the TCP
// checksum holding the pseudo-header sum (NEEDS_CSUM).
func gsoPacket(src, dst byte, payload, mss int, tag bool) ([]byte, wire.Offload) {
	p := make([]byte, 14, 14+20+20+payload)
	copy(p[0:6], []byte{2, 0, 0, 0, 0, dst})
	copy(p[6:12], []byte{2, 0, 0, 0, 0, src})
	binary.BigEndian.PutUint16(p[12:], 0x0800)
	ip := make([]byte, 20)
	ip[0], ip[8], ip[9] = 0x45, 64, 6
	binary.BigEndian.PutUint16(ip[2:], uint16(20+20+payload))
	copy(ip[12:16], []byte{10, 0, 0, src})
	copy(ip[16:20], []byte{10, 0, 0, dst})
	tcp := make([]byte, 20)
	binary.BigEndian.PutUint16(tcp[0:], 40000)
	binary.BigEndian.PutUint16(tcp[2:], 5001)
	binary.BigEndian.PutUint32(tcp[4:], 1000)
	tcp[12], tcp[13] = 5<<4, 0x18
	binary.BigEndian.PutUint16(tcp[14:], 65535)
	// The pseudo-header sum, as Linux leaves it for CHECKSUM_PARTIAL.
	sum := uint32(0)
	for i := 12; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	sum += 6 + uint32(20+payload)
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(tcp[16:], uint16(sum))
	p = append(append(p, ip...), tcp...)
	for i := 0; i < payload; i++ {
		p = append(p, byte(i))
	}
	o := wire.Offload{Flags: wire.OffloadNeedsCsum, GSOType: wire.GSOTCPv4, HdrLen: 54, GSOSize: uint16(mss), CsumStart: 34, CsumOffset: 16}
	if tag {
		p = insertTag(make([]byte, len(p)+4), p, 0)
		o.CsumStart += 4
		o.HdrLen += 4
	}
	return p, o
}

// tcpChecksumOK verifies an untagged IPv4/TCP frame's TCP checksum.
func tcpChecksumOK(f []byte) bool {
	ip := f[14:34]
	tcpLen := int(binary.BigEndian.Uint16(ip[2:])) - 20
	sum := uint32(6 + tcpLen)
	for i := 12; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	seg := f[34 : 34+tcpLen]
	for i := 0; i+1 < len(seg); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(seg[i:]))
	}
	if len(seg)%2 == 1 {
		sum += uint32(seg[len(seg)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum) == 0xffff
}

// A GSO packet from an offloading endpoint goes whole to a port that takes offloads and
// is cut into checksummed frames for one that does not; VLAN tags it gains or loses on the
// way move its offsets.
func TestOffloadWholeOrCut(t *testing.T) {
	for _, tc := range []struct {
		desc              string
		srcTag, dstTagged bool
	}{{"untagged", false, false}, {"tagged source", true, false}} {
		t.Run(tc.desc, func(t *testing.T) {
			s := newTestSwitch(t, Config{NumPorts: 8})
			s.logf = func(string, ...any) {}
			whole := &offloadEndpoint{captureEndpoint: newCaptureEndpoint(), takes: true}
			plain := newCaptureEndpoint()
			src := &offloadEndpoint{captureEndpoint: newCaptureEndpoint(), takes: true}
			var nums []int
			for i, ep := range []wire.Endpoint{src, whole, plain} {
				n, err := s.AttachEndpoint(ep, 200+i, "test", fmt.Sprint(i))
				if err != nil {
					t.Fatal(err)
				}
				nums = append(nums, n)
			}
			if tc.srcTag {
				rigCmd(t, s, fmt.Sprintf("port/setvlan %d %d", nums[0], NoVLAN))
				rigCmd(t, s, fmt.Sprintf("vlan/addport 0 %d", nums[0]))
			}
			r := newReader(s)
			r.bufs = newOffloadSlab()
			r.offl = make([]wire.Offload, len(r.bufs))
			pkt, o := gsoPacket(1, 2, 10000, 1448, tc.srcTag)
			r.sizes[0] = copy(r.bufs[0], pkt)
			r.offl[0] = o
			s.mu.Lock()
			p := s.ports[nums[0]]
			s.mu.Unlock()
			r.forward(p, 1)

			got := whole.take()
			if len(got) != 1 || len(got[0]) != len(pkt)-4*b2int(tc.srcTag) {
				t.Fatalf("offloading port got %d packets (want 1 whole)", len(got))
			}
			wantO := o
			if tc.srcTag {
				wantO.CsumStart, wantO.HdrLen = 34, 54
			}
			if whole.offl[0] != wantO {
				t.Fatalf("offloads %+v, want %+v", whole.offl[0], wantO)
			}
			frames := plain.take()
			if len(frames) != 7 { // 10000 bytes in segments of 1448
				t.Fatalf("plain port got %d frames, want 7", len(frames))
			}
			var payload []byte
			for i, f := range frames {
				if !tcpChecksumOK(f) {
					t.Fatalf("segment %d: bad TCP checksum", i)
				}
				payload = append(payload, f[54:]...)
			}
			if want := pkt[len(pkt)-10000:]; !bytes.Equal(payload, want) {
				t.Fatal("the segments' payloads are not the packet's")
			}
		})
	}
}

func b2int(b bool) int {
	if b {
		return 1
	}
	return 0
}
