package slirp

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// Flow timeouts of the C slirp (spec §3.5); variables for the tests.
var (
	udpIdle    = 240 * time.Second
	dnsUDPIdle = 10 * time.Second
	dialLimit  = 30 * time.Second
)

var errRefused = errors.New("refused")

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
		return network, net.JoinHostPort(r.dns.nameserver(), r.dns.port), nil
	case dst == r.router || (r.cfg.IPv6 && (dst == r.router6 || dst == r.linkLocal6)):
		if r.cfg.NoHostLoopback {
			r.count.loopbackRefused.Add(1)
			r.logLimited("loopback", "%v:%d: refused: host loopback disabled", dst, port)
			return "", "", errRefused
		}
		lo := "127.0.0.1"
		if dst.Is6() {
			lo = "::1"
		}
		return network, net.JoinHostPort(lo, strconv.Itoa(int(port))), nil
	case !r.forUs(dst) || r.isOwn(dst) || r.cfg.Restricted || r.loopbackRefused(dst):
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
	if err != nil || !r.takeFlow("tcp "+address, nil) {
		req.Complete(true)
		return
	}
	defer r.flows.Add(-1)
	r.count.tcpOpened.Add(1)
	r.count.tcpOpen.Add(1)
	defer r.count.tcpOpen.Add(-1)
	host, err := net.DialTimeout(network, address, dialLimit)
	if err != nil {
		r.logLimited("tcp dial", "tcp %s:%d -> %s: %v", fromTCPAddr(id.RemoteAddress), id.RemotePort, address, err)
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
	splice(guestStream{gonet.NewTCPConn(&wq, ep), ep, &wq}, host)
}

// handleUDP NATs one guest UDP flow (one 4-tuple) through a connected host socket. It
// runs on the netstack's receive path, so the relay goes to its own goroutines.
func (r *Router) handleUDP(req *udp.ForwarderRequest) bool {
	id := req.ID()
	dst := fromTCPAddr(id.LocalAddress)
	network, address, err := r.target(true, dst, id.LocalPort)
	if err != nil {
		return false
	}
	proxy := id.LocalPort == 53 && r.isOwn(dst) // the DNS proxy
	var flow *udpFlow
	var release func()
	if proxy {
		if r.dnsFlows.Add(1) > maxDNSFlows {
			r.dnsFlows.Add(-1)
			r.count.dnsRefused.Add(1)
			r.logLimited("dns flows", "dns from %s: refused: %d queries waiting for answers already", fromTCPAddr(id.RemoteAddress), maxDNSFlows)
			return false
		}
		release = func() { r.dnsFlows.Add(-1) }
		r.count.dnsQueries.Add(1)
	} else {
		if flow = r.takeUDPFlow("udp " + address); flow == nil {
			return false
		}
		r.count.udpOpened.Add(1)
		release = func() { r.endUDPFlow(flow) }
	}
	var wq waiter.Queue
	ep, terr := req.CreateEndpoint(&wq)
	if terr != nil {
		release()
		return false
	}
	guest := gonet.NewUDPConn(&wq, ep)
	var relay relayOptions
	if flow != nil {
		flow.attach(guest)
		relay.last = &flow.last
	}
	idle := udpIdle
	if id.LocalPort == 53 {
		idle = dnsUDPIdle
	}
	if proxy {
		from := fromTCPAddr(id.RemoteAddress)
		relay.oneShot = true
		relay.check = func(b []byte) error {
			if err := checkDNSQuery(b); err != nil {
				r.logLimited("dns junk", "dns from %s: dropped: %v", from, err)
				return err
			}
			if !r.dnsRate.take(time.Now()) {
				r.count.dnsRateDropped.Add(1)
				r.logLimited("dns rate", "dns from %s: dropped: over %d queries a second", from, dnsRate)
				return errDNSRate
			}
			return nil
		}
	}
	go func() {
		defer release()
		host, err := net.Dial(network, address)
		if err != nil {
			r.logLimited("udp dial", "udp %s:%d -> %s: %v", fromTCPAddr(id.RemoteAddress), id.RemotePort, address, err)
			guest.Close()
			return
		}
		if flow != nil && !flow.attach(host) {
			guest.Close()
			return // evicted already
		}
		relayUDP(guest, ep, &wq, host.(*net.UDPConn), idle, relay)
	}()
	return true
}

var errDNSRate = errors.New("over the DNS query rate")

