package vxlan

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/vde-go/vde/switchcore/wire"
)

// Config is a parsed vxlan:// URL: vdeplug4's grammar (libvdeplug_vxlan(1)), with a list
// of unicast peers, local= and learn added.
type Config struct {
	// Group is the multicast group of multicast mode; invalid in unicast mode.
	Group netip.Addr
	// Peers are the unicast VTEPs of unicast mode: every flooded frame goes to each.
	Peers []netip.Addr
	// Local is the address to send from and listen on (local=); invalid: any.
	Local netip.Addr
	// Port is the UDP port VTEPs listen on (port=, 4789).
	Port uint16
	// VNI is the network identifier (vni=, 1).
	VNI uint32
	// TTL is the multicast TTL (ttl=, 1); with HasTTL it is also the unicast one.
	TTL    int
	HasTTL bool
	// HashSize is the size of the MAC-to-VTEP table (hashsize=); 0 keeps none, so every
	// frame is flooded.
	HashSize int
	// Expire is how long a learned MAC stays behind its VTEP (expiretime=, seconds).
	Expire time.Duration
	// Interface is the interface for multicast (if=).
	Interface string
	// Learn accepts datagrams from VTEPs not in Peers, and learns the MACs behind them
	// (learn; the kernel's "learning"). Without it, unicast mode takes only its peers.
	Learn bool
	// V6 asks for IPv6 (v6) where no address says which, e.g. the default group.
	V6 bool
	// RcvBuf is the socket's receive buffer in bytes (rcvbuf=, with k, m, g suffixes); 0
	// leaves ours (4 MiB).
	RcvBuf int

	seg SegmentConfig // what only vxvde:// options set
}

// Defaults of vdeplug4's vxlan module.
const (
	DefaultPort     = 4789
	DefaultVNI      = 1
	DefaultTTL      = 1
	DefaultHashSize = 1024
	DefaultExpire   = 128 * time.Second
)

// Default multicast groups of vdeplug4's vxlan module.
var (
	DefaultGroup4 = netip.MustParseAddr("239.0.0.1")
	DefaultGroup6 = netip.MustParseAddr("ff05:56de::1")
)

// splitURL splits a module argument into its address and its options. vdeplug4 takes
// both "ADDR/opt=v/opt" and "ADDR[opt=v/opt]"; quoting as the vde module's.
func splitURL(arg string) (addr string, opts []string) {
	if open := strings.IndexByte(arg, '['); open >= 0 {
		params := arg[open+1:]
		if end := strings.LastIndexByte(params, ']'); end >= 0 {
			params = params[:end]
		}
		addr, rest, _ := strings.Cut(arg[:open], "/")
		opts = append(strings.Split(rest, "/"), strings.Split(params, "/")...)
		return addr, opts
	}
	parts := strings.Split(arg, "/")
	return parts[0], parts[1:]
}

// option is one key of a URL.
type option struct {
	name     string
	flag     bool // takes no value
	optional bool // may go without a value (set gets "")
	set      func(c *Config, v string) error
}

// matchOption finds key as vdeplug4 does: the first option, in the table's order, whose
// name starts with key ("v" is vni, "p" port).
func matchOption(opts []option, key string) (*option, error) {
	if key != "" {
		for i := range opts {
			if strings.HasPrefix(opts[i].name, key) {
				return &opts[i], nil
			}
		}
	}
	return nil, fmt.Errorf("unknown option %q", key)
}

