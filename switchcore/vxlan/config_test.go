package vxlan

import (
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

func noResolve(host string) ([]netip.Addr, error) {
	if host == "vtep-b.example" {
		return []netip.Addr{netip.MustParseAddr("2001:db8::2"), netip.MustParseAddr("192.0.2.2")}, nil
	}
	return nil, fmt.Errorf("no such host %s", host)
}

func addrs(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, a := range s {
		out = append(out, netip.MustParseAddr(a))
	}
	return out
}

func TestParseConfig(t *testing.T) {
	def := Config{Port: 4789, VNI: 1, TTL: 1, HashSize: 1024, Expire: 128 * time.Second}
	with := func(f func(c *Config)) Config {
		c := def
		f(&c)
		return c
	}
	for _, tc := range []struct {
		arg  string
		want Config
	}{
		{"", with(func(c *Config) { c.Group = DefaultGroup4 })},
		{"/v6", with(func(c *Config) { c.Group = DefaultGroup6; c.V6 = true })},
		{"239.1.2.3/vni=42/port=8472/ttl=4", with(func(c *Config) {
			c.Group = netip.MustParseAddr("239.1.2.3")
			c.VNI, c.Port, c.TTL, c.HasTTL = 42, 8472, 4, true
		})},
		{"239.1.2.3[vni=42/port=8472]", with(func(c *Config) {
			c.Group = netip.MustParseAddr("239.1.2.3")
			c.VNI, c.Port = 42, 8472
		})},
		{"192.0.2.7,198.51.100.9/vni=42", with(func(c *Config) {
			c.Peers, c.VNI = addrs("192.0.2.7", "198.51.100.9"), 42
		})},
		{"192.0.2.7/local=192.0.2.1/learn/hashsize=0/expiretime=30/if=eth0", with(func(c *Config) {
			c.Peers, c.Local, c.Learn = addrs("192.0.2.7"), netip.MustParseAddr("192.0.2.1"), true
			c.HashSize, c.Expire, c.Interface = 0, 30*time.Second, "eth0"
		})},
		{"2001:db8::7,2001:db8::9/vni=0x10", with(func(c *Config) {
			c.Peers, c.VNI = addrs("2001:db8::7", "2001:db8::9"), 16
		})},
		{"vtep-b.example", with(func(c *Config) { c.Peers = addrs("192.0.2.2") })},
		{"vtep-b.example/v6", with(func(c *Config) { c.Peers, c.V6 = addrs("2001:db8::2"), true })},
		{"'239.1.2.3'/v=7/p=99/rcvbuf=2m/expiretime=0", with(func(c *Config) {
			c.Group, c.VNI, c.Port, c.RcvBuf = netip.MustParseAddr("239.1.2.3"), 7, 99, 2<<20
		})},
	} {
		got, err := ParseConfig(tc.arg, noResolve)
		if err != nil {
			t.Errorf("ParseConfig(%q): %v", tc.arg, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseConfig(%q) =\n %+v, want\n %+v", tc.arg, got, tc.want)
		}
	}
	for _, tc := range []struct{ arg, err string }{
		{"/vni=16777216", "vni=16777216: want a number from 0 to 16777215"},
		{"/vni=x", "vni=x: want a number"},
		{"/port=0", "port=0"},
		{"/port=70000", "port=70000"},
		{"/color=blue", `unknown option "color"`},
		{"/v", "option vni needs a value"},
		{"/rcvbuf=3x", "rcvbuf=3x: want a size"},
		{"/learn=1", "option learn takes no value"},
		{"/vni", "option vni needs a value"},
		{"239.1.1.1,239.1.1.2", "multicast group 239.1.1.1 in a list"},
		{"192.0.2.1,2001:db8::1", "IPv4 and IPv6 mixed"},
		{"192.0.2.1/local=2001:db8::1", "local=2001:db8::1: not of the peers' family"},
		{"192.0.2.1,,192.0.2.2", "empty address"},
		{"0.0.0.0", "not a unicast address"},
		{"nohost.invalid", `address "nohost.invalid": not an IP address, and no host`},
		{"/local=me", "local=me: not an IP address"},
	} {
		_, err := ParseConfig(tc.arg, noResolve)
		if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.HasPrefix(err.Error(), "vxlan://"+tc.arg+": ") {
			t.Errorf("ParseConfig(%q) = %v, want an error with %q", tc.arg, err, tc.err)
		}
	}
}

// FuzzParseConfig: any URL gives a config or one line of error that names the URL, and
// a config that makes sense.
func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{"", "/v6", "239.1.2.3/vni=42", "a,b/learn", "[x/y]", "1.2.3.4[port=1]/ttl=3", "'\"%41\\"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, arg string) {
		c, err := ParseConfig(arg, noResolve)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("ParseConfig(%q): error of more than one line: %q", arg, err)
			}
			return
		}
		if c.Group.IsValid() == (len(c.Peers) > 0) {
			t.Fatalf("ParseConfig(%q): group %v and peers %v", arg, c.Group, c.Peers)
		}
		if c.VNI > MaxVNI || c.Port == 0 {
			t.Fatalf("ParseConfig(%q): vni %d port %d", arg, c.VNI, c.Port)
		}
		for _, p := range c.Peers {
			if p.IsMulticast() || p.Is6() != c.Is6() {
				t.Fatalf("ParseConfig(%q): peer %v", arg, p)
			}
		}
	})
}

