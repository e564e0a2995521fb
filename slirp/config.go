// Package slirp is a user-mode router for a VDE LAN: one switch port that acts as the
// gateway, DHCP server, DNS forwarder and TFTP server of a private subnet, and re-creates
// every guest TCP, UDP and ICMP echo flow as an ordinary socket of the host process (no
// root, no kernel forwarding). TCP and UDP run on gVisor's netstack; ARP, neighbour
// discovery, DHCP and ping are answered by the router's own link layer (link.go).
package slirp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Config is what a router serves. Start from DefaultConfig: the zero value has no
// addresses.
type Config struct {
	// Host is the router's IPv4 address with the subnet's prefix length (10.0.2.2/24).
	Host netip.Prefix
	// DNS is the address DHCP advertises; inside the subnet it is the DNS proxy (10.0.2.3).
	DNS netip.Addr
	// DHCP enables the DHCP server; DHCPStart is the first address it hands out.
	DHCP      bool
	DHCPStart netip.Addr
	// IPv6 enables router advertisements, neighbour discovery and NAT66 on Host6's prefix.
	IPv6 bool
	// Host6 is the router's IPv6 address with its /64 prefix (fd00::2/64); DNS6 the DNS
	// proxy address in that prefix (fd00::3).
	Host6 netip.Prefix
	DNS6  netip.Addr
	// NoIPv4 turns IPv4 off (slirp:// v6 alone): no ARP, DHCP or IPv4 NAT.
	NoIPv4 bool
	// NoHostLoopback stops guests from reaching the host's loopback at the router address.
	NoHostLoopback bool
	// Restricted isolates the guests from the outside: only the router's own services
	// (host loopback, DNS, TFTP, forwards) answer.
	Restricted bool
	// Forwards are host ports forwarded into the guests (-L, -U).
	Forwards []Forward
	// UnixForwards connect guest TCP to a router port with a host unix socket (-x).
	UnixForwards []UnixForward
	// TFTPDir, when not empty, is served read-only by TFTP at the router address.
	TFTPDir string
	// BootFile is the file DHCP names for network boots (with TFTPDir).
	BootFile string
	// DNSSearch is the domain search list DHCP gives (option 119).
	DNSSearch []string
	// MTU of the virtual link; 0 means 1500.
	MTU int
	// ResolvConf is the file naming the host's nameservers; empty means /etc/resolv.conf.
	ResolvConf string
	// Logf reports what goes wrong with one flow or one forward; nil discards.
	Logf func(format string, args ...any)
}

// DefaultConfig is slirpvde's network: router 10.0.2.2/24, DNS 10.0.2.3, DHCP from
// 10.0.2.15 (off until asked for), IPv6 prefix fd00::/64 (off until asked for).
func DefaultConfig() Config {
	return Config{
		Host:      netip.MustParsePrefix("10.0.2.2/24"),
		DNS:       netip.MustParseAddr("10.0.2.3"),
		DHCPStart: netip.MustParseAddr("10.0.2.15"),
		Host6:     netip.MustParsePrefix("fd00::2/64"),
		DNS6:      netip.MustParseAddr("fd00::3"),
	}
}

// SetHost sets the router address as slirpvde's -H does (shared/spec/slirpvde.md §1.1):
// ADDR[/LEN], LEN 24 when missing; when the host part of ADDR is zero (a network
// address such as 10.1.0.0/16), the router is the network's address + 2. The DNS
// address and the DHCP start are re-derived (network + 3, network + 15) unless keepDNS
// or keepDHCP say they were given explicitly.
func (c *Config) SetHost(s string, keepDNS, keepDHCP bool) error {
	addr, bits, err := parseAddrLen(s, 24, 32)
	if err != nil {
		return err
	}
	if !addr.Is4() {
		return fmt.Errorf("%s: not an IPv4 address", s)
	}
	network := netip.PrefixFrom(addr, bits).Masked().Addr()
	if addr == network {
		addr = offset(network, 2)
	}
	c.Host = netip.PrefixFrom(addr, bits)
	if !keepDNS {
		c.DNS = offset(network, 3)
	}
	if !keepDHCP {
		c.DHCPStart = offset(network, 15)
	}
	return nil
}

