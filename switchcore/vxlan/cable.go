package vxlan

import (
	"fmt"
	"log"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/vde-go/vde/switchcore/wire"
)

// maxLearned bounds how many VTEPs a cable learns (multicast mode, or learn): a flood of
// datagrams from made-up sources cannot grow it further.
const maxLearned = 4096

// Cable is a vxlan:// endpoint: it carries frames between a VDE LAN and the VTEPs of one
// VXLAN network. Flooded frames (broadcast, multicast, unknown destination) go to the
// multicast group, or to every unicast peer (head-end replication); a frame to a known
// MAC goes to the VTEP that MAC was learned behind.
type Cable struct {
	cfg    Config
	sock   *udpSocket
	head   Header
	fdb    *fdb // nil: hashsize=0, everything floods
	flood  []*vtep
	expire int64
	stats  Stats

	// The reader's own.
	rx    *rxBatch
	known *vteps
	rlog  dropLog

	wmu  sync.Mutex // the sender's state below
	tx   *txBatch
	wlog dropLog
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
	o := sockOpts{bind: netip.AddrPortFrom(any, c.Port), mcastTTL: c.TTL, ifindex: ifindex}
	if c.HasTTL {
		o.ucastTTL = c.TTL
	}
	var flood []*vtep
	if c.Group.IsValid() {
		// The group's socket takes unicast too: a kernel VTEP in multicast mode answers a
		// learned MAC with unicast to our address. Our own multicast does not come back
		// (the kernel's vxlan sockets turn the loop off too).
		o.group, o.local, o.reuse = c.Group, c.Local, true
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
	cb := &Cable{
		cfg:    c,
		sock:   s,
		head:   NewHeader(c.VNI),
		fdb:    newFDB(c.HashSize, int64(c.Expire/time.Second)),
		flood:  flood,
		expire: int64(c.Expire / time.Second),
		rx:     newRxBatch(wire.BatchSize, false),
		known:  newVTEPs(maxLearned + len(flood)),
	}
	for _, v := range flood {
		v.peer = true
		cb.known.add(v)
	}
	cb.tx = newTxBatch(2*wire.BatchSize, &cb.head)
	cb.rlog = dropLog{logf: logf, stats: &cb.stats, what: name}
	cb.wlog = dropLog{logf: logf, stats: &cb.stats, what: name}
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

// Stats are the cable's counters.
func (cb *Cable) Stats() *Stats { return &cb.stats }

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
			if size > len(frames[i]) {
				cb.rlog.note(DropOversize, src, nil)
				continue
			}
			// A VTEP is its address and the configured port: the kernel sends from
			// ports hashed from the inner flow, and listens on the configured one.
			v := cb.known.lookup(netip.AddrPortFrom(src.Addr(), cb.cfg.Port))
			if v == nil && ok && (cb.cfg.Learn || cb.cfg.Group.IsValid()) {
				v = cb.known.get(netip.AddrPortFrom(src.Addr(), cb.cfg.Port))
			}
			if v == nil {
				cb.rlog.note(DropStranger, src, nil)
				continue
			}
			f := frames[i]
			if cb.fdb != nil && isUnicast(f[6:12]) {
				cb.fdb.learn(f[6:12], v, sec)
			}
			if k != i {
				frames[k], frames[i] = frames[i], frames[k]
			}
			sizes[k] = size
			k++
		}
		cb.stats.In.Add(uint64(k))
		cb.rlog.report(now)
		if k > 0 {
			return k, nil
		}
	}
}

// dropKind maps a Check error to its counter.
func dropKind(err error) Drop {
	switch err {
	case ErrShort:
		return DropShort
	case ErrFlags:
		return DropFlags
	default:
		return DropVNI
	}
}

// WriteBatch implements wire.Endpoint; it may be called from several goroutines. A frame
// to a MAC learned behind a VTEP goes there; any other goes to every flood target.
func (cb *Cable) WriteBatch(frames [][]byte) (int, error) {
	cb.wmu.Lock()
	defer cb.wmu.Unlock()
	now := time.Now()
	sec := now.Unix()
	for _, f := range frames {
		if len(f) < wire.MinFrame {
			continue
		}
		var v *vtep
		if cb.fdb != nil && isUnicast(f[0:6]) {
			v = cb.fdb.lookup(f[0:6], sec)
		}
		if v != nil {
			if err := cb.queue(v, f); err != nil {
				return 0, err
			}
			continue
		}
		for _, v := range cb.flood {
			if err := cb.queue(v, f); err != nil {
				return 0, err
			}
		}
	}
	err := cb.flushLocked()
	cb.wlog.report(now)
	if err != nil {
		return 0, err
	}
	return len(frames), nil
}

func (cb *Cable) queue(v *vtep, f []byte) error {
	if cb.tx.full() {
		if err := cb.flushLocked(); err != nil {
			return err
		}
	}
	cb.tx.add(v, f, nil)
	return nil
}

func (cb *Cable) flushLocked() error {
	sent := cb.tx.cnt
	err := cb.tx.flush(cb.sock.rc, cb.sendFailed)
	cb.stats.Out.Add(uint64(sent))
	return err
}

func (cb *Cable) sendFailed(v *vtep, errno syscall.Errno) {
	cb.stats.Out.Add(^uint64(0)) // not sent after all
	cb.wlog.note(DropSend, v.addr, errno)
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
