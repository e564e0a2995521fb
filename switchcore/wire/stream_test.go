package wire

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
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

// FuzzParseURL: the vde://, udp:// and cmd:// arguments of any string. Nothing panics; a
// path written with every byte %XX-escaped comes back whole, also followed by a port;
// cmd:// words come back the same when written again with single quotes, and a line
// without quotes or backslashes is its space- and tab-separated fields.
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"/tmp/a[port=4/mode=660]", "'x'[\"3\"]", "%41%4", "a]b[c", "udp://1->h:2", "2000->hostb:3000", "[]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ParseVDEArg(s)
		ParseUDPArg(s)

		var esc strings.Builder
		for i := 0; i < len(s); i++ {
			fmt.Fprintf(&esc, "%%%02X", s[i])
		}
		if a, err := ParseVDEArg(esc.String()); err != nil || a != (VDEArg{Path: s}) {
			t.Fatalf("ParseVDEArg(%q) = %+v, %v; want the path %q", esc.String(), a, err, s)
		}
		if a, err := ParseVDEArg(esc.String() + "[7]"); err != nil || a != (VDEArg{Path: s, Port: 7}) {
			t.Fatalf("ParseVDEArg(%q) = %+v, %v; want the path %q and port 7", esc.String()+"[7]", a, err, s)
		}

		words := SplitCommand(s)
		quoted := make([]string, len(words))
		for i, w := range words {
			quoted[i] = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
		}
		if again := SplitCommand(strings.Join(quoted, " \t")); !slices.Equal(again, words) {
			t.Fatalf("SplitCommand(%q) = %q, quoted again %q", s, words, again)
		}
		if !strings.ContainsAny(s, `'"\`) {
			fields := strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '\t' })
			if !slices.Equal(words, fields) {
				t.Fatalf("SplitCommand(%q) = %q, want %q", s, words, fields)
			}
		}
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

// chunkReader hands out its data in reads of the sizes given, in turn.
type chunkReader struct {
	data  []byte
	sizes []byte
	i     int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := 1
	if len(r.sizes) > 0 {
		n = int(r.sizes[r.i%len(r.sizes)])*37 + 1 // up to a few KiB, so frames straddle reads
		r.i++
	}
	n = min(n, len(p), len(r.data))
	copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

// FuzzStreamRoundTrip: frames a Stream writes come back whole and in order from a Stream
// reading the bytes in reads of any sizes, except the empty ones and those longer than
// MaxStreamFrame, which are not sent; ReadBatch never reports zero frames without an error.
// The input is records of a 2-byte size, a length byte n and n bytes of the frame
// (padded with zeros to the size), then the read sizes.
func FuzzStreamRoundTrip(f *testing.F) {
	f.Add([]byte{0, 5, 5, 'h', 'e', 'l', 'l', 'o', 0x24, 0x14, 1, 0xff, 0, 0, 0}, []byte{0})
	f.Add([]byte{0x24, 0x15, 0, 0, 14, 0}, []byte{1, 200, 3})
	f.Fuzz(func(t *testing.T, in, reads []byte) {
		var frames, want [][]byte
		for len(in) >= 3 && len(frames) < 64 {
			size, n := int(in[0])<<8|int(in[1]), min(int(in[2]), len(in)-3)
			fr := make([]byte, size)
			copy(fr, in[3:3+n])
			in = in[3+n:]
			frames = append(frames, fr)
			if size > 0 && size <= MaxStreamFrame {
				want = append(want, fr)
			}
		}
		var out bytes.Buffer
		if n, err := NewStream(nil, &out, nil).WriteBatch(frames); n != len(frames) || err != nil {
			t.Fatalf("WriteBatch: %d of %d, %v", n, len(frames), err)
		}
		s := NewStream(&chunkReader{data: out.Bytes(), sizes: reads}, nil, nil)
		bufs := make([][]byte, 8)
		for i := range bufs {
			bufs[i] = make([]byte, MaxStreamFrame)
		}
		sizes := make([]int, len(bufs))
		var got [][]byte
		for {
			n, err := s.ReadBatch(bufs, sizes)
			if err != nil {
				if err != io.EOF {
					t.Fatalf("ReadBatch after %d frames: %v", len(got), err)
				}
				break
			}
			if n == 0 {
				t.Fatal("ReadBatch: no frames and no error")
			}
			for i := 0; i < n; i++ {
				got = append(got, bytes.Clone(bufs[i][:sizes[i]]))
			}
		}
		if len(got) != len(want) {
			t.Fatalf("%d frames back, want %d", len(got), len(want))
		}
		for i := range got {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("frame %d: %d bytes %x..., want %d bytes %x...", i, len(got[i]), got[i][:min(len(got[i]), 20)], len(want[i]), want[i][:min(len(want[i]), 20)])
			}
		}
	})
}
