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
		ip[6] = 0x40 // DF
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
		hl := mergedHeader(h[:], vh[:], frames, r, first)
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
			if !s.v6 {
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
			switch op % 20 {
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
				mergedHeader(h[:], vh[:], frames, r, p.segs[i])
			}
			i += r.n
		}
	}
}

// gsoPacket builds a GSO TCP packet as a guest's stack hands it to a TAP with offloads:
// the headers of the whole (checksum field holding the pseudo-header sum), then size
// bytes of payload.
func gsoPacket(v6, vlan bool, ipOpts, tcpOpts, size int, flags byte, mss uint16) ([]byte, vnetHdr) {
	fl := &flow{v6: v6, opts: make([]byte, tcpOpts), seq: 0xfffff000}
	for i := range fl.opts {
		fl.opts[i] = 1 // NOP
	}
	f := fl.segment(size, flags)
	if !v6 && ipOpts > 0 {
		opts := make([]byte, ipOpts) // NOPs after an IPv4 header
		for i := range opts {
			opts[i] = 1
		}
		f = append(append(append([]byte(nil), f[:ethHdrLen+ipv4HdrLen]...), opts...), f[ethHdrLen+ipv4HdrLen:]...)
		f[ethHdrLen] = byte(0x40 | (ipv4HdrLen+ipOpts)/4)
		binary.BigEndian.PutUint16(f[ethHdrLen+2:], uint16(len(f)-ethHdrLen))
	}
	if vlan {
		f = append(append(append([]byte(nil), f[:12]...), 0x81, 0, 0, 5), f[12:]...)
	}
	gso := uint8(vnetGSOTCPv4)
	if v6 {
		gso = vnetGSOTCPv6
	}
	if flags&tcpCWR != 0 {
		gso |= vnetGSOECN
	}
	return f, vnetHdr{flags: vnetFlagNeedsCsum, gsoType: gso, gsoSize: mss}
}

// checkCut cuts pkt and checks every frame: headers as the packet's but for lengths,
// sequence numbers, IPv4 IDs counted up, flags (FIN and PSH last, CWR first) and
// checksums, which must be right; the payloads, in order, are the packet's.
func checkCut(t *testing.T, pkt []byte, h vnetHdr, maxFrame int) int {
	t.Helper()
	orig := append([]byte(nil), pkt...)
	var c gsoCutter
	if !c.start(pkt, h, maxFrame) {
		return -1
	}
	var payload []byte
	dst := make([]byte, maxFrame)
	segs := 0
	for c.pending() {
		if segs > len(orig) {
			t.Fatal("the cutter does not end")
		}
		n := c.next(dst)
		f := dst[:n]
		if !bytes.Equal(f[:c.ip], orig[:c.ip]) {
			t.Fatalf("segment %d: Ethernet header changed", segs)
		}
		if c.v6 {
			if int(binary.BigEndian.Uint16(f[c.ip+4:])) != n-c.ip-ipv6HdrLen {
				t.Fatalf("segment %d: IPv6 payload length", segs)
			}
		} else {
			ih := f[c.ip:c.tcp]
			if int(binary.BigEndian.Uint16(ih[2:])) != n-c.ip || onesSum(ih, 0) != 0xffff ||
				binary.BigEndian.Uint16(ih[4:]) != binary.BigEndian.Uint16(orig[c.ip+4:])+uint16(segs) {
				t.Fatalf("segment %d: IPv4 length, ID or header checksum wrong: %x", segs, ih)
			}
		}
		th := f[c.tcp:]
		if onesSum(th, pseudoSumAt(f, c.ip, c.v6, len(th))) != 0xffff {
			t.Fatalf("segment %d: TCP checksum wrong", segs)
		}
		if got, want := binary.BigEndian.Uint32(th[4:]), binary.BigEndian.Uint32(orig[c.tcp+4:])+uint32(len(payload)); got != want {
			t.Fatalf("segment %d: seq %d, want %d", segs, got, want)
		}
		last := !c.pending()
		wantFlags := orig[c.tcp+13]
		if !last {
			wantFlags &^= tcpFIN | tcpPSH
			if n-c.data != int(h.gsoSize) {
				t.Fatalf("segment %d: %d bytes of payload, not gso_size %d", segs, n-c.data, h.gsoSize)
			}
		}
		if segs > 0 {
			wantFlags &^= tcpCWR
		}
		if th[13] != wantFlags || !bytes.Equal(th[8:13], orig[c.tcp+8:c.tcp+13]) || !bytes.Equal(th[14:16], orig[c.tcp+14:c.tcp+16]) ||
			!bytes.Equal(th[18:c.data-c.tcp], orig[c.tcp+18:c.data]) {
			t.Fatalf("segment %d: TCP header %x from %x", segs, th[:c.data-c.tcp], orig[c.tcp:c.data])
		}
		payload = append(payload, f[c.data:]...)
		segs++
	}
	if !bytes.Equal(payload, orig[c.data:]) {
		t.Fatalf("payloads of %d segments are not the packet's", segs)
	}
	return segs
}

