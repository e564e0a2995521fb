package tap

// VnetHdrLen is the length of struct virtio_net_hdr, which a TAP opened with
// IFF_VNET_HDR and an AF_PACKET socket with PACKET_VNET_HDR put before each packet.
const VnetHdrLen = vnetHdrLen

// Segmenter turns packets read behind a virtio_net_hdr into plain Ethernet frames, as a
// NIC would put them on the wire: a packet whose checksum the kernel left to the device
// gets it, and a GSO TCP packet is cut into segments. It is the read side of Device with
// offloads on, for other readers of such packets (an AF_PACKET socket with
// PACKET_VNET_HDR, which hands over what a local sender or a veth peer sent unsegmented
// and without checksums).
type Segmenter struct {
	cut gsoCutter
}

// Take takes pkt, read behind the virtio_net_hdr hdr (VnetHdrLen bytes, native byte
// order). It returns the length of the frame when pkt is one frame (its checksum now
// complete, in place); 0 when pkt is a GSO packet, whose segments Next gives while
// Pending (pkt must stay untouched until then); or -1 when pkt is to be dropped: the
// header does not fit the packet, or a segment would be longer than maxFrame.
func (s *Segmenter) Take(hdr, pkt []byte, maxFrame int) int {
	s.cut.pkt = nil
	if len(hdr) < vnetHdrLen {
		return -1
	}
	h := parseVnetHdr(hdr)
	if h.gsoType != vnetGSONone {
		if !s.cut.start(pkt, h, maxFrame) {
			return -1
		}
		return 0
	}
	if h.flags&vnetFlagNeedsCsum != 0 && !completeChecksum(pkt, h) {
		return -1
	}
	return len(pkt)
}

// Pending reports whether segments of the packet Take took are left.
func (s *Segmenter) Pending() bool { return s.cut.pending() }

// Next writes the next segment into dst and returns its length; -1, and the rest of the
// packet is dropped, if dst is too short for it.
func (s *Segmenter) Next(dst []byte) int {
	if len(dst) < s.cut.data+s.cut.mss {
		s.cut.pkt = nil
		return -1
	}
	return s.cut.next(dst)
}

// Reset drops what is left of the packet being cut.
func (s *Segmenter) Reset() { s.cut.pkt = nil }

// MaxMergedHdr is the longest header Merger.Run writes: Ethernet, IPv6 and TCP with
// options.
const MaxMergedHdr = maxGSOHdr

// MaxMergedSegs is the most frames Merger.Run puts in one packet.
const MaxMergedSegs = maxGSOSegs

// Merger finds, in a batch of frames, runs of consecutive TCP segments of one flow that
// can go to the kernel as one GSO packet behind a virtio_net_hdr, as Device's write side
// merges them; for other writers of such packets (an AF_PACKET socket with
// PACKET_VNET_HDR).
type Merger struct {
	p parsed
}

// Reset starts a batch of n frames.
func (m *Merger) Reset(n int) { m.p.reset(n) }

// Run returns how many frames, from frames[i] on, go as one packet. For n > 1 it wrote
// that packet's virtio_net_hdr into vnet (VnetHdrLen bytes) and its headers, hdrLen
// bytes, into hdr (MaxMergedHdr bytes); Payload gives what each of its frames adds
// behind them. For n == 1 the frame goes as it is.
func (m *Merger) Run(frames [][]byte, i int, vnet, hdr []byte) (n, hdrLen int) {
	r := nextRun(frames, i, &m.p)
	if r.n == 1 {
		return 1, 0
	}
	return r.n, mergedHeader(hdr, vnet, frames[i], r, m.p.segs[i])
}

// Payload is frame j's TCP payload, once Run has put it in a merged packet.
func (m *Merger) Payload(frames [][]byte, j int) []byte {
	s := m.p.segs[j]
	return frames[j][s.data:s.end]
}
