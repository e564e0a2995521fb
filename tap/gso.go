package tap

import (
	"bytes"
	"encoding/binary"
	"math/bits"
)

// A TAP opened with IFF_VNET_HDR takes and gives each packet behind a virtio_net_hdr
// (linux/virtio_net.h), in the host's byte order (tun's default: no TUNSETVNETLE/BE).
// That header lets one write() carry a run of consecutive TCP segments of one flow as a
// single GSO packet: the kernel builds one skb for the run, and the receiving stack
// takes it in one pass, as it takes what GRO merged from a NIC. Each segment a switch
// writes to a TAP otherwise costs the writer a syscall plus the guest's whole IP and TCP
// receive path, run in that syscall, and the guest's ACKs for it come back through the
// switch and the sender's stack.
const (
	vnetHdrLen = 10

	vnetFlagNeedsCsum = 1 // the checksum at csum_start+csum_offset is still to be completed

	vnetGSONone  = 0
	vnetGSOTCPv4 = 1
	vnetGSOTCPv6 = 4
)

// vnetHdr is struct virtio_net_hdr.
type vnetHdr struct {
	flags, gsoType                       uint8
	hdrLen, gsoSize, csumStart, csumOffs uint16
}

func (h vnetHdr) put(b []byte) {
	b[0], b[1] = h.flags, h.gsoType
	binary.NativeEndian.PutUint16(b[2:], h.hdrLen)
	binary.NativeEndian.PutUint16(b[4:], h.gsoSize)
	binary.NativeEndian.PutUint16(b[6:], h.csumStart)
	binary.NativeEndian.PutUint16(b[8:], h.csumOffs)
}

func parseVnetHdr(b []byte) vnetHdr {
	return vnetHdr{
		flags: b[0], gsoType: b[1],
		hdrLen:    binary.NativeEndian.Uint16(b[2:]),
		gsoSize:   binary.NativeEndian.Uint16(b[4:]),
		csumStart: binary.NativeEndian.Uint16(b[6:]),
		csumOffs:  binary.NativeEndian.Uint16(b[8:]),
	}
}

// Limits of one merged packet: the IP length field, and the segments per write (each is
// an iovec).
const (
	maxGSOLen  = 65535
	maxGSOSegs = 64
	// maxGSOHdr is the longest header a merged packet can have: Ethernet, an IPv6
	// header (IPv4 options are never merged) and TCP with 40 bytes of options.
	maxGSOHdr = ethHdrLen + ipv6HdrLen + 60
)

const (
	ethHdrLen  = 14
	ipv4HdrLen = 20
	ipv6HdrLen = 40
	tcpHdrLen  = 20

	etherTypeIPv4 = 0x0800
	etherTypeIPv6 = 0x86dd
	protoTCP      = 6

	tcpPSH = 0x08
	tcpACK = 0x10
)

// tcpSeg describes a frame that carries one TCP segment with data: the only kind of frame
// that is merged. Offsets are into the frame.
type tcpSeg struct {
	v6   bool
	tcp  int // TCP header
	data int // payload
	end  int // end of the IP packet (a frame may be padded beyond it)
	seq  uint32
	psh  bool
	id   uint16 // IPv4 ID
	df   bool   // IPv4 DF; always set for IPv6
}

func (s *tcpSeg) payload() int { return s.end - s.data }

