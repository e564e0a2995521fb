package dhcp

import (
	"bytes"
	"errors"
	"net/netip"
	"reflect"
	"testing"
)

// header returns a 236-byte BOOTP header: the first fields as given, the rest zero.
func header(prefix ...byte) []byte {
	b := make([]byte, headerLen)
	copy(b, prefix)
	return b
}

// withOptions returns hdr followed by the magic cookie and the options area bytes.
func withOptions(hdr []byte, area ...byte) []byte {
	b := append([]byte(nil), hdr...)
	b = append(b, magicCookie[:]...)
	return append(b, area...)
}

// discoverHeader is a BOOTREQUEST from 52:54:00:12:34:56, xid 0x11223344, secs 3,
// broadcast flag, ciaddr 0.0.0.0, giaddr 10.9.8.7.
var discoverHeader = header(
	1, 1, 6, 0, // op htype hlen hops
	0x11, 0x22, 0x33, 0x44, // xid
	0, 3, 0x80, 0, // secs flags
	0, 0, 0, 0, // ciaddr
	0, 0, 0, 0, // yiaddr
	0, 0, 0, 0, // siaddr
	10, 9, 8, 7, // giaddr
	0x52, 0x54, 0, 0x12, 0x34, 0x56, // chaddr
)

func TestParse(t *testing.T) {
	chaddr := [16]byte{0x52, 0x54, 0, 0x12, 0x34, 0x56}
	base := Message{
		Op: 1, HType: 1, HLen: 6, XID: 0x11223344, Secs: 3, Flags: 0x8000,
		CIAddr: netip.MustParseAddr("0.0.0.0"), YIAddr: netip.MustParseAddr("0.0.0.0"),
		SIAddr: netip.MustParseAddr("0.0.0.0"), GIAddr: netip.MustParseAddr("10.9.8.7"),
		CHAddr: chaddr,
	}
	with := func(opts ...Option) *Message {
		m := base
		m.Options = opts
		return &m
	}
	tests := []struct {
		desc    string
		b       []byte
		want    *Message
		wantErr error
	}{
		{
			desc: "DISCOVER with requested address and end",
			b:    withOptions(discoverHeader, 53, 1, 1, 50, 4, 10, 0, 2, 20, 255),
			want: with(Option{53, []byte{1}}, Option{50, []byte{10, 0, 2, 20}}),
		},
		{
			desc: "pads skipped, bytes after end ignored",
			b:    withOptions(discoverHeader, 0, 0, 53, 1, 3, 0, 255, 50, 9),
			want: with(Option{53, []byte{3}}),
		},
		{
			desc: "options run to the end of the payload without an end option",
			b:    withOptions(discoverHeader, 12, 2, 'g', 'w'),
			want: with(Option{12, []byte("gw")}),
		},
		{
			desc: "zero-length option",
			b:    withOptions(discoverHeader, 80, 0, 255),
			want: with(Option{80, []byte{}}),
		},
		{
			desc: "no options at all",
			b:    withOptions(discoverHeader),
			want: with(),
		},
		{
			desc:    "empty",
			b:       nil,
			wantErr: ErrShort,
		},
		{
			desc:    "header without cookie",
			b:       discoverHeader,
			wantErr: ErrShort,
		},
		{
			desc:    "bad cookie",
			b:       append(append([]byte(nil), discoverHeader...), 99, 130, 83, 98, 255),
			wantErr: ErrBadCookie,
		},
		{
			desc:    "option length runs past the payload",
			b:       withOptions(discoverHeader, 53, 1, 1, 50, 4, 10, 0, 2),
			wantErr: ErrBadOption,
		},
		{
			desc:    "option without its length byte",
			b:       withOptions(discoverHeader, 53),
			wantErr: ErrBadOption,
		},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			got, err := Parse(tt.b)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Parse error %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr != nil {
				return
			}
			if !equalMessages(got, tt.want) {
				t.Fatalf("Parse\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseDoesNotAlias(t *testing.T) {
	b := withOptions(discoverHeader, 53, 1, 1, 255)
	m, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	b[optionsOff+2] = 3
	if d, _ := m.Option(53); d[0] != 1 {
		t.Fatalf("option 53 changed with the input buffer: %v", d)
	}
}

func TestOptionLastWins(t *testing.T) {
	m := &Message{Options: []Option{{53, []byte{1}}, {50, []byte{1, 2, 3, 4}}, {53, []byte{3}}}}
	if d, ok := m.Option(53); !ok || !bytes.Equal(d, []byte{3}) {
		t.Fatalf("Option(53) = %v, %v; want [3], true", d, ok)
	}
	if _, ok := m.Option(54); ok {
		t.Fatal("Option(54) found in a message without it")
	}
}

func TestAppend(t *testing.T) {
	tests := []struct {
		desc    string
		m       Message
		want    []byte
		wantErr error
	}{
		{
			desc: "round trip of a DISCOVER",
			m: Message{
				Op: 1, HType: 1, HLen: 6, XID: 0x11223344, Secs: 3, Flags: 0x8000,
				GIAddr:  netip.MustParseAddr("10.9.8.7"),
				CHAddr:  [16]byte{0x52, 0x54, 0, 0x12, 0x34, 0x56},
				Options: []Option{{53, []byte{1}}, {50, []byte{10, 0, 2, 20}}},
			},
			want: withOptions(discoverHeader, 53, 1, 1, 50, 4, 10, 0, 2, 20, 255),
		},
		{
			desc: "IPv4-mapped address written as IPv4",
			m:    Message{YIAddr: netip.MustParseAddr("::ffff:10.0.2.15")},
			want: withOptions(header(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10, 0, 2, 15), 255),
		},
		{
			desc:    "IPv6 address",
			m:       Message{SIAddr: netip.MustParseAddr("fe80::1")},
			wantErr: ErrBadAddr,
		},
		{
			desc:    "option longer than 255 bytes",
			m:       Message{Options: []Option{{119, make([]byte, 256)}}},
			wantErr: ErrBadOption,
		},
		{
			desc:    "explicit end option",
			m:       Message{Options: []Option{{255, nil}}},
			wantErr: ErrBadOption,
		},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			got, err := tt.m.Append([]byte("prefix"))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Append error %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr != nil {
				return
			}
			if !bytes.HasPrefix(got, []byte("prefix")) || !bytes.Equal(got[6:], tt.want) {
				t.Fatalf("Append\n got % x\nwant prefix + % x", got, tt.want)
			}
		})
	}
}

// equalMessages compares two messages, treating nil and empty option data alike.
func equalMessages(a, b *Message) bool {
	if len(a.Options) != len(b.Options) {
		return false
	}
	for i := range a.Options {
		if a.Options[i].Code != b.Options[i].Code || !bytes.Equal(a.Options[i].Data, b.Options[i].Data) {
			return false
		}
	}
	x, y := *a, *b
	x.Options, y.Options = nil, nil
	return reflect.DeepEqual(x, y)
}