// SetHost6 sets the IPv6 prefix as --ipv6=PREFIX/64 does: a prefix (fd00:1::/64) puts
// the router at ::2 and the DNS proxy at ::3 of it; an address with a non-zero host
// part is the router itself.
func (c *Config) SetHost6(s string) error {
	addr, bits, err := parseAddrLen(s, 64, 128)
	if err != nil {
		return err
	}
	if !addr.Is6() || addr.Is4In6() {
		return fmt.Errorf("%s: not an IPv6 address", s)
	}
	if bits != 64 {
		return fmt.Errorf("%s: the prefix must be a /64 (SLAAC needs it)", s)
	}
	network := netip.PrefixFrom(addr, bits).Masked().Addr()
	if addr == network {
		addr = offset(network, 2)
	}
	c.Host6 = netip.PrefixFrom(addr, bits)
	c.DNS6 = offset(network, 3)
	return nil
}

// parseAddrLen parses ADDR[/LEN] with the default length def and the maximum max.
func parseAddrLen(s string, def, max int) (netip.Addr, int, error) {
	a, l, hasLen := strings.Cut(s, "/")
	addr, err := ParseAddr(a)
	if err != nil {
		return netip.Addr{}, 0, err
	}
	bits := def
	if hasLen {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > max {
			return netip.Addr{}, 0, fmt.Errorf("%s: bad prefix length %q", s, l)
		}
		bits = n
	}
	return addr, bits, nil
}

// ParseAddr parses an IPv4 address as inet_aton does for the dotted forms people write
// (a.b.c.d), or an IPv6 address.
func ParseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%q: not an IP address", s)
	}
	return a.Unmap(), nil
}