// parseTCPSeg reports whether f is an untagged Ethernet frame holding an IPv4 packet
// without options or fragmentation, or an IPv6 packet without extension headers, whose
// TCP segment carries data and has no flag but ACK, and maybe PSH: the segments that
// Linux's GRO merges (tcp_gro_receive), less the cases it merges rarely (but see
// nextRun on PSH).
func parseTCPSeg(f []byte) (s tcpSeg, ok bool) {
	if len(f) < ethHdrLen {
		return s, false
	}
	ip := f[ethHdrLen:]
	switch binary.BigEndian.Uint16(f[12:]) {
	case etherTypeIPv4:
		if len(ip) < ipv4HdrLen || ip[0] != 0x45 || ip[9] != protoTCP {
			return s, false
		}
		tot := int(binary.BigEndian.Uint16(ip[2:]))
		if tot < ipv4HdrLen || tot > len(ip) || binary.BigEndian.Uint16(ip[6:])&0x3fff != 0 {
			return s, false // a length that does not fit, or a fragment
		}
		s.tcp, s.end = ethHdrLen+ipv4HdrLen, ethHdrLen+tot
		s.id, s.df = binary.BigEndian.Uint16(ip[4:]), ip[6]&0x40 != 0
	case etherTypeIPv6:
		if len(ip) < ipv6HdrLen || ip[0]>>4 != 6 || ip[6] != protoTCP {
			return s, false
		}
		pl := int(binary.BigEndian.Uint16(ip[4:]))
		if ipv6HdrLen+pl > len(ip) {
			return s, false
		}
		s.v6, s.tcp, s.end, s.df = true, ethHdrLen+ipv6HdrLen, ethHdrLen+ipv6HdrLen+pl, true
	default:
		return s, false
	}
	if s.end-s.tcp < tcpHdrLen {
		return s, false
	}
	th := f[s.tcp:]
	doff := int(th[12]>>4) * 4
	if doff < tcpHdrLen || th[12]&0x0f != 0 || s.tcp+doff >= s.end {
		return s, false // a bad offset, reserved bits, or no payload
	}
	if th[13]&^tcpPSH != tcpACK {
		return s, false
	}
	s.data = s.tcp + doff
	s.seq = binary.BigEndian.Uint32(th[4:])
	s.psh = th[13]&tcpPSH != 0
	return s, true
}

// sameFlow reports whether g's segment n may follow f's (first, the run's first
// segment) in one merged packet: the same addresses, IP header fields, ports, ACK,
// window and TCP options, byte for byte. Sequence numbers and sizes are the caller's.
func sameFlow(f []byte, first tcpSeg, g []byte, n tcpSeg) bool {
	if n.v6 != first.v6 || n.data != first.data || !bytes.Equal(f[:ethHdrLen], g[:ethHdrLen]) {
		return false
	}
	ip, jp := f[ethHdrLen:], g[ethHdrLen:]
	if first.v6 {
		// Version, class and flow label; next header, hop limit and addresses.
		if !bytes.Equal(ip[0:4], jp[0:4]) || !bytes.Equal(ip[6:ipv6HdrLen], jp[6:ipv6HdrLen]) {
			return false
		}
	} else {
		// Version and TOS (with ECN); DF, TTL and protocol; addresses. Length, ID and
		// checksum may differ.
		if ip[1] != jp[1] || !bytes.Equal(ip[6:10], jp[6:10]) || !bytes.Equal(ip[12:20], jp[12:20]) {
			return false
		}
	}
	th, tg := f[first.tcp:first.data], g[n.tcp:n.data]
	return bytes.Equal(th[0:4], tg[0:4]) && // ports
		bytes.Equal(th[8:13], tg[8:13]) && // ACK number, data offset
		bytes.Equal(th[14:16], tg[14:16]) && // window
		bytes.Equal(th[18:], tg[18:]) // urgent pointer, options
}

// checksumOK verifies the IPv4 header checksum and the TCP checksum of s in f: a
// merged packet reaches the guest's stack with its checksum marked as to be completed,
// which the stack trusts, so what is merged must have been correct (GRO checks too).
func checksumOK(f []byte, s tcpSeg) bool {
	if !s.v6 && onesSum(f[ethHdrLen:s.tcp], 0) != 0xffff {
		return false
	}
	return onesSum(f[s.tcp:s.end], pseudoSum(f, s, s.end-s.tcp)) == 0xffff
}

// pseudoSum is the ones'-complement sum of the TCP pseudo-header of s in f for a TCP
// length of tcpLen.
func pseudoSum(f []byte, s tcpSeg, tcpLen int) uint16 {
	return pseudoSumAt(f, ethHdrLen, s.v6, tcpLen)
}

// pseudoSumAt is pseudoSum for an IP header at f[ip:].
func pseudoSumAt(f []byte, ip int, v6 bool, tcpLen int) uint16 {
	var sum uint16
	if v6 {
		sum = onesSum(f[ip+8:ip+ipv6HdrLen], 0)
	} else {
		sum = onesSum(f[ip+12:ip+ipv4HdrLen], 0)
	}
	return addSum(addSum(sum, protoTCP), uint16(tcpLen))
}

// setIPv4Checksum fills in the checksum of the IPv4 header h (options included).
func setIPv4Checksum(h []byte) {
	binary.BigEndian.PutUint16(h[10:], 0)
	binary.BigEndian.PutUint16(h[10:], ^onesSum(h, 0))
}