func TestCutGSO(t *testing.T) {
	for _, c := range []struct {
		v6, vlan     bool
		ipOpts, opts int
		size         int
		flags        byte
		mss          uint16
		segs         int
	}{
		{size: 65000, flags: tcpACK | tcpPSH, mss: 1448, opts: 12, segs: 45},
		{v6: true, size: 10000, flags: tcpACK | tcpFIN | tcpPSH, mss: 1428, opts: 12, segs: 8},
		{vlan: true, ipOpts: 8, size: 3000, flags: tcpACK | tcpCWR, mss: 1000, segs: 3},
		{size: 1000, flags: tcpACK, mss: 1448, segs: 1},
	} {
		pkt, h := gsoPacket(c.v6, c.vlan, c.ipOpts, c.opts, c.size, c.flags, c.mss)
		if got := checkCut(t, pkt, h, 9234); got != c.segs {
			t.Errorf("%+v: %d segments, want %d", c, got, c.segs)
		}
	}
	// Refused: a segment larger than a frame, a gso_size of 0, a UDP type, a packet
	// that is not what the type says.
	pkt, h := gsoPacket(false, false, 0, 0, 20000, tcpACK, 9500)
	if checkCut(t, pkt, h, 9234) != -1 {
		t.Error("a gso_size larger than a frame was taken")
	}
	for _, bad := range []vnetHdr{{gsoType: vnetGSOTCPv4}, {gsoType: 3, gsoSize: 1000}, {gsoType: vnetGSOTCPv6, gsoSize: 1000}} {
		pkt, _ := gsoPacket(false, false, 0, 0, 5000, tcpACK, 1000)
		if checkCut(t, pkt, bad, 9234) != -1 {
			t.Errorf("%+v was taken", bad)
		}
	}
}

// FuzzCutGSO cuts GSO packets, well-formed or not, as a TAP may hand them over: none may
// crash the reader, and whatever is cut must be right (checkCut).
func FuzzCutGSO(f *testing.F) {
	f.Add(byte(0), uint16(1448), uint16(60000), byte(0x18), []byte{})
	f.Add(byte(0x1f), uint16(500), uint16(3000), byte(0x99), []byte{1, 2, 3})
	f.Add(byte(0x80), uint16(7), uint16(100), byte(0x10), []byte{0x45, 0, 0})
	f.Fuzz(func(t *testing.T, shape byte, mss, size uint16, flags byte, garbage []byte) {
		pkt, h := gsoPacket(shape&1 != 0, shape&2 != 0, int(shape>>2&3)*4, int(shape>>4&3)*4, int(size)%66000+1, flags, mss)
		if shape&0x80 != 0 {
			// Bytes of the packet overwritten, and the header's type from them too.
			for i, b := range garbage {
				pkt[(i*7)%len(pkt)] = b
			}
			if len(garbage) > 0 {
				h.gsoType = garbage[0]
			}
		}
		checkCut(t, pkt, h, 9234)
	})
}
