package slirp

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// Flow timeouts of the C slirp (spec §3.5).
const (
	udpIdle    = 240 * time.Second
	dnsUDPIdle = 10 * time.Second
	dialLimit  = 30 * time.Second
)

var errRefused = errors.New("refused")

// maxFlows bounds the TCP and UDP flows NATed at once (each holds a host socket), so
// that one guest opening flows without end cannot take all of the host's descriptors.
const maxFlows = 16384

// takeFlow reserves a flow; false (logged) when maxFlows are open.
func (r *Router) takeFlow(what string) bool {
	if r.flows.Add(1) > maxFlows {
		r.flows.Add(-1)
		r.cfg.Logf("%s: refused: %d flows open already", what, maxFlows)
		return false
	}
	return true
}

// target is where the host connects for a guest connecting to dst:port: the router
// address is the host's loopback (unless forbidden), a -x port a unix socket, the DNS
// proxy the host's nameserver, any outside address itself.
func (r *Router) target(udpFlow bool, dst netip.Addr, port uint16) (network, address string, err error) {
	network = "tcp"
	if udpFlow {
		network = "udp"
	}
	if !udpFlow {
		for _, u := range r.cfg.UnixForwards {
			if u.Port == port && (u.Addr == dst || (!u.Addr.IsValid() && (dst == r.router || dst == r.router6))) {
				return "unix", u.Path, nil
			}
		}
	}
	switch {
	case dst == r.dns4 && r.cfg.Network().Contains(dst), r.cfg.IPv6 && dst == r.dns6:
		if port != 53 {
			return "", "", errRefused
		}
		return network, net.JoinHostPort(r.dns.nameserver(), "53"), nil
	case dst == r.router || (r.cfg.IPv6 && (dst == r.router6 || dst == r.linkLocal6)):
		if r.cfg.NoHostLoopback {
			return "", "", errRefused
		}
		lo := "127.0.0.1"
		if dst.Is6() {
			lo = "::1"
		}
		return network, net.JoinHostPort(lo, strconv.Itoa(int(port))), nil
	case !r.forUs(dst) || r.isOwn(dst) || r.cfg.Restricted:
		return "", "", errRefused
	}
	return network, net.JoinHostPort(dst.String(), strconv.Itoa(int(port))), nil
}

// handleTCP NATs one guest connection: the host connects first, and only then does the
// guest's handshake complete (a refused host connection resets the guest's), as in the
// C slirp. The netstack runs each request in its own goroutine.
func (r *Router) handleTCP(req *tcp.ForwarderRequest) {
	id := req.ID()
	dst := fromTCPAddr(id.LocalAddress)
	network, address, err := r.target(false, dst, id.LocalPort)
	if err != nil || !r.takeFlow("tcp "+address) {
		req.Complete(true)
		return
	}
	defer r.flows.Add(-1)
	host, err := net.DialTimeout(network, address, dialLimit)
	if err != nil {
		r.cfg.Logf("tcp %s:%d -> %s: %v", fromTCPAddr(id.RemoteAddress), id.RemotePort, address, err)
		req.Complete(true)
		return
	}
	var wq waiter.Queue
	ep, terr := req.CreateEndpoint(&wq)
	if terr != nil {
		req.Complete(true)
		host.Close()
		return
	}
	req.Complete(false)
	splice(gonet.NewTCPConn(&wq, ep), host)
}

// halfCloser is a connection whose sending side closes alone (TCP, unix streams).
type halfCloser interface {
	net.Conn
	CloseWrite() error
}

// splice copies both ways until both directions end, passing half-closes on, then
// closes both connections.
func splice(a, b net.Conn) {
	var wg sync.WaitGroup
	wg.Add(2)
	pipe := func(dst, src net.Conn) {
		defer wg.Done()
		io.Copy(dst, src)
		if hc, ok := dst.(halfCloser); ok {
			hc.CloseWrite()
		} else {
			dst.Close()
		}
	}
	go pipe(a, b)
	go pipe(b, a)
	wg.Wait()
	a.Close()
	b.Close()
}

// handleUDP NATs one guest UDP flow (one 4-tuple) through a connected host socket. It
// runs on the netstack's receive path, so the relay goes to its own goroutines.
func (r *Router) handleUDP(req *udp.ForwarderRequest) bool {
	id := req.ID()
	dst := fromTCPAddr(id.LocalAddress)
	network, address, err := r.target(true, dst, id.LocalPort)
	if err != nil || !r.takeFlow("udp "+address) {
		return false
	}
	var wq waiter.Queue
	ep, terr := req.CreateEndpoint(&wq)
	if terr != nil {
		r.flows.Add(-1)
		return false
	}
	guest := gonet.NewUDPConn(&wq, ep)
	idle := udpIdle
	if id.LocalPort == 53 {
		idle = dnsUDPIdle
	}
	var check func([]byte) error
	if id.LocalPort == 53 && r.isOwn(dst) {
		from := fromTCPAddr(id.RemoteAddress)
		check = func(b []byte) error {
			err := checkDNSQuery(b)
			if err != nil {
				r.cfg.Logf("dns from %s: dropped: %v", from, err)
			}
			return err
		}
	}
	go func() {
		defer r.flows.Add(-1)
		host, err := net.Dial(network, address)
		if err != nil {
			r.cfg.Logf("udp %s:%d -> %s: %v", fromTCPAddr(id.RemoteAddress), id.RemotePort, address, err)
			guest.Close()
			return
		}
		relayUDP(guest, host, idle, check)
	}()
	return true
}

// relayUDP copies datagrams both ways until neither side has sent for idle; check, when
// not nil, vets what a sends (the DNS proxy's queries) and drops what it refuses.
func relayUDP(a, b net.Conn, idle time.Duration, check func([]byte) error) {
	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn, check func([]byte) error) {
		defer func() { done <- struct{}{} }()
		buf := make([]byte, 65536)
		for {
			src.SetReadDeadline(time.Now().Add(idle))
			n, err := src.Read(buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() && time.Since(time.Unix(0, last.Load())) < idle {
					continue
				}
				return
			}
			last.Store(time.Now().UnixNano())
			if check != nil && check(buf[:n]) != nil {
				continue
			}
			// A write error (an ICMP error reported on a connected socket) loses this
			// datagram only; the flow lives on until it idles.
			dst.Write(buf[:n])
		}
	}
	go pipe(b, a, check)
	go pipe(a, b, nil)
	<-done
	a.Close()
	b.Close()
	<-done
}
