package tap

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"
)

// refSum is RFC 1071 read literally: big-endian 16-bit words, carries folded at the end.
func refSum(b []byte, initial uint16) uint16 {
	s := uint32(initial)
	for len(b) >= 2 {
		s += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint32(b[0]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

func TestOnesSumMatchesRFC1071(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for n := range 300 {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		if n%7 == 0 {
			for i := range b {
				b[i] = 0xff // carries everywhere
			}
		}
		init := uint16(rng.Uint32())
		if got, want := onesSum(b, init), refSum(b, init); got != want {
			t.Fatalf("len %d initial %#x: onesSum %#x, RFC 1071 %#x", n, init, got, want)
		}
	}
}

// flow builds the frames of one TCP flow the way a sender's stack puts them on a wire.
type flow struct {
	v6      bool
	opts    []byte // TCP options, a multiple of 4 bytes
	seq     uint32
	ipID    uint16
	payload int // bytes per full segment
	fill    byte
	noDF    bool // IPv4 without DF: IDs matter
}

func (fl *flow) segment(n int, flags byte) []byte {
	ipLen := ipv4HdrLen
	if fl.v6 {
		ipLen = ipv6HdrLen
	}
	thl := tcpHdrLen + len(fl.opts)
	f := make([]byte, ethHdrLen+ipLen+thl+n)
	copy(f[0:6], []byte{2, 0, 0, 0, 0, 2})
	copy(f[6:12], []byte{2, 0, 0, 0, 0, 1})
	ip := f[ethHdrLen:]
	if fl.v6 {
		binary.BigEndian.PutUint16(f[12:], etherTypeIPv6)
		ip[0] = 0x60
		binary.BigEndian.PutUint16(ip[4:], uint16(thl+n))
		ip[6], ip[7] = protoTCP, 64
		copy(ip[8:24], []byte{0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1})
		copy(ip[24:40], []byte{0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2})
	} else {
		binary.BigEndian.PutUint16(f[12:], etherTypeIPv4)
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(ipv4HdrLen+thl+n))
		binary.BigEndian.PutUint16(ip[4:], fl.ipID)
		fl.ipID++
		if !fl.noDF {
			ip[6] = 0x40 // DF
		}
		ip[8], ip[9] = 64, protoTCP
		copy(ip[12:20], []byte{10, 0, 2, 2, 10, 0, 2, 15})
	}
	th := f[ethHdrLen+ipLen:]
	binary.BigEndian.PutUint16(th[0:], 5201)
	binary.BigEndian.PutUint16(th[2:], 40000)
	binary.BigEndian.PutUint32(th[4:], fl.seq)
	binary.BigEndian.PutUint32(th[8:], 777)
	th[12] = byte(thl/4) << 4
	th[13] = flags
	binary.BigEndian.PutUint16(th[14:], 512)
	copy(th[tcpHdrLen:], fl.opts)
	for i := range n {
		th[thl+i] = fl.fill
		fl.fill++
	}
	fl.seq += uint32(n)
	fixChecksums(f)
	return f
}

// fixChecksums recomputes the IPv4 header and TCP checksums of a frame built by flow.
func fixChecksums(f []byte) {
	s, ok := parseTCPSegAnyFlags(f)
	if !ok {
		return
	}
	if !s.v6 {
		ip := f[ethHdrLen:s.tcp]
		binary.BigEndian.PutUint16(ip[10:], 0)
		binary.BigEndian.PutUint16(ip[10:], ^onesSum(ip, 0))
	}
	binary.BigEndian.PutUint16(f[s.tcp+16:], 0)
	binary.BigEndian.PutUint16(f[s.tcp+16:], ^onesSum(f[s.tcp:s.end], pseudoSum(f, s, s.end-s.tcp)))
}

// parseTCPSegAnyFlags is parseTCPSeg for a frame with any TCP flags.
func parseTCPSegAnyFlags(f []byte) (tcpSeg, bool) {
	if len(f) < ethHdrLen+ipv4HdrLen+tcpHdrLen {
		return tcpSeg{}, false
	}
	tcp := ethHdrLen + ipv4HdrLen
	if binary.BigEndian.Uint16(f[12:]) == etherTypeIPv6 {
		tcp = ethHdrLen + ipv6HdrLen
	}
	if tcp+tcpHdrLen > len(f) {
		return tcpSeg{}, false
	}
	saved := f[tcp+13]
	f[tcp+13] = tcpACK
	s, ok := parseTCPSeg(f)
	f[tcp+13] = saved
	return s, ok
}

// plan runs the write side's planner over frames and returns what would go to the kernel:
// per run, the virtio_net_hdr and the packet.
func plan(frames [][]byte) (runs []run, hdrs []vnetHdr, pkts [][]byte) {
	var p parsed
	p.reset(len(frames))
	for i := 0; i < len(frames); {
		r := nextRun(frames, i, &p)
		if r.n == 1 {
			runs, hdrs, pkts = append(runs, r), append(hdrs, vnetHdr{}), append(pkts, frames[i])
			i++
			continue
		}
		var h [maxGSOHdr]byte
		var vh [vnetHdrLen]byte
		first := p.segs[i]
		hl := mergedHeader(h[:], vh[:], frames[i], r, first)
		pkt := append([]byte(nil), h[:hl]...)
		for j := i; j < i+r.n; j++ {
			pkt = append(pkt, frames[j][p.segs[j].data:p.segs[j].end]...)
		}
		runs, hdrs, pkts = append(runs, r), append(hdrs, parseVnetHdr(vh[:])), append(pkts, pkt)
		i += r.n
	}
	return runs, hdrs, pkts
}

// resegment cuts a merged packet back into frames as the kernel's TCP GSO does when it
// has to (tcp_gso_segment): the first packet's headers on each piece of gso_size bytes,
// sequence numbers advanced, PSH on the last piece only, IPv4 IDs counted up, checksums
// computed.
func resegment(t *testing.T, pkt []byte, h vnetHdr) [][]byte {
	t.Helper()
	s, ok := parseTCPSegAnyFlags(pkt)
	if !ok || int(h.hdrLen) != s.data || int(h.csumStart) != s.tcp || h.csumOffs != 16 || h.flags != vnetFlagNeedsCsum {
		t.Fatalf("merged packet's headers %+v do not match its parse %+v", h, s)
	}
	wantGSO := uint8(vnetGSOTCPv4)
	if s.v6 {
		wantGSO = vnetGSOTCPv6
	}
	if h.gsoType != wantGSO || s.end != len(pkt) || len(pkt)-ethHdrLen > maxGSOLen {
		t.Fatalf("merged packet: gso type %d (want %d), IP end %d of %d bytes", h.gsoType, wantGSO, s.end, len(pkt))
	}
	// The pseudo-header sum in the checksum field, completed over the whole, must make
	// the merged packet's own TCP checksum right.
	whole := append([]byte(nil), pkt...)
	if !completeChecksum(whole, h) || onesSum(whole[s.tcp:], pseudoSum(whole, s, len(whole)-s.tcp)) != 0xffff {
		t.Fatal("merged packet's partial TCP checksum does not complete to a valid one")
	}
	if !s.v6 && onesSum(pkt[ethHdrLen:s.tcp], 0) != 0xffff {
		t.Fatal("merged packet's IPv4 header checksum is wrong")
	}
	var out [][]byte
	data := pkt[s.data:]
	seq := s.seq
	id := binary.BigEndian.Uint16(pkt[ethHdrLen+4:])
	for len(data) > 0 {
		n := min(int(h.gsoSize), len(data))
		f := append(append([]byte(nil), pkt[:s.data]...), data[:n]...)
		binary.BigEndian.PutUint32(f[s.tcp+4:], seq)
		if n < len(data) {
			f[s.tcp+13] &^= tcpPSH
		}
		if s.v6 {
			binary.BigEndian.PutUint16(f[ethHdrLen+4:], uint16(len(f)-ethHdrLen-ipv6HdrLen))
		} else {
			binary.BigEndian.PutUint16(f[ethHdrLen+2:], uint16(len(f)-ethHdrLen))
			binary.BigEndian.PutUint16(f[ethHdrLen+4:], id)
			id++
		}
		fixChecksums(f)
		out = append(out, f)
		seq += uint32(n)
		data = data[n:]
	}
	return out
}

// checkPlan checks that the runs cover frames in order, that a merged run resegments into
// exactly its frames (IPv4 IDs aside, which the kernel renumbers, and PSH, which moves to
// the last segment), and that what is merged had good checksums and is a well-formed GSO
// packet.
func checkPlan(t *testing.T, frames [][]byte) []run {
	t.Helper()
	runs, hdrs, pkts := plan(frames)
	next := 0
	for k, r := range runs {
		if r.start != next || r.n < 1 || r.n > maxGSOSegs {
			t.Fatalf("run %d is %+v after frame %d", k, r, next)
		}
		next += r.n
		if r.n == 1 {
			if !bytes.Equal(pkts[k], frames[r.start]) || hdrs[k] != (vnetHdr{}) {
				t.Fatalf("run %d: a single frame was changed", k)
			}
			continue
		}
		segs := resegment(t, pkts[k], hdrs[k])
		if len(segs) != r.n {
			t.Fatalf("run %d of %d frames resegments into %d", k, r.n, len(segs))
		}
		psh := false
		for j := range r.n {
			s, _ := parseTCPSeg(frames[r.start+j])
			psh = psh || s.psh
		}
		for j, got := range segs {
			orig := frames[r.start+j]
			s, _ := parseTCPSeg(orig)
			if !checksumOK(orig, s) {
				t.Fatalf("run %d merged frame %d, whose checksum is wrong", k, r.start+j)
			}
			want := append([]byte(nil), orig[:s.end]...)
			if j == r.n-1 && psh {
				want[s.tcp+13] |= tcpPSH
			} else {
				want[s.tcp+13] &^= tcpPSH
			}
			fixChecksums(want)
			if !s.v6 && s.df {
				// With DF the kernel's new IDs do not matter; without, they must be the
				// ones sent (numbered up from the first).
				copy(got[ethHdrLen+4:ethHdrLen+6], want[ethHdrLen+4:ethHdrLen+6])
				fixChecksums(got)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("run %d, frame %d after merging and resegmenting:\n got %x\nwant %x", k, r.start+j, got, want)
			}
		}
	}
	if next != len(frames) {
		t.Fatalf("runs cover %d of %d frames", next, len(frames))
	}
	return runs
}

func runSizes(runs []run) []int {
	var n []int
	for _, r := range runs {
		n = append(n, r.n)
	}
	return n
}

func TestMergeBulkFlow(t *testing.T) {
	ts := []byte{1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2} // NOP NOP timestamps
	for _, v6 := range []bool{false, true} {
		t.Run(fmt.Sprintf("v6=%v", v6), func(t *testing.T) {
			fl := &flow{v6: v6, opts: ts, seq: 1000, payload: 1448}
			var frames [][]byte
			for range 32 {
				frames = append(frames, fl.segment(1448, tcpACK))
			}
			if got := runSizes(checkPlan(t, frames)); fmt.Sprint(got) != "[32]" {
				t.Errorf("32 full segments: runs %v, want [32]", got)
			}

			// A short segment, a pure ACK, a retransmission, and a bad checksum each
			// end a run; PSH does not.
			fl = &flow{v6: v6, opts: ts, seq: 1000}
			frames = nil
			for range 3 {
				frames = append(frames, fl.segment(1448, tcpACK))
			}
			frames = append(frames, fl.segment(1448, tcpACK|tcpPSH))
			frames = append(frames, fl.segment(1448, tcpACK), fl.segment(100, tcpACK|tcpPSH)) // ends the run of 6
			frames = append(frames, fl.segment(1448, tcpACK))                                 // after a short one
			frames = append(frames, fl.segment(0, tcpACK))                                    // no data
			frames = append(frames, fl.segment(1448, tcpACK), frames[len(frames)-3])          // a retransmission
			bad := fl.segment(1448, tcpACK)
			frames = append(frames, fl.segment(1448, tcpACK), bad, fl.segment(1448, tcpACK))
			bad[len(bad)-1] ^= 0xff
			if got := runSizes(checkPlan(t, frames)); fmt.Sprint(got) != "[6 1 1 1 1 1 1 1]" {
				t.Errorf("runs %v, want [6 1 1 1 1 1 1 1]", got)
			}
		})
	}
}

// TestMergeLimits: no merged packet is longer than an IP length field holds.
func TestMergeLimits(t *testing.T) {
	fl := &flow{seq: 1}
	var frames [][]byte
	for range 12 {
		frames = append(frames, fl.segment(8960, tcpACK)) // jumbo frames
	}
	got := runSizes(checkPlan(t, frames))
	if fmt.Sprint(got) != "[7 5]" {
		t.Errorf("12 segments of 8960 bytes: runs %v, want [7 5] (65535-byte IP packets)", got)
	}
}

// FuzzMergeTCP changes frames of a bulk flow in the ways a switch meets them (other
// flows, flags, lengths, options, corruption, tags, padding) and checks that what the
// write side merges resegments into exactly the frames it merged.
func FuzzMergeTCP(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{1, 3, 0, 5, 9, 0, 2, 0, 7, 7, 0, 1})
	f.Add([]byte{0x80, 0, 12, 0, 13, 0, 14, 0, 15, 0, 16, 0, 17, 0, 18, 0})
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) == 0 {
			return
		}
		fl := &flow{v6: ops[0]&0x80 != 0, seq: uint32(ops[0]) << 24, payload: 100 + int(ops[0]&0x3f)*20}
		if ops[0]&0x40 != 0 {
			fl.opts = []byte{1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2}
		}
		var frames [][]byte
		for i := 1; i+1 < len(ops) && len(frames) < 100; i += 2 {
			op, arg := ops[i], ops[i+1]
			fr := fl.segment(fl.payload, tcpACK)
			s, _ := parseTCPSegAnyFlags(fr)
			ip := fr[ethHdrLen:]
			switch op % 25 {
			case 0, 1, 2, 3: // as it is
			case 4:
				fr = fl.segment(int(arg)%fl.payload, tcpACK) // short (or empty)
			case 5:
				fr[s.tcp+13] |= arg & 0x3f // other flags
			case 6:
				fr[s.tcp+8] ^= arg | 1 // another ACK number
			case 7:
				fr[s.tcp+14] ^= arg | 1 // another window
			case 8:
				fr[arg%12] ^= 1 // another MAC
			case 9:
				ip[1] ^= arg | 1 // another TOS or flow label
			case 10:
				fr[len(fr)-1-int(arg)%8] ^= 0x5a // corrupt, checksum left wrong
				frames = append(frames, fr)
				continue
			case 11:
				binary.BigEndian.PutUint32(fr[s.tcp+4:], fl.seq-uint32(arg)) // out of sequence
			case 12:
				if !fl.v6 {
					ip[6] |= 0x20 // more fragments
				}
			case 13:
				tagged := append(append(append([]byte(nil), fr[:12]...), 0x81, 0, 0, arg), fr[12:]...)
				frames = append(frames, tagged)
				continue
			case 14:
				frames = append(frames, fr[:int(arg)%len(fr)]) // truncated
				continue
			case 15:
				fr = append(fr, make([]byte, int(arg)%40)...) // Ethernet padding
			case 16:
				if len(fl.opts) > 0 {
					fr[s.tcp+tcpHdrLen+4+int(arg)%8] ^= 1 // another timestamp
				}
			case 17:
				fr[s.tcp] ^= arg | 1 // another port
			case 18:
				ip[8-2*b2i(fl.v6)+int(arg)%2] ^= 1 // another TTL or protocol (v4), or hop limit / next header (v6)
			case 19:
				fl.payload = 1 + int(arg)*6 // the sender's segment size changes
			case 20:
				if fl.v6 {
					ip[8+int(arg)%32] ^= 1 // another address
				} else {
					ip[12+int(arg)%8] ^= 1
				}
			case 21:
				if fl.v6 {
					ip[2+int(arg)%2] ^= arg | 1 // another flow label
				} else {
					fl.noDF = !fl.noDF // from the next frame on
				}
			case 22:
				fr[s.tcp+12] ^= 1 + arg%15 // reserved bits, AE
			case 23:
				fr[s.tcp+13] |= 0x40 << (arg % 2) // ECE or CWR
			case 24:
				if !fl.v6 {
					ip[4] ^= arg | 1 // an IPv4 ID out of turn
				}
			}
			fixChecksums(fr)
			frames = append(frames, fr)
		}
		checkPlan(t, frames)
	})
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func BenchmarkPlanBulk(b *testing.B) {
	fl := &flow{opts: []byte{1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2}, seq: 1}
	frames := make([][]byte, 32)
	for i := range frames {
		frames[i] = fl.segment(1448, tcpACK)
	}
	var p parsed
	var h [maxGSOHdr]byte
	var vh [vnetHdrLen]byte
	b.SetBytes(int64(32 * 1448))
	b.ReportAllocs()
	for b.Loop() {
		p.reset(len(frames))
		for i := 0; i < len(frames); {
			r := nextRun(frames, i, &p)
			if r.n > 1 {
				mergedHeader(h[:], vh[:], frames[i], r, p.segs[i])
			}
			i += r.n
		}
	}
}

