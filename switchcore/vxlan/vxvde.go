package vxlan

import (
	"fmt"
	"log"
	"net"
	"net/netip"
	"os"
	"strconv"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/vde-go/vde/switchcore/wire"
)

// SegmentConfig is a parsed vxvde:// URL (libvdeplug_vxvde(1)).
type SegmentConfig struct {
	// Group is the multicast group every member joins (239.0.0.1, ff05:56de::1 with v6),
	// its last three bytes replaced by grp= when given.
	Group netip.Addr
	// Port is the group's UDP port (port=, 14789).
	Port uint16
	// VNI is the network identifier (vni=; else grp='s number; else 1).
	VNI uint32
	// TTL is the TTL of everything sent over IPv4, and the hop limit of multicast over IPv6
	// (ttl=, 1), as vdeplug4 sets them.
	TTL int
	// RcvBuf is the unicast socket's receive buffer (rcvbuf=), 0: ours.
	RcvBuf int
	// V6 asks for IPv6 where the address does not say (v6).
	V6 bool
	// HashSize and Expire are the MAC table's (hashsize=, 1024; expiretime=, 128 s).
	HashSize int
	Expire   time.Duration
	// Interface is the interface of multicast (if=).
	Interface string
	// Bind is the address of the per-process unicast socket (bind=); invalid: any.
	Bind netip.Addr

	grp, hasVNI bool
	grpID       uint32
}

// Defaults of vdeplug4's vxvde module.
const DefaultSegmentPort = 14789

// gidValue reads vni= and grp= as vdeplug4 does: a number, a group's name, or nothing
// for the process's group.
func gidValue(key, v string) (uint32, error) {
	if v == "" {
		return uint32(os.Getegid()), nil
	}
	if n, err := strconv.ParseUint(v, 10, 32); err == nil {
		return uint32(n), nil
	}
	gid, err := wire.LookupGroup(v)
	if err != nil {
		return 0, fmt.Errorf("%s=%s: not a number, and %v", key, v, err)
	}
	return uint32(gid), nil
}

// vxvdeOptions are vdeplug4's, in its order.
var vxvdeOptions = []option{
	{name: "port", set: func(c *Config, v string) error {
		n, err := parseUint("port", v, 65535)
		if n == 0 && err == nil {
			err = fmt.Errorf("port=0: want a port from 1 to 65535")
		}
		c.Port = uint16(n)
		return err
	}},
	{name: "vni", optional: true, set: func(c *Config, v string) error {
		n, err := gidValue("vni", v)
		c.VNI, c.seg.hasVNI = n&MaxVNI, true
		return err
	}},
	{name: "grp", optional: true, set: func(c *Config, v string) error {
		n, err := gidValue("grp", v)
		c.seg.grp, c.seg.grpID = true, n&MaxVNI
		return err
	}},
	vxlanOptions[2], // ttl
	vxlanOptions[3], // rcvbuf
	vxlanOptions[5], // v6
	vxlanOptions[4], // v4
	vxlanOptions[6], // hashsize
	vxlanOptions[7], // expiretime
	vxlanOptions[8], // if
	{name: "bind", set: func(c *Config, v string) error {
		a, err := netip.ParseAddr(v)
		if err != nil {
			return fmt.Errorf("bind=%s: not an IP address", v)
		}
		c.seg.Bind = a.Unmap()
		return nil
	}},
}

