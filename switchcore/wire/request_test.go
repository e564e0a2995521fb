package wire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// capturedRequest is Debian's vde_plug -D mydescr as captured in
// shared/spec/wire-protocol.md §5.1 (149 bytes).
func capturedRequest() []byte {
	b, _ := hex.DecodeString("cefaedfe" + "03000000" + "00000000" + "0100")
	path := "/tmp/t7/fake.ctl/.27373-00000"
	b = append(b, path...)
	b = append(b, make([]byte, SunPathSize-len(path))...)
	return append(b, "mydescr user=root pid=27373"...)
}

func TestParseCapturedRequest(t *testing.T) {
	b := capturedRequest()
	if len(b) != 149 {
		t.Fatalf("capture is %d bytes", len(b))
	}
	r, err := ParseRequest(b)
	if err != nil {
		t.Fatal(err)
	}
	want := Request{Version: 3, Type: ReqNewControl, Port: 0, Path: "/tmp/t7/fake.ctl/.27373-00000", Description: "mydescr user=root pid=27373"}
	if r != want {
		t.Fatalf("got %+v, want %+v", r, want)
	}
	enc, err := AppendRequest(nil, want)
	if err != nil || !bytes.Equal(enc, b) {
		t.Fatalf("AppendRequest differs from the capture:\n%x\n%x", enc, b)
	}
}

func TestRequestTypeField(t *testing.T) {
	tests := []struct {
		desc  string
		req   Request
		bytes string // bytes 8..11
	}{
		{"any port", Request{Type: ReqNewControl}, "00000000"},
		{"port 7 (QEMU port=7)", Request{Type: ReqNewControl, Port: 7}, "00070000"},
		{"port 300", Request{Type: ReqNewControl, Port: 300}, "002c0100"},
		{"port 0 explicitly", Request{Type: ReqNewPort0}, "01000000"},
	}
	for _, tt := range tests {
		b, err := AppendRequest(nil, tt.req)
		if err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(b[8:12]); got != tt.bytes {
			t.Errorf("%s: type bytes %s, want %s", tt.desc, got, tt.bytes)
		}
		r, err := ParseRequest(b)
		if err != nil || r.Port != tt.req.Port || r.Type != tt.req.Type {
			t.Errorf("%s: round trip %+v, %v", tt.desc, r, err)
		}
	}
}

func TestParseRequestV1(t *testing.T) {
	b, _ := hex.DecodeString("cefaedfe" + "01000000" + "000000000000" + "0100")
	b = append(b, "/tmp/x/.1-0"...)
	b = append(b, make([]byte, V1FixedSize-len(b))...)
	b = append(b, "old"...)
	r, err := ParseRequest(b)
	if err != nil {
		t.Fatal(err)
	}
	if r.Version != 1 || r.Type != ReqNewPort0 || r.Path != "/tmp/x/.1-0" || r.Description != "old" {
		t.Fatalf("v1: %+v", r)
	}
}

func TestParseRequestErrors(t *testing.T) {
	good := capturedRequest()
	mod := func(off int, b ...byte) []byte {
		c := append([]byte(nil), good...)
		copy(c[off:], b)
		return c
	}
	tests := []struct {
		desc string
		in   []byte
		want error
	}{
		{"empty", nil, ErrShortRequest},
		{"short fixed part", good[:100], ErrShortRequest},
		{"wrong magic", mod(0, 0xde, 0xad, 0xbe, 0xef), ErrBadMagic},
		{"version 2", mod(4, 2), &VersionError{}},
		{"version 5", mod(4, 5), &VersionError{}},
		{"request type 5", mod(8, 5), ErrBadType},
		{"family not AF_UNIX", mod(12, 2), ErrBadFamily},
	}
	for _, tt := range tests {
		_, err := ParseRequest(tt.in)
		var ve *VersionError
		if _, isV := tt.want.(*VersionError); isV {
			if !errors.As(err, &ve) {
				t.Errorf("%s: got %v, want a VersionError", tt.desc, err)
			}
			continue
		}
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.desc, err, tt.want)
		}
	}
}

// Version 4 is request_v3 asking for offloads (ours); AppendRequest writes it for Offload.
func TestRequestOffload(t *testing.T) {
	b, err := AppendRequest(nil, Request{Type: ReqNewControl, Port: 3, Path: "/tmp/x", Description: "slirp", Offload: true})
	if err != nil {
		t.Fatal(err)
	}
	if v := hostOrder.Uint32(b[4:8]); v != VersionOffload {
		t.Fatalf("version word %d, want %d", v, VersionOffload)
	}
	r, err := ParseRequest(b)
	if err != nil || !r.Offload || r.Version != VersionOffload || r.Port != 3 || r.Path != "/tmp/x" || r.Description != "slirp" {
		t.Fatalf("ParseRequest: %+v, %v", r, err)
	}
	if r, _ := ParseRequest(capturedRequest()); r.Offload {
		t.Fatal("a v3 request asks for offloads")
	}
}

