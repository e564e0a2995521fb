package slirp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/qdisc/fifo"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"

	"github.com/vde-go/vde/slirp/dhcp"
	"github.com/vde-go/vde/switchcore/wire"
	"github.com/vde-go/vde/tap"
)

// nicID is the router's only netstack NIC.
const nicID tcpip.NICID = 1

// Router is one slirp: a netstack, its link to the LAN, and the services around it.
type Router struct {
	cfg   Config
	stack *stack.Stack
	link  *link
	neigh *neighbors
	dhcp  *dhcp.Server
	dns   *resolver
	ping  *pinger

	// cut and cutBuf are the LAN reader's, for packets with offloads it does not take
	// whole (takeOffload).
	cut    tap.Segmenter
	cutBuf []byte

	routerMAC, dnsMAC net.HardwareAddr
	router, dns4      netip.Addr
	router6, dns6     netip.Addr
	linkLocal6        netip.Addr

	out       atomic.Pointer[port]
	flows     atomic.Int64 // NATed TCP and UDP flows and -L connections open (nat.go)
	dnsFlows  atomic.Int64 // UDP flows to the DNS proxy open
	flowLimit int64        // flowBudget()
	evictIdle atomic.Int64 // nanoseconds a UDP flow idles before a full table may close it
	dnsRate   *tokenBucket
	count     counters
	logs      *logLimiter
	udpMu     sync.Mutex
	udpFlows  map[*udpFlow]struct{} // NATed UDP flows but the DNS proxy's (limits.go)

	mu        sync.Mutex
	listeners []interface{ Close() error }
	closed    chan struct{}
	closeOnce sync.Once
}

// New builds a router for cfg. It opens no host sockets: StartForwards opens the
// forwarded ports and Run attaches the LAN.
func New(cfg Config) (*Router, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	r := &Router{
		cfg:       cfg,
		neigh:     newNeighbors(),
		dns:       newResolver(cfg.ResolvConf),
		router:    cfg.Router(),
		dns4:      cfg.DNS,
		routerMAC: MACFor(cfg.Router()),
		closed:    make(chan struct{}),
		flowLimit: flowBudget(),
		dnsRate:   newTokenBucket(dnsRate, dnsBurst),
		logs:      newLogLimiter(cfg.Logf),
		udpFlows:  map[*udpFlow]struct{}{},
	}
	r.evictIdle.Store(int64(udpEvictIdle))
	r.dnsMAC = r.routerMAC
	if cfg.DNS.Is4() && cfg.Network().Contains(cfg.DNS) {
		r.dnsMAC = MACFor(cfg.DNS)
	}
	if cfg.IPv6 {
		r.router6, r.dns6 = cfg.Host6.Addr(), cfg.DNS6
		r.linkLocal6 = netip.MustParseAddr("fe80::2")
	}
	r.ping = newPinger(r)
	if cfg.DHCP && !cfg.NoIPv4 {
		mask := net.CIDRMask(cfg.Host.Bits(), 32)
		srv, err := dhcp.New(dhcp.Config{
			ServerIP:     r.router,
			Netmask:      netip.AddrFrom4([4]byte(mask)),
			DNS:          []netip.Addr{cfg.DNS},
			PoolStart:    cfg.DHCPStart,
			PoolSize:     16,
			LeaseTime:    24 * time.Hour,
			BootFile:     cfg.BootFile,
			DomainSearch: cfg.DNSSearch,
		})
		if err != nil {
			return nil, fmt.Errorf("slirp: dhcp: %w", err)
		}
		r.dhcp = srv
	}
	if err := r.buildStack(); err != nil {
		return nil, err
	}
	if cfg.TFTPDir != "" {
		if err := r.startTFTP(); err != nil {
			r.Close()
			return nil, err
		}
	}
	go r.housekeeping()
	return r, nil
}