// gsoShape is one kind of TCP send a guest's stack hands a TAP with offloads.
type gsoShape struct {
	v6      bool
	tags    int  // VLAN tags (802.1ad outer, 802.1Q inner)
	ipOpts  int  // bytes of IPv4 options (NOPs)
	ext     bool // an IPv6 destination-options header before TCP
	tcpOpts int  // bytes of TCP options (NOPs)
	size    int  // payload
	flags   byte // the send's TCP flags
	mss     int
}

// frame puts the shape's IP options, extension header and tags into f, a frame built by
// flow, and returns it with the offsets of its IP and TCP headers.
func (g gsoShape) frame(f []byte) (out []byte, ip, tcp int) {
	out = append([]byte(nil), f...)
	ip, tcp = ethHdrLen, ethHdrLen+ipv4HdrLen
	if g.v6 {
		tcp = ethHdrLen + ipv6HdrLen
	}
	if !g.v6 && g.ipOpts > 0 {
		opts := bytes.Repeat([]byte{1}, g.ipOpts)
		out = append(append(append([]byte(nil), out[:tcp]...), opts...), out[tcp:]...)
		out[ip] = byte(0x40 | (ipv4HdrLen+g.ipOpts)/4)
		binary.BigEndian.PutUint16(out[ip+2:], uint16(len(out)-ip))
		tcp += g.ipOpts
	}
	if g.v6 && g.ext {
		dst := []byte{protoTCP, 0, 1, 4, 0, 0, 0, 0} // next header TCP, PadN
		out = append(append(append([]byte(nil), out[:tcp]...), dst...), out[tcp:]...)
		out[ip+6] = 60
		binary.BigEndian.PutUint16(out[ip+4:], uint16(len(out)-ip-ipv6HdrLen))
		tcp += 8
	}
	for k := range g.tags {
		tpid := []byte{0x81, 0}
		if k == g.tags-1 && g.tags > 1 {
			tpid = []byte{0x88, 0xa8}
		}
		out = append(append(append(append([]byte(nil), out[:12]...), tpid...), 0, byte(k+1)), out[12:]...)
		ip, tcp = ip+4, tcp+4
	}
	return out, ip, tcp
}

