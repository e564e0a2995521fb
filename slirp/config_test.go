package slirp

import (
	"errors"
	"io"
	"net/netip"
	"os"
	"strings"
	"testing"
)

// The spec's three worked examples of address derivation (shared/spec/slirpvde.md §1.1).
func TestAddressDerivation(t *testing.T) {
	for _, tc := range []struct {
		desc              string
		host, dns, dhcp   string
		wantHost          string
		wantDNS, wantDHCP string
	}{
		{desc: "default", wantHost: "10.0.2.2/24", wantDNS: "10.0.2.3", wantDHCP: "10.0.2.15"},
		{desc: "-H 192.168.55.1/16 -N 8.8.8.8 -D", host: "192.168.55.1/16", dns: "8.8.8.8",
			wantHost: "192.168.55.1/16", wantDNS: "8.8.8.8", wantDHCP: "192.168.0.15"},
		{desc: "--dhcp=10.0.2.50 -H 10.1.0.0/16", host: "10.1.0.0/16", dhcp: "10.0.2.50",
			wantHost: "10.1.0.2/16", wantDNS: "10.1.0.3", wantDHCP: "10.0.2.50"},
		{desc: "-netaddr 10.1.0.0 (prefix 24)", host: "10.1.0.0",
			wantHost: "10.1.0.2/24", wantDNS: "10.1.0.3", wantDHCP: "10.1.0.15"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			c := DefaultConfig()
			if tc.host != "" {
				if err := c.SetHost(tc.host, tc.dns != "", tc.dhcp != ""); err != nil {
					t.Fatal(err)
				}
			}
			if tc.dns != "" {
				c.DNS = netip.MustParseAddr(tc.dns)
			}
			if tc.dhcp != "" {
				c.DHCPStart = netip.MustParseAddr(tc.dhcp)
			}
			if got := c.Host.String(); got != tc.wantHost {
				t.Errorf("host = %s, want %s", got, tc.wantHost)
			}
			if got := c.DNS.String(); got != tc.wantDNS {
				t.Errorf("dns = %s, want %s", got, tc.wantDNS)
			}
			if got := c.DHCPStart.String(); got != tc.wantDHCP {
				t.Errorf("dhcp start = %s, want %s", got, tc.wantDHCP)
			}
		})
	}
}

func TestSetHostRefuses(t *testing.T) {
	for _, s := range []string{"", "etaddr", "10.0.2.2/33", "10.0.2.2/x", "fd00::2"} {
		c := DefaultConfig()
		if err := c.SetHost(s, false, false); err == nil {
			t.Errorf("SetHost(%q) = nil, want an error", s)
		}
	}
}

func TestSetHost6(t *testing.T) {
	c := DefaultConfig()
	if err := c.SetHost6("fd00:1::/64"); err != nil {
		t.Fatal(err)
	}
	if c.Host6.String() != "fd00:1::2/64" || c.DNS6.String() != "fd00:1::3" {
		t.Errorf("host6 %s dns6 %s, want fd00:1::2/64 fd00:1::3", c.Host6, c.DNS6)
	}
	if err := c.SetHost6("fd00::/48"); err == nil {
		t.Error("a /48 was accepted; SLAAC needs a /64")
	}
}