func (r *Router) buildStack() error {
	r.stack = stack.New(stack.Options{
		NetworkProtocols: []stack.NetworkProtocolFactory{
			ipv4.NewProtocol,
			// Neighbour discovery and router advertisements are the link layer's
			// (ndp.go); the netstack must not probe, solicit or configure itself.
			ipv6.NewProtocolWithOptions(ipv6.Options{
				DADConfigs:       stack.DADConfigurations{DupAddrDetectTransmits: 0},
				AutoGenLinkLocal: false,
			}),
		},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol},
	})
	r.link = newLink(r, r.cfg.MTU)
	// A queueing discipline gathers what the netstack's goroutines send into batches for
	// one writer, so that a TCP burst to a guest costs one sendmmsg rather than one per
	// segment: host->guest iperf3 through switch and plug went from 440-670 to 860-930
	// Mbit/s (alternating runs of iperf3 -R, 3 rounds each).
	//
	// The queue is long enough for what the TCP senders may have in flight (qdiscLen): the
	// discipline drops what finds it full, and with 1000 packets a 64 KiB GSO burst into a
	// full one left holes that the guest saw as out-of-order segments (TcpExtTCPOFOQueue
	// 20-37k per 4 s of iperf3 -R, none now), with the sender's recovery sometimes stalling
	// the stream for seconds.
	qdisc := fifo.New(r.link, 1, qdiscLen)
	if err := r.stack.CreateNICWithOptions(nicID, r.link, stack.NICOptions{QDisc: qdisc}); err != nil {
		return fmt.Errorf("slirp: create NIC: %s", err)
	}
	// Promiscuous: every destination is ours to NAT. Spoofing: replies leave from the
	// address the guest talked to, and forwarded connections from the real peer.
	r.stack.SetPromiscuousMode(nicID, true)
	r.stack.SetSpoofing(nicID, true)
	addrs := []netip.Prefix{r.cfg.Host, netip.PrefixFrom(r.dns4, 32)}
	if r.cfg.IPv6 {
		addrs = append(addrs, r.cfg.Host6, netip.PrefixFrom(r.dns6, 128), netip.PrefixFrom(r.linkLocal6, 64))
	}
	for _, p := range addrs {
		if !p.Addr().IsValid() {
			continue
		}
		proto := ipv4.ProtocolNumber
		if p.Addr().Is6() {
			proto = ipv6.ProtocolNumber
		}
		pa := tcpip.ProtocolAddress{Protocol: proto, AddressWithPrefix: tcpip.AddressWithPrefix{Address: tcpAddr(p.Addr()), PrefixLen: p.Bits()}}
		if err := r.stack.AddProtocolAddress(nicID, pa, stack.AddressProperties{}); err != nil {
			return fmt.Errorf("slirp: address %s: %s", p, err)
		}
	}
	r.stack.SetRouteTable([]tcpip.Route{
		{Destination: header.IPv4EmptySubnet, NIC: nicID},
		{Destination: header.IPv6EmptySubnet, NIC: nicID},
	})
	sack := tcpip.TCPSACKEnabled(true)
	r.stack.SetTransportProtocolOption(tcp.ProtocolNumber, &sack)
	moderate := tcpip.TCPModerateReceiveBufferOption(true)
	r.stack.SetTransportProtocolOption(tcp.ProtocolNumber, &moderate)
	rcv := tcpip.TCPReceiveBufferSizeRangeOption{Min: 4 << 10, Default: 1 << 20, Max: 8 << 20}
	r.stack.SetTransportProtocolOption(tcp.ProtocolNumber, &rcv)
	// What a NATed connection has in flight to a guest is bounded by its send buffer,
	// which gVisor grows with the congestion window (2 x cwnd x MSS) up to Max. Nothing
	// on the LAN signals a full queue but loss, and the window grew until it overflowed
	// the switch's queue to a guest that takes one frame per datagram (1024 frames to
	// Debian's vde_plug tap://: 130-4945 frames dropped in 4 s of iperf3 -R, the stream
	// stalled for seconds in retransmission timeouts). 1 MiB (about 720 segments) keeps
	// it under that queue, and is still several times what the LAN's round trip needs at
	// the GSO TAP's 2-3 Gbit/s. The host's side of a download has the kernel's buffers.
	snd := tcpip.TCPSendBufferSizeRangeOption{Min: 4 << 10, Default: 1 << 20, Max: 1 << 20}
	r.stack.SetTransportProtocolOption(tcp.ProtocolNumber, &snd)

	tcpFwd := tcp.NewForwarder(r.stack, 0, 1024, r.handleTCP)
	r.stack.SetTransportProtocolHandler(tcp.ProtocolNumber, tcpFwd.HandlePacket)
	udpFwd := udp.NewForwarder(r.stack, r.handleUDP)
	r.stack.SetTransportProtocolHandler(udp.ProtocolNumber, udpFwd.HandlePacket)
	return nil
}

