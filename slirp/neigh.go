package slirp

import (
	"net/netip"
	"sync"
	"time"
)

// neighbors maps guest IP addresses (IPv4 and IPv6) to their MACs, learned from ARP,
// neighbour discovery, DHCP and the source of every frame, so that each guest gets its
// own replies (the C slirp keeps one MAC for everybody, spec §3.2). Packets for an
// address not known yet wait in a short queue while the router asks for it.
type neighbors struct {
	mu      sync.RWMutex
	macs    map[netip.Addr][6]byte
	pending map[netip.Addr]*pendingFrames
}

// pendingFrames are frames (Ethernet header still blank) for one unresolved address.
type pendingFrames struct {
	frames [][]byte
	asked  time.Time
}

const (
	// maxNeighbors bounds the table against a guest that sends from random addresses;
	// an arbitrary entry makes room, and it is re-learned from its next frame.
	maxNeighbors = 4096
	// maxPending frames wait per unresolved address, and maxPendingAddrs addresses.
	maxPending      = 16
	maxPendingAddrs = 256
	// resolveInterval is how often one address is asked for while frames wait.
	resolveInterval = time.Second
)

func newNeighbors() *neighbors {
	return &neighbors{macs: map[netip.Addr][6]byte{}, pending: map[netip.Addr]*pendingFrames{}}
}

// lookup returns the MAC of ip.
func (n *neighbors) lookup(ip netip.Addr) ([6]byte, bool) {
	n.mu.RLock()
	mac, ok := n.macs[ip]
	n.mu.RUnlock()
	return mac, ok
}

// learn records ip at mac and returns the frames that were waiting for it.
func (n *neighbors) learn(ip netip.Addr, mac [6]byte) [][]byte {
	n.mu.RLock()
	old, ok := n.macs[ip]
	_, waiting := n.pending[ip]
	n.mu.RUnlock()
	if ok && old == mac && !waiting {
		return nil // the common case: one read lock per frame
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.macs[ip]; !ok && len(n.macs) >= maxNeighbors {
		for k := range n.macs {
			delete(n.macs, k)
			break
		}
	}
	n.macs[ip] = mac
	p := n.pending[ip]
	if p == nil {
		return nil
	}
	delete(n.pending, ip)
	return p.frames
}

// hold queues frame for ip and reports whether the router should ask for ip now.
func (n *neighbors) hold(ip netip.Addr, frame []byte, now time.Time) (ask bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	p := n.pending[ip]
	if p == nil {
		if len(n.pending) >= maxPendingAddrs {
			return false
		}
		p = &pendingFrames{}
		n.pending[ip] = p
	}
	if len(p.frames) < maxPending {
		p.frames = append(p.frames, append([]byte(nil), frame...))
	}
	if now.Sub(p.asked) < resolveInterval {
		return false
	}
	p.asked = now
	return true
}

// expire drops the frames of addresses that never answered.
func (n *neighbors) expire(now time.Time) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for ip, p := range n.pending {
		if now.Sub(p.asked) > 3*resolveInterval {
			delete(n.pending, ip)
		}
	}
}
