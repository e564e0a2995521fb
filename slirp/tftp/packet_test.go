package tftp

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func TestParseRequest(t *testing.T) {
	tests := []struct {
		desc string
		b    []byte
		want Request
		err  error
	}{
		{
			desc: "plain RRQ",
			b:    []byte("\x00\x01pxelinux.0\x00octet\x00"),
			want: Request{Op: OpRRQ, Filename: "pxelinux.0", Mode: "octet"},
		},
		{
			desc: "WRQ netascii",
			b:    []byte("\x00\x02a/b\x00netascii\x00"),
			want: Request{Op: OpWRQ, Filename: "a/b", Mode: "netascii"},
		},
		{
			desc: "options in order",
			b:    []byte("\x00\x01f\x00OCTET\x00tsize\x000\x00BLKSIZE\x001428\x00x\x00\x00"),
			want: Request{Op: OpRRQ, Filename: "f", Mode: "OCTET", Options: []Option{
				{"tsize", "0"}, {"BLKSIZE", "1428"}, {"x", ""},
			}},
		},
		{
			desc: "NUL padding after the options",
			b:    []byte("\x00\x01f\x00octet\x00tsize\x000\x00\x00\x00\x00"),
			want: Request{Op: OpRRQ, Filename: "f", Mode: "octet", Options: []Option{{"tsize", "0"}}},
		},
		{
			desc: "option without value dropped",
			b:    []byte("\x00\x01f\x00octet\x00tsize\x000\x00blksize\x00"),
			want: Request{Op: OpRRQ, Filename: "f", Mode: "octet", Options: []Option{{"tsize", "0"}}},
		},
		{
			desc: "unterminated option value dropped",
			b:    []byte("\x00\x01f\x00octet\x00blksize\x001024"),
			want: Request{Op: OpRRQ, Filename: "f", Mode: "octet"},
		},
		{desc: "empty", b: nil, err: ErrShortPacket},
		{desc: "one byte", b: []byte{0}, err: ErrShortPacket},
		{desc: "opcode only", b: []byte{0, 1}, err: ErrUnterminated},
		{desc: "DATA", b: []byte("\x00\x03\x00\x01abc"), err: ErrOpcode},
		{desc: "opcode 0", b: []byte("\x00\x00f\x00octet\x00"), err: ErrOpcode},
		{desc: "opcode 257", b: []byte("\x01\x01f\x00octet\x00"), err: ErrOpcode},
		{desc: "filename unterminated", b: []byte("\x00\x01pxelinux.0"), err: ErrUnterminated},
		{desc: "mode unterminated", b: []byte("\x00\x01f\x00octet"), err: ErrUnterminated},
		{desc: "mode missing", b: []byte("\x00\x01f\x00"), err: ErrUnterminated},
		{desc: "empty filename", b: []byte("\x00\x01\x00octet\x00"), err: ErrEmptyField},
		{desc: "empty mode", b: []byte("\x00\x01f\x00\x00"), err: ErrEmptyField},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			got, err := ParseRequest(tt.b)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err == nil && !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestRequestOption(t *testing.T) {
	r := Request{Options: []Option{{"TSize", "0"}, {"tsize", "9"}, {"blksize", ""}}}
	if v, ok := r.Option("tsize"); !ok || v != "0" {
		t.Errorf("Option(tsize) = %q, %v; want first one, \"0\"", v, ok)
	}
	if v, ok := r.Option("BLKSIZE"); !ok || v != "" {
		t.Errorf("Option(BLKSIZE) = %q, %v", v, ok)
	}
	if _, ok := r.Option("timeout"); ok {
		t.Error("Option(timeout) found")
	}
}

func TestBuilders(t *testing.T) {
	tests := []struct {
		desc string
		got  []byte
		want []byte
	}{
		{"DATA", AppendData(nil, 0x1234, []byte("hi")), []byte("\x00\x03\x12\x34hi")},
		{"empty DATA", AppendData(nil, 65535, nil), []byte("\x00\x03\xff\xff")},
		{"ACK", AppendAck(nil, 7), []byte("\x00\x04\x00\x07")},
		{"ERROR", AppendError(nil, CodeFileNotFound, "File not found"),
			[]byte("\x00\x05\x00\x01File not found\x00")},
		{"OACK", AppendOACK(nil, []Option{{"blksize", "1468"}, {"tsize", "42"}}),
			[]byte("\x00\x06blksize\x001468\x00tsize\x0042\x00")},
		{"empty OACK", AppendOACK(nil, nil), []byte("\x00\x06")},
		{"RRQ", AppendRequest(nil, Request{Op: OpRRQ, Filename: "f", Mode: "octet",
			Options: []Option{{"tsize", "0"}}}), []byte("\x00\x01f\x00octet\x00tsize\x000\x00")},
		{"appends", AppendAck([]byte("xy"), 1), []byte("xy\x00\x04\x00\x01")},
	}
	for _, tt := range tests {
		if !bytes.Equal(tt.got, tt.want) {
			t.Errorf("%s: got %q, want %q", tt.desc, tt.got, tt.want)
		}
	}
}

func TestParsers(t *testing.T) {
	if blk, data, err := ParseData([]byte("\x00\x03\x00\x02abc")); err != nil || blk != 2 || string(data) != "abc" {
		t.Errorf("ParseData = %d %q %v", blk, data, err)
	}
	if _, _, err := ParseData([]byte("\x00\x03\x00")); err != ErrShortPacket {
		t.Errorf("ParseData(short) err = %v", err)
	}
	if _, _, err := ParseData([]byte("\x00\x04\x00\x01")); err != ErrOpcode {
		t.Errorf("ParseData(ACK) err = %v", err)
	}
	if blk, err := ParseAck([]byte("\x00\x04\xff\xfe\x00\x00")); err != nil || blk != 0xfffe {
		t.Errorf("ParseAck(padded) = %d %v", blk, err)
	}
	if _, err := ParseAck([]byte("\x00\x04\x01")); err != ErrShortPacket {
		t.Errorf("ParseAck(short) err = %v", err)
	}
	if code, msg, err := ParseError([]byte("\x00\x05\x00\x08nope\x00junk")); err != nil || code != 8 || msg != "nope" {
		t.Errorf("ParseError = %d %q %v", code, msg, err)
	}
	if code, msg, err := ParseError([]byte("\x00\x05\x00\x00cut")); err != nil || code != 0 || msg != "cut" {
		t.Errorf("ParseError(unterminated) = %d %q %v", code, msg, err)
	}
	if opts, err := ParseOACK([]byte("\x00\x06tsize\x0042\x00")); err != nil || !reflect.DeepEqual(opts, []Option{{"tsize", "42"}}) {
		t.Errorf("ParseOACK = %v %v", opts, err)
	}
	if _, err := ParseOACK([]byte("\x00\x06tsize\x0042")); err != ErrUnterminated {
		t.Errorf("ParseOACK(unterminated) err = %v", err)
	}
}

func TestCleanName(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"pxelinux.0", "pxelinux.0", true},
		{"/pxelinux.0", "pxelinux.0", true},
		{"//boot/x", "boot/x", true},
		{"boot/./x", "boot/./x", true},
		{"..x", "..x", true},
		{"x..", "x..", true},
		{"../etc/passwd", "", false},
		{"/../x", "", false},
		{"a/../../x", "", false},
		{"a/../b", "", false},
		{"..", "", false},
		{"/..", "", false},
		{"a/..", "", false},
		{"/", "", false},
		{"boot/", "", false},
	}
	for _, tt := range tests {
		got, ok := cleanName(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("cleanName(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

// FuzzParseRequest checks that ParseRequest never panics and that what it accepts survives
// a round trip through AppendRequest unchanged.
func FuzzParseRequest(f *testing.F) {
	f.Add([]byte("\x00\x01pxelinux.0\x00octet\x00"))
	f.Add([]byte("\x00\x01f\x00octet\x00tsize\x000\x00blksize\x001468\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRequest(b)
		if err != nil {
			return
		}
		if r.Op != OpRRQ && r.Op != OpWRQ || r.Filename == "" || r.Mode == "" {
			t.Fatalf("accepted %+v", r)
		}
		r2, err := ParseRequest(AppendRequest(nil, r))
		if err != nil {
			t.Fatalf("round trip of %+v: %v", r, err)
		}
		if !reflect.DeepEqual(r, r2) {
			t.Fatalf("round trip: %+v became %+v", r, r2)
		}
		if name, ok := cleanName(r.Filename); ok {
			if name == "" || name[0] == '/' || name == ".." || bytes.Contains([]byte("/"+name+"/"), []byte("/../")) {
				t.Fatalf("cleanName(%q) = %q", r.Filename, name)
			}
		}
	})
}

// FuzzParsePacket runs the other parsers over any bytes: they must not panic.
func FuzzParsePacket(f *testing.F) {
	f.Add([]byte("\x00\x03\x00\x01abc"))
	f.Add([]byte("\x00\x04\x00\x01"))
	f.Add([]byte("\x00\x05\x00\x01File not found\x00"))
	f.Add([]byte("\x00\x06blksize\x00512\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if blk, data, err := ParseData(b); err == nil && !bytes.Equal(AppendData(nil, blk, data), b) {
			t.Fatalf("DATA round trip of %q", b)
		}
		if blk, err := ParseAck(b); err == nil && !bytes.Equal(AppendAck(nil, blk), b[:4]) {
			t.Fatalf("ACK round trip of %q", b)
		}
		ParseError(b)
		if opts, err := ParseOACK(b); err == nil {
			if got, err := ParseOACK(AppendOACK(nil, opts)); err != nil || !reflect.DeepEqual(got, opts) {
				t.Fatalf("OACK round trip of %q: %v %v", b, got, err)
			}
		}
	})
}