// ParseSegmentConfig parses the part of a vxvde:// URL after the scheme.
func ParseSegmentConfig(arg string, resolve func(host string) ([]netip.Addr, error)) (SegmentConfig, error) {
	c := Config{Port: DefaultSegmentPort, VNI: DefaultVNI, TTL: DefaultTTL, HashSize: DefaultHashSize, Expire: DefaultExpire}
	addr, opts := splitURL(arg)
	fail := func(err error) (SegmentConfig, error) { return SegmentConfig{}, urlError("vxvde", arg, err) }
	if err := applyOptions(&c, vxvdeOptions, opts); err != nil {
		return fail(err)
	}
	if err := c.setAddrs(wire.Unquote(addr), resolve); err != nil {
		return fail(err)
	}
	if !c.Group.IsValid() {
		return fail(fmt.Errorf("%s is not a multicast group", c.Peers[0]))
	}
	s := c.seg
	s.Group, s.Port, s.TTL, s.RcvBuf, s.V6 = c.Group, c.Port, c.TTL, c.RcvBuf, c.V6
	s.HashSize, s.Expire, s.Interface = c.HashSize, c.Expire, c.Interface
	s.VNI = c.VNI
	if s.grp {
		// grp= names the segment: it is the last three bytes of the group, and the VNI
		// unless vni= says otherwise.
		b := s.Group.AsSlice()
		b[len(b)-3], b[len(b)-2], b[len(b)-1] = byte(s.grpID>>16), byte(s.grpID>>8), byte(s.grpID)
		s.Group, _ = netip.AddrFromSlice(b)
		if !s.hasVNI {
			s.VNI = s.grpID
		}
	}
	if s.Bind.IsValid() && s.Bind.Is6() != s.Group.Is6() {
		return fail(fmt.Errorf("bind=%s: not of the group's family", s.Bind))
	}
	return s, nil
}

// Segment is a vxvde:// endpoint: a member of a switchless VXLAN segment, wire compatible
// with vdeplug4's. Members meet in a multicast group, learn each other's MACs and
// per-process unicast addresses, and talk unicast once they know where a MAC is; every
// member sends from a unicast socket of its own, so several share a host.
type Segment struct {
	tunnel
	cfg      SegmentConfig
	uni, grp *udpSocket
	uniport  uint16
	group    *vtep

	// Both sockets are read through an epoll set of their own (as vdeplug4's is), which
	// the runtime poller watches: one reader waits for either.
	ep     *os.File
	eprc   syscall.RawConn
	epfd   int
	evs    [2]unix.EpollEvent
	urx    *rxBatch
	grx    *rxBatch
	frames [][]byte // the caller's, during a read
	from   *rxBatch // which socket the read got datagrams from
	got    int      // how many
	rerr   syscall.Errno
	readFn func(uintptr) bool

	local     map[netip.Addr]bool // this host's addresses (IPv6 self-filter)
	localNext time.Time           // when they may be looked up again
}

