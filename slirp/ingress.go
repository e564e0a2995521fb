package slirp

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/vde-go/vde/switchcore/wire"
)

const (
	etherTypeIPv4 = 0x0800
	etherTypeARP  = 0x0806
	etherTypeIPv6 = 0x86dd

	arpRequest = 1
	arpReply   = 2
)

var broadcastMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// input takes one frame from the LAN and hands the netstack at once what it holds for
// it: take then flush.
func (r *Router) input(frame []byte) {
	r.take(frame)
	r.link.flush()
}

// take takes one frame from the LAN; TCP segments may wait in the link's GRO for the
// next of their flow until link.flush. Frames for other guests (a switch floods unknown
// destinations) are ignored; ARP, DHCP, ping and neighbour discovery are answered here;
// TCP and UDP go to the netstack. Nothing a guest sends can make it fail: a malformed
// frame is dropped.
func (r *Router) take(frame []byte) {
	if len(frame) < header.EthernetMinimumSize {
		return
	}
	dst := frame[0:6]
	if dst[0]&1 == 0 && !bytes.Equal(dst, r.routerMAC) && !bytes.Equal(dst, r.dnsMAC) && !r.ownAliasMAC(dst) {
		return
	}
	src := [6]byte(frame[6:12])
	if src[0]&1 != 0 {
		return // a multicast source is never a host
	}
	payload := frame[header.EthernetMinimumSize:]
	switch binary.BigEndian.Uint16(frame[12:14]) {
	case etherTypeARP:
		if !r.cfg.NoIPv4 {
			r.arpInput(src, payload)
		}
	case etherTypeIPv4:
		if !r.cfg.NoIPv4 {
			r.ipv4Input(src, payload)
		}
	case etherTypeIPv6:
		if r.cfg.IPv6 {
			r.ipv6Input(src, payload)
		}
	}
}

// takeOffload takes a packet with offloads, from a switch channel that carries them (a
// TSO guest's, passed whole by our switch). A TCP GSO packet goes to the netstack whole,
// as if the link's GRO had joined its segments; a packet whose checksum was left to do
// is taken as it is: the link tells gVisor not to check checksums (RX checksum offload),
// and the guest's kernel vouches for its data as for any frame. Any other kind is cut into
// frames first, by the project's one cutter (tap.Segmenter), which drops what it cannot
// cut.
func (r *Router) takeOffload(pkt []byte, o wire.Offload) {
	switch o.GSOType &^ wire.GSOECN {
	case wire.GSOTCPv4, wire.GSOTCPv6:
		r.count.gsoPackets.Add(1)
		r.take(pkt)
		return
	case wire.GSONone:
		r.take(pkt)
		return
	}
	if r.cutBuf == nil {
		r.cutBuf = make([]byte, wire.MaxFrame)
	}
	switch n := r.cut.TakeOffload(o, pkt, wire.MaxFrame); {
	case n > 0:
		r.take(pkt[:n])
	case n == 0:
		for r.cut.Pending() {
			m := r.cut.Next(r.cutBuf)
			if m < 0 {
				return
			}
			r.take(r.cutBuf[:m])
		}
	}
}

// ownAliasMAC reports whether mac is the MAC of a -x forward's own address.
func (r *Router) ownAliasMAC(mac []byte) bool {
	if mac[0] != 0x52 || mac[1] != 0x55 {
		return false
	}
	ip := netip.AddrFrom4([4]byte(mac[2:6]))
	return r.isOwn(ip)
}

// arpInput learns the sender and answers requests for the router's own addresses only
// (spec §3.1: other addresses get no reply).
func (r *Router) arpInput(src [6]byte, p []byte) {
	if len(p) < 28 || binary.BigEndian.Uint16(p[0:2]) != 1 || binary.BigEndian.Uint16(p[2:4]) != etherTypeIPv4 || p[4] != 6 || p[5] != 4 {
		return
	}
	op := binary.BigEndian.Uint16(p[6:8])
	sha := [6]byte(p[8:14])
	spa := netip.AddrFrom4([4]byte(p[14:18]))
	tpa := netip.AddrFrom4([4]byte(p[24:28]))
	r.learn(spa, sha)
	if op == arpRequest && r.isOwn(tpa) && !spa.IsUnspecified() {
		r.emit([][]byte{arpFrame(arpReply, MACFor(tpa), tpa, sha[:], spa)})
	}
	_ = src
}

// arpFrame builds an ARP request (tha nil: broadcast) or reply.
func arpFrame(op uint16, sha net.HardwareAddr, spa netip.Addr, tha net.HardwareAddr, tpa netip.Addr) []byte {
	f := make([]byte, 42)
	if tha == nil {
		copy(f[0:6], broadcastMAC)
	} else {
		copy(f[0:6], tha)
	}
	copy(f[6:12], sha)
	binary.BigEndian.PutUint16(f[12:14], etherTypeARP)
	p := f[14:]
	binary.BigEndian.PutUint16(p[0:2], 1)
	binary.BigEndian.PutUint16(p[2:4], etherTypeIPv4)
	p[4], p[5] = 6, 4
	binary.BigEndian.PutUint16(p[6:8], op)
	copy(p[8:14], sha)
	s4, t4 := spa.As4(), tpa.As4()
	copy(p[14:18], s4[:])
	if tha != nil {
		copy(p[18:24], tha)
	}
	copy(p[24:28], t4[:])
	return f
}

