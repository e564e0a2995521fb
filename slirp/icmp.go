package slirp

import (
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// pinger sends guests' echo requests to the outside through a host ICMP socket and turns
// the real replies into replies to the guest: an address that does not answer does not
// answer the guest either (the C slirp faked pings with UDP port 7). It uses an
// unprivileged ping socket (net.ipv4.ping_group_range) where allowed, else a raw socket
// (root); with neither, pings to the outside go unanswered.
type pinger struct {
	r      *Router
	v4, v6 icmpSocket

	mu   sync.Mutex
	seq  uint16
	sent [1 << 16]echoFlow // by our sequence number
}

// icmpSocket is the host socket of one address family, opened at the first ping.
type icmpSocket struct {
	once sync.Once
	conn net.PacketConn // nil: no ICMP socket could be opened
	raw  bool           // a raw socket: the identifier is ours, and others' replies come too
	id   uint16         // the identifier of our raw requests
}

// echoFlow is the guest's request behind one sequence number of ours.
type echoFlow struct {
	guest, target netip.Addr
	id, seq       uint16
	when          time.Time
}

// echoTimeout is how long a reply is matched to its request.
const echoTimeout = 30 * time.Second

func newPinger(r *Router) *pinger { return &pinger{r: r} }

func (p *pinger) open(sock *icmpSocket, v6 bool) {
	family, proto := unix.AF_INET, unix.IPPROTO_ICMP
	if v6 {
		family, proto = unix.AF_INET6, unix.IPPROTO_ICMPV6
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		fd, err = unix.Socket(family, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			p.r.cfg.Logf("ping: no ICMP socket (ping_group_range excludes us and we are not root): %v; pings to the outside will not be answered", err)
			return
		}
		sock.raw = true
		sock.id = uint16(os.Getpid())
	}
	f := os.NewFile(uintptr(fd), "icmp")
	conn, err := net.FilePacketConn(f)
	f.Close()
	if err != nil {
		p.r.cfg.Logf("ping: %v", err)
		return
	}
	sock.conn = conn
	go p.receive(sock, v6)
}

// send forwards an IPv4 echo request from guest to target.
func (p *pinger) send(guest, target netip.Addr, ttl uint8, icmp []byte) {
	p.forward(&p.v4, false, guest, target, icmp)
}

// send6 forwards an ICMPv6 echo request.
func (p *pinger) send6(guest, target netip.Addr, icmp []byte) {
	p.forward(&p.v6, true, guest, target, icmp)
}

func (p *pinger) forward(sock *icmpSocket, v6 bool, guest, target netip.Addr, icmp []byte) {
	sock.once.Do(func() { p.open(sock, v6) })
	if sock.conn == nil || len(icmp) < 8 {
		return
	}
	p.mu.Lock()
	p.seq++
	seq := p.seq
	p.sent[seq] = echoFlow{guest: guest, target: target, id: binary.BigEndian.Uint16(icmp[4:6]), seq: binary.BigEndian.Uint16(icmp[6:8]), when: time.Now()}
	p.mu.Unlock()
	req := append([]byte(nil), icmp...)
	binary.BigEndian.PutUint16(req[4:6], sock.id) // the kernel replaces it on a ping socket
	binary.BigEndian.PutUint16(req[6:8], seq)
	req[2], req[3] = 0, 0
	if !v6 { // the kernel computes ICMPv6 checksums itself
		binary.BigEndian.PutUint16(req[2:4], ^checksum.Checksum(req, 0))
	}
	var to net.Addr = &net.UDPAddr{IP: target.AsSlice()} // a ping socket is a UDPConn to Go
	if sock.raw {
		to = &net.IPAddr{IP: target.AsSlice()}
	}
	sock.conn.WriteTo(req, to)
	p.r.count.pings.Add(1)
}

// receive matches replies to requests and sends them to the guests.
func (p *pinger) receive(sock *icmpSocket, v6 bool) {
	buf := make([]byte, 65536)
	replyType := byte(header.ICMPv4EchoReply)
	if v6 {
		replyType = icmpv6EchoReply
	}
	for {
		n, from, err := sock.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		b := buf[:n] // Go's IPConn strips the IPv4 header of raw replies
		if len(b) < 8 || b[0] != replyType {
			continue
		}
		if sock.raw && binary.BigEndian.Uint16(b[4:6]) != sock.id {
			continue // someone else's ping
		}
		seq := binary.BigEndian.Uint16(b[6:8])
		src := addrFromNet(from)
		p.mu.Lock()
		flow := p.sent[seq]
		fresh := flow.target == src && time.Since(flow.when) < echoTimeout
		if fresh {
			p.sent[seq] = echoFlow{}
		}
		p.mu.Unlock()
		if !fresh {
			continue
		}
		reply := append([]byte(nil), b...)
		binary.BigEndian.PutUint16(reply[4:6], flow.id)
		binary.BigEndian.PutUint16(reply[6:8], flow.seq)
		if v6 {
			p.r.sendIP(buildIPv6(flow.target, flow.guest, icmpv6ProtoNumber, 64, reply))
			continue
		}
		reply[2], reply[3] = 0, 0
		binary.BigEndian.PutUint16(reply[2:4], ^checksum.Checksum(reply, 0))
		p.r.sendIP(buildIPv4(flow.target, flow.guest, uint8(header.ICMPv4ProtocolNumber), 64, reply))
	}
}

func (p *pinger) close() {
	for _, sock := range []*icmpSocket{&p.v4, &p.v6} {
		sock.once.Do(func() {})
		if sock.conn != nil {
			sock.conn.Close()
		}
	}
}

func addrFromNet(a net.Addr) netip.Addr {
	switch a := a.(type) {
	case *net.IPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	case *net.UDPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	case *net.TCPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	}
	return netip.Addr{}
}