// addSum adds two ones'-complement sums.
func addSum(a, b uint16) uint16 {
	v := uint32(a) + uint32(b)
	return uint16(v + v>>16)
}

// onesSum returns the RFC 1071 ones'-complement sum of b (not complemented), starting
// from initial. It adds little-endian 64-bit words and swaps the bytes at the end: the
// sum does not depend on byte order (RFC 1071 §2.B).
func onesSum(b []byte, initial uint16) uint16 {
	acc := uint64(bits.ReverseBytes16(initial))
	var c uint64
	for len(b) >= 32 {
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b), 0)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[8:]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[16:]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[24:]), c)
		acc, c = bits.Add64(acc, 0, c)
		acc += c
		b = b[32:]
	}
	for len(b) >= 8 {
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b), 0)
		acc += c
		b = b[8:]
	}
	for len(b) >= 2 {
		acc, c = bits.Add64(acc, uint64(binary.LittleEndian.Uint16(b)), 0)
		acc += c
		b = b[2:]
	}
	if len(b) == 1 {
		acc, c = bits.Add64(acc, uint64(b[0]), 0)
		acc += c
	}
	s := (acc >> 32) + (acc & 0xffffffff)
	s = (s >> 32) + (s & 0xffffffff)
	s = (s >> 16) + (s & 0xffff)
	s = (s >> 16) + (s & 0xffff)
	return bits.ReverseBytes16(uint16(s))
}

// run is a stretch of frames that goes to the device as one packet: a merged one when
// n > 1, else the frame as it is.
type run struct {
	start, n int
	psh      bool // some merged segment had PSH
	payload  int  // bytes of payload in all
}

// nextRun returns the run that starts at frames[i]: the frame alone, or with the TCP
// segments after it that continue its flow in sequence, as long as each but the last
// carries as much data as the first. A frame whose checksum is wrong is never merged;
// alone, it goes to the kernel, which drops it. p caches what is parsed, for the next run.
//
// Unlike GRO, a segment with PSH does not end a run. GRO stops there so as not to hold a
// pushed segment back while it waits for more; nothing waits here (the run is cut from
// frames already in hand), and gVisor's TCP, slirp's, sets PSH on every segment it
// sends, so stopping at PSH would merge none of them. The merged packet carries PSH if
// any of its segments did; only PSH's position inside the run is lost, which Linux's
// receiver does not use.
func nextRun(frames [][]byte, i int, p *parsed) run {
	r := run{start: i, n: 1}
	first, ok := p.get(frames, i)
	if !ok {
		return r
	}
	r.psh, r.payload = first.psh, first.payload()
	mss := first.payload()
	last := first
	checked := false
	for j := i + 1; j < len(frames) && r.n < maxGSOSegs; j++ {
		if last.payload() != mss {
			break // a short segment ends the run
		}
		n, ok := p.get(frames, j)
		// Without DF, a resegmenting kernel numbers IDs up from the first: merge only
		// segments already numbered so (GRO's rule), so that no ID is used twice.
		if !ok || n.seq != last.seq+uint32(last.payload()) || n.payload() > mss || !n.df && n.id != last.id+1 ||
			first.data-ethHdrLen+r.payload+n.payload() > maxGSOLen || !sameFlow(frames[i], first, frames[j], n) {
			break
		}
		if !checked {
			if !checksumOK(frames[i], first) {
				return run{start: i, n: 1}
			}
			checked = true
		}
		if !checksumOK(frames[j], n) {
			break
		}
		r.n++
		r.payload += n.payload()
		r.psh = r.psh || n.psh
		last = n
	}
	if r.n == 1 {
		r.psh, r.payload = false, 0
	}
	return r
}

// parsed caches parseTCPSeg's answers for a batch, so that a frame that ends one run
// and starts the next is parsed once.
type parsed struct {
	segs []tcpSeg
	ok   []bool
	done []bool
}

func (p *parsed) reset(n int) {
	if cap(p.segs) < n {
		p.segs, p.ok, p.done = make([]tcpSeg, n), make([]bool, n), make([]bool, n)
	}
	p.segs, p.ok, p.done = p.segs[:n], p.ok[:n], p.done[:n]
	clear(p.done)
}

func (p *parsed) get(frames [][]byte, i int) (tcpSeg, bool) {
	if !p.done[i] {
		p.segs[i], p.ok[i] = parseTCPSeg(frames[i])
		p.done[i] = true
	}
	return p.segs[i], p.ok[i]
}