func TestDescriptionCutAtNUL(t *testing.T) {
	b := append(capturedRequest()[:V3FixedSize], "abc\x00junk"...)
	r, err := ParseRequest(b)
	if err != nil || r.Description != "abc" {
		t.Fatalf("%q %v", r.Description, err)
	}
}

func TestReply(t *testing.T) {
	b, err := AppendReply(nil, "/tmp/t1/sw.ctl/001.6")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := hex.DecodeString("01002f746d702f74312f73772e63746c2f3030312e36")
	want = append(want, make([]byte, SockaddrSize-len(want))...)
	if !bytes.Equal(b, want) {
		t.Fatalf("reply\n%x\nwant\n%x", b, want)
	}
	p, err := ParseReply(b)
	if err != nil || p != "/tmp/t1/sw.ctl/001.6" {
		t.Fatalf("ParseReply: %q %v", p, err)
	}
	if _, err := AppendReply(nil, "/"+strings.Repeat("x", SunPathSize)); err == nil {
		t.Fatal("overlong path accepted")
	}
	if _, err := ParseReply(b[:50]); err == nil {
		t.Fatal("short reply accepted")
	}
}

func FuzzParseRequest(f *testing.F) {
	f.Add(capturedRequest())
	f.Add(capturedRequest()[:V3FixedSize])
	f.Add([]byte{0xce, 0xfa, 0xed, 0xfe, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRequest(b)
		if err != nil {
			return
		}
		if strings.IndexByte(r.Path, 0) >= 0 || strings.IndexByte(r.Description, 0) >= 0 {
			t.Fatalf("NUL kept: %+v", r)
		}
		if r.Version == 3 && len(r.Path) < SunPathSize {
			// What parses must re-encode to a request that parses the same.
			enc, err := AppendRequest(nil, Request{Type: r.Type, Port: r.Port, Path: r.Path, Description: r.Description})
			if err != nil {
				return
			}
			r2, err := ParseRequest(enc)
			if err != nil || r2.Path != r.Path || r2.Port != r.Port || r2.Type != r.Type {
				t.Fatalf("round trip: %+v -> %+v (%v)", r, r2, err)
			}
		}
	})
}

func TestOffloadFits(t *testing.T) {
	tso := Offload{Flags: OffloadNeedsCsum, GSOType: GSOTCPv4, HdrLen: 54, GSOSize: 1448, CsumStart: 34, CsumOffset: 16}
	for _, c := range []struct {
		desc string
		o    Offload
		size int
		want bool
	}{
		{"a TSO packet", tso, 20000, true},
		{"TSO with ECN", Offload{Flags: OffloadNeedsCsum, GSOType: GSOTCPv6 | GSOECN, HdrLen: 74, GSOSize: 1428, CsumStart: 54, CsumOffset: 16}, 9000, true},
		{"hdr_len 0 (a hint)", Offload{Flags: OffloadNeedsCsum, GSOType: GSOTCPv4, GSOSize: 1448, CsumStart: 34, CsumOffset: 16}, 9000, true},
		{"a checksum to do", Offload{Flags: OffloadNeedsCsum, CsumStart: 34, CsumOffset: 16}, 100, true},
		{"checksum field past the end", Offload{Flags: OffloadNeedsCsum, CsumStart: 90, CsumOffset: 16}, 100, false},
		{"GSO without NEEDS_CSUM", Offload{GSOType: GSOTCPv4, HdrLen: 54, GSOSize: 1448}, 20000, false},
		{"segment size 0", Offload{Flags: OffloadNeedsCsum, GSOType: GSOTCPv4, HdrLen: 54, CsumStart: 34, CsumOffset: 16}, 20000, false},
		{"headers longer than the packet", Offload{Flags: OffloadNeedsCsum, GSOType: GSOTCPv4, HdrLen: 200, GSOSize: 1448, CsumStart: 34, CsumOffset: 16}, 100, false},
		{"UDP GSO (not offered)", Offload{Flags: OffloadNeedsCsum, GSOType: GSOUDP, HdrLen: 42, GSOSize: 1400, CsumStart: 34, CsumOffset: 6}, 20000, false},
		{"unknown GSO type", Offload{Flags: OffloadNeedsCsum, GSOType: 9, HdrLen: 42, GSOSize: 1400, CsumStart: 34, CsumOffset: 6}, 20000, false},
		{"ECN alone", Offload{Flags: OffloadNeedsCsum, GSOType: GSOECN, CsumStart: 34, CsumOffset: 16}, 100, false},
	} {
		if got := c.o.Fits(c.size); got != c.want {
			t.Errorf("%s: Fits(%d) = %v, want %v", c.desc, c.size, got, c.want)
		}
	}
}
