package vxlan

import (
	"fmt"
	"log"
	"net/netip"
	"time"

	"github.com/vde-go/vde/switchcore/wire"
)

// Cable is a vxlan:// endpoint: it carries frames between a VDE LAN and the VTEPs of one
// VXLAN network. Flooded frames (broadcast, multicast, unknown destination) go to the
// multicast group, or to every unicast peer (head-end replication); a frame to a known
// MAC goes to the VTEP that MAC was learned behind.
type Cable struct {
	tunnel
	cfg  Config
	sock *udpSocket
	rx   *rxBatch
}

// Open opens the cable c describes. logf gets its rate-limited drop reports (nil: the
// standard logger).
func Open(c Config, logf func(format string, args ...any)) (*Cable, error) {
	if logf == nil {
		logf = log.Printf
	}
	ifindex, err := ifIndex(c.Interface)
	if err != nil {
		return nil, fmt.Errorf("vxlan: %w", err)
	}
	any := netip.IPv4Unspecified()
	if c.Is6() {
		any = netip.IPv6Unspecified()
	}
	o := sockOpts{bind: netip.AddrPortFrom(any, c.Port), mcastTTL: c.TTL, ifindex: ifindex, rcvbuf: c.RcvBuf}
	if c.HasTTL {
		o.ucastTTL = c.TTL
	}
	var flood []*vtep
	if c.Group.IsValid() {
		// The group's socket takes unicast too: a kernel VTEP in multicast mode answers a
		// learned MAC with unicast to our address. Our own multicast does not come back
		// (vdeplug4's and the kernel's vxlan sockets turn the loop off too), and the port
		// is ours alone (no SO_REUSEADDR, as theirs): one VTEP per address and port.
		o.group, o.local = c.Group, c.Local
		flood = []*vtep{newVTEP(netip.AddrPortFrom(c.Group, c.Port), uint32(ifindex))}
	} else {
		if c.Local.IsValid() {
			o.bind = netip.AddrPortFrom(c.Local, c.Port)
		}
		for _, p := range c.Peers {
			flood = append(flood, newVTEP(netip.AddrPortFrom(p, c.Port), uint32(ifindex)))
		}
	}
	name := "vxlan://" + c.String()
	s, err := openUDP(name, o)
	if err != nil {
		return nil, err
	}
	cb := &Cable{cfg: c, sock: s, rx: newRxBatch(wire.BatchSize, false)}
	cb.init(name, c.VNI, c.HashSize, c.Expire, flood, s.rc, logf)
	return cb, nil
}

// String is the cable's URL without the scheme, as it was understood.
func (c *Config) String() string {
	addr := c.Group.String()
	if !c.Group.IsValid() {
		addr = ""
		for i, p := range c.Peers {
			if i > 0 {
				addr += ","
			}
			addr += p.String()
		}
	}
	return fmt.Sprintf("%s/vni=%d/port=%d", addr, c.VNI, c.Port)
}

// ReadBatch implements wire.Endpoint. Only one goroutine may read. A datagram that is not
// a frame of this network from a VTEP we take is dropped and counted here.
func (cb *Cable) ReadBatch(frames [][]byte, sizes []int) (int, error) {
	for {
		n, err := cb.rx.recv(cb.sock.rc, frames)
		if err != nil {
			return 0, err
		}
		now := time.Now()
		sec := now.Unix()
		k := 0
		for i := 0; i < n; i++ {
			src, ok := cb.rx.source(i)
			size := cb.rx.size(i)
			if err := cb.rx.heads[i].Check(size+HeaderLen, cb.cfg.VNI); err != nil {
				cb.rlog.note(dropKind(err), src, nil)
				continue
			}
			if size > wire.MaxFrame || size > len(frames[i]) {
				cb.rlog.note(DropOversize, src, nil)
				continue
			}
			// A VTEP is its address and the configured port: the kernel sends from
			// ports hashed from the inner flow, and listens on the configured one.
			ap := netip.AddrPortFrom(src.Addr(), cb.cfg.Port)
			v := cb.known.lookup(ap)
			if v == nil && ok && (cb.cfg.Learn || cb.cfg.Group.IsValid()) {
				v = cb.known.get(ap)
			}
			if v == nil {
				cb.rlog.note(DropStranger, src, nil)
				continue
			}
			cb.take(frames, sizes, i, k, size, v, sec)
			k++
		}
		cb.stats.In.Add(uint64(k))
		cb.rlog.report(now)
		if k > 0 {
			return k, nil
		}
	}
}

// Close implements wire.Endpoint.
func (cb *Cable) Close() error { return cb.sock.Close() }

func init() {
	wire.RegisterScheme("vxlan", func(arg string, o wire.OpenOptions) (wire.Endpoint, error) {
		c, err := ParseConfig(arg, nil)
		if err != nil {
			return nil, err
		}
		return Open(c, o.Logf)
	})
}