func TestParseForward(t *testing.T) {
	for _, tc := range []struct {
		desc string
		in   string
		want string // Forward.String(), or "" for a syntax error
	}{
		{desc: "classic", in: "8080:10.0.2.15:80", want: "8080:10.0.2.15:80"},
		{desc: "bind address", in: "127.0.0.1:8080:10.0.2.15:80", want: "127.0.0.1:8080:10.0.2.15:80"},
		{desc: "IPv6 bind address", in: "[::1]:8080:10.0.2.15:80", want: "::1:8080:10.0.2.15:80"},
		{desc: "no guest address", in: "8080::80"},
		{desc: "port 0", in: "0:10.0.2.15:80"},
		{desc: "port too big", in: "65536:10.0.2.15:80"},
		{desc: "too few fields", in: "8080:10.0.2.15"},
		{desc: "too many fields", in: "1:2:3:4:5"},
		{desc: "bad guest", in: "8080:host:80"},
		{desc: "unterminated bracket", in: "[::1:8080:10.0.2.15:80"},
		{desc: "empty", in: ""},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			f, err := ParseForward(tc.in, false)
			if tc.want == "" {
				if !errors.Is(err, ErrForwardSyntax) {
					t.Fatalf("ParseForward(%q) = %v, %v; want ErrForwardSyntax", tc.in, f, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if f.String() != tc.want {
				t.Errorf("ParseForward(%q) = %s, want %s", tc.in, f, tc.want)
			}
		})
	}
}

func TestParseUnixForward(t *testing.T) {
	u, err := ParseUnixForward("6000:/tmp/.X11-unix/X0")
	if err != nil || u.Port != 6000 || u.Path != "/tmp/.X11-unix/X0" || u.Addr.IsValid() {
		t.Errorf("got %+v, %v", u, err)
	}
	u, err = ParseUnixForward("10.0.2.5:22:/run/ssh.sock")
	if err != nil || u.Port != 22 || u.Addr.String() != "10.0.2.5" {
		t.Errorf("got %+v, %v", u, err)
	}
	for _, bad := range []string{"6000", "x:/p", "6000:", "10.0.2.5:/p"} {
		if _, err := ParseUnixForward(bad); err == nil {
			t.Errorf("ParseUnixForward(%q) accepted", bad)
		}
	}
}

func TestParseX11(t *testing.T) {
	g, d, s, err := ParseX11("10.0.2.15:1.2")
	if err != nil || g.String() != "10.0.2.15" || d != 1 || s != 2 {
		t.Errorf("got %v %d %d %v", g, d, s, err)
	}
	if _, _, _, err := ParseX11("nohost"); err == nil {
		t.Error("accepted a name")
	}
}

func TestParseURLOptionsTable(t *testing.T) {
	for _, tc := range []struct {
		desc  string
		in    string
		check func(c Config) bool
		bad   bool
	}{
		{desc: "empty: IPv4 with DHCP, no IPv6", in: "", check: func(c Config) bool { return c.DHCP && !c.IPv6 && !c.NoIPv4 }},
		{desc: "v6 alone: IPv6 only", in: "/v6", check: func(c Config) bool { return c.IPv6 && c.NoIPv4 }},
		{desc: "v4 and v6", in: "/v4/v6", check: func(c Config) bool { return c.IPv6 && !c.NoIPv4 }},
		{desc: "host", in: "/host=10.1.0.0", check: func(c Config) bool {
			return c.Host.String() == "10.1.0.2/24" && c.DHCPStart.String() == "10.1.0.15"
		}},
		{desc: "host with prefix length (the / also separates options)", in: "/host=10.1.0.0/16/verbose", check: func(c Config) bool {
			return c.Host.String() == "10.1.0.2/16" && c.DNS.String() == "10.1.0.3"
		}},
		{desc: "addr6 with prefix length", in: "/addr6=fd00:7::/64", check: func(c Config) bool {
			return c.IPv6 && c.Host6.String() == "fd00:7::2/64"
		}},
		{desc: "tcpfwd list", in: "/tcpfwd=2222:10.0.2.15:22,127.0.0.1:8080:10.0.2.15:80", check: func(c Config) bool {
			return len(c.Forwards) == 2 && c.Forwards[1].Bind.String() == "127.0.0.1" && !c.Forwards[0].UDP
		}},
		{desc: "udpfwd", in: "/udpfwd=5353:10.0.2.15:53", check: func(c Config) bool { return len(c.Forwards) == 1 && c.Forwards[0].UDP }},
		{desc: "disable_host_loopback", in: "/disable_host_loopback", check: func(c Config) bool { return c.NoHostLoopback }},
		{desc: "addr6 turns IPv6 on", in: "/addr6=fd00:5::/64", check: func(c Config) bool {
			return c.IPv6 && !c.NoIPv4 && c.Host6.String() == "fd00:5::2/64"
		}},
		{desc: "unknown option", in: "/frobnicate", bad: true},
		{desc: "bad forward", in: "/tcpfwd=1:2", bad: true},
		{desc: "bad mtu", in: "/mtu=big", bad: true},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			c, _, err := ParseURLOptions(tc.in)
			if tc.bad {
				if err == nil {
					t.Fatalf("ParseURLOptions(%q) accepted", tc.in)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(c) {
				t.Errorf("ParseURLOptions(%q) = %+v", tc.in, c)
			}
		})
	}
}

func TestMACFor(t *testing.T) {
	if got := MACFor(netip.MustParseAddr("10.0.2.3")).String(); got != "52:55:0a:00:02:03" {
		t.Errorf("MACFor(10.0.2.3) = %s", got)
	}
}

func FuzzParseForward(f *testing.F) {
	for _, s := range []string{"8080:10.0.2.15:80", "127.0.0.1:8080:10.0.2.15:80", "[::1]:1:10.0.2.15:2", "::", "[", "1:2:3:4:5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fw, err := ParseForward(s, false)
		if err != nil {
			return
		}
		if fw.HostPort == 0 || fw.GuestPort == 0 || !fw.Guest.Is4() {
			t.Fatalf("ParseForward(%q) = %+v: accepted a zero port or a non-IPv4 guest", s, fw)
		}
		again, err := ParseForward(bracket(fw), false)
		if err != nil || again != fw {
			t.Fatalf("round trip of %q: %+v -> %+v, %v", s, fw, again, err)
		}
		ParseUnixForward(s)
		ParseX11(s)
		ParseURLOptions(s)
	})
}

