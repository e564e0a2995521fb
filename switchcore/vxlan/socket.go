package vxlan

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// udpSocket is a non-blocking UDP socket with its runtime poller hook.
type udpSocket struct {
	file *os.File
	rc   syscall.RawConn
	fd   int
	is6  bool
}

// sockOpts are what a cable or a vxvde segment asks of its socket.
type sockOpts struct {
	bind      netip.AddrPort // address and port to bind (the address may be unspecified)
	reuse     bool           // SO_REUSEADDR, for sockets that share a port with others
	group     netip.Addr     // a multicast group to join, if valid
	ifindex   int            // the interface of multicast (0: the route's)
	local     netip.Addr     // the address to send multicast from, if valid (IPv4)
	mcastTTL  int            // TTL (hop limit) of multicast
	ucastTTL  int            // TTL of unicast, if > 0
	mcastLoop bool           // receive our own multicast (other sockets of this host)
	pktinfo   bool           // IP_PKTINFO: learn each datagram's destination
	rcvbuf    int            // SO_RCVBUF, if > 0 (else 4 MiB)
}

// openUDP makes the socket: buffers sized for bursts, outer packets never marked DF (a
// frame too big for the underlay is fragmented, as the kernel's vxlan does by default:
// its df option is unset, so the outer IPv4 header goes without DF).
func openUDP(name string, o sockOpts) (*udpSocket, error) {
	is6 := o.bind.Addr().Is6()
	family := unix.AF_INET
	if is6 {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return nil, fmt.Errorf("%s: socket: %w", name, err)
	}
	fail := func(what string, err error) (*udpSocket, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("%s: %s: %w", name, what, err)
	}
	// Bigger buffers ride out bursts of a fast sender; the kernel caps them at rmem_max
	// and wmem_max unless we are root (the FORCE variants).
	for _, opt := range [][2]int{{unix.SO_RCVBUFFORCE, unix.SO_RCVBUF}, {unix.SO_SNDBUFFORCE, unix.SO_SNDBUF}} {
		if unix.SetsockoptInt(fd, unix.SOL_SOCKET, opt[0], 4<<20) != nil {
			unix.SetsockoptInt(fd, unix.SOL_SOCKET, opt[1], 4<<20)
		}
	}
	if o.rcvbuf > 0 {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, o.rcvbuf); err != nil {
			return fail("SO_RCVBUF", err)
		}
	}
	if o.reuse {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return fail("SO_REUSEADDR", err)
		}
	}
	loop := 0
	if o.mcastLoop {
		loop = 1
	}
	var sa unix.Sockaddr
	if !is6 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DONT); err != nil {
			return fail("IP_MTU_DISCOVER", err)
		}
		if o.ucastTTL > 0 {
			if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_TTL, o.ucastTTL); err != nil {
				return fail("IP_TTL", err)
			}
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_TTL, o.mcastTTL); err != nil {
			return fail("IP_MULTICAST_TTL", err)
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_LOOP, loop); err != nil {
			return fail("IP_MULTICAST_LOOP", err)
		}
		if o.pktinfo {
			if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_PKTINFO, 1); err != nil {
				return fail("IP_PKTINFO", err)
			}
		}
		sa = &unix.SockaddrInet4{Port: int(o.bind.Port()), Addr: o.bind.Addr().As4()}
	} else {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1); err != nil {
			return fail("IPV6_V6ONLY", err)
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MTU_DISCOVER, unix.IPV6_PMTUDISC_DONT); err != nil {
			return fail("IPV6_MTU_DISCOVER", err)
		}
		if o.ucastTTL > 0 {
			if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS, o.ucastTTL); err != nil {
				return fail("IPV6_UNICAST_HOPS", err)
			}
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_HOPS, o.mcastTTL); err != nil {
			return fail("IPV6_MULTICAST_HOPS", err)
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_LOOP, loop); err != nil {
			return fail("IPV6_MULTICAST_LOOP", err)
		}
		if o.pktinfo {
			if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1); err != nil {
				return fail("IPV6_RECVPKTINFO", err)
			}
		}
		sa6 := &unix.SockaddrInet6{Port: int(o.bind.Port()), Addr: o.bind.Addr().As16()}
		if z := o.bind.Addr().Zone(); z != "" {
			if ifi, err := net.InterfaceByName(z); err == nil {
				sa6.ZoneId = uint32(ifi.Index)
			}
		}
		sa = sa6
	}
	if err := unix.Bind(fd, sa); err != nil {
		return fail("bind "+o.bind.String(), err)
	}
	if o.group.IsValid() {
		if err := joinGroup(fd, o); err != nil {
			return fail("join "+o.group.String(), err)
		}
	}
	f := os.NewFile(uintptr(fd), name)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &udpSocket{file: f, rc: rc, fd: fd, is6: is6}, nil
}

// joinGroup joins o.group on o.ifindex (or o.local's interface) and sends multicast there.
func joinGroup(fd int, o sockOpts) error {
	if o.group.Is4() {
		mreq := &unix.IPMreqn{Multiaddr: o.group.As4(), Ifindex: int32(o.ifindex)}
		if o.local.IsValid() {
			mreq.Address = o.local.As4()
		}
		if err := unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_ADD_MEMBERSHIP, mreq); err != nil {
			return err
		}
		if o.ifindex != 0 || o.local.IsValid() {
			if err := unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_IF, mreq); err != nil {
				return fmt.Errorf("IP_MULTICAST_IF: %w", err)
			}
		}
		return nil
	}
	mreq := &unix.IPv6Mreq{Multiaddr: o.group.As16(), Interface: uint32(o.ifindex)}
	if err := unix.SetsockoptIPv6Mreq(fd, unix.IPPROTO_IPV6, unix.IPV6_JOIN_GROUP, mreq); err != nil {
		return err
	}
	if o.ifindex != 0 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_IF, o.ifindex); err != nil {
			return fmt.Errorf("IPV6_MULTICAST_IF: %w", err)
		}
	}
	return nil
}

// ifIndex resolves an if= option (a name, or empty for none).
func ifIndex(name string) (int, error) {
	if name == "" {
		return 0, nil
	}
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return 0, fmt.Errorf("if=%s: %w", name, err)
	}
	return ifi.Index, nil
}

func (s *udpSocket) Close() error { return s.file.Close() }