// mergedHeader writes into h (at least maxGSOHdr bytes) the headers of the packet that
// carries r, and into vh its virtio_net_hdr; it returns the headers' length. The headers
// are the first segment's with the lengths of the whole, PSH if any segment had it, a
// fresh IPv4 header checksum, and in the TCP checksum field the pseudo-header's sum, which
// the kernel completes over the rest if the packet ever leaves the guest (for the guest's
// own stack the checksum counts as verified).
func mergedHeader(h, vh, f []byte, r run, first tcpSeg) int {
	n := copy(h, f[:first.data])
	tcpLen := first.data - first.tcp + r.payload
	gso := uint8(vnetGSOTCPv6)
	if first.v6 {
		binary.BigEndian.PutUint16(h[ethHdrLen+4:], uint16(tcpLen))
	} else {
		gso = vnetGSOTCPv4
		ip := h[ethHdrLen:first.tcp]
		binary.BigEndian.PutUint16(ip[2:], uint16(ipv4HdrLen+tcpLen))
		setIPv4Checksum(ip)
	}
	if r.psh {
		h[first.tcp+13] |= tcpPSH
	}
	binary.BigEndian.PutUint16(h[first.tcp+16:], pseudoSum(h, first, tcpLen))
	vnetHdr{
		flags: vnetFlagNeedsCsum, gsoType: gso,
		hdrLen: uint16(first.data), gsoSize: uint16(first.payload()),
		csumStart: uint16(first.tcp), csumOffs: 16,
	}.put(vh)
	return n
}

// completeChecksum finishes the checksum of a packet the kernel handed over with
// VIRTIO_NET_HDR_F_NEEDS_CSUM: the field at csumStart+csumOffs holds the pseudo-header's
// sum, and the rest is the sum from csumStart to the end. It reports false if the offsets
// do not fit the frame.
func completeChecksum(f []byte, h vnetHdr) bool {
	start, at := int(h.csumStart), int(h.csumStart)+int(h.csumOffs)
	if start > len(f) || at+2 > len(f) {
		return false
	}
	sum := ^onesSum(f[start:], 0)
	if sum == 0 {
		sum = 0xffff // the same in ones' complement, and for UDP 0 would mean "none"
	}
	binary.BigEndian.PutUint16(f[at:], sum)
	return true
}

// The read side. With offloads on (TUNSETOFFLOAD), the guest's stack hands a TAP each
// TCP send of up to 64 KiB as one GSO packet with its checksum left to the device, as it
// would to a NIC with TSO; the reader then makes one read() where it made up to 45, and
// the guest's stack skips its own segmentation. VDE's wire carries frames, so the
// device cuts the packet into segments as the NIC would (tcp_gso_segment): the headers
// of the whole on each gso_size bytes of payload, lengths and sequence numbers set,
// IPv4 IDs counted up, FIN and PSH on the last segment only, CWR on the first only, and
// every checksum computed.

const (
	vnetGSOECN = 0x80 // the sender set CWR: keep it on the first segment only

	tcpFIN = 0x01
	tcpCWR = 0x80
)

// gsoCutter cuts one GSO TCP packet into frames, one segment per next call.
type gsoCutter struct {
	pkt      []byte // the packet, headers first; nil when none is being cut
	ip, tcp  int    // offsets of the IP and TCP headers
	data     int    // offset of the payload
	v6       bool
	mss      int
	off      int    // next payload byte
	pseudo   uint16 // the pseudo-header's sum without the TCP length
	seq      uint32
	id       uint16
	flags    byte
	segsDone int
}