// bracket writes a forward back in the syntax ParseForward reads.
func bracket(f Forward) string {
	if f.Bind.Is6() {
		b := f.Bind
		f.Bind = netip.Addr{}
		return "[" + b.String() + "]:" + f.String()
	}
	return f.String()
}

// FuzzParseURLOptions: slirp:// options (vde_plug's command line) either are refused
// with a "slirp: " message or give a configuration a router can be made of: an IPv4
// router address, DHCP on, IPv6 on whenever IPv4 is off, a /64 IPv6 prefix, forwards to
// real ports; and making that router (New, then Close) fails with a message or works,
// never panics. The unix and X11 forward syntaxes are fuzzed with the same strings.
func FuzzParseURLOptions(f *testing.F) {
	for _, s := range []string{"", "/v6", "/host=10.1.0.0/16/verbose", "/addr6=fd00:7::/64/vnameserver6=fd00:7::53",
		"/tcpfwd=2222:10.0.2.15:22,127.0.0.1:8080:10.0.2.15:80", "/unixfwd=10.0.2.2:6000:/tmp/.X11-unix/X0", "/mtu=576/restricted"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ParseUnixForward(s)
		ParseX11(s)
		c, _, err := ParseURLOptions(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "slirp: ") {
				t.Fatalf("ParseURLOptions(%q): error %q", s, err)
			}
			return
		}
		if !c.DHCP || !c.Host.Addr().Is4() || c.Host.Bits() < 1 || c.Host.Bits() > 32 || !c.DNS.IsValid() || !c.DHCPStart.IsValid() {
			t.Fatalf("ParseURLOptions(%q): IPv4 config %+v", s, c)
		}
		if c.NoIPv4 && !c.IPv6 || c.IPv6 && (c.Host6.Bits() != 64 || !c.Host6.Addr().Is6() || !c.DNS6.IsValid()) {
			t.Fatalf("ParseURLOptions(%q): IPv6 config %+v", s, c)
		}
		for _, fw := range c.Forwards {
			if fw.HostPort == 0 || fw.GuestPort == 0 || !fw.Guest.Is4() {
				t.Fatalf("ParseURLOptions(%q): forward %+v", s, fw)
			}
		}
		c.Describe(io.Discard)
		c.TFTPDir = "" // the router would serve a directory of the host
		c.ResolvConf = os.DevNull
		r, err := New(c)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "slirp: ") {
				t.Fatalf("New(ParseURLOptions(%q)): error %q", s, err)
			}
			return
		}
		r.Close()
	})
}
