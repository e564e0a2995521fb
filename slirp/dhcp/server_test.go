package dhcp

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// slirpConfig is what slirpvde uses with its default network (spec §1.1, §3.3).
func slirpConfig() Config {
	return Config{
		ServerIP:  netip.MustParseAddr("10.0.2.2"),
		Netmask:   netip.MustParseAddr("255.255.255.0"),
		DNS:       []netip.Addr{netip.MustParseAddr("10.0.2.3")},
		PoolStart: netip.MustParseAddr("10.0.2.15"),
		PoolSize:  16,
		LeaseTime: 86400 * time.Second,
	}
}

func newServer(t testing.TB, c Config) *Server {
	t.Helper()
	s, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// replyTo returns a 548-byte reply: the 44-byte header prefix, the file field, and the
// options area after the cookie, zero-padded.
func replyTo(prefix []byte, file string, area ...byte) []byte {
	hdr := header(prefix...)
	copy(hdr[108:], file)
	b := withOptions(hdr, area...)
	return append(b, make([]byte, replyLen-len(b))...)
}

// offerHeader is the header of an OFFER or ACK of 10.0.2.15 to discoverHeader.
var offerHeader = []byte{
	2, 1, 6, 0, // op htype hlen hops
	0x11, 0x22, 0x33, 0x44, // xid
	0, 0, 0x80, 0, // secs, flags copied
	0, 0, 0, 0, // ciaddr
	10, 0, 2, 15, // yiaddr
	10, 0, 2, 2, // siaddr
	10, 9, 8, 7, // giaddr copied
	0x52, 0x54, 0, 0x12, 0x34, 0x56, // chaddr
}

// nakHeader is offerHeader without an address.
var nakHeader = func() []byte {
	h := append([]byte(nil), offerHeader...)
	copy(h[16:20], []byte{0, 0, 0, 0})
	return h
}()

// slirpOptions are the options of the observed OFFER after option 53 (spec §3.3).
var slirpOptions = []byte{
	54, 4, 10, 0, 2, 2,
	1, 4, 255, 255, 255, 0,
	3, 4, 10, 0, 2, 2,
	6, 4, 10, 0, 2, 3,
	51, 4, 0x00, 0x01, 0x51, 0x80,
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestHandleBytes(t *testing.T) {
	pxe := slirpConfig()
	pxe.BootFile = "pxelinux.0"
	pxe.TFTPServerName = "10.0.2.2"
	pxe.DomainSearch = []string{"vde.example"}

	tests := []struct {
		desc   string
		config Config
		req    []byte
		want   []byte
		wantYI string
	}{
		{
			desc:   "observed OFFER",
			config: slirpConfig(),
			req:    withOptions(discoverHeader, 53, 1, 1, 255),
			want:   replyTo(offerHeader, "", cat([]byte{53, 1, 2}, slirpOptions, []byte{255})...),
			wantYI: "10.0.2.15",
		},
		{
			desc:   "observed ACK",
			config: slirpConfig(),
			req:    withOptions(discoverHeader, 53, 1, 3, 50, 4, 10, 0, 2, 15, 54, 4, 10, 0, 2, 2, 255),
			want:   replyTo(offerHeader, "", cat([]byte{53, 1, 5}, slirpOptions, []byte{255})...),
			wantYI: "10.0.2.15",
		},
		{
			desc:   "BOOTP request without option 53 is ACKed",
			config: slirpConfig(),
			req:    withOptions(discoverHeader, 255),
			want:   replyTo(offerHeader, "", cat([]byte{53, 1, 5}, slirpOptions, []byte{255})...),
			wantYI: "10.0.2.15",
		},
		{
			desc:   "NAK of an address outside the pool",
			config: slirpConfig(),
			req:    withOptions(discoverHeader, 53, 1, 3, 50, 4, 10, 0, 2, 99, 255),
			want: replyTo(nakHeader, "", cat(
				[]byte{53, 1, 6, 54, 4, 10, 0, 2, 2, 56, 31},
				[]byte("requested address not available"),
				[]byte{255})...),
		},
		{
			desc:   "PXE extras after option 51",
			config: pxe,
			req:    withOptions(discoverHeader, 53, 1, 1, 255),
			want: replyTo(offerHeader, "pxelinux.0", cat(
				[]byte{53, 1, 2}, slirpOptions,
				[]byte("\x42\x0810.0.2.2"),
				[]byte("\x43\x0apxelinux.0"),
				[]byte("\x77\x0d\x03vde\x07example\x00"),
				[]byte{255})...),
			wantYI: "10.0.2.15",
		},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			s := newServer(t, tt.config)
			got, mac, yi, ok := s.Handle(tt.req)
			if !ok {
				t.Fatal("no reply")
			}
			if !bytes.Equal(got, tt.want) {
				t.Fatalf("reply differs\n got % x\nwant % x", got, tt.want)
			}
			if mac.String() != "52:54:00:12:34:56" {
				t.Errorf("client MAC %v, want 52:54:00:12:34:56", mac)
			}
			if want := addrOrZero(tt.wantYI); yi != want {
				t.Errorf("yiaddr %v, want %v", yi, want)
			}
		})
	}
}