// start takes pkt, read with header h whose gso_type is not NONE; it reports false, and
// takes nothing, if pkt is not a TCP packet over IPv4 or IPv6 as h says, or its segments
// would not fit in frames of maxFrame bytes. VLAN tags (802.1Q, 802.1ad) may come first,
// and IPv6 extension headers before TCP: the kernel's csum_start says where TCP begins,
// and the checksum field holds the pseudo-header's sum for the whole (with the final
// destination, if a routing header changes it), which each segment's length adjusts.
func (c *gsoCutter) start(pkt []byte, h vnetHdr, maxFrame int) bool {
	c.pkt = nil
	gso := h.gsoType &^ vnetGSOECN
	if gso != vnetGSOTCPv4 && gso != vnetGSOTCPv6 || h.gsoSize == 0 || len(pkt) < ethHdrLen {
		return false
	}
	ip, et := 12, uint16(0)
	for {
		if len(pkt) < ip+2 {
			return false
		}
		et = binary.BigEndian.Uint16(pkt[ip:])
		ip += 2
		if et != 0x8100 && et != 0x88a8 {
			break
		}
		ip += 2 // the tag's TCI
	}
	v6 := gso == vnetGSOTCPv6
	tcp := 0
	if v6 {
		if et != etherTypeIPv6 || len(pkt) < ip+ipv6HdrLen || pkt[ip]>>4 != 6 {
			return false
		}
		tcp = ip + ipv6HdrLen
		if pkt[ip+6] != protoTCP {
			tcp = -1 // behind extension headers: only csum_start knows
		}
	} else {
		if et != etherTypeIPv4 || len(pkt) < ip+ipv4HdrLen || pkt[ip]>>4 != 4 || pkt[ip+9] != protoTCP {
			return false
		}
		tcp = ip + int(pkt[ip]&0x0f)*4
		if tcp < ip+ipv4HdrLen {
			return false
		}
	}
	partial := h.flags&vnetFlagNeedsCsum != 0 && h.csumOffs == 16
	if partial {
		if tcp >= 0 && int(h.csumStart) != tcp || tcp < 0 && int(h.csumStart) < ip+ipv6HdrLen {
			return false
		}
		tcp = int(h.csumStart)
	} else if tcp < 0 {
		return false
	}
	if len(pkt) < tcp+tcpHdrLen {
		return false
	}
	data := tcp + int(pkt[tcp+12]>>4)*4
	ipLen := len(pkt) - ip // what the IPv4 total length counts
	if v6 {
		ipLen -= ipv6HdrLen // the IPv6 payload length
	}
	if data < tcp+tcpHdrLen || data >= len(pkt) || ipLen > maxGSOLen {
		return false
	}
	// A gso_size beyond the payload (a short send on a flow with a large MSS) is one
	// segment of what there is.
	mss := min(int(h.gsoSize), len(pkt)-data)
	if data+mss > maxFrame {
		return false
	}
	var pseudo uint16
	if partial {
		whole := len(pkt) - tcp
		pseudo = addSum(binary.BigEndian.Uint16(pkt[tcp+16:]), ^uint16(whole))
	} else {
		pseudo = pseudoSumAt(pkt, ip, v6, 0)
	}
	*c = gsoCutter{
		pkt: pkt, ip: ip, tcp: tcp, data: data, v6: v6, mss: mss, off: data, pseudo: pseudo,
		seq: binary.BigEndian.Uint32(pkt[tcp+4:]), flags: pkt[tcp+13],
	}
	if !v6 {
		c.id = binary.BigEndian.Uint16(pkt[ip+4:])
	}
	return true
}

// pending reports whether segments are left to cut.
func (c *gsoCutter) pending() bool { return c.pkt != nil }

// next writes the next segment into dst (at least data+mss bytes long, as start
// checked) and returns its length.
func (c *gsoCutter) next(dst []byte) int {
	n := min(c.mss, len(c.pkt)-c.off)
	size := c.data + n
	copy(dst, c.pkt[:c.data])
	copy(dst[c.data:size], c.pkt[c.off:c.off+n])
	last := c.off+n == len(c.pkt)
	if c.v6 {
		binary.BigEndian.PutUint16(dst[c.ip+4:], uint16(size-c.ip-ipv6HdrLen))
	} else {
		h := dst[c.ip:c.tcp]
		binary.BigEndian.PutUint16(h[2:], uint16(size-c.ip))
		binary.BigEndian.PutUint16(h[4:], c.id+uint16(c.segsDone))
		setIPv4Checksum(h)
	}
	th := dst[c.tcp:size]
	binary.BigEndian.PutUint32(th[4:], c.seq+uint32(c.off-c.data))
	flags := c.flags
	if !last {
		flags &^= tcpFIN | tcpPSH
	}
	if c.segsDone > 0 {
		flags &^= tcpCWR
	}
	th[13] = flags
	binary.BigEndian.PutUint16(th[16:], 0)
	binary.BigEndian.PutUint16(th[16:], ^onesSum(th, addSum(c.pseudo, uint16(len(th)))))
	c.off += n
	c.segsDone++
	if last {
		c.pkt = nil
	}
	return size
}