// refPseudo is the TCP pseudo-header's sum, built byte by byte and summed by refSum
// (independent of pseudoSumAt).
func refPseudo(f []byte, ip int, v6 bool, tcpLen int) uint16 {
	var ph []byte
	if v6 {
		ph = append(ph, f[ip+8:ip+40]...)
		ph = binary.BigEndian.AppendUint32(ph, uint32(tcpLen))
		ph = append(ph, 0, 0, 0, protoTCP)
	} else {
		ph = append(ph, f[ip+12:ip+20]...)
		ph = append(ph, 0, protoTCP)
		ph = binary.BigEndian.AppendUint16(ph, uint16(tcpLen))
	}
	return refSum(ph, 0)
}

// refFix sets f's IPv4 header checksum and its TCP checksum with refSum.
func refFix(f []byte, ip, tcp int, v6 bool) {
	if !v6 {
		binary.BigEndian.PutUint16(f[ip+10:], 0)
		binary.BigEndian.PutUint16(f[ip+10:], ^refSum(f[ip:ip+int(f[ip]&0xf)*4], 0))
	}
	binary.BigEndian.PutUint16(f[tcp+16:], 0)
	binary.BigEndian.PutUint16(f[tcp+16:], ^refSum(f[tcp:], refPseudo(f, ip, v6, len(f)-tcp)))
}