func addrOrZero(s string) netip.Addr {
	if s == "" {
		return netip.Addr{}
	}
	return netip.MustParseAddr(s)
}

// step is one client message and the answer expected to it, written as "OFFER 10.0.2.15",
// "ACK 10.0.2.16", "NAK" or "" for no answer.
type step struct {
	mac       byte   // last byte of the client MAC 52:54:00:12:34:xx
	msgType   byte   // option 53; 0 leaves it out (plain BOOTP)
	requested string // option 50, if not empty
	ciaddr    string // ciaddr, if not empty
	want      string
}

func (st step) payload() []byte {
	m := Message{Op: OpRequest, HType: 1, HLen: 6, XID: 0xcafe0000 | uint32(st.mac)}
	copy(m.CHAddr[:], []byte{0x52, 0x54, 0, 0x12, 0x34, st.mac})
	if st.ciaddr != "" {
		m.CIAddr = netip.MustParseAddr(st.ciaddr)
	}
	if st.msgType != 0 {
		m.Options = append(m.Options, Option{optMessageType, []byte{st.msgType}})
	}
	if st.requested != "" {
		a := netip.MustParseAddr(st.requested).As4()
		m.Options = append(m.Options, Option{optRequestedIP, a[:]})
	}
	b, err := m.Append(nil)
	if err != nil {
		panic(err)
	}
	return b
}

// answer describes a reply as step.want does, checking the fields every reply shares.
func answer(t *testing.T, st step, reply []byte, mac net.HardwareAddr, yi netip.Addr, ok bool) string {
	t.Helper()
	if !ok {
		return ""
	}
	if len(reply) != replyLen {
		t.Fatalf("reply of %d bytes, want %d", len(reply), replyLen)
	}
	m, err := Parse(reply)
	if err != nil {
		t.Fatalf("reply does not parse: %v", err)
	}
	if m.Op != OpReply || m.XID != 0xcafe0000|uint32(st.mac) || m.CHAddr[5] != st.mac || mac[5] != st.mac {
		t.Fatalf("reply op %d xid %#x chaddr % x mac %v, not for client %#x", m.Op, m.XID, m.CHAddr, mac, st.mac)
	}
	typ, _ := m.Option(optMessageType)
	name := map[byte]string{typeOffer: "OFFER", typeAck: "ACK", typeNak: "NAK"}[typ[0]]
	if name == "NAK" {
		if yi.IsValid() || m.YIAddr != netip.IPv4Unspecified() {
			t.Fatalf("NAK with yiaddr %v (returned %v)", m.YIAddr, yi)
		}
		return name
	}
	if yi != m.YIAddr {
		t.Fatalf("returned yiaddr %v, reply says %v", yi, m.YIAddr)
	}
	return name + " " + yi.String()
}