// offset returns network + n (n small, within the last byte's carry).
func offset(network netip.Addr, n int) netip.Addr {
	b := network.AsSlice()
	carry := n
	for i := len(b) - 1; i >= 0 && carry > 0; i-- {
		sum := int(b[i]) + carry
		b[i] = byte(sum)
		carry = sum >> 8
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// Network is the subnet of the router address.
func (c *Config) Network() netip.Prefix { return c.Host.Masked() }

// Router is the router's IPv4 address.
func (c *Config) Router() netip.Addr { return c.Host.Addr() }

// MACFor is the MAC the C slirp gives an emulated host: 52:55 and the IPv4 address.
func MACFor(ip netip.Addr) net.HardwareAddr {
	b := ip.As4()
	return net.HardwareAddr{0x52, 0x55, b[0], b[1], b[2], b[3]}
}

// Forward is one host port forwarded to a guest (-L for TCP, -U for UDP).
type Forward struct {
	// UDP is true for -U, false for -L (TCP).
	UDP bool
	// Bind is the host address to listen on; the zero Addr means every address (0.0.0.0).
	Bind netip.Addr
	// HostPort is the host port listened on.
	HostPort uint16
	// Guest and GuestPort are where connections go inside the virtual LAN.
	Guest     netip.Addr
	GuestPort uint16
}

func (f Forward) String() string {
	s := fmt.Sprintf("%d:%s:%d", f.HostPort, f.Guest, f.GuestPort)
	if f.Bind.IsValid() {
		s = f.Bind.String() + ":" + s
	}
	return s
}

// ErrForwardSyntax is a forward spec that does not parse.
var ErrForwardSyntax = errors.New("syntax error")

// ParseForward parses [BINDADDR:]HPORT:GUESTIP:GPORT. An IPv6 bind address is written
// in brackets ([::1]:8080:10.0.2.15:80).
func ParseForward(s string, udp bool) (Forward, error) {
	f := Forward{UDP: udp}
	rest := s
	if strings.HasPrefix(rest, "[") {
		end := strings.Index(rest, "]:")
		if end < 0 {
			return f, fmt.Errorf("%w: %q: unterminated [address]", ErrForwardSyntax, s)
		}
		bind, err := netip.ParseAddr(rest[1:end])
		if err != nil {
			return f, fmt.Errorf("%w: %q: bind address %q", ErrForwardSyntax, s, rest[1:end])
		}
		f.Bind, rest = bind, rest[end+2:]
	}
	parts := strings.Split(rest, ":")
	if len(parts) == 4 && !f.Bind.IsValid() {
		bind, err := ParseAddr(parts[0])
		if err != nil {
			return f, fmt.Errorf("%w: %q: bind address %q", ErrForwardSyntax, s, parts[0])
		}
		f.Bind, parts = bind, parts[1:]
	}
	if len(parts) != 3 {
		return f, fmt.Errorf("%w: %q: want [bindaddr:]host_port:guest_addr:guest_port", ErrForwardSyntax, s)
	}
	hp, err := parsePort(parts[0])
	if err != nil {
		return f, fmt.Errorf("%w: %q: host port: %v", ErrForwardSyntax, s, err)
	}
	if parts[1] == "" {
		return f, fmt.Errorf("%w: %q: an IP address must be specified", ErrForwardSyntax, s)
	}
	guest, err := ParseAddr(parts[1])
	if err != nil || !guest.Is4() {
		return f, fmt.Errorf("%w: %q: guest address %q", ErrForwardSyntax, s, parts[1])
	}
	gp, err := parsePort(parts[2])
	if err != nil {
		return f, fmt.Errorf("%w: %q: guest port: %v", ErrForwardSyntax, s, err)
	}
	f.HostPort, f.Guest, f.GuestPort = hp, guest, gp
	return f, nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%q is not a port (1-65535)", s)
	}
	return uint16(n), nil
}

// UnixForward connects guest TCP connections to Addr:Port (the router address when Addr
// is the zero Addr) with the host unix stream socket Path (-x PORT:PATH).
type UnixForward struct {
	// Addr is the virtual address connected to; zero means the router.
	Addr netip.Addr
	// Port is the virtual TCP port.
	Port uint16
	// Path is the host unix stream socket.
	Path string
}

// ParseUnixForward parses [ADDR:]PORT:PATH.
func ParseUnixForward(s string) (UnixForward, error) {
	var u UnixForward
	first, rest, ok := strings.Cut(s, ":")
	if !ok {
		return u, fmt.Errorf("%w: %q: want port:unix_socket_path", ErrForwardSyntax, s)
	}
	if a, err := netip.ParseAddr(first); err == nil && a.Is4() {
		u.Addr = a
		first, rest, ok = strings.Cut(rest, ":")
		if !ok {
			return u, fmt.Errorf("%w: %q: want [addr:]port:unix_socket_path", ErrForwardSyntax, s)
		}
	}
	p, err := parsePort(first)
	if err != nil {
		return u, fmt.Errorf("%w: %q: %v", ErrForwardSyntax, s, err)
	}
	if rest == "" {
		return u, fmt.Errorf("%w: %q: empty socket path", ErrForwardSyntax, s)
	}
	u.Port, u.Path = p, rest
	return u, nil
}

// ParseX11 parses -X GUESTIP[:DISPLAY[.SCREEN]] and returns the guest and its display.
func ParseX11(s string) (guest netip.Addr, display, screen int, err error) {
	a, d, hasD := strings.Cut(s, ":")
	guest, err = ParseAddr(a)
	if err != nil || !guest.Is4() {
		return guest, 0, 0, fmt.Errorf("%w: %q: guest address", ErrForwardSyntax, s)
	}
	if !hasD {
		return guest, 0, 0, nil
	}
	ds, ss, hasS := strings.Cut(d, ".")
	if display, err = strconv.Atoi(ds); err != nil || display < 0 || display > 99 {
		return guest, 0, 0, fmt.Errorf("%w: %q: display %q", ErrForwardSyntax, s, ds)
	}
	if hasS {
		if screen, err = strconv.Atoi(ss); err != nil || screen < 0 {
			return guest, 0, 0, fmt.Errorf("%w: %q: screen %q", ErrForwardSyntax, s, ss)
		}
	}
	return guest, display, screen, nil
}

// validate checks the addresses a router needs.
func (c *Config) validate() error {
	if !c.Host.IsValid() || !c.Host.Addr().Is4() {
		return errors.New("slirp: no IPv4 router address")
	}
	if !c.DNS.IsValid() {
		return errors.New("slirp: no DNS address")
	}
	if c.DHCP && !c.DHCPStart.Is4() {
		return errors.New("slirp: no DHCP start address")
	}
	if c.IPv6 && (!c.Host6.IsValid() || !c.DNS6.IsValid()) {
		return errors.New("slirp: IPv6 on but no IPv6 prefix")
	}
	if c.MTU == 0 {
		c.MTU = 1500
	}
	if c.MTU < 576 || c.MTU > 9000 {
		return fmt.Errorf("slirp: mtu %d out of range 576-9000", c.MTU)
	}
	if c.ResolvConf == "" {
		c.ResolvConf = "/etc/resolv.conf"
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
	return nil
}