// OpenSegment joins the segment c describes.
func OpenSegment(c SegmentConfig, logf func(format string, args ...any)) (*Segment, error) {
	if logf == nil {
		logf = log.Printf
	}
	name := fmt.Sprintf("vxvde://%s/vni=%d/port=%d", c.Group, c.VNI, c.Port)
	ifindex, err := ifIndex(c.Interface)
	if err != nil {
		return nil, fmt.Errorf("vxvde: %w", err)
	}
	bind := c.Bind
	if !bind.IsValid() {
		bind = netip.IPv4Unspecified()
		if c.Group.Is6() {
			bind = netip.IPv6Unspecified()
		}
	}
	// The unicast socket sends everything, and takes what members send us directly.
	uo := sockOpts{bind: netip.AddrPortFrom(bind, 0), mcastTTL: c.TTL, ifindex: ifindex, mcastLoop: true, rcvbuf: c.RcvBuf}
	if c.Group.Is4() {
		uo.ucastTTL = c.TTL // vdeplug4 sets IP_TTL too; over IPv6 only the multicast hops
	}
	uni, err := openUDP(name+" unicast socket", uo)
	if err != nil {
		return nil, err
	}
	if ifindex != 0 {
		if err := setMulticastIf(uni.fd, c.Group, ifindex); err != nil {
			uni.Close()
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	sa, err := unix.Getsockname(uni.fd)
	if err != nil {
		uni.Close()
		return nil, fmt.Errorf("%s: getsockname: %w", name, err)
	}
	s := &Segment{cfg: c, uni: uni, urx: newRxBatch(wire.BatchSize, false), grx: newRxBatch(wire.BatchSize, true)}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		s.uniport = uint16(sa.Port)
	case *unix.SockaddrInet6:
		s.uniport = uint16(sa.Port)
	}
	// The group socket only listens: bound to the group itself, shared by every member on
	// this host, its IP_PKTINFO tells our own looped multicast apart.
	s.grp, err = openUDP(name+" group socket", sockOpts{bind: netip.AddrPortFrom(c.Group, c.Port), reuse: true,
		group: c.Group, ifindex: ifindex, mcastTTL: c.TTL, mcastLoop: true, pktinfo: true})
	if err != nil {
		uni.Close()
		return nil, err
	}
	if err := s.openEpoll(); err != nil {
		uni.Close()
		s.grp.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	s.group = newVTEP(netip.AddrPortFrom(c.Group, c.Port), uint32(ifindex))
	s.init(name, c.VNI, c.HashSize, c.Expire, []*vtep{s.group}, uni.rc, logf)
	s.readFn = s.tryRead
	return s, nil
}

func setMulticastIf(fd int, group netip.Addr, ifindex int) error {
	if group.Is4() {
		if err := unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_IF, &unix.IPMreqn{Ifindex: int32(ifindex)}); err != nil {
			return fmt.Errorf("IP_MULTICAST_IF: %w", err)
		}
		return nil
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_IF, ifindex); err != nil {
		return fmt.Errorf("IPV6_MULTICAST_IF: %w", err)
	}
	return nil
}

func (s *Segment) openEpoll() error {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return fmt.Errorf("epoll_create1: %w", err)
	}
	for _, sock := range []*udpSocket{s.uni, s.grp} {
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(sock.fd)}
		if err := unix.EpollCtl(fd, unix.EPOLL_CTL_ADD, sock.fd, &ev); err != nil {
			unix.Close(fd)
			return fmt.Errorf("epoll_ctl: %w", err)
		}
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return fmt.Errorf("epoll: %w", err)
	}
	s.ep = os.NewFile(uintptr(fd), "vxvde epoll")
	s.epfd = fd
	if s.eprc, err = s.ep.SyscallConn(); err != nil {
		s.ep.Close()
		return fmt.Errorf("epoll: %w", err)
	}
	return nil
}

// tryRead reads a batch from the unicast socket, else from the group socket; when both
// are empty it empties the epoll set's ready list, so that the next datagram on either
// makes it readable again, and has the runtime poller wait for that.
func (s *Segment) tryRead(uintptr) bool {
	for {
		for _, b := range []*rxBatch{s.urx, s.grx} {
			sock := s.uni
			if b == s.grx {
				sock = s.grp
			}
			b.setup(s.frames)
			n, errno := mmsg(unix.SYS_RECVMMSG, uintptr(sock.fd), b.hdrs[:b.cnt], unix.MSG_DONTWAIT|unix.MSG_TRUNC)
			switch errno {
			case 0:
				s.from, s.got, s.rerr = b, n, 0
				return true
			case unix.EAGAIN, unix.EINTR:
			default:
				s.from, s.got, s.rerr = nil, 0, errno
				return true
			}
		}
		n, err := unix.EpollWait(s.epfd, s.evs[:], 0)
		if errno, ok := err.(syscall.Errno); ok && errno != unix.EINTR {
			s.from, s.got, s.rerr = nil, 0, errno
			return true
		}
		if n == 0 {
			return false
		}
	}
}