// Run attaches the router to the LAN through ep and serves it until ep fails or the far
// side hangs up (a switch closing the port: nil, as slirpvde exits 0), or Close.
func (r *Router) Run(ep wire.Endpoint) error {
	lan := newPort(ep)
	r.out.Store(lan)
	if cn, ok := ep.(wire.ClosedNotifier); ok {
		go func() {
			select {
			case <-cn.Closed():
			case <-r.closed:
			}
			ep.Close()
		}()
	} else {
		go func() { <-r.closed; ep.Close() }()
	}
	if r.cfg.IPv6 {
		r.advertise(netip.Addr{}) // tell the LAN at once; then every few minutes
	}
	// The reader only empties the socket (whose queue holds 10 datagrams) into batches;
	// another goroutine runs them through the netstack. A burst then waits here instead
	// of overflowing the switch's queue, which would cost the guests' TCP a retransmit.
	batches := inBatches
	if lan.offload() {
		batches = offloadInBatches
	}
	free := make(chan *inBatch, batches)
	full := make(chan *inBatch, batches)
	for i := 0; i < batches; i++ {
		free <- newInBatch(lan.offload())
	}
	go func() {
		for b := range full {
			for {
				for i := 0; i < b.n; i++ {
					size := b.sizes[i]
					switch {
					case size <= 0 || size > len(b.bufs[i]): // see port.read
					case b.offl != nil && !b.offl[i].Plain():
						r.takeOffload(b.bufs[i][:size], b.offl[i])
					default:
						r.take(b.bufs[i][:size])
					}
				}
				free <- b
				// Segments that came in one run of batches are joined (link.gro): flush
				// only once no batch is waiting.
				select {
				case b = <-full:
					if b != nil {
						continue
					}
				default:
				}
				break
			}
			r.link.flush()
		}
	}()
	defer close(full)
	for {
		b := <-free
		n, err := lan.read(b.bufs, b.sizes, b.offl)
		if err != nil {
			select {
			case <-r.closed:
				return nil
			default:
			}
			if cn, ok := ep.(wire.ClosedNotifier); ok {
				select {
				case <-cn.Closed():
					return nil
				default:
				}
			}
			return err
		}
		b.n = n
		full <- b
	}
}

// inBatches is how many read batches may wait for the netstack (wire.BatchSize each).
const inBatches = 16

// inBatch is one read from the LAN.
type inBatch struct {
	bufs  [][]byte
	sizes []int
	offl  []wire.Offload // on a channel with offloads, each packet's
	n     int
}

// offloadInBatches is inBatches for a channel with offloads, whose buffers are of 64 KiB
// for a TSO guest's packets: 8 batches of 32 (17 MiB of address space, of which a frame
// touches only its own pages). A batch holds as many packets as a plain one, so a
// per-frame guest's frames cost as few reads; the switch's queue for the channel takes
// the bursts that fewer batches no longer would.
const offloadInBatches = 8

func newInBatch(offload bool) *inBatch {
	n, size := wire.BatchSize, wire.MaxFrame+1
	if offload {
		size = wire.MaxPacket
	}
	b := &inBatch{bufs: make([][]byte, n), sizes: make([]int, n)}
	if offload {
		b.offl = make([]wire.Offload, n)
	}
	for i := range b.bufs {
		b.bufs[i] = make([]byte, size)
	}
	return b
}

// Close stops the router: forwarded ports, flows and the LAN endpoint.
func (r *Router) Close() error {
	r.closeOnce.Do(func() {
		close(r.closed)
		r.mu.Lock()
		for _, l := range r.listeners {
			l.Close()
		}
		r.mu.Unlock()
		r.ping.close()
		r.stack.Close()
	})
	return nil
}

// emit sends frames to the LAN; before Run (or with the LAN gone) they are dropped.
func (r *Router) emit(frames [][]byte) {
	if l := r.out.Load(); l != nil {
		l.write(frames)
	}
}

// emitOffload sends frames with their offloads (withOffl: some have any) to the LAN.
func (r *Router) emitOffload(frames [][]byte, offl []wire.Offload, withOffl bool) {
	if l := r.out.Load(); l != nil {
		if withOffl {
			l.writeOffload(frames, offl)
		} else {
			l.write(frames)
		}
	}
}

