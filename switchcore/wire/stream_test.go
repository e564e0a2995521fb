package wire

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// The 23-byte broadcast frame captured from Debian's vde_plug stdout
// (shared/spec/wire-protocol.md §10).
var capturedStream = mustHexW("0017ffffffffffff02000000000c080068656c6c6f2d766465")

func mustHexW(s string) []byte {
	b := make([]byte, len(s)/2)
	for i := range b {
		var v byte
		for _, c := range s[2*i : 2*i+2] {
			v <<= 4
			switch {
			case c >= '0' && c <= '9':
				v |= byte(c - '0')
			default:
				v |= byte(c-'a') + 10
			}
		}
		b[i] = v
	}
	return b
}

func TestStreamCapture(t *testing.T) {
	frame := capturedStream[2:]
	if got := AppendStreamFrame(nil, frame); !bytes.Equal(got, capturedStream) {
		t.Fatalf("encode: %x", got)
	}
	d := NewStreamDecoder(bytes.NewReader(capturedStream))
	f, err := d.Next()
	if err != nil || !bytes.Equal(f, frame) {
		t.Fatalf("decode: %x %v", f, err)
	}
	if _, err := d.Next(); err != io.EOF {
		t.Fatalf("end: %v", err)
	}
}

// Any split of the input gives the same frames: one byte at a time splits every header.
func TestStreamSplitReads(t *testing.T) {
	var in []byte
	var want [][]byte
	for i, n := range []int{14, 0, 60, 1514, 9234, 15} {
		f := bytes.Repeat([]byte{byte(i + 1)}, n)
		in = AppendStreamFrame(in, f)
		if n > 0 {
			want = append(want, f)
		}
	}
	for _, r := range []io.Reader{bytes.NewReader(in), iotest.OneByteReader(bytes.NewReader(in)), iotest.HalfReader(bytes.NewReader(in))} {
		d := NewStreamDecoder(r)
		for i, w := range want {
			f, err := d.Next()
			if err != nil || !bytes.Equal(f, w) {
				t.Fatalf("frame %d: %d bytes, %v", i, len(f), err)
			}
		}
		if _, err := d.Next(); err != io.EOF {
			t.Fatalf("end: %v", err)
		}
	}
}

func TestStreamErrors(t *testing.T) {
	tests := []struct {
		desc string
		in   []byte
		want error
	}{
		{"impossible length", []byte{0xff, 0xff, 1, 2, 3}, ErrStreamLength},
		{"EOF inside a frame", []byte{0, 20, 1, 2, 3}, io.ErrUnexpectedEOF},
		{"EOF inside a header", []byte{0}, io.ErrUnexpectedEOF},
		{"empty", nil, io.EOF},
	}
	for _, tt := range tests {
		_, err := NewStreamDecoder(bytes.NewReader(tt.in)).Next()
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.desc, err, tt.want)
		}
	}
}

func TestStreamEndpointBatches(t *testing.T) {
	var out bytes.Buffer
	s := NewStream(bytes.NewReader(append(append([]byte(nil), capturedStream...), capturedStream...)), &out, nil)
	bufs := [][]byte{make([]byte, MaxFrame), make([]byte, MaxFrame), make([]byte, MaxFrame)}
	sizes := make([]int, 3)
	n, err := s.ReadBatch(bufs, sizes)
	if err != nil || n != 2 || sizes[0] != 23 || sizes[1] != 23 {
		t.Fatalf("ReadBatch: %d %v %v", n, sizes, err)
	}
	if _, err := s.WriteBatch([][]byte{capturedStream[2:], make([]byte, MaxStreamFrame+1)}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), capturedStream) {
		t.Fatalf("WriteBatch wrote %x", out.Bytes())
	}
}

func FuzzStreamDecoder(f *testing.F) {
	f.Add(capturedStream)
	f.Add([]byte{0, 0, 0, 1, 'x', 0xff})
	f.Add([]byte{0x24, 0x14})
	f.Fuzz(func(t *testing.T, in []byte) {
		d := NewStreamDecoder(iotest.HalfReader(bytes.NewReader(in)))
		total := 0
		for {
			fr, err := d.Next()
			if err != nil {
				return
			}
			if len(fr) == 0 || len(fr) > MaxStreamFrame {
				t.Fatalf("frame of %d bytes", len(fr))
			}
			total += 2 + len(fr)
			if total > len(in) {
				t.Fatalf("decoded more than the input")
			}
		}
	})
}

func TestParseVDEArg(t *testing.T) {
	tests := []struct {
		in   string
		want VDEArg
		err  bool
	}{
		{"/tmp/sw.ctl", VDEArg{Path: "/tmp/sw.ctl"}, false},
		{"/tmp/sw.ctl[5]", VDEArg{Path: "/tmp/sw.ctl", Port: 5}, false},
		{"/tmp/sw.ctl[0]", VDEArg{Path: "/tmp/sw.ctl", Port0: true}, false},
		{"/tmp/t5/a.ctl[port=4/mode=660/group=0]", VDEArg{Path: "/tmp/t5/a.ctl", Port: 4, Mode: 0660, HasMode: true, HasGroup: true}, false},
		{"/tmp/a.ctl[p=7/m=600]", VDEArg{Path: "/tmp/a.ctl", Port: 7, Mode: 0600, HasMode: true}, false},
		{"/tmp/a.ctl[foo]", VDEArg{Path: "/tmp/a.ctl", Portgroup: "foo"}, false},
		{"'/tmp/we[ird'[3]", VDEArg{Path: "/tmp/we[ird", Port: 3}, false},
		{"/tmp/sp%20ace.ctl", VDEArg{Path: "/tmp/sp ace.ctl"}, false},
		{"", VDEArg{}, false},
		{"/tmp/a.ctl[vlan=3]", VDEArg{}, true},
		{"/tmp/a.ctl[mode=9]", VDEArg{}, true},
	}
	for _, tt := range tests {
		got, err := ParseVDEArg(tt.in)
		if (err != nil) != tt.err {
			t.Errorf("%q: error %v", tt.in, err)
			continue
		}
		if !tt.err && got != tt.want {
			t.Errorf("%q: got %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"/tmp/a[port=4/mode=660]", "'x'[\"3\"]", "%41%4", "a]b[c", "udp://1->h:2", "2000->hostb:3000", "[]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ParseVDEArg(s)
		ParseUDPArg(s)
		SplitCommand(s)
	})
}

func TestParseUDPArg(t *testing.T) {
	for in, want := range map[string][2]string{
		`"2000->hostb:3000"`:      {":2000", "hostb:3000"},
		"127.0.0.1:5->10.0.0.1:6": {"127.0.0.1:5", "10.0.0.1:6"},
	} {
		s, d, err := ParseUDPArg(in)
		if err != nil || s != want[0] || d != want[1] {
			t.Errorf("%s: %q %q %v", in, s, d, err)
		}
	}
	if _, _, err := ParseUDPArg("2000"); err == nil || !strings.Contains(err.Error(), "->") {
		t.Errorf("missing arrow: %v", err)
	}
}

func TestSplitCommand(t *testing.T) {
	got := SplitCommand(`ssh -i 'my key' host "vde_plug /tmp/x"  a\ b`)
	want := []string{"ssh", "-i", "my key", "host", "vde_plug /tmp/x", "a b"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("%q", got)
	}
}
