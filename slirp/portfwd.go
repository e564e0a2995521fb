package slirp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/vde-go/vde/slirp/tftp"
)

// StartForwards opens the host side of every -L and -U forward. It returns the forwards
// that listen and one error per forward that could not (a port already taken, say); the
// router serves on either way, as the C slirp does.
func (r *Router) StartForwards() (ok []Forward, errs []error) {
	for _, f := range r.cfg.Forwards {
		if err := r.AddForward(f); err != nil {
			errs = append(errs, err)
			continue
		}
		ok = append(ok, f)
	}
	return ok, errs
}

// AddForward opens the host side of one more forward.
func (r *Router) AddForward(f Forward) error {
	if f.UDP {
		return r.listenUDP(f)
	}
	return r.listenTCP(f)
}

func (f Forward) hostAddr() string {
	bind := "0.0.0.0"
	if f.Bind.IsValid() {
		bind = f.Bind.String()
	}
	return net.JoinHostPort(bind, strconv.Itoa(int(f.HostPort)))
}

// hostNetwork is the network the host side listens on: IPv4 only unless the bind address
// is IPv6, so that a forward without one listens on 0.0.0.0 as the C slirp's does, not
// on Go's dual-stack [::] (every IPv6 address of the host too).
func (f Forward) hostNetwork() string {
	if f.Bind.Is6() && !f.Bind.Is4In6() {
		return f.proto() + "6"
	}
	return f.proto() + "4"
}

func (f Forward) proto() string {
	if f.UDP {
		return "udp"
	}
	return "tcp"
}

// forwardSource is the address a guest sees a forwarded connection come from: the real
// peer, except that a peer on the host itself (loopback) is the router, as in the C slirp.
func (r *Router) forwardSource(peer net.Addr) tcpip.FullAddress {
	src := addrFromNet(peer)
	var port uint16
	switch a := peer.(type) {
	case *net.TCPAddr:
		port = uint16(a.Port)
	case *net.UDPAddr:
		port = uint16(a.Port)
	}
	if !src.Is4() || src.IsLoopback() || src.IsUnspecified() || r.cfg.Network().Contains(src) {
		return tcpip.FullAddress{NIC: nicID, Addr: tcpAddr(r.router)}
	}
	return tcpip.FullAddress{NIC: nicID, Addr: tcpAddr(src), Port: port}
}

func (r *Router) listenTCP(f Forward) error {
	ln, err := net.Listen(f.hostNetwork(), f.hostAddr())
	if err != nil {
		return fmt.Errorf("redir TCP %s: %w", f, err)
	}
	if err := r.track(ln); err != nil {
		return err
	}
	guest := tcpip.FullAddress{NIC: nicID, Addr: tcpAddr(f.Guest), Port: f.GuestPort}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				// Out of descriptors (EMFILE) or the like: the forward lives on.
				r.logLimited("redir accept", "redir TCP %s: %v", f, err)
				select {
				case <-r.closed:
					return
				case <-time.After(100 * time.Millisecond):
				}
				continue
			}
			if !r.takeFlow("redir TCP "+f.String(), nil) {
				c.Close()
				continue
			}
			go func() {
				defer r.flows.Add(-1)
				ctx, cancel := context.WithTimeout(context.Background(), dialLimit)
				defer cancel()
				g, err := gonet.DialTCPWithBind(ctx, r.stack, r.forwardSource(c.RemoteAddr()), guest, ipv4.ProtocolNumber)
				if err != nil {
					r.logLimited("redir dial", "redir TCP %s: %v", f, err)
					c.Close()
					return
				}
				splice(guestStream{conn: g}, c)
			}()
		}
	}()
	return nil
}

func (r *Router) listenUDP(f Forward) error {
	pc, err := net.ListenPacket(f.hostNetwork(), f.hostAddr())
	if err != nil {
		return fmt.Errorf("redir UDP %s: %w", f, err)
	}
	if err := r.track(pc); err != nil {
		return err
	}
	guest := tcpip.FullAddress{NIC: nicID, Addr: tcpAddr(f.Guest), Port: f.GuestPort}
	go r.serveUDPForward(f, pc, guest)
	return nil
}

