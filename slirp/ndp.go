package slirp

import (
	"encoding/binary"
	"net/netip"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// IPv6 is opt-in (Config.IPv6): the router then advertises its prefix so that guests
// configure themselves (SLAAC) and route through it, answers neighbour discovery for
// its own addresses, and NATs TCP and UDP like IPv4. Without it, no IPv6 frame is ever
// sent, so a slirp on a host's TAP cannot become the host's IPv6 default route.

const (
	icmpv6RouterSolicit  = 133
	icmpv6RouterAdvert   = 134
	icmpv6NeighborSolic  = 135
	icmpv6NeighborAdvert = 136
	icmpv6EchoRequest    = 128
	icmpv6EchoReply      = 129

	ndpOptSourceLL = 1
	ndpOptTargetLL = 2
	ndpOptPrefix   = 3
	ndpOptMTU      = 5
	ndpOptRDNSS    = 25

	// raInterval is how often unsolicited router advertisements go out.
	raInterval = 200 * time.Second
	// routerLifetime, and the prefix and DNS lifetimes, in seconds.
	routerLifetime    = 1800
	prefixValid       = 86400
	prefixPreferred   = 14400
	rdnssLifetime     = 1800
	ndpHopLimit       = 255
	ipv6HeaderSize    = header.IPv6MinimumSize
	icmpv6ProtoNumber = uint8(header.ICMPv6ProtocolNumber)
)

var allNodes = netip.MustParseAddr("ff02::1")

// ipv6Input handles neighbour discovery and ping for the router's addresses and passes
// TCP and UDP to the netstack.
func (r *Router) ipv6Input(src [6]byte, p []byte) {
	if len(p) < ipv6HeaderSize {
		return
	}
	h := header.IPv6(p)
	if !h.IsValid(len(p)) {
		return
	}
	p = p[:ipv6HeaderSize+int(h.PayloadLength())]
	h = header.IPv6(p)
	from, to := addrOf(h.SourceAddressSlice()), addrOf(h.DestinationAddressSlice())
	if from.IsLinkLocalUnicast() || r.cfg.Host6.Masked().Contains(from) {
		r.learn(from, src)
	}
	body := p[ipv6HeaderSize:]
	if h.TransportProtocol() == header.ICMPv6ProtocolNumber && len(body) >= 8 {
		switch body[0] {
		case icmpv6RouterSolicit:
			r.advertise(from)
			return
		case icmpv6NeighborSolic:
			r.neighborSolicited(src, from, body)
			return
		case icmpv6NeighborAdvert:
			if len(body) >= 24 {
				r.learn(addrOf(body[8:24]), src)
			}
			return
		case icmpv6EchoRequest:
			if r.isOwn(to) {
				reply := append([]byte(nil), body...)
				reply[0] = icmpv6EchoReply
				r.sendIP(buildIPv6(to, from, icmpv6ProtoNumber, 64, reply))
			} else if r.forUs(to) && !r.cfg.Restricted && !r.loopbackRefused(to) {
				r.ping.send6(from, to, body)
			}
			return
		case icmpv6RouterAdvert, 130, 131, 132, 143: // other routers, MLD: not ours
			return
		}
	}
	if !r.forUs(to) {
		return
	}
	r.link.deliver(header.IPv6ProtocolNumber, p)
}

// neighborSolicited answers a neighbour solicitation for one of the router's addresses.
func (r *Router) neighborSolicited(srcMAC [6]byte, from netip.Addr, body []byte) {
	if len(body) < 24 {
		return
	}
	target := addrOf(body[8:24])
	if !r.isOwn(target) {
		return
	}
	dst, flags := from, byte(0xe0) // router, solicited, override
	if from.IsUnspecified() {
		dst, flags = allNodes, 0xa0 // a duplicate address probe: answer everyone, not solicited
	}
	na := make([]byte, 32)
	na[0] = icmpv6NeighborAdvert
	na[4] = flags
	copy(na[8:24], target.AsSlice())
	na[24], na[25] = ndpOptTargetLL, 1
	copy(na[26:32], r.ownMAC(target))
	r.sendIP(buildIPv6(target, dst, icmpv6ProtoNumber, ndpHopLimit, na))
}

// advertise sends a router advertisement to dst (all nodes when dst is the zero Addr or
// unspecified): the /64 prefix for SLAAC, the router's MAC and the DNS proxy (RDNSS).
func (r *Router) advertise(dst netip.Addr) {
	if !r.cfg.IPv6 {
		return
	}
	if !dst.IsValid() || dst.IsUnspecified() {
		dst = allNodes
	}
	ra := make([]byte, 16, 16+8+8+32+24)
	ra[0] = icmpv6RouterAdvert
	ra[4] = 64 // current hop limit
	binary.BigEndian.PutUint16(ra[6:8], routerLifetime)
	ra = append(ra, ndpOptSourceLL, 1)
	ra = append(ra, r.routerMAC...)
	mtu := make([]byte, 8)
	mtu[0], mtu[1] = ndpOptMTU, 1
	binary.BigEndian.PutUint32(mtu[4:8], uint32(r.cfg.MTU))
	ra = append(ra, mtu...)
	pi := make([]byte, 32)
	pi[0], pi[1] = ndpOptPrefix, 4
	pi[2] = 64
	pi[3] = 0xc0 // on-link, autonomous
	binary.BigEndian.PutUint32(pi[4:8], prefixValid)
	binary.BigEndian.PutUint32(pi[8:12], prefixPreferred)
	copy(pi[16:32], r.cfg.Host6.Masked().Addr().AsSlice())
	ra = append(ra, pi...)
	rdnss := make([]byte, 24)
	rdnss[0], rdnss[1] = ndpOptRDNSS, 3
	binary.BigEndian.PutUint32(rdnss[4:8], rdnssLifetime)
	copy(rdnss[8:24], r.dns6.AsSlice())
	ra = append(ra, rdnss...)
	r.sendIP(buildIPv6(r.linkLocal6, dst, icmpv6ProtoNumber, ndpHopLimit, ra))
}

// neighborSolicitation asks for dst's MAC (sent to its solicited-node group).
func (r *Router) neighborSolicitation(dst netip.Addr) []byte {
	b := dst.As16()
	group := netip.AddrFrom16([16]byte{0xff, 0x02, 10: 0, 11: 1, 12: 0xff, 13: b[13], 14: b[14], 15: b[15]})
	src := r.router6
	if dst.IsLinkLocalUnicast() {
		src = r.linkLocal6
	}
	ns := make([]byte, 32)
	ns[0] = icmpv6NeighborSolic
	copy(ns[8:24], dst.AsSlice())
	ns[24], ns[25] = ndpOptSourceLL, 1
	copy(ns[26:32], r.routerMAC)
	pkt := buildIPv6(src, group, icmpv6ProtoNumber, ndpHopLimit, ns)
	frame := make([]byte, header.EthernetMinimumSize+len(pkt))
	copy(frame[0:6], []byte{0x33, 0x33, 0xff, b[13], b[14], b[15]})
	copy(frame[6:12], r.routerMAC)
	binary.BigEndian.PutUint16(frame[12:14], etherTypeIPv6)
	copy(frame[header.EthernetMinimumSize:], pkt)
	return frame
}

// buildIPv6 makes an IPv6 packet around an ICMPv6 (or other) payload, filling in the
// ICMPv6 checksum.
func buildIPv6(src, dst netip.Addr, next uint8, hops uint8, payload []byte) []byte {
	pkt := make([]byte, ipv6HeaderSize+len(payload))
	header.IPv6(pkt).Encode(&header.IPv6Fields{
		PayloadLength:     uint16(len(payload)),
		TransportProtocol: header.ICMPv6ProtocolNumber,
		HopLimit:          hops,
		SrcAddr:           tcpAddr(src),
		DstAddr:           tcpAddr(dst),
	})
	pkt[6] = next
	body := pkt[ipv6HeaderSize:]
	copy(body, payload)
	if next == icmpv6ProtoNumber {
		body[2], body[3] = 0, 0
		xsum := header.PseudoHeaderChecksum(header.ICMPv6ProtocolNumber, tcpAddr(src), tcpAddr(dst), uint16(len(body)))
		binary.BigEndian.PutUint16(body[2:4], ^checksum.Checksum(body, xsum))
	}
	return pkt
}
