package tap

import (
	"bytes"
	"testing"
)

// TestSegmenter: what an AF_PACKET reader with PACKET_VNET_HDR gets through the exported
// side of the cutter: a GSO packet cut as a NIC would, a frame whose checksum was left to
// the device completed, and refusals.
func TestSegmenter(t *testing.T) {
	var s Segmenter
	hdr := make([]byte, VnetHdrLen)

	pkt, h, want := gsoShape{size: 5000, flags: tcpACK | tcpPSH, mss: 1448, tcpOpts: 12}.build()
	h.put(hdr)
	if n := s.Take(hdr, pkt, 9234); n != 0 {
		t.Fatalf("Take(GSO packet) = %d, want 0", n)
	}
	var got [][]byte
	for s.Pending() {
		dst := make([]byte, 9235)
		got = append(got, dst[:s.Next(dst)])
	}
	if len(got) != len(want) {
		t.Fatalf("%d frames, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("frame %d\n got %x\nwant %x", i, got[i], want[i])
		}
	}

	// One frame, its checksum left to the device: the field holds the pseudo-header's sum.
	one, oh, _ := gsoShape{size: 700, flags: tcpACK, mss: 1448}.build()
	oh.gsoType, oh.gsoSize = vnetGSONone, 0
	oh.put(hdr)
	full := append([]byte(nil), one...)
	refFix(full, ethHdrLen, ethHdrLen+ipv4HdrLen, false)
	if n := s.Take(hdr, one, 9234); n != len(one) || !bytes.Equal(one, full) {
		t.Fatalf("Take(partial checksum) = %d\n got %x\nwant %x", n, one, full)
	}

	// Refused: a short header, a checksum offset beyond the frame, a GSO packet whose
	// segments would not fit, a dst too short for the next segment.
	if n := s.Take(hdr[:4], full, 9234); n != -1 {
		t.Errorf("Take(short header) = %d", n)
	}
	bad := oh
	bad.csumStart = uint16(len(full))
	bad.put(hdr)
	if n := s.Take(hdr, full, 9234); n != -1 {
		t.Errorf("Take(checksum beyond the frame) = %d", n)
	}
	h.put(hdr)
	if n := s.Take(hdr, pkt, 1000); n != -1 || s.Pending() {
		t.Errorf("Take(segments over maxFrame) = %d, pending %v", n, s.Pending())
	}
	if s.Take(hdr, pkt, 9234) != 0 || s.Next(make([]byte, 100)) != -1 || s.Pending() {
		t.Error("a short dst did not drop the rest")
	}
	if s.Take(hdr, pkt, 9234) != 0 {
		t.Fatal("Take after a drop")
	}
	s.Reset()
	if s.Pending() {
		t.Error("Reset left segments")
	}
}