// serveUDPForward keeps one flow into the guest per host peer, each with its own
// netstack socket, so that the guest's replies go back to the peer that sent.
func (r *Router) serveUDPForward(f Forward, pc net.PacketConn, guest tcpip.FullAddress) {
	var mu sync.Mutex
	flows := map[netip.AddrPort]*gonet.UDPConn{}
	buf := make([]byte, 65536)
	for {
		n, peer, err := pc.ReadFrom(buf)
		if err != nil {
			mu.Lock()
			for _, c := range flows {
				c.Close()
			}
			mu.Unlock()
			return
		}
		key := peer.(*net.UDPAddr).AddrPort()
		mu.Lock()
		c := flows[key]
		if c == nil && len(flows) >= maxForwardPeers {
			mu.Unlock()
			r.count.peersRefused.Add(1)
			r.logLimited("redir peers", "redir UDP %s: %v dropped: %d peers already", f, peer, maxForwardPeers)
			continue
		}
		if c == nil {
			var wq waiter.Queue
			var ep tcpip.Endpoint
			ep, err = r.dialGuestUDP(&wq, r.forwardSource(peer), guest)
			if err != nil {
				mu.Unlock()
				r.logLimited("redir UDP dial", "redir UDP %s: %v", f, err)
				continue
			}
			c = gonet.NewUDPConn(&wq, ep)
			flows[key] = c
			entry, notify := waiter.NewChannelEntry(waiter.ReadableEvents)
			wq.EventRegister(&entry)
			go func() {
				defer func() {
					mu.Lock()
					delete(flows, key)
					mu.Unlock()
					wq.EventUnregister(&entry)
					c.Close()
				}()
				// The guest's replies, read into a pooled buffer only once one is there:
				// a peer waiting holds none (recvGuest).
				for {
					if err := recvGuest(ep, notify, udpIdle, func(b []byte) { pc.WriteTo(b, peer) }); err != nil {
						return
					}
				}
			}()
		}
		mu.Unlock()
		c.Write(buf[:n])
	}
}

// dialGuestUDP makes a netstack UDP endpoint from src connected to guest.
func (r *Router) dialGuestUDP(wq *waiter.Queue, src, guest tcpip.FullAddress) (tcpip.Endpoint, error) {
	ep, terr := r.stack.NewEndpoint(udp.ProtocolNumber, ipv4.ProtocolNumber, wq)
	if terr != nil {
		return nil, errors.New(terr.String())
	}
	if terr := ep.Bind(src); terr != nil {
		ep.Close()
		return nil, fmt.Errorf("bind %v: %s", fromTCPAddr(src.Addr), terr)
	}
	if terr := ep.Connect(guest); terr != nil {
		ep.Close()
		return nil, fmt.Errorf("connect %v:%d: %s", fromTCPAddr(guest.Addr), guest.Port, terr)
	}
	return ep, nil
}

// startTFTP serves cfg.TFTPDir at the router's UDP port 69; each transfer gets a socket
// of its own on a fresh router port (the TFTP transfer-id rule).
func (r *Router) startTFTP() error {
	srv, err := tftp.New(tftp.Config{
		Root:         r.cfg.TFTPDir,
		MaxBlockSize: r.cfg.MTU - 32,
		MaxTransfers: maxTFTP,
		Logf:         func(format string, args ...any) { r.logLimited("tftp", format, args...) },
		Refused:      func() { r.count.tftpRefused.Add(1) },
	})
	if err != nil {
		return fmt.Errorf("slirp: tftp: %w", err)
	}
	conn, err := gonet.DialUDP(r.stack, &tcpip.FullAddress{NIC: nicID, Addr: tcpAddr(r.router), Port: 69}, nil, ipv4.ProtocolNumber)
	if err != nil {
		return fmt.Errorf("slirp: tftp: listen %s:69: %w", r.router, err)
	}
	if err := r.track(conn); err != nil {
		return err
	}
	dial := func(peer net.Addr) (net.Conn, error) {
		p, ok := peer.(*net.UDPAddr)
		if !ok {
			return nil, fmt.Errorf("tftp: peer %v is not UDP", peer)
		}
		raddr := tcpip.FullAddress{NIC: nicID, Addr: tcpip.AddrFromSlice(p.IP.To4()), Port: uint16(p.Port)}
		return gonet.DialUDP(r.stack, &tcpip.FullAddress{NIC: nicID, Addr: tcpAddr(r.router)}, &raddr, ipv4.ProtocolNumber)
	}
	go srv.Serve(conn, dial)
	return nil
}
