package applets

import (
	"strings"
	"testing"
)

// The expected values were printed by glibc's sscanf (Debian 12) for the same inputs.
func TestScanC(t *testing.T) {
	type res struct {
		v  uint32
		ok bool
	}
	tests := []struct {
		in      string
		i, o, x res
	}{
		{"12", res{12, true}, res{10, true}, res{18, true}},
		{"0x1f", res{31, true}, res{0, true}, res{31, true}},
		{"010", res{8, true}, res{8, true}, res{16, true}},
		{"08", res{0, true}, res{0, true}, res{8, true}},
		{"0x", res{0, true}, res{0, true}, res{0, true}},
		{"0xg", res{0, true}, res{0, true}, res{0, true}},
		{"  7", res{7, true}, res{7, true}, res{7, true}},
		{"+3", res{3, true}, res{3, true}, res{3, true}},
		{"-5", res{0xfffffffb, true}, res{0xfffffffb, true}, res{4294967291, true}},
		{"12abc", res{12, true}, res{10, true}, res{76476, true}},
		{"x", res{}, res{}, res{}},
		{"", res{}, res{}, res{}},
		{"-", res{}, res{}, res{}},
		{"+", res{}, res{}, res{}},
		{"99999999999", res{1215752191, true}, res{}, res{2576980377, true}},
		{"-0x10", res{0xfffffff0, true}, res{0, true}, res{4294967280, true}},
		{"0X1F", res{31, true}, res{0, true}, res{31, true}},
		{"4294967296", res{0, true}, res{34, true}, res{2492887702, true}},
		{"18446744073709551616", res{0xffffffff, true}, res{1, true}, res{4294967295, true}},
		{"077777777777", res{0xffffffff, true}, res{0xffffffff, true}, res{2004318071, true}},
		{"0", res{0, true}, res{0, true}, res{0, true}},
	}
	for _, tt := range tests {
		for _, c := range []struct {
			conv byte
			want res
		}{{'i', tt.i}, {'o', tt.o}, {'x', tt.x}} {
			v, _, ok := scanC(tt.in, c.conv)
			if ok != c.want.ok || (ok && v != c.want.v) {
				t.Errorf("sscanf(%q, %%%c) = %d, %v; want %d, %v", tt.in, c.conv, v, ok, c.want.v, c.want.ok)
			}
		}
	}
}

func TestParseMAC(t *testing.T) {
	tests := []struct {
		desc string
		in   string
		want [6]byte
		ok   bool
	}{
		{"colons", "1:2:3:4:5:6", [6]byte{1, 2, 3, 4, 5, 6}, true},
		{"dots", "a.b.c.d.e.f", [6]byte{0xa, 0xb, 0xc, 0xd, 0xe, 0xf}, true},
		{"full form", "00:ff:12:34:AB:cd", [6]byte{0, 0xff, 0x12, 0x34, 0xab, 0xcd}, true},
		{"0x, low byte kept, trailing junk", "0x12:345:3:4:5:6zz", [6]byte{0x12, 0x45, 3, 4, 5, 6}, true},
		{"blank after separator", "1: 2:3:4:5:6", [6]byte{1, 2, 3, 4, 5, 6}, true},
		{"negative field", "-1:2:3:4:5:6", [6]byte{0xff, 2, 3, 4, 5, 6}, true},
		{"blank before separator", "1 :2:3:4:5:6", [6]byte{}, false},
		{"five fields", "1:2:3:4:5", [6]byte{}, false},
		{"empty sixth", "1:2:3:4:5:", [6]byte{}, false},
		{"not hex", "g:1:2:3:4:5", [6]byte{}, false},
		{"colon wins over dots", "1.2.3.4.5:6", [6]byte{}, false},
		{"empty", "", [6]byte{}, false},
	}
	for _, tt := range tests {
		got, ok := parseMAC(tt.in)
		if ok != tt.ok || (ok && got != tt.want) {
			t.Errorf("%s: parseMAC(%q) = %x, %v; want %x, %v", tt.desc, tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func FuzzScanC(f *testing.F) {
	for _, s := range []string{"12", "0x1f", "-0x10", "077777777777", "18446744073709551616", " +7z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, conv := range []byte{'i', 'o', 'x'} {
			if _, rest, _ := scanC(s, conv); !strings.HasSuffix(s, rest) {
				t.Fatalf("sscanf(%q, %%%c): rest %q is not what was left of the input", s, conv, rest)
			}
		}
		parseMAC(s)
	})
}