func TestHandleSequence(t *testing.T) {
	const discover, request, decline, release, inform = 1, 3, 4, 7, 8
	var fill []step // 16 clients 0x10..0x1f take the whole pool
	for i := range 16 {
		fill = append(fill, step{mac: byte(0x10 + i), msgType: discover, want: fmt.Sprintf("OFFER 10.0.2.%d", 15+i)})
	}
	var bound []step // the same 16 confirm theirs
	for i := range 16 {
		bound = append(bound, step{mac: byte(0x10 + i), msgType: request, want: fmt.Sprintf("ACK 10.0.2.%d", 15+i)})
	}
	tests := []struct {
		desc  string
		steps []step
	}{
		{
			desc: "two MACs get the first two addresses",
			steps: []step{
				{mac: 1, msgType: discover, want: "OFFER 10.0.2.15"},
				{mac: 2, msgType: discover, want: "OFFER 10.0.2.16"},
				{mac: 2, msgType: request, requested: "10.0.2.16", want: "ACK 10.0.2.16"},
				{mac: 1, msgType: request, requested: "10.0.2.15", want: "ACK 10.0.2.15"},
			},
		},
		{
			desc: "a MAC keeps its address",
			steps: []step{
				{mac: 1, msgType: discover, want: "OFFER 10.0.2.15"},
				{mac: 1, msgType: discover, want: "OFFER 10.0.2.15"},
				{mac: 2, msgType: discover, want: "OFFER 10.0.2.16"},
				{mac: 1, msgType: discover, want: "OFFER 10.0.2.15"},
				{mac: 1, msgType: request, want: "ACK 10.0.2.15"},
			},
		},
		{
			desc: "requested address honoured",
			steps: []step{
				{mac: 1, msgType: discover, requested: "10.0.2.20", want: "OFFER 10.0.2.20"},
				{mac: 1, msgType: request, requested: "10.0.2.20", want: "ACK 10.0.2.20"},
				{mac: 2, msgType: discover, want: "OFFER 10.0.2.15"},
				{mac: 1, msgType: request, want: "ACK 10.0.2.20"},
			},
		},
		{
			desc: "DISCOVER for an unavailable address gets the first free one",
			steps: []step{
				{mac: 1, msgType: discover, requested: "10.0.2.99", want: "OFFER 10.0.2.15"},
				{mac: 2, msgType: discover, requested: "10.0.2.15", want: "OFFER 10.0.2.16"},
				{mac: 3, msgType: discover, requested: "10.0.2.14", want: "OFFER 10.0.2.17"},
				{mac: 4, msgType: discover, requested: "0.0.0.0", want: "OFFER 10.0.2.18"},
			},
		},
		{
			desc: "REQUEST for an address outside the pool is NAKed",
			steps: []step{
				{mac: 1, msgType: request, requested: "10.0.2.31", want: "NAK"},
				{mac: 1, msgType: request, requested: "10.0.2.14", want: "NAK"},
				{mac: 1, msgType: request, ciaddr: "192.168.1.5", want: "NAK"},
			},
		},
		{
			desc: "REQUEST for another MAC's address is NAKed",
			steps: []step{
				{mac: 1, msgType: discover, want: "OFFER 10.0.2.15"},
				{mac: 2, msgType: request, requested: "10.0.2.15", want: "NAK"},
				{mac: 2, msgType: request, ciaddr: "10.0.2.15", want: "NAK"},
				{mac: 2, msgType: request, want: "ACK 10.0.2.16"},
			},
		},
		{
			desc: "renewing REQUEST names its address in ciaddr",
			steps: []step{
				{mac: 1, msgType: request, ciaddr: "10.0.2.17", want: "ACK 10.0.2.17"},
				{mac: 1, msgType: request, ciaddr: "10.0.2.17", requested: "10.0.2.18", want: "ACK 10.0.2.18"},
			},
		},
		{
			desc: "REQUEST without an address from an unknown MAC gets a new one",
			steps: []step{
				{mac: 1, msgType: request, want: "ACK 10.0.2.15"},
				{mac: 2, msgType: request, want: "ACK 10.0.2.16"},
			},
		},
		{
			desc: "BOOTP request is a REQUEST that ignores ciaddr",
			steps: []step{
				{mac: 1, ciaddr: "10.0.2.20", want: "ACK 10.0.2.15"},
				{mac: 1, requested: "10.0.2.21", want: "ACK 10.0.2.21"},
				{mac: 2, requested: "10.0.2.21", want: "NAK"},
			},
		},
		{
			desc: "other message types are ignored and free nothing",
			steps: []step{
				{mac: 1, msgType: discover, want: "OFFER 10.0.2.15"},
				{mac: 1, msgType: decline, requested: "10.0.2.15"},
				{mac: 1, msgType: release, ciaddr: "10.0.2.15"},
				{mac: 1, msgType: inform, ciaddr: "10.0.2.15"},
				{mac: 1, msgType: 2},
				{mac: 1, msgType: 200},
				{mac: 2, msgType: discover, want: "OFFER 10.0.2.16"},
			},
		},
		{
			desc: "full pool of offers: a new MAC gets the oldest unconfirmed one",
			steps: append(fill,
				step{mac: 0x20, msgType: discover, want: "OFFER 10.0.2.15"},
				step{mac: 0x20, msgType: request, requested: "10.0.2.15", want: "ACK 10.0.2.15"},
				step{mac: 0x10, msgType: request, requested: "10.0.2.15", want: "NAK"},
				step{mac: 0x10, msgType: discover, want: "OFFER 10.0.2.16"},
				step{mac: 0x1f, msgType: request, want: "ACK 10.0.2.30"},
			),
		},
		{
			desc: "pool of confirmed leases exhausted",
			steps: append(bound,
				step{mac: 0x20, msgType: discover},
				step{mac: 0x20, msgType: request},
				step{mac: 0x20, msgType: discover, requested: "10.0.2.15", want: ""},
				step{mac: 0x20, msgType: request, requested: "10.0.2.15", want: "NAK"},
				step{mac: 0x10, msgType: discover, want: "OFFER 10.0.2.15"},
				step{mac: 0x1f, msgType: request, want: "ACK 10.0.2.30"},
			),
		},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			s := newServer(t, slirpConfig())
			for i, st := range tt.steps {
				reply, mac, yi, ok := s.Handle(st.payload())
				if got := answer(t, st, reply, mac, yi, ok); got != st.want {
					t.Fatalf("step %d (%+v): got %q, want %q", i, st, got, st.want)
				}
			}
		})
	}
}

