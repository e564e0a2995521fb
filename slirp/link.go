package slirp

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/stack/gro"

	"github.com/vde-go/vde/switchcore/wire"
)

// link is the netstack's NIC. It carries bare IP packets: the router's own Ethernet
// layer (ingress.go) strips headers on the way in and this side puts them back on the
// way out, choosing the destination MAC from the neighbour table and the source MAC
// from the source address (each emulated host has its own MAC, spec §3.1). gVisor has
// no say in ARP or neighbour discovery, so it cannot answer for addresses that are not
// the router's.
type link struct {
	r          *Router
	mtu        uint32
	dispatcher atomic.Pointer[stack.NetworkDispatcher]

	mu     sync.Mutex // guards bufs and frames, shared by the netstack's writers
	bufs   [][]byte
	frames [][]byte
	// On a LAN channel with offloads (hostGSO), TCP packets of up to hostGSOMax bytes
	// leave whole, with their offloads: big holds their buffers (made at the first),
	// offl each frame's offloads.
	big  [][]byte
	offl []wire.Offload

	// gro joins consecutive TCP segments of a flow that arrive in one run of reads into
	// one packet before the netstack sees them, as a NIC's GRO does for a kernel: a guest
	// on a datagram switch sends one MSS-sized frame per datagram, and each segment
	// otherwise costs a pass through gVisor's IP and TCP receive path, a wakeup of the
	// connection's reader and an ACK. Only the LAN reader uses it (deliver and flush).
	gro gro.GRO
}

func newLink(r *Router, mtu int) *link {
	l := &link{r: r, mtu: uint32(mtu), bufs: make([][]byte, wire.BatchSize), frames: make([][]byte, 0, wire.BatchSize),
		offl: make([]wire.Offload, 0, wire.BatchSize)}
	for i := range l.bufs {
		l.bufs[i] = make([]byte, header.EthernetMinimumSize+mtu)
	}
	l.gro.Init(true)
	l.gro.Dispatcher = groSink{l}
	return l
}

// groSink hands what GRO releases to the netstack attached at that moment, if any.
type groSink struct{ l *link }

func (g groSink) DeliverNetworkPacket(proto tcpip.NetworkProtocolNumber, pkt *stack.PacketBuffer) {
	if d := g.l.dispatcher.Load(); d != nil {
		(*d).DeliverNetworkPacket(proto, pkt)
	}
}

func (g groSink) DeliverLinkPacket(tcpip.NetworkProtocolNumber, *stack.PacketBuffer) {}

func (l *link) MTU() uint32                      { return l.mtu }
func (l *link) SetMTU(mtu uint32)                {}
func (l *link) MaxHeaderLength() uint16          { return 0 }
func (l *link) LinkAddress() tcpip.LinkAddress   { return "" }
func (l *link) SetLinkAddress(tcpip.LinkAddress) {}

// Capabilities: frames arrive over a unix socket from a switch, so checksums of what
// guests send are not verified again (the kernel of each guest computed them).
func (l *link) Capabilities() stack.LinkEndpointCapabilities {
	return stack.CapabilityRXChecksumOffload
}

// GSOMaxSize and SupportedGSO make the link a gVisor-GSO endpoint: a TCP sender then
// builds one segment of up to 64 KiB and gVisor cuts it into MSS-sized packets in one
// batch (tcp.sendTCPBatch), instead of taking each packet through the sender's path.
// WritePackets still gets packets of at most the MTU.
//
// On a LAN channel with offloads (our switch) the link is a host-GSO endpoint instead,
// as gVisor's fdbased one is on a TAP with offloads: the segment leaves whole, its TCP
// checksum left to do, and the switch passes it whole to a guest that takes TSO or cuts
// it for one that does not. TCP connections choose when they start (initGSO).
func (l *link) GSOMaxSize() uint32 {
	if l.hostGSO() {
		return hostGSOMax
	}
	return stack.GVisorGSOMaxSize
}

func (l *link) SupportedGSO() stack.SupportedGSO {
	if l.hostGSO() {
		return stack.HostGSOSupported
	}
	return stack.GVisorGSOSupported
}

// hostGSOMax bounds a host-GSO packet: its IPv4 total length must fit 16 bits with the
// largest IP and TCP headers.
const hostGSOMax = 65535 - 60 - 60

// hostGSO says the LAN port carries offloads.
func (l *link) hostGSO() bool {
	p := l.r.out.Load()
	return p != nil && p.offload()
}

func (l *link) Attach(d stack.NetworkDispatcher) {
	if d == nil {
		l.dispatcher.Store(nil)
		return
	}
	l.dispatcher.Store(&d)
}

func (l *link) IsAttached() bool                        { return l.dispatcher.Load() != nil }
func (l *link) Wait()                                   {}
func (l *link) ARPHardwareType() header.ARPHardwareType { return header.ARPHardwareNone }
func (l *link) AddHeader(*stack.PacketBuffer)           {}
func (l *link) ParseHeader(*stack.PacketBuffer) bool    { return true }
func (l *link) Close()                                  {}
func (l *link) SetOnCloseAction(func())                 {}