// build returns what the guest's stack hands over for the send (the whole's headers,
// the checksum field holding the pseudo-header's sum for the whole, as
// __tcp_v4_send_check leaves it) and the frames a NIC would send for it, each built by
// flow on its own.
func (g gsoShape) build() (pkt []byte, h vnetHdr, want [][]byte) {
	fl := &flow{v6: g.v6, opts: bytes.Repeat([]byte{1}, g.tcpOpts), seq: 0xfffff000, ipID: 0xfffe}
	whole := &flow{v6: g.v6, opts: fl.opts, seq: fl.seq, ipID: fl.ipID}
	var ip, tcp int
	for off := 0; off < g.size; off += g.mss {
		n := min(g.mss, g.size-off)
		flags := g.flags
		if off+n < g.size {
			flags &^= tcpFIN | tcpPSH
		}
		if off > 0 {
			flags &^= tcpCWR
		}
		var f []byte
		f, ip, tcp = g.frame(fl.segment(n, flags))
		refFix(f, ip, tcp, g.v6)
		want = append(want, f)
	}
	pkt, ip, tcp = g.frame(whole.segment(g.size, g.flags))
	if !g.v6 {
		refFix(pkt, ip, tcp, false)
	}
	binary.BigEndian.PutUint16(pkt[tcp+16:], refPseudo(pkt, ip, g.v6, len(pkt)-tcp))
	gso := uint8(vnetGSOTCPv4)
	if g.v6 {
		gso = vnetGSOTCPv6
	}
	if g.flags&tcpCWR != 0 {
		gso |= vnetGSOECN
	}
	return pkt, vnetHdr{flags: vnetFlagNeedsCsum, gsoType: gso, gsoSize: uint16(g.mss), csumStart: uint16(tcp), csumOffs: 16}, want
}