// ReadBatch implements wire.Endpoint. Only one goroutine may read.
func (s *Segment) ReadBatch(frames [][]byte, sizes []int) (int, error) {
	for {
		s.frames = frames
		err := s.eprc.Read(s.readFn)
		s.frames = nil
		if err != nil {
			return 0, err
		}
		if s.rerr != 0 {
			return 0, s.rerr
		}
		b := s.from
		now := time.Now()
		sec := now.Unix()
		k := 0
		for i := 0; i < s.got; i++ {
			src, ok := b.source(i)
			size := b.size(i)
			if size == 0 && ok && b.heads[i] == s.head {
				// A member's goodbye: forget what was learned behind it.
				if v := s.known.lookup(src); v != nil && s.fdb != nil {
					s.fdb.forget(v)
				}
				continue
			}
			if err := b.heads[i].Check(size+HeaderLen, s.cfg.VNI); err != nil {
				s.rlog.note(dropKind(err), src, nil)
				continue
			}
			if size > wire.MaxFrame || size > len(frames[i]) {
				s.rlog.note(DropOversize, src, nil)
				continue
			}
			if b == s.grx && src.Port() == s.uniport && s.isOwn(i, src.Addr()) {
				continue // our own multicast, looped back
			}
			var v *vtep
			if ok {
				v = s.known.get(src) // a member is its address and its own port
			}
			if v == nil {
				s.rlog.note(DropStranger, src, nil)
				continue
			}
			s.take(frames, sizes, i, k, size, v, sec)
			k++
		}
		s.stats.In.Add(uint64(k))
		s.rlog.report(now)
		if k > 0 {
			return k, nil
		}
	}
}

// isOwn tells whether a datagram from our own port on the group socket came from this
// host: over IPv4 its source is the address IP_PKTINFO says it arrived at; over IPv6 it
// is one of the host's addresses.
func (s *Segment) isOwn(i int, src netip.Addr) bool {
	if src.Is4() {
		h := &s.grx.hdrs[i].Hdr
		ctrl := s.grx.ctrl[i*ctrlLen : i*ctrlLen+int(h.Controllen)]
		for len(ctrl) >= unix.SizeofCmsghdr {
			cm := (*unix.Cmsghdr)(unsafe.Pointer(&ctrl[0]))
			if cm.Len < unix.SizeofCmsghdr || int(cm.Len) > len(ctrl) {
				break
			}
			if cm.Level == unix.IPPROTO_IP && cm.Type == unix.IP_PKTINFO && int(cm.Len) >= unix.CmsgLen(unix.SizeofInet4Pktinfo) {
				pi := (*unix.Inet4Pktinfo)(unsafe.Pointer(&ctrl[unix.CmsgLen(0)]))
				return netip.AddrFrom4(pi.Spec_dst) == src
			}
			ctrl = ctrl[min(unix.CmsgSpace(int(cm.Len)-unix.CmsgLen(0)), len(ctrl)):]
		}
		return false
	}
	if s.local[src] {
		return true
	}
	if now := time.Now(); now.After(s.localNext) {
		s.localNext = now.Add(time.Second)
		s.local = localAddrs()
	}
	return s.local[src]
}

func localAddrs() map[netip.Addr]bool {
	m := map[netip.Addr]bool{}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			m[p.Addr().WithZone("")] = true
		}
	}
	return m
}

// Close implements wire.Endpoint: it says goodbye to the group (the bare header, as
// vdeplug4 does, so that members forget our MACs at once) and leaves.
func (s *Segment) Close() error {
	s.wmu.Lock()
	s.tx.add(s.group, nil, nil)
	s.tx.flush(s.send, func(*vtep, syscall.Errno) {})
	s.wmu.Unlock()
	s.ep.Close()
	s.grp.Close()
	return s.uni.Close()
}

// UnicastPort is the port of the segment's own socket (peers learn us by it).
func (s *Segment) UnicastPort() uint16 { return s.uniport }

func init() {
	wire.RegisterScheme("vxvde", func(arg string, o wire.OpenOptions) (wire.Endpoint, error) {
		c, err := ParseSegmentConfig(arg, nil)
		if err != nil {
			return nil, err
		}
		return OpenSegment(c, o.Logf)
	})
}
