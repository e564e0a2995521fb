package capture

import (
	"bytes"
	"encoding/hex"
	"io"
	"runtime"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gopacket/gopacket/pcapgo"
)

// hx reads hex bytes written with spaces, newlines and // comments.
func hx(t *testing.T, s string) []byte {
	t.Helper()
	var clean strings.Builder
	for _, line := range strings.Split(s, "\n") {
		line, _, _ = strings.Cut(line, "//")
		clean.WriteString(strings.Join(strings.Fields(line), ""))
	}
	b, err := hex.DecodeString(clean.String())
	if err != nil {
		t.Fatalf("bad hex in the test: %v", err)
	}
	return b
}

// Each block, byte for byte as draft-ietf-opsawg-pcapng lays it out (little-endian).
func TestBlocks(t *testing.T) {
	const ts = 0x0102030405060708
	for _, c := range []struct {
		desc string
		got  []byte
		want string
	}{{
		desc: "section header: os and application",
		got:  appendSHB(nil, "linux", "vde"),
		want: `0a0d0d0a 34000000 // type, total length 52
			4d3c2b1a 0100 0000 // byte-order magic, version 1.0
			ffffffffffffffff   // section length: not specified
			0300 0500 6c696e7578 000000 // shb_os "linux", padded
			0400 0300 766465 00         // shb_userappl "vde", padded
			0000 0000                   // opt_endofopt
			34000000`,
	}, {
		desc: "section header: no options, so no opt_endofopt",
		got:  appendSHB(nil, "", ""),
		want: `0a0d0d0a 1c000000 4d3c2b1a 0100 0000 ffffffffffffffff 1c000000`,
	}, {
		desc: "interface: name, description, tsresol, os",
		got:  appendIDB(nil, Snaplen, "port1", "ab", "linux"),
		want: `01000000 40000000 // type, total length 64
			0100 0000 12240000 // LINKTYPE_ETHERNET, reserved, snaplen 9234
			0200 0500 706f727431 000000 // if_name "port1"
			0300 0200 6162 0000         // if_description "ab"
			0900 0100 09 000000         // if_tsresol: nanoseconds
			0c00 0500 6c696e7578 000000 // if_os "linux"
			0000 0000
			40000000`,
	}, {
		desc: "interface: empty strings left out",
		got:  appendIDB(nil, 1500, "", "", ""),
		want: `01000000 20000000 0100 0000 dc050000
			0900 0100 09 000000 0000 0000 20000000`,
	}, {
		desc: "packet: inbound, 5 bytes of 60 (padded), no drops",
		got:  appendEPB(nil, 2, ts, In, 0, []byte{0xaa, 0xbb, 0xcc, 0xdd, 0xee}, 60),
		want: `06000000 34000000 // type, total length 52
			02000000           // interface 2
			04030201 08070605  // timestamp: upper 32 bits, lower 32 bits
			05000000 3c000000  // captured 5, original 60
			aabbccddee 000000  // data, padded
			0200 0400 01000000 // epb_flags: inbound
			0000 0000
			34000000`,
	}, {
		desc: "packet: outbound, 7 frames lost before it",
		got:  appendEPB(nil, 0, ts, Out, 7, []byte{1, 2, 3, 4}, 4),
		want: `06000000 3c000000 00000000 04030201 08070605 04000000 04000000
			01020304
			0200 0400 02000000           // epb_flags: outbound
			0400 0800 0700000000000000   // epb_dropcount 7
			0000 0000
			3c000000`,
	}, {
		desc: "interface statistics",
		got:  appendISB(nil, 1, ts, 0x0000000100000002, 0x0000000300000004, 10, 6),
		want: `05000000 4c000000 // type, total length 76
			01000000 04030201 08070605  // interface 1, timestamp
			0200 0800 01000000 02000000 // isb_starttime
			0300 0800 03000000 04000000 // isb_endtime
			0400 0800 0a00000000000000  // isb_ifrecv 10
			0500 0800 0600000000000000  // isb_ifdrop 6
			0000 0000
			4c000000`,
	}} {
		if want := hx(t, c.want); !bytes.Equal(c.got, want) {
			t.Errorf("%s:\n got %x\nwant %x", c.desc, c.got, want)
		}
	}
}

// The encoders append: what the buffer held stays in front.
func TestBlocksAppend(t *testing.T) {
	b := appendEPB([]byte("xyz"), 0, 0, In, 0, nil, 0)
	if string(b[:3]) != "xyz" || len(b) != 3+44 || le.Uint32(b[7:]) != 44 || le.Uint32(b[len(b)-4:]) != 44 {
		t.Errorf("appended to 3 bytes: %x", b)
	}
}