// cut runs the cutter over pkt; nil if it refuses the packet.
func cut(t *testing.T, pkt []byte, h vnetHdr, maxFrame int) [][]byte {
	t.Helper()
	var c gsoCutter
	if !c.start(pkt, h, maxFrame) {
		return nil
	}
	var out [][]byte
	for c.pending() {
		if len(out) > len(pkt) {
			t.Fatal("the cutter does not end")
		}
		dst := make([]byte, maxFrame)
		out = append(out, dst[:c.next(dst)])
	}
	return out
}

// checkCut cuts the shape's packet and compares the frames with the ones a NIC would
// send, byte for byte.
func checkCut(t *testing.T, g gsoShape) {
	t.Helper()
	pkt, h, want := g.build()
	got := cut(t, pkt, h, 9234)
	if len(got) != len(want) {
		t.Fatalf("%+v: cut into %d frames, want %d", g, len(got), len(want))
	}
	for k := range want {
		if !bytes.Equal(got[k], want[k]) {
			t.Fatalf("%+v: frame %d\n got %x\nwant %x", g, k, got[k], want[k])
		}
	}
}

func TestCutGSO(t *testing.T) {
	for _, g := range []gsoShape{
		{size: 65000, flags: tcpACK | tcpPSH, mss: 1448, tcpOpts: 12},
		{v6: true, size: 10000, flags: tcpACK | tcpFIN | tcpPSH, mss: 1428, tcpOpts: 12},
		{tags: 1, ipOpts: 8, size: 3000, flags: tcpACK | tcpCWR, mss: 1000},
		{tags: 2, v6: true, ext: true, size: 5000, flags: tcpACK | tcpPSH, mss: 1220},
		{size: 1000, flags: tcpACK, mss: 1448},
		{size: 100, flags: tcpACK | tcpPSH, mss: 9500}, // a gso_size beyond the payload
	} {
		checkCut(t, g)
	}
	// A gso_size beyond the payload: one segment of what there is.
	pkt, h, _ := gsoShape{size: 100, flags: tcpACK | tcpPSH, mss: 9500}.build()
	if fr := cut(t, pkt, h, 9234); len(fr) != 1 || len(fr[0]) != len(pkt) {
		t.Errorf("100 bytes with a gso_size of 9500: %d frames, want 1 of %d bytes", len(fr), len(pkt))
	}
	// Refused: a segment larger than a frame, a gso_size of 0, a UDP type, a packet
	// that is not what the type says.
	pkt, h, _ = gsoShape{size: 20000, flags: tcpACK, mss: 9500}.build()
	if cut(t, pkt, h, 9234) != nil {
		t.Error("a gso_size larger than a frame was taken")
	}
	for _, bad := range []vnetHdr{{gsoType: vnetGSOTCPv4}, {gsoType: 3, gsoSize: 1000}, {gsoType: vnetGSOTCPv6, gsoSize: 1000}} {
		pkt, _, _ := gsoShape{size: 5000, flags: tcpACK, mss: 1000}.build()
		if cut(t, pkt, bad, 9234) != nil {
			t.Errorf("%+v was taken", bad)
		}
	}
}

