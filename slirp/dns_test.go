package slirp

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"
)

// query is a DNS query for name (labels) of type A, id 0x1234, RD set.
func query(labels ...string) []byte {
	b := []byte{0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0}
	for _, l := range labels {
		b = append(b, byte(len(l)))
		b = append(b, l...)
	}
	return append(b, 0, 0, 1, 0, 1)
}

func TestCheckDNSQuery(t *testing.T) {
	long := string(make([]byte, 64))
	for _, tc := range []struct {
		desc string
		in   []byte
		ok   bool
	}{
		{desc: "A query", in: query("slirp-test", "example"), ok: true},
		{desc: "root", in: query(), ok: true},
		{desc: "short", in: []byte{1, 2, 3}},
		{desc: "a response", in: func() []byte { b := query("x"); b[2] |= 0x80; return b }()},
		{desc: "no question", in: func() []byte { b := query("x"); b[5] = 0; return b }()},
		{desc: "label too long", in: query(long)},
		{desc: "name past the end", in: query("example")[:16]},
		{desc: "type cut off", in: query("x")[:len(query("x"))-2]},
		{desc: "forward pointer", in: append([]byte{0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0}, 0xc0, 0x20, 0, 1, 0, 1)},
		{desc: "two questions, one given", in: func() []byte { b := query("x"); b[5] = 2; return b }()},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			err := checkDNSQuery(tc.in)
			if tc.ok && err != nil {
				t.Fatalf("refused a good query: %v", err)
			}
			if !tc.ok && !errors.Is(err, ErrDNSQuery) {
				t.Fatalf("got %v, want ErrDNSQuery", err)
			}
		})
	}
}

func TestFirstNameserver(t *testing.T) {
	for _, tc := range []struct{ conf, want string }{
		{"nameserver 127.0.0.1\nnameserver 8.8.8.8\n", "127.0.0.1"},
		{"# comment\nsearch example\nnameserver   ::1\n", "::1"},
		{"nameserver bogus\nnameserver 10.0.0.1", "10.0.0.1"},
		{"options ndots:2\n", ""},
	} {
		if got := firstNameserver([]byte(tc.conf)); got != tc.want {
			t.Errorf("firstNameserver(%q) = %q, want %q", tc.conf, got, tc.want)
		}
	}
}

// FuzzCheckDNSQuery: what a guest sends to the DNS proxy is refused with ErrDNSQuery or
// is a query (QR clear) with at least one question, at least a header and a root
// question long, that stays a query whatever follows its questions; and what
// firstNameserver makes of a resolv.conf is nothing or an address in its canonical form.
func FuzzCheckDNSQuery(f *testing.F) {
	f.Add(query("slirp-test", "example"))
	f.Add([]byte{0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 1, 0, 1})
	f.Add([]byte("nameserver 127.0.0.1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		in := bytes.Clone(b)
		err := checkDNSQuery(b)
		if !bytes.Equal(in, b) {
			t.Fatalf("checkDNSQuery modified its input")
		}
		switch {
		case err != nil && !errors.Is(err, ErrDNSQuery):
			t.Fatalf("checkDNSQuery(%x) = %v, not an ErrDNSQuery", b, err)
		case err == nil && (len(b) < dnsHeaderSize+5 || b[2]&0x80 != 0 || b[4] == 0 && b[5] == 0):
			t.Fatalf("checkDNSQuery(%x) accepted a message that cannot be a query", b)
		case err == nil:
			if err := checkDNSQuery(append(bytes.Clone(b), 0xc0, 0xff, 0, 0x3f, 0x40)); err != nil {
				t.Fatalf("checkDNSQuery(%x) accepted, but refused with bytes after it: %v", b, err)
			}
		}
		ns := firstNameserver(b)
		if ns == "" {
			return
		}
		if a, err := netip.ParseAddr(ns); err != nil || a.String() != ns || !bytes.Contains(b, []byte("nameserver")) {
			t.Fatalf("firstNameserver(%q) = %q", b, ns)
		}
	})
}