// relayOptions are what a UDP relay does beyond copying.
type relayOptions struct {
	// check, when not nil, vets what the guest sends (the DNS proxy's queries) and drops
	// what it refuses.
	check func([]byte) error
	// oneShot ends the flow once every datagram the guest sent got an answer, or once
	// the guest's datagrams were all dropped (the DNS proxy: a resolver asks each query
	// from a new port, and each flow holds a host socket).
	oneShot bool
	// last, when not nil, is where the relay keeps the time of the last datagram.
	last *atomic.Int64
}

// dgramBufs are the buffers of UDP relays. A relay takes one only once a datagram is
// there to read, so that an idle flow holds none: 4,096 flows waiting with 64 KiB each
// way would hold 512 MiB.
var dgramBufs = sync.Pool{New: func() any { b := make([]byte, 65536); return &b }}

// errIdle is a relay side that sent nothing for its idle time.
var errIdle = errors.New("idle")

// recvGuest waits up to idle for the guest's next datagram on ep and hands it to fn.
func recvGuest(ep tcpip.Endpoint, notify <-chan struct{}, idle time.Duration, fn func([]byte)) error {
	var timeout <-chan time.Time
	for {
		bp := dgramBufs.Get().(*[]byte)
		w := tcpip.SliceWriter(*bp)
		res, terr := ep.Read(&w, tcpip.ReadOptions{})
		if terr == nil {
			fn((*bp)[:res.Count])
			dgramBufs.Put(bp)
			return nil
		}
		dgramBufs.Put(bp)
		if _, ok := terr.(*tcpip.ErrWouldBlock); !ok {
			return errors.New(terr.String())
		}
		if timeout == nil {
			t := time.NewTimer(idle)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-notify:
		case <-timeout:
			return errIdle
		}
	}
}

// recvHost waits up to idle for the next datagram on the host socket and hands it to fn.
func recvHost(host *net.UDPConn, raw syscall.RawConn, idle time.Duration, fn func([]byte)) error {
	host.SetReadDeadline(time.Now().Add(idle))
	var rerr error
	err := raw.Read(func(fd uintptr) bool {
		bp := dgramBufs.Get().(*[]byte)
		defer dgramBufs.Put(bp)
		for {
			n, err := unix.Read(int(fd), *bp)
			switch err {
			case nil:
				fn((*bp)[:n])
				return true
			case unix.EINTR:
				continue
			case unix.EAGAIN:
				return false
			}
			rerr = err
			return true
		}
	})
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return errIdle
	}
	if err != nil {
		return err
	}
	return rerr
}

// relayUDP copies datagrams between the guest (the netstack endpoint ep, with guest its
// net.Conn) and the host socket until neither side has sent for idle, or as opt says;
// then it closes both.
func relayUDP(guest net.Conn, ep tcpip.Endpoint, wq *waiter.Queue, host *net.UDPConn, idle time.Duration, opt relayOptions) {
	defer guest.Close()
	defer host.Close()
	raw, err := host.SyscallConn()
	if err != nil {
		return
	}
	entry, notify := waiter.NewChannelEntry(waiter.ReadableEvents)
	wq.EventRegister(&entry)
	defer wq.EventUnregister(&entry)

	last := opt.last
	if last == nil {
		last = new(atomic.Int64)
	}
	last.Store(time.Now().UnixNano())
	var waiting atomic.Int64 // datagrams sent to the host not answered yet (oneShot)
	done := make(chan struct{}, 2)
	// keepOn tells after a receive error whether the side should wait on: only when it
	// idled while the other side did not.
	keepOn := func(err error) bool {
		return errors.Is(err, errIdle) && time.Since(time.Unix(0, last.Load())) < idle
	}
	go func() { // guest -> host
		defer func() { done <- struct{}{} }()
		for {
			stop := false
			err := recvGuest(ep, notify, idle, func(b []byte) {
				last.Store(time.Now().UnixNano())
				if opt.check != nil && opt.check(b) != nil {
					stop = opt.oneShot && waiting.Load() == 0
					return
				}
				waiting.Add(1)
				// A write error (an ICMP error reported on a connected socket) loses this
				// datagram only; the flow lives on until it idles.
				host.Write(b)
			})
			if stop || (err != nil && !keepOn(err)) {
				return
			}
		}
	}()
	go func() { // host -> guest
		defer func() { done <- struct{}{} }()
		for {
			stop := false
			err := recvHost(host, raw, idle, func(b []byte) {
				last.Store(time.Now().UnixNano())
				guest.Write(b)
				stop = opt.oneShot && waiting.Add(-1) <= 0
			})
			if stop || (err != nil && !keepOn(err)) {
				return
			}
		}
	}()
	<-done
	guest.Close()
	host.Close()
	<-done
}
