package switchcore

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// ipRange is one address range iplog watches: an IPv4 (n 4) or IPv6 (n 16) prefix.
type ipRange struct {
	n    int
	addr [16]byte // the network, already masked
	mask [16]byte
}

func (r ipRange) contains(ip []byte) bool {
	for i := 0; i < r.n; i++ {
		if ip[i]&r.mask[i] != r.addr[i] {
			return false
		}
	}
	return true
}

// bits is the prefix length: the leading one bits of the mask.
func (r ipRange) bits() int {
	n := 0
	for i := 0; i < r.n; i++ {
		for m := byte(0x80); m != 0; m >>= 1 {
			if r.mask[i]&m == 0 {
				return n
			}
			n++
		}
	}
	return n
}

func (r ipRange) String() string {
	return ipString(r.addr[:r.n]) + "/" + strconv.Itoa(r.bits())
}

var errBadAddress = errors.New("iplog: not an address")

// resolver turns a host name into an address, as getaddrinfo does for iplog in C; tests
// (and fuzzing) pass one that never touches the network.
type resolver func(host string) (netip.Addr, error)

// lookupHost resolves a name with the system's resolver, first answer first.
func lookupHost(host string) (netip.Addr, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(ips) == 0 {
		return netip.Addr{}, errBadAddress
	}
	return ips[0], nil
}

// parseIPRange reads iplog's "ipaddr/mask" as the C plugin does: the text after the last
// '/' is the prefix length (atoi: garbage is 0, more than the address has is all of it,
// none is a host); the address is what getaddrinfo takes, IPv4 in inet_aton's forms
// ("10.1" is 10.0.0.1, "0x0a.010.0.1" hex and octal), IPv6, or a host name.
func parseIPRange(arg string, resolve resolver) (ipRange, error) {
	var r ipRange
	host, bits, hasMask := arg, 0, false
	if i := strings.LastIndexByte(arg, '/'); i >= 0 {
		host, bits, hasMask = arg[:i], atoi(arg[i+1:]), true
	}
	ip, err := parseHost(host, resolve)
	if err != nil {
		return r, err
	}
	if ip.Is4() {
		r.n = 4
	} else {
		r.n = 16
	}
	if !hasMask {
		bits = 8 * r.n
	}
	a := ip.As16()
	src := a[16-r.n:]
	if r.n == 16 {
		src = a[:]
	}
	for i := 0; i < r.n; i, bits = i+1, bits-8 {
		switch {
		case bits >= 8:
			r.mask[i] = 0xff
		case bits > 0:
			r.mask[i] = ^byte(1<<(8-bits) - 1)
		}
		r.addr[i] = src[i] & r.mask[i]
	}
	return r, nil
}

// parseHost is getaddrinfo without hints: a numeric IPv4 (inet_aton), a numeric IPv6, or a name.
func parseHost(host string, resolve resolver) (netip.Addr, error) {
	if host == "" {
		return netip.Addr{}, errBadAddress
	}
	if v, ok := inetAton(host); ok {
		return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), nil
	}
	if strings.Contains(host, ":") {
		if a, err := netip.ParseAddr(host); err == nil {
			return a.WithZone(""), nil // IPv4-mapped stays IPv6, as getaddrinfo gives it
		}
		return netip.Addr{}, errBadAddress
	}
	if resolve == nil {
		return netip.Addr{}, errBadAddress
	}
	a, err := resolve(host)
	if err != nil {
		return netip.Addr{}, errBadAddress
	}
	if a.Is4In6() {
		a = a.Unmap()
	}
	return a.WithZone(""), nil
}

// inetAton parses the whole of s as glibc's inet_aton: one to four parts, each decimal,
// octal (leading 0) or hex (0x); the last part fills the bytes left.
func inetAton(s string) (uint32, bool) {
	var parts [4]uint64
	n := 0
	for {
		if n == 4 || s == "" || s[0] < '0' || s[0] > '9' {
			return 0, false
		}
		v, rest, ok := parseCNumber(s)
		if !ok {
			return 0, false
		}
		parts[n] = v
		n++
		s = rest
		if s == "" {
			break
		}
		if s[0] != '.' {
			return 0, false
		}
		s = s[1:]
	}
	max := [4]uint64{0xffffffff, 0xffffff, 0xffff, 0xff}[n-1]
	var v uint64
	for i := 0; i < n-1; i++ {
		if parts[i] > 0xff {
			return 0, false
		}
		v |= parts[i] << (24 - 8*i)
	}
	if parts[n-1] > max {
		return 0, false
	}
	return uint32(v | parts[n-1]), true
}

// parseCNumber reads an unsigned number as strtoul base 0, stopping at the first non-digit.
func parseCNumber(s string) (v uint64, rest string, ok bool) {
	base := uint64(10)
	i := 0
	if len(s) > 1 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		base, i = 16, 2
	} else if s[0] == '0' {
		base = 8
	}
	start := i
	for ; i < len(s); i++ {
		var d uint64
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			d = uint64(c - '0')
		case base == 16 && c >= 'a' && c <= 'f':
			d = uint64(c-'a') + 10
		case base == 16 && c >= 'A' && c <= 'F':
			d = uint64(c-'A') + 10
		default:
			goto done
		}
		if d >= base {
			return 0, "", false
		}
		v = v*base + d
		if v > 0xffffffff {
			return 0, "", false
		}
	}
done:
	if i == start && base == 16 {
		return 0, "", false
	}
	return v, s[i:], true
}

// ipString prints an address as getnameinfo(NI_NUMERICHOST) does.
func ipString(b []byte) string {
	if len(b) == 4 {
		return netip.AddrFrom4([4]byte(b)).String()
	}
	return netip.AddrFrom16([16]byte(b)).String() // ::ffff:a.b.c.d as glibc prints it
}
