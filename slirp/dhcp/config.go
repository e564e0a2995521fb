package dhcp

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"net/netip"
	"time"
)

// Defaults taken from slirp (NB_BOOTP_CLIENTS and LEASE_TIME in bootp.c).
const (
	DefaultPoolSize  = 16
	DefaultLeaseTime = 24 * time.Hour
	// MaxPoolSize bounds the pool, whose slots are kept in memory for ever.
	MaxPoolSize = 1 << 16
)

// replyLen is the size of every reply: slirp always sends its whole struct bootp_t, a
// 236-byte header and a 312-byte options area (the minimum RFC 2131 clients must accept).
const (
	replyLen       = 548
	replyOptionLen = replyLen - headerLen
)

// Config configures a Server. The addresses are IPv4; slirpvde derives them as in spec §1.1.
type Config struct {
	// ServerIP is the router address: server identifier (54), router (3) and siaddr.
	ServerIP netip.Addr
	// Netmask is the subnet mask sent as option 1; it must be a contiguous IPv4 mask.
	Netmask netip.Addr
	// DNS lists the name servers sent as option 6, which is left out when DNS is empty.
	DNS []netip.Addr
	// PoolStart is the first address handed out; the pool is PoolSize consecutive addresses.
	PoolStart netip.Addr
	// PoolSize is the number of leases, DefaultPoolSize when 0 and at most MaxPoolSize.
	PoolSize int
	// LeaseTime is the lease sent as option 51 in whole seconds, DefaultLeaseTime when 0.
	LeaseTime time.Duration
	// BootFile, if not empty, is put in the file field and option 67 of OFFER and ACK.
	BootFile string
	// TFTPServerName, if not empty, is sent as option 66.
	TFTPServerName string
	// DomainSearch, if not empty, is sent as option 119 (RFC 3397).
	DomainSearch []string
}

// check validates c, fills in the defaults and returns the options that follow option 53
// in every OFFER and ACK, in slirp's order.
func (c *Config) check() ([]Option, error) {
	if c.PoolSize == 0 {
		c.PoolSize = DefaultPoolSize
	}
	if c.LeaseTime == 0 {
		c.LeaseTime = DefaultLeaseTime
	}
	server, err := ipv4("server address", c.ServerIP)
	if err != nil {
		return nil, err
	}
	mask, err := ipv4("netmask", c.Netmask)
	if err != nil {
		return nil, err
	}
	if m := binary.BigEndian.Uint32(mask); bits.LeadingZeros32(^m)+bits.TrailingZeros32(m) != 32 {
		return nil, fmt.Errorf("dhcp: netmask %v is not contiguous", c.Netmask)
	}
	start, err := ipv4("pool start", c.PoolStart)
	if err != nil {
		return nil, err
	}
	if c.PoolSize < 1 || c.PoolSize > MaxPoolSize {
		return nil, fmt.Errorf("dhcp: pool size %d, want 1 to %d", c.PoolSize, MaxPoolSize)
	}
	if last := uint64(binary.BigEndian.Uint32(start)) + uint64(c.PoolSize) - 1; last > math.MaxUint32 {
		return nil, fmt.Errorf("dhcp: pool of %d from %v runs past 255.255.255.255", c.PoolSize, c.PoolStart)
	}
	secs := c.LeaseTime / time.Second
	if secs < 1 || secs > math.MaxUint32 {
		return nil, fmt.Errorf("dhcp: lease time %v, want 1s to %ds", c.LeaseTime, uint32(math.MaxUint32))
	}
	if len(c.BootFile) >= fileLen {
		return nil, fmt.Errorf("dhcp: boot file %q: %d bytes, want at most %d", c.BootFile, len(c.BootFile), fileLen-1)
	}

	opts := []Option{
		{Code: optServerID, Data: server},
		{Code: optSubnetMask, Data: mask},
		{Code: optRouter, Data: server},
	}
	if len(c.DNS) > 0 {
		var dns []byte
		for _, a := range c.DNS {
			b, err := ipv4("DNS server", a)
			if err != nil {
				return nil, err
			}
			dns = append(dns, b...)
		}
		opts = append(opts, splitOption(optDNS, dns)...)
	}
	opts = append(opts, Option{Code: optLeaseTime, Data: binary.BigEndian.AppendUint32(nil, uint32(secs))})
	if c.TFTPServerName != "" {
		opts = append(opts, splitOption(optTFTPServer, []byte(c.TFTPServerName))...)
	}
	if c.BootFile != "" {
		opts = append(opts, Option{Code: optBootFile, Data: []byte(c.BootFile)})
	}
	if len(c.DomainSearch) > 0 {
		list, err := encodeSearchList(c.DomainSearch)
		if err != nil {
			return nil, err
		}
		opts = append(opts, splitOption(optDomainSearch, list)...)
	}

	// Cookie, option 53, these options and end must fit the fixed-size reply.
	n := cookieLen + 3 + 1
	for _, o := range opts {
		n += 2 + len(o.Data)
	}
	if n > replyOptionLen {
		return nil, fmt.Errorf("dhcp: options take %d bytes, the reply has room for %d", n, replyOptionLen)
	}
	return opts, nil
}

// ipv4 returns the 4 bytes of a, which must be an IPv4 address.
func ipv4(what string, a netip.Addr) ([]byte, error) {
	a = a.Unmap()
	if !a.Is4() {
		return nil, fmt.Errorf("dhcp: %s %v: not an IPv4 address", what, a)
	}
	b := a.As4()
	return b[:], nil
}