// housekeeping expires unanswered neighbour queries and re-sends router advertisements.
func (r *Router) housekeeping() {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	lastRA := time.Now()
	for {
		select {
		case <-r.closed:
			return
		case now := <-tick.C:
			r.neigh.expire(now)
			if r.cfg.IPv6 && now.Sub(lastRA) > raInterval {
				r.advertise(netip.Addr{})
				lastRA = now
			}
		}
	}
}

// track keeps a host listener to close with the router.
func (r *Router) track(l interface{ Close() error }) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case <-r.closed:
		l.Close()
		return errors.New("slirp: router closed")
	default:
	}
	r.listeners = append(r.listeners, l)
	return nil
}

// isOwn reports whether ip is one of the router's own virtual hosts: the router, the
// DNS proxy, or the address of a -x forward. The router answers ARP and ping for these.
func (r *Router) isOwn(ip netip.Addr) bool {
	if ip == r.router || (ip == r.dns4 && r.cfg.Network().Contains(ip)) {
		return true
	}
	if r.cfg.IPv6 && (ip == r.router6 || ip == r.dns6 || ip == r.linkLocal6) {
		return true
	}
	for _, u := range r.cfg.UnixForwards {
		if u.Addr.IsValid() && u.Addr == ip {
			return true
		}
	}
	return false
}

// ownMAC is the source MAC for a packet from src: the DNS proxy and the router each
// have their own (52:55:<IPv4>); every NATed address speaks with the router's.
func (r *Router) ownMAC(src netip.Addr) net.HardwareAddr {
	if src == r.dns4 || (src.Is6() && src == r.dns6) {
		return r.dnsMAC
	}
	if src.Is4() && src != r.router && r.isOwn(src) {
		return MACFor(src)
	}
	return r.routerMAC
}

// macOf is the destination MAC for dst: broadcast and multicast by rule, guests from the
// neighbour table.
func (r *Router) macOf(dst netip.Addr) ([6]byte, bool) {
	switch {
	case dst.Is4() && (dst == netip.AddrFrom4([4]byte{255, 255, 255, 255}) || dst == broadcastOf(r.cfg.Network())):
		return [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, true
	case dst.Is4() && dst.IsMulticast():
		b := dst.As4()
		return [6]byte{0x01, 0x00, 0x5e, b[1] & 0x7f, b[2], b[3]}, true
	case dst.Is6() && dst.IsMulticast():
		b := dst.As16()
		return [6]byte{0x33, 0x33, b[12], b[13], b[14], b[15]}, true
	}
	return r.neigh.lookup(dst)
}

// learn records a guest's address from a frame it sent, and sends what waited for it.
func (r *Router) learn(ip netip.Addr, mac [6]byte) {
	if !ip.IsValid() || ip.IsUnspecified() || ip.IsMulticast() || r.isOwn(ip) || mac[0]&1 != 0 {
		return
	}
	if ip.Is4() && (ip == broadcastOf(r.cfg.Network()) || ip == netip.AddrFrom4([4]byte{255, 255, 255, 255})) {
		return
	}
	waiting := r.neigh.learn(ip, mac)
	if len(waiting) == 0 {
		return
	}
	out := waiting[:0]
	for _, f := range waiting {
		if r.address(f, true) {
			out = append(out, f)
		}
	}
	r.emit(out)
}

// solicit asks the LAN for dst's MAC: ARP for IPv4, neighbour solicitation for IPv6.
func (r *Router) solicit(dst netip.Addr) {
	if dst.Is4() {
		r.emit([][]byte{arpFrame(arpRequest, r.routerMAC, r.router, nil, dst)})
		return
	}
	if r.cfg.IPv6 {
		r.emit([][]byte{r.neighborSolicitation(dst)})
	}
}

func broadcastOf(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v |= ^uint32(0) >> p.Bits()
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func tcpAddr(a netip.Addr) tcpip.Address { return tcpip.AddrFromSlice(a.AsSlice()) }

func addrOf(b []byte) netip.Addr {
	a, _ := netip.AddrFromSlice(b)
	return a.Unmap()
}

func fromTCPAddr(a tcpip.Address) netip.Addr { return addrOf(a.AsSlice()) }

func bufferFrom(b []byte) buffer.Buffer { return buffer.MakeWithData(b) }