// FuzzCutGSO cuts GSO packets as a TAP may hand them over: well-formed ones must come out
// as a NIC would send them (checkCut); with bytes overwritten, none may crash the reader,
// and what it cuts must fit the frames.
func FuzzCutGSO(f *testing.F) {
	f.Add(byte(0), uint16(1448), uint16(60000), byte(0x18), []byte{})
	f.Add(byte(0x1f), uint16(500), uint16(3000), byte(0x99), []byte{1, 2, 3})
	f.Add(byte(0x80), uint16(7), uint16(100), byte(0x10), []byte{0x45, 0, 0})
	f.Fuzz(func(t *testing.T, shape byte, mss, size uint16, flags byte, garbage []byte) {
		g := gsoShape{
			v6: shape&1 != 0, tags: int(shape>>1) & 3 % 3, ipOpts: int(shape>>3&3) * 4, ext: shape&8 != 0,
			tcpOpts: int(shape>>5&3) * 4, size: int(size)%64000 + 1, flags: flags&^0x06 | tcpACK, mss: int(mss)%9000 + 1,
		}
		if shape&0x80 == 0 {
			checkCut(t, g)
			return
		}
		pkt, h, _ := g.build()
		for i, b := range garbage {
			pkt[(i*7)%len(pkt)] = b
		}
		if len(garbage) > 1 {
			h.gsoType, h.csumStart = garbage[0], uint16(garbage[1])
		}
		for _, fr := range cut(t, pkt, h, 9234) {
			if len(fr) > 9234 {
				t.Fatalf("a frame of %d bytes", len(fr))
			}
		}
	})
}