func TestParseSegmentConfig(t *testing.T) {
	def := SegmentConfig{Group: DefaultGroup4, Port: 14789, VNI: 1, TTL: 1, HashSize: 1024, Expire: 128 * time.Second}
	with := func(f func(c *SegmentConfig)) SegmentConfig {
		c := def
		f(&c)
		return c
	}
	for _, tc := range []struct {
		arg  string
		want SegmentConfig
	}{
		{"", def},
		{"/v6", with(func(c *SegmentConfig) { c.Group, c.V6 = DefaultGroup6, true })},
		{"239.5.5.5/v=7/p=15000/t=3", with(func(c *SegmentConfig) {
			c.Group, c.VNI, c.Port, c.TTL = netip.MustParseAddr("239.5.5.5"), 7, 15000, 3
		})},
		// grp= is the last three bytes of the group, and the VNI unless vni= is given
		// (vdeplug4: grp=66051 joins 239.1.2.3, VNI 01 02 03).
		{"/grp=66051", with(func(c *SegmentConfig) { c.Group, c.VNI = netip.MustParseAddr("239.1.2.3"), 66051 })},
		{"239.5.5.5/grp=66051/vni=7", with(func(c *SegmentConfig) { c.Group, c.VNI = netip.MustParseAddr("239.1.2.3"), 7 })},
		{"/v6/g=66051", with(func(c *SegmentConfig) {
			c.Group, c.VNI, c.V6 = netip.MustParseAddr("ff05:56de::1:203"), 66051, true
		})},
		{"/vni=root", with(func(c *SegmentConfig) { c.VNI = 0 })},
		{"/bind=10.0.0.1/if=eth1", with(func(c *SegmentConfig) { c.Bind, c.Interface = netip.MustParseAddr("10.0.0.1"), "eth1" })},
	} {
		got, err := ParseSegmentConfig(tc.arg, noResolve)
		if err != nil {
			t.Errorf("ParseSegmentConfig(%q): %v", tc.arg, err)
			continue
		}
		got.grp, got.hasVNI, got.grpID = false, false, 0
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseSegmentConfig(%q) =\n %+v, want\n %+v", tc.arg, got, tc.want)
		}
	}
	for _, tc := range []struct{ arg, err string }{
		{"192.0.2.1", "192.0.2.1 is not a multicast group"},
		{"/vni=no-such-group-here", "vni=no-such-group-here: not a number"},
		{"/local=10.0.0.1", `unknown option "local"`},
		{"/bind=2001:db8::1", "not of the group's family"},
	} {
		_, err := ParseSegmentConfig(tc.arg, noResolve)
		if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.HasPrefix(err.Error(), "vxvde://"+tc.arg+": ") {
			t.Errorf("ParseSegmentConfig(%q) = %v, want an error with %q", tc.arg, err, tc.err)
		}
	}
}

func FuzzParseSegmentConfig(f *testing.F) {
	for _, s := range []string{"", "/v6/grp=66051", "239.5.5.5/vni=7", "/vni", "/bind=1.2.3.4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, arg string) {
		c, err := ParseSegmentConfig(arg, noResolve)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("ParseSegmentConfig(%q): error of more than one line: %q", arg, err)
			}
			return
		}
		if !c.Group.IsMulticast() || c.VNI > MaxVNI || c.Port == 0 {
			t.Fatalf("ParseSegmentConfig(%q) = %+v", arg, c)
		}
	})
}