// A string longer than an option holds is cut, at a character boundary.
func TestLongOptionCut(t *testing.T) {
	s := strings.Repeat("é", 40000) // 80000 bytes; 65535 is inside a character
	b := appendOptString(nil, optIfDescription, s)
	n := int(le.Uint16(b[2:]))
	if n != 65534 || len(b) != 4+65536 || !utf8.Valid(b[4:4+n]) {
		t.Errorf("option of %d bytes (value %d, valid %v), want 65534", len(b), n, utf8.Valid(b[4:4+n]))
	}
}

// The writer encodes a frame without allocating, however many it writes.
func TestWriterAllocatesNothing(t *testing.T) {
	nw := newNgWriter(io.Discard, "test")
	id, _ := nw.addInterface("port1", "")
	f := make([]byte, Snaplen)
	if n := testing.AllocsPerRun(1000, func() {
		nw.packet(id, 1, In, 3, f[:61], 61)
		nw.packet(id, 2, Out, 0, f, Snaplen)
	}); n != 0 {
		t.Errorf("packet allocates %v times", n)
	}
	if cap(nw.buf) != ngBufSize {
		t.Errorf("buffer grew to %d", cap(nw.buf))
	}
}

// FuzzWriterRoundTrip: what the writer writes, gopacket's reader reads back the same.
func FuzzWriterRoundTrip(f *testing.F) {
	f.Add("port1", "VDE switch /tmp/sw.mgmt port 1: vm1", []byte("\xff\xff\xff\xff\xff\xff\x02\x00\x00\x00\x00\x01\x08\x00"), 60, uint8(In), uint64(0), int64(1700000000123456789))
	f.Add("", "", []byte{}, 0, uint8(Out), uint64(5), int64(0))
	f.Add("p", "é", []byte{1, 2, 3}, 9000, uint8(3), uint64(1)<<40, int64(1)<<62)
	f.Fuzz(func(t *testing.T, name, descr string, data []byte, extra int, dir uint8, drops uint64, ts int64) {
		if len(data) > Snaplen {
			data = data[:Snaplen]
		}
		if ts < 0 {
			ts = -ts
		}
		if ts < 0 {
			ts = 0
		}
		size := len(data) + max(0, min(extra, 1<<20))
		var out bytes.Buffer
		nw := newNgWriter(&out, "vde_switch test")
		id, err := nw.addInterface(name, descr)
		if err == nil {
			err = nw.packet(id, ts, Direction(dir), drops, data, size)
		}
		if err == nil {
			err = nw.stats(id, ts, 0, ts, 1+drops, drops)
		}
		if err == nil {
			err = nw.flush()
		}
		if err != nil {
			t.Fatal(err)
		}
		var st pcapgo.NgInterfaceStatistics
		r, err := pcapgo.NewNgReader(bytes.NewReader(out.Bytes()), pcapgo.NgReaderOptions{
			StatisticsCallback: func(_ int, s pcapgo.NgInterfaceStatistics) { st = s },
		})
		if err != nil {
			t.Fatalf("reader: %v\n%x", err, out.Bytes())
		}
		got, ci, opts, err := r.ReadPacketDataWithOptions()
		if err != nil {
			t.Fatalf("reader: %v\n%x", err, out.Bytes())
		}
		if !bytes.Equal(got, data) || ci.CaptureLength != len(data) || ci.Length != size || ci.Timestamp.UnixNano() != ts {
			t.Errorf("packet %x %+v, want %x of %d at %d", got, ci, data, size, ts)
		}
		if opts.Flags == nil || uint8(opts.Flags.Direction) != dir&3 {
			t.Errorf("flags %+v, want direction %d", opts.Flags, dir&3)
		}
		if (opts.DropCount != nil) != (drops > 0) || drops > 0 && *opts.DropCount != drops {
			t.Errorf("drop count %v, want %d", opts.DropCount, drops)
		}
		if _, _, err := r.ReadPacketData(); err != io.EOF {
			t.Errorf("after the packet: %v, want EOF", err)
		}
		if st.PacketsReceived != 1+drops || st.PacketsDropped != drops || st.EndTime.UnixNano() != ts {
			t.Errorf("statistics %+v", st)
		}
		i, err := r.Interface(0)
		if err != nil || i.Name != name || i.Description != descr || i.OS != runtime.GOOS ||
			i.SnapLength != Snaplen || i.TimestampResolution != 9 || i.LinkType != 1 {
			t.Errorf("interface %+v, %v; want %q %q", i, err, name, descr)
		}
		if sh := r.SectionInfo(); sh.Application != "vde_switch test" || sh.OS != runtime.GOOS {
			t.Errorf("section %+v", sh)
		}
	})
}

// BenchmarkWriterPacket is the writer goroutine's cost per frame of 60 bytes.
func BenchmarkWriterPacket(b *testing.B) {
	nw := newNgWriter(io.Discard, "test")
	id, _ := nw.addInterface("port1", "")
	f := frameOf(1)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		nw.packet(id, int64(i), In, uint64(i&1), f, len(f))
	}
}