// ipv4Input learns the sender, serves DHCP and ping, and passes TCP and UDP for
// addresses the router NATs or serves to the netstack.
func (r *Router) ipv4Input(src [6]byte, p []byte) {
	if len(p) < header.IPv4MinimumSize {
		return
	}
	h := header.IPv4(p)
	if !h.IsValid(len(p)) {
		return
	}
	p = p[:h.TotalLength()]
	h = header.IPv4(p)
	from, to := addrOf(h.SourceAddressSlice()), addrOf(h.DestinationAddressSlice())
	if r.cfg.Network().Contains(from) {
		r.learn(from, src)
	}
	fragment := h.More() || h.FragmentOffset() != 0
	payload := p[h.HeaderLength():]
	switch {
	case fragment:
	case h.TransportProtocol() == header.UDPProtocolNumber && len(payload) >= header.UDPMinimumSize &&
		header.UDP(payload).DestinationPort() == 67 && r.dhcp != nil:
		r.dhcpInput(payload)
		return
	case h.TransportProtocol() == header.ICMPv4ProtocolNumber && len(payload) >= header.ICMPv4MinimumSize &&
		header.ICMPv4(payload).Type() == header.ICMPv4Echo:
		r.echo4(from, to, h.TTL(), payload)
		return
	}
	if !r.forUs(to) {
		return
	}
	r.link.deliver(header.IPv4ProtocolNumber, p)
}

// forUs reports whether a packet to dst is the router's to serve or NAT: its own
// addresses, and anything outside the virtual subnet that is not broadcast or multicast.
func (r *Router) forUs(dst netip.Addr) bool {
	if r.isOwn(dst) {
		return true
	}
	if dst.IsMulticast() || dst.IsUnspecified() || (dst.Is4() && dst == netip.AddrFrom4([4]byte{255, 255, 255, 255})) {
		return false
	}
	if dst.Is4() {
		return !r.cfg.Network().Contains(dst)
	}
	return r.cfg.IPv6 && !r.cfg.Host6.Masked().Contains(dst) && !dst.IsLinkLocalUnicast()
}

// dhcpInput answers a DHCP request; the reply goes to the client's MAC and to the
// broadcast address, from the router (spec §3.3).
func (r *Router) dhcpInput(udp []byte) {
	u := header.UDP(udp)
	if int(u.Length()) < header.UDPMinimumSize || int(u.Length()) > len(udp) {
		return
	}
	reply, mac, yiaddr, ok := r.dhcp.Handle(udp[header.UDPMinimumSize:u.Length()])
	if !ok || len(mac) != 6 {
		return
	}
	if yiaddr.IsValid() {
		r.learn(yiaddr, [6]byte(mac))
	}
	pkt := buildUDP4(r.router, netip.AddrFrom4([4]byte{255, 255, 255, 255}), 67, 68, reply)
	frame := make([]byte, header.EthernetMinimumSize+len(pkt))
	copy(frame[0:6], mac)
	copy(frame[6:12], r.routerMAC)
	binary.BigEndian.PutUint16(frame[12:14], etherTypeIPv4)
	copy(frame[header.EthernetMinimumSize:], pkt)
	r.emit([][]byte{frame})
}

// echo4 answers a ping to the router's own addresses itself and sends any other through
// a host ICMP socket (icmp.go); pings to other guests or to broadcast are not ours.
func (r *Router) echo4(from, to netip.Addr, ttl uint8, icmp []byte) {
	switch {
	case r.isOwn(to):
		reply := append([]byte(nil), icmp...)
		header.ICMPv4(reply).SetType(header.ICMPv4EchoReply)
		header.ICMPv4(reply).SetChecksum(0)
		header.ICMPv4(reply).SetChecksum(^checksum.Checksum(reply, 0))
		r.sendIP(buildIPv4(to, from, uint8(header.ICMPv4ProtocolNumber), 64, reply))
	case r.forUs(to) && !r.cfg.Restricted && !r.loopbackRefused(to):
		r.ping.send(from, to, ttl, icmp)
	}
}

// sendIP sends an IP packet the router made to its destination on the LAN.
func (r *Router) sendIP(pkt []byte) {
	frame := make([]byte, header.EthernetMinimumSize+len(pkt))
	copy(frame[header.EthernetMinimumSize:], pkt)
	if r.address(frame, true) {
		r.emit([][]byte{frame})
	}
}

// buildIPv4 makes an IPv4 packet (no options, DF clear) around payload.
func buildIPv4(src, dst netip.Addr, proto uint8, ttl uint8, payload []byte) []byte {
	pkt := make([]byte, header.IPv4MinimumSize+len(payload))
	h := header.IPv4(pkt)
	h.Encode(&header.IPv4Fields{
		TotalLength: uint16(len(pkt)),
		TTL:         ttl,
		Protocol:    proto,
		SrcAddr:     tcpAddr(src),
		DstAddr:     tcpAddr(dst),
	})
	h.SetChecksum(^h.CalculateChecksum())
	copy(pkt[header.IPv4MinimumSize:], payload)
	return pkt
}

// buildUDP4 makes an IPv4 UDP packet with its checksum.
func buildUDP4(src, dst netip.Addr, sport, dport uint16, data []byte) []byte {
	seg := make([]byte, header.UDPMinimumSize+len(data))
	u := header.UDP(seg)
	u.Encode(&header.UDPFields{SrcPort: sport, DstPort: dport, Length: uint16(len(seg))})
	copy(seg[header.UDPMinimumSize:], data)
	xsum := header.PseudoHeaderChecksum(header.UDPProtocolNumber, tcpAddr(src), tcpAddr(dst), uint16(len(seg)))
	xsum = checksum.Checksum(seg, xsum)
	if c := ^xsum; c != 0 {
		u.SetChecksum(c)
	} else {
		u.SetChecksum(0xffff)
	}
	return buildIPv4(src, dst, uint8(header.UDPProtocolNumber), 64, seg)
}