func TestHandleIgnored(t *testing.T) {
	valid := withOptions(discoverHeader, 53, 1, 1, 255)
	set := func(i int, v byte) []byte {
		b := append([]byte(nil), valid...)
		b[i] = v
		return b
	}
	tests := []struct {
		desc string
		req  []byte
	}{
		{desc: "empty", req: nil},
		{desc: "header only", req: discoverHeader},
		{desc: "one byte short of the cookie", req: valid[:optionsOff-1]},
		{desc: "bad cookie", req: set(headerLen+3, 0)},
		{desc: "truncated option", req: withOptions(discoverHeader, 53, 1, 1, 50, 4, 10, 0)},
		{desc: "option without length", req: withOptions(discoverHeader, 53, 1, 1, 50)},
		{desc: "option 53 of length 2", req: withOptions(discoverHeader, 53, 2, 1, 0, 255)},
		{desc: "option 53 of length 0", req: withOptions(discoverHeader, 53, 0, 255)},
		{desc: "option 50 of length 3", req: withOptions(discoverHeader, 53, 1, 1, 50, 3, 10, 0, 2, 255)},
		{desc: "BOOTREPLY", req: set(0, OpReply)},
		{desc: "op 0", req: set(0, 0)},
		{desc: "not Ethernet", req: set(1, 6)},
		{desc: "hardware address of 16 bytes", req: set(2, 16)},
	}
	s := newServer(t, slirpConfig())
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			if reply, mac, yi, ok := s.Handle(tt.req); ok || reply != nil || mac != nil || yi.IsValid() {
				t.Fatalf("got a reply (% x, %v, %v, %v), want none", reply, mac, yi, ok)
			}
		})
	}
	if ls := s.Leases(); len(ls) != 0 {
		t.Fatalf("ignored requests took leases: %v", ls)
	}
}

func TestLeases(t *testing.T) {
	s := newServer(t, slirpConfig())
	for _, st := range []step{
		{mac: 1, msgType: 1, requested: "10.0.2.20"},
		{mac: 2, msgType: 1},
		{mac: 3, msgType: 3, requested: "10.0.2.99"}, // NAK takes nothing
	} {
		s.Handle(st.payload())
	}
	var got []string
	for _, l := range s.Leases() {
		got = append(got, l.String())
	}
	want := "10.0.2.15 52:54:00:12:34:02, 10.0.2.20 52:54:00:12:34:01"
	if strings.Join(got, ", ") != want {
		t.Fatalf("Leases() = %v, want %v", got, want)
	}
}

