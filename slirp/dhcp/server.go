package dhcp

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Server answers DHCP requests from a fixed pool. It is safe for concurrent use.
type Server struct {
	serverID [4]byte
	file     [fileLen]byte // BootFile, NUL-padded
	extra    []Option      // what follows option 53 in OFFER and ACK

	mu   sync.Mutex
	pool pool
	now  func() time.Time // time.Now; tests move the clock
}

// Lease is a pool address and the MAC that holds it.
type Lease struct {
	// Addr is the leased address.
	Addr netip.Addr
	// MAC is the client hardware address it was given to.
	MAC net.HardwareAddr
}

// New checks c and returns a Server with an empty pool.
func New(c Config) (*Server, error) {
	extra, err := c.check()
	if err != nil {
		return nil, err
	}
	s := &Server{
		serverID: c.ServerIP.Unmap().As4(),
		extra:    extra,
		pool: pool{
			start: binary.BigEndian.Uint32(c.PoolStart.Unmap().AsSlice()),
			slots: make([]slot, c.PoolSize),
			lease: c.LeaseTime,
		},
		now: time.Now,
	}
	copy(s.file[:], c.BootFile)
	return s, nil
}

// Handle answers one request, the payload of a UDP datagram to port 67. The reply is a
// 548-byte BOOTP payload for the client MAC; yiaddr is the address given, invalid for a NAK.
// ok is false when nothing is to be sent: req is malformed, is not an Ethernet BOOTREQUEST,
// is a DHCP message other than DISCOVER and REQUEST, or the pool is exhausted.
func (s *Server) Handle(req []byte) (reply []byte, clientMAC net.HardwareAddr, yiaddr netip.Addr, ok bool) {
	m, err := Parse(req)
	if err != nil {
		return nil, nil, netip.Addr{}, false
	}
	r, err := decodeRequest(m)
	if err != nil {
		return nil, nil, netip.Addr{}, false
	}
	answer, slotIdx, ok := s.choose(r)
	if !ok {
		return nil, nil, netip.Addr{}, false
	}
	if answer != typeNak {
		yiaddr = netip.AddrFrom4(be4(s.pool.addr(slotIdx)))
	}
	return s.reply(m, answer, yiaddr), net.HardwareAddr(r.mac[:]), yiaddr, true
}

// choose picks the answer to r and the pool slot it gives, following slirp's bootp_reply:
// a DISCOVER offers a slot, a REQUEST binds one. A full pool reclaims the oldest
// unconfirmed offer, or a lease expired unrenewed (pool.reclaim).
func (s *Server) choose(r request) (answer uint8, slotIdx int, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if r.msgType == typeDiscover {
		// A requested address that cannot be given is no error in a DISCOVER: offer another.
		if r.requested != 0 {
			if i, ok := s.pool.request(r.requested, r.mac, false, now); ok {
				return typeOffer, i, true
			}
		}
		i, ok := s.pool.assign(r.mac, false, now)
		return typeOffer, i, ok
	}
	if r.requested != 0 {
		if i, ok := s.pool.request(r.requested, r.mac, true, now); ok {
			return typeAck, i, true
		}
		return typeNak, 0, true
	}
	if i, ok := s.pool.find(r.mac); ok {
		s.pool.take(i, r.mac, true, now)
		return typeAck, i, true
	}
	// A client that remembers an address from before a restart asks without naming it
	// (slirp's "windows fix"): answer as if it had been assigned.
	i, ok := s.pool.assign(r.mac, true, now)
	return typeAck, i, ok
}

// Reclaimed returns how many pool addresses were taken back from a MAC that held them
// (an offer never confirmed, or a lease expired) to give to another.
func (s *Server) Reclaimed() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pool.reclaimed
}

// Leases returns the allocated pool addresses in address order.
func (s *Server) Leases() []Lease {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ls []Lease
	for i, sl := range s.pool.slots {
		if sl.state != slotFree {
			mac := sl.mac
			ls = append(ls, Lease{Addr: netip.AddrFrom4(be4(s.pool.addr(i))), MAC: net.HardwareAddr(mac[:])})
		}
	}
	return ls
}

// String formats the lease as "ADDR MAC", for the console.
func (l Lease) String() string { return fmt.Sprintf("%v %v", l.Addr, l.MAC) }

// be4 returns v in network byte order.
func be4(v uint32) [4]byte {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return b
}