// parseSize reads a byte count with vdeplug4's suffixes: k, m, g, t (powers of 1024).
func parseSize(v string) (int, error) {
	mult := uint64(1)
	if n := len(v); n > 0 {
		switch v[n-1] {
		case 'k', 'K':
			mult = 1 << 10
		case 'm', 'M':
			mult = 1 << 20
		case 'g', 'G':
			mult = 1 << 30
		case 't', 'T':
			mult = 1 << 40
		}
		if mult > 1 {
			v = v[:n-1]
		}
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n*mult > 1<<31-1 || n*mult/mult != n {
		return 0, fmt.Errorf("rcvbuf=%s: want a size up to 2g-1 (k, m, g suffixes)", v)
	}
	return int(n * mult), nil
}

func parseUint(name, v string, max uint64) (uint64, error) {
	n, err := strconv.ParseUint(v, 0, 64)
	if err != nil || n > max {
		return 0, fmt.Errorf("%s=%s: want a number from 0 to %d", name, v, max)
	}
	return n, nil
}

// vxlanOptions are vdeplug4's, in its order (which decides what a prefix means), then ours.
var vxlanOptions = []option{
	{name: "port", set: func(c *Config, v string) error {
		n, err := parseUint("port", v, 65535)
		if n == 0 && err == nil {
			err = fmt.Errorf("port=0: want a port from 1 to 65535")
		}
		c.Port = uint16(n)
		return err
	}},
	{name: "vni", set: func(c *Config, v string) error {
		n, err := parseUint("vni", v, MaxVNI)
		c.VNI = uint32(n)
		return err
	}},
	{name: "ttl", set: func(c *Config, v string) error {
		n, err := parseUint("ttl", v, 255)
		c.TTL, c.HasTTL = int(n), true
		return err
	}},
	{name: "rcvbuf", set: func(c *Config, v string) error {
		n, err := parseSize(v)
		c.RcvBuf = n
		return err
	}},
	{name: "v4", flag: true, set: func(c *Config, _ string) error { c.V6 = false; return nil }},
	{name: "v6", flag: true, set: func(c *Config, _ string) error { c.V6 = true; return nil }},
	{name: "hashsize", set: func(c *Config, v string) error {
		n, err := parseUint("hashsize", v, 1<<24)
		c.HashSize = int(n)
		return err
	}},
	{name: "expiretime", set: func(c *Config, v string) error {
		n, err := parseUint("expiretime", v, 1<<31)
		if n == 0 {
			n = uint64(DefaultExpire / time.Second) // as vdeplug4: 0 means the default
		}
		c.Expire = time.Duration(n) * time.Second
		return err
	}},
	{name: "if", set: func(c *Config, v string) error { c.Interface = v; return nil }},
	{name: "local", set: func(c *Config, v string) error {
		a, err := netip.ParseAddr(v)
		if err != nil {
			return fmt.Errorf("local=%s: not an IP address", v)
		}
		c.Local = a.Unmap()
		return nil
	}},
	{name: "learn", flag: true, set: func(c *Config, _ string) error { c.Learn = true; return nil }}}

// ParseConfig parses the part of a vxlan:// URL after the scheme. Host names in the
// address list are resolved with resolve (net.DefaultResolver's when nil).
func ParseConfig(arg string, resolve func(host string) ([]netip.Addr, error)) (Config, error) {
	c := Config{Port: DefaultPort, VNI: DefaultVNI, TTL: DefaultTTL, HashSize: DefaultHashSize, Expire: DefaultExpire}
	addrs, opts := splitURL(arg)
	if err := applyOptions(&c, vxlanOptions, opts); err != nil {
		return c, urlError("vxlan", arg, err)
	}
	if err := c.setAddrs(wire.Unquote(addrs), resolve); err != nil {
		return c, urlError("vxlan", arg, err)
	}
	return c, nil
}

// urlError is err about scheme://arg on one line: control characters in the URL or in
// what the resolver said of it are escaped.
func urlError(scheme, arg string, err error) error {
	msg := scheme + "://" + arg + ": " + err.Error()
	if strings.IndexFunc(msg, unicode.IsControl) < 0 {
		return fmt.Errorf("%s://%s: %w", scheme, arg, err)
	}
	q := strconv.Quote(msg)
	return errors.New(q[1 : len(q)-1])
}

func applyOptions(c *Config, known []option, opts []string) error {
	for _, o := range opts {
		o = wire.Unquote(o)
		if o == "" {
			continue
		}
		key, val, hasVal := strings.Cut(o, "=")
		opt, err := matchOption(known, key)
		if err != nil {
			return err
		}
		if opt.flag && hasVal {
			return fmt.Errorf("option %s takes no value", opt.name)
		}
		if !opt.flag && !opt.optional && !hasVal {
			return fmt.Errorf("option %s needs a value (%s=...)", opt.name, opt.name)
		}
		if err := opt.set(c, val); err != nil {
			return err
		}
	}
	return nil
}

// setAddrs takes the address part: empty (the default group), one multicast group, or
// unicast VTEPs separated by commas.
func (c *Config) setAddrs(list string, resolve func(string) ([]netip.Addr, error)) error {
	if resolve == nil {
		resolve = func(host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(context.Background(), "ip", host)
		}
	}
	if list == "" {
		c.Group = DefaultGroup4
		if c.V6 {
			c.Group = DefaultGroup6
		}
		return c.check()
	}
	var all []netip.Addr
	for _, name := range strings.Split(list, ",") {
		if name == "" {
			return fmt.Errorf("empty address in %q", list)
		}
		a, err := netip.ParseAddr(name)
		if err != nil {
			found, rerr := resolve(name)
			if rerr != nil || len(found) == 0 {
				return fmt.Errorf("address %q: not an IP address, and no host of that name (%v)", name, rerr)
			}
			a = pickFamily(found, c.V6)
		}
		all = append(all, a.Unmap())
	}
	for _, a := range all {
		if a.IsMulticast() {
			if len(all) > 1 {
				return fmt.Errorf("multicast group %s in a list: give one group, or unicast peers", a)
			}
			c.Group = a
			return c.check()
		}
		if a.IsUnspecified() {
			return fmt.Errorf("peer %s: not a unicast address", a)
		}
	}
	c.Peers = all
	return c.check()
}

// pickFamily prefers the family v6 asks for, then whatever comes first.
func pickFamily(addrs []netip.Addr, v6 bool) netip.Addr {
	for _, a := range addrs {
		if a.Unmap().Is6() == v6 {
			return a.Unmap()
		}
	}
	return addrs[0].Unmap()
}

func (c *Config) check() error {
	is6 := c.Is6()
	for _, a := range c.Peers {
		if a.Is6() != is6 {
			return fmt.Errorf("peers %s and %s: IPv4 and IPv6 mixed", c.Peers[0], a)
		}
	}
	if c.Local.IsValid() && c.Local.Is6() != is6 {
		return fmt.Errorf("local=%s: not of the peers' family", c.Local)
	}
	return nil
}

// Is6 tells whether the cable runs over IPv6.
func (c *Config) Is6() bool {
	if c.Group.IsValid() {
		return c.Group.Is6()
	}
	return len(c.Peers) > 0 && c.Peers[0].Is6()
}