// deliver hands an IP packet (no Ethernet header) to the netstack, which copies it.
// A TCP segment may wait in GRO for the next of its flow until flush.
func (l *link) deliver(proto tcpip.NetworkProtocolNumber, packet []byte) {
	if l.dispatcher.Load() == nil {
		return
	}
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: bufferFrom(packet)})
	pkt.NetworkProtocolNumber = proto
	pkt.RXChecksumValidated = true // CapabilityRXChecksumOffload: see Capabilities
	l.gro.Enqueue(pkt)
	pkt.DecRef()
}

// flush hands the netstack what GRO holds. The LAN reader calls it once it has no
// more frames at hand, so that no segment waits for one that is not coming.
func (l *link) flush() { l.gro.Flush() }

// WritePackets puts Ethernet headers on the netstack's packets and sends them in
// batches. Packets for a guest whose MAC is not known yet wait for its answer.
func (l *link) WritePackets(pkts stack.PacketBufferList) (int, tcpip.Error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	frames, offl := l.frames[:0], l.offl[:0]
	withOffl := false
	n := 0
	for _, pkt := range pkts.AsSlice() {
		n++
		size := pkt.Size()
		o, ok := l.offloadOf(pkt, size)
		if !ok {
			continue
		}
		var buf []byte
		if o.Plain() {
			buf = l.bufs[len(frames)][:header.EthernetMinimumSize+size]
		} else {
			buf = l.bigBuf(len(frames))[:header.EthernetMinimumSize+size]
		}
		off := header.EthernetMinimumSize
		for _, s := range pkt.AsSlices() {
			off += copy(buf[off:], s)
		}
		// A packet with offloads is not held for an unknown guest (a held frame goes
		// out plain later): TCP sends it again.
		if !l.r.address(buf, o.Plain()) {
			continue // queued until the guest answers, or dropped
		}
		frames, offl = append(frames, buf), append(offl, o)
		if o.GSOType != wire.GSONone {
			l.r.count.gsoSent.Add(1)
		}
		withOffl = withOffl || !o.Plain()
		if len(frames) == len(l.bufs) {
			l.r.emitOffload(frames, offl, withOffl)
			frames, offl, withOffl = frames[:0], offl[:0], false
		}
	}
	if len(frames) > 0 {
		l.r.emitOffload(frames, offl, withOffl)
	}
	return n, nil
}

// offloadOf says what a packet of the netstack is on the LAN: plain, or (host GSO) a TCP
// packet with its checksum left to do, and a GSO packet to cut into gso.MSS-sized
// segments when it is longer than one; ok is false for a packet the LAN cannot take.
func (l *link) offloadOf(pkt *stack.PacketBuffer, size int) (o wire.Offload, ok bool) {
	gso := pkt.GSOOptions
	if gso.Type == stack.GSONone || gso.Type == stack.GSOGvisor || !gso.NeedsCsum {
		return o, size <= int(l.mtu)
	}
	hdr := header.EthernetMinimumSize + int(gso.L3HdrLen)
	o = wire.Offload{Flags: wire.OffloadNeedsCsum, CsumStart: uint16(hdr), CsumOffset: gso.CsumOffset}
	if size <= int(l.mtu) {
		return o, true
	}
	if size > hostGSOMax+60+60 {
		return o, false
	}
	o.GSOType = wire.GSOTCPv4
	if gso.Type == stack.GSOTCPv6 {
		o.GSOType = wire.GSOTCPv6
	}
	o.GSOSize = gso.MSS
	o.HdrLen = uint16(header.EthernetMinimumSize + len(pkt.NetworkHeader().Slice()) + len(pkt.TransportHeader().Slice()))
	return o, true
}

// bigBuf is the buffer for a GSO packet at batch slot i. Call with mu held.
func (l *link) bigBuf(i int) []byte {
	if l.big == nil {
		l.big = make([][]byte, len(l.bufs))
	}
	if l.big[i] == nil {
		l.big[i] = make([]byte, wire.MaxPacket)
	}
	return l.big[i]
}

// address fills in the Ethernet header of frame, whose IP packet starts at byte 14. It
// returns false when the destination's MAC is unknown: the frame is then held (if hold)
// and the guest asked (ARP or neighbour solicitation).
func (r *Router) address(frame []byte, hold bool) bool {
	ip := frame[header.EthernetMinimumSize:]
	var srcAddr, dstAddr netip.Addr
	var etherType uint16
	switch header.IPVersion(ip) {
	case header.IPv4Version:
		h := header.IPv4(ip)
		if len(ip) < header.IPv4MinimumSize {
			return false
		}
		etherType = uint16(header.IPv4ProtocolNumber)
		srcAddr, dstAddr = addrOf(h.SourceAddressSlice()), addrOf(h.DestinationAddressSlice())
	case header.IPv6Version:
		h := header.IPv6(ip)
		if len(ip) < header.IPv6MinimumSize {
			return false
		}
		etherType = uint16(header.IPv6ProtocolNumber)
		srcAddr, dstAddr = addrOf(h.SourceAddressSlice()), addrOf(h.DestinationAddressSlice())
	default:
		return false
	}
	mac, ok := r.macOf(dstAddr)
	if !ok {
		if !hold || r.neigh.hold(dstAddr, frame, time.Now()) {
			r.solicit(dstAddr)
		}
		return false
	}
	copy(frame[0:6], mac[:])
	copy(frame[6:12], r.ownMAC(srcAddr))
	binary.BigEndian.PutUint16(frame[12:14], etherType)
	return true
}