func TestNew(t *testing.T) {
	ok := slirpConfig()
	tests := []struct {
		desc    string
		edit    func(*Config)
		wantErr string // substring; empty means success
	}{
		{desc: "slirpvde defaults", edit: func(*Config) {}},
		{desc: "zero pool size and lease time take the defaults", edit: func(c *Config) { c.PoolSize, c.LeaseTime = 0, 0 }},
		{desc: "no DNS", edit: func(c *Config) { c.DNS = nil }},
		{desc: "pool outside the subnet is accepted", edit: func(c *Config) { c.PoolStart = netip.MustParseAddr("192.168.0.15") }},
		{desc: "pool ends at 255.255.255.255", edit: func(c *Config) { c.PoolStart = netip.MustParseAddr("255.255.255.240") }},
		{desc: "no server", edit: func(c *Config) { c.ServerIP = netip.Addr{} }, wantErr: "server address"},
		{desc: "IPv6 server", edit: func(c *Config) { c.ServerIP = netip.MustParseAddr("fd00::2") }, wantErr: "server address fd00::2"},
		{desc: "holey netmask", edit: func(c *Config) { c.Netmask = netip.MustParseAddr("255.0.255.0") }, wantErr: "not contiguous"},
		{desc: "no pool start", edit: func(c *Config) { c.PoolStart = netip.Addr{} }, wantErr: "pool start"},
		{desc: "negative pool", edit: func(c *Config) { c.PoolSize = -1 }, wantErr: "pool size -1"},
		{desc: "pool too big", edit: func(c *Config) { c.PoolSize = MaxPoolSize + 1 }, wantErr: "pool size"},
		{desc: "pool wraps", edit: func(c *Config) { c.PoolStart = netip.MustParseAddr("255.255.255.241") }, wantErr: "runs past"},
		{desc: "sub-second lease", edit: func(c *Config) { c.LeaseTime = time.Millisecond }, wantErr: "lease time"},
		{desc: "IPv6 DNS", edit: func(c *Config) { c.DNS = []netip.Addr{netip.MustParseAddr("::1")} }, wantErr: "DNS server ::1"},
		{desc: "boot file too long", edit: func(c *Config) { c.BootFile = strings.Repeat("f", 128) }, wantErr: "boot file"},
		{desc: "bad search domain", edit: func(c *Config) { c.DomainSearch = []string{"a..b"} }, wantErr: "search domain"},
		{
			desc:    "options do not fit",
			edit:    func(c *Config) { c.TFTPServerName = strings.Repeat("t", 255); c.BootFile = strings.Repeat("f", 100) },
			wantErr: "options take",
		},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			c := ok
			tt.edit(&c)
			_, err := New(c)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "dhcp: ") {
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestLeaseTimeOption(t *testing.T) {
	c := slirpConfig()
	c.PoolSize, c.LeaseTime = 0, 0
	s := newServer(t, c)
	reply, _, _, ok := s.Handle(step{mac: 1, msgType: 1}.payload())
	if !ok {
		t.Fatal("no reply")
	}
	m, err := Parse(reply)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := m.Option(optLeaseTime); binary.BigEndian.Uint32(d) != 86400 {
		t.Fatalf("default lease %d s, want 86400", binary.BigEndian.Uint32(d))
	}
}

// TestHandleConcurrent binds every pool address once when clients race; run with -race.
func TestHandleConcurrent(t *testing.T) {
	s := newServer(t, slirpConfig())
	var wg sync.WaitGroup
	got := make([]netip.Addr, 32)
	for i := range got {
		wg.Go(func() {
			if _, _, yi, ok := s.Handle(step{mac: byte(i), msgType: 3}.payload()); ok && yi.IsValid() {
				got[i] = yi
			}
		})
	}
	wg.Wait()
	seen := map[netip.Addr]bool{}
	for _, a := range got {
		if a.IsValid() {
			if seen[a] {
				t.Fatalf("%v given twice", a)
			}
			seen[a] = true
		}
	}
	if len(seen) != 16 || len(s.Leases()) != 16 {
		t.Fatalf("%d addresses given, %d leases; want 16", len(seen), len(s.Leases()))
	}
}
