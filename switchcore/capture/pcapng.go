package capture

import (
	"encoding/binary"
	"io"
	"runtime"
	"unicode/utf8"
)

// The pcapng blocks a capture writes (draft-ietf-opsawg-pcapng), little-endian: one
// Section Header Block, an Interface Description Block per port, an Enhanced Packet Block
// per frame and an Interface Statistics Block per interface at the end. Each block is
// type, total length, body, options (code, length, value padded to 32 bits, ended by
// opt_endofopt) and the total length again. The encoders append to a slice and write
// nothing else, so a writer that reuses its buffer encodes a frame without allocating.
// gopacket's pcapgo wrote these before; it pulled its layers package (6 MB of binary and
// 2.5 ms of init) into every applet.

// Block types.
const (
	blockIDB = 0x00000001 // Interface Description Block
	blockISB = 0x00000005 // Interface Statistics Block
	blockEPB = 0x00000006 // Enhanced Packet Block
	blockSHB = 0x0A0D0D0A // Section Header Block
)

// Option codes, by the block they belong to.
const (
	optEndOfOpt = 0 // every block: ends the options

	optSHBOS       = 3 // shb_os: the operating system that wrote the section
	optSHBUserAppl = 4 // shb_userappl: the program that wrote it

	optIfName        = 2  // if_name
	optIfDescription = 3  // if_description
	optIfTsresol     = 9  // if_tsresol: timestamps' units, 9 is nanoseconds
	optIfOS          = 12 // if_os

	optEPBFlags     = 2 // epb_flags: bits 0-1 are the direction (1 inbound, 2 outbound)
	optEPBDropCount = 4 // epb_dropcount: frames lost between this one and the last

	optISBStartTime = 2 // isb_starttime
	optISBEndTime   = 3 // isb_endtime
	optISBIfRecv    = 4 // isb_ifrecv: frames the interface saw
	optISBIfDrop    = 5 // isb_ifdrop: frames it lost
)

const (
	byteOrderMagic   = 0x1A2B3C4D
	linkTypeEthernet = 1
	tsresolNanos     = 9
	maxOptLen        = 0xFFFF // an option's length field is 16 bits
)

var le = binary.LittleEndian

// pad4 is n rounded up to a multiple of 4.
func pad4(n int) int { return (n + 3) &^ 3 }

// beginBlock appends a block's type and a length filled in by endBlock; start is where
// the block begins.
func beginBlock(b []byte, typ uint32) (_ []byte, start int) {
	start = len(b)
	b = le.AppendUint32(b, typ)
	return le.AppendUint32(b, 0), start
}

// endBlock appends the trailing length and puts it in the header too.
func endBlock(b []byte, start int) []byte {
	n := uint32(len(b) - start + 4)
	le.PutUint32(b[start+4:], n)
	return le.AppendUint32(b, n)
}

// appendOpt appends an option whose value is v, padded to 32 bits.
func appendOpt[T string | []byte](b []byte, code uint16, v T) []byte {
	b = le.AppendUint16(b, code)
	b = le.AppendUint16(b, uint16(len(v)))
	b = append(b, v...)
	return append(b, make([]byte, pad4(len(v))-len(v))...) // the compiler extends b: no allocation
}

// appendOptString appends a UTF-8 option (not NUL-terminated), unless s is empty; a
// string longer than an option holds is cut at a character boundary.
func appendOptString(b []byte, code uint16, s string) []byte {
	if s == "" {
		return b
	}
	if len(s) > maxOptLen {
		i := maxOptLen
		for i > 0 && !utf8.RuneStart(s[i]) {
			i--
		}
		s = s[:i]
	}
	return appendOpt(b, code, s)
}

func appendOptUint32(b []byte, code uint16, v uint32) []byte {
	b = le.AppendUint16(b, code)
	b = le.AppendUint16(b, 4)
	return le.AppendUint32(b, v)
}

func appendOptUint64(b []byte, code uint16, v uint64) []byte {
	b = le.AppendUint16(b, code)
	b = le.AppendUint16(b, 8)
	return le.AppendUint64(b, v)
}

// appendTimestamp appends a timestamp in nanoseconds as pcapng has it: the upper 32 bits,
// then the lower 32.
func appendTimestamp(b []byte, ns int64) []byte {
	b = le.AppendUint32(b, uint32(uint64(ns)>>32))
	return le.AppendUint32(b, uint32(ns))
}

func appendOptTimestamp(b []byte, code uint16, ns int64) []byte {
	b = le.AppendUint16(b, code)
	b = le.AppendUint16(b, 8)
	return appendTimestamp(b, ns)
}

func appendEndOfOpt(b []byte) []byte { return le.AppendUint32(b, optEndOfOpt) }

// appendSHB appends a Section Header Block of version 1.0 and unspecified length (a
// stream's is not known when it starts), naming the operating system and application.
func appendSHB(b []byte, os, app string) []byte {
	b, start := beginBlock(b, blockSHB)
	b = le.AppendUint32(b, byteOrderMagic)
	b = le.AppendUint16(b, 1)          // major version
	b = le.AppendUint16(b, 0)          // minor version
	b = le.AppendUint64(b, ^uint64(0)) // section length: -1, not specified
	n := len(b)
	b = appendOptString(b, optSHBOS, os)
	b = appendOptString(b, optSHBUserAppl, app)
	if len(b) > n {
		b = appendEndOfOpt(b)
	}
	return endBlock(b, start)
}

// appendIDB appends an Interface Description Block for an Ethernet interface keeping
// snaplen bytes of a frame, with nanosecond timestamps; empty names are left out.
func appendIDB(b []byte, snaplen uint32, name, descr, os string) []byte {
	b, start := beginBlock(b, blockIDB)
	b = le.AppendUint16(b, linkTypeEthernet)
	b = le.AppendUint16(b, 0) // reserved
	b = le.AppendUint32(b, snaplen)
	b = appendOptString(b, optIfName, name)
	b = appendOptString(b, optIfDescription, descr)
	b = appendOpt(b, optIfTsresol, []byte{tsresolNanos})
	b = appendOptString(b, optIfOS, os)
	b = appendEndOfOpt(b)
	return endBlock(b, start)
}

// appendEPB appends an Enhanced Packet Block: data (the bytes kept) of a frame of size
// bytes on interface id at ts nanoseconds, in direction dir; drops, when not 0, is how many
// frames of the interface were lost since the last one written.
func appendEPB(b []byte, id uint32, ts int64, dir Direction, drops uint64, data []byte, size int) []byte {
	b, start := beginBlock(b, blockEPB)
	b = le.AppendUint32(b, id)
	b = appendTimestamp(b, ts)
	b = le.AppendUint32(b, uint32(len(data)))
	b = le.AppendUint32(b, uint32(size))
	b = append(b, data...)
	b = append(b, make([]byte, pad4(len(data))-len(data))...)
	b = appendOptUint32(b, optEPBFlags, uint32(dir&3))
	if drops > 0 {
		b = appendOptUint64(b, optEPBDropCount, drops)
	}
	b = appendEndOfOpt(b)
	return endBlock(b, start)
}

// appendISB appends an Interface Statistics Block for interface id at ts: the frames it
// saw (recv) and lost (drop) between start and end, all times in nanoseconds.
func appendISB(b []byte, id uint32, ts, start, end int64, recv, drop uint64) []byte {
	b, bstart := beginBlock(b, blockISB)
	b = le.AppendUint32(b, id)
	b = appendTimestamp(b, ts)
	b = appendOptTimestamp(b, optISBStartTime, start)
	b = appendOptTimestamp(b, optISBEndTime, end)
	b = appendOptUint64(b, optISBIfRecv, recv)
	b = appendOptUint64(b, optISBIfDrop, drop)
	b = appendEndOfOpt(b)
	return endBlock(b, bstart)
}

const (
	// ngBufSize is the writer's buffer: it holds several blocks of the biggest frame.
	ngBufSize = 64 << 10
	// ngFlushAt is how full the buffer may get before the writer writes it out; past it
	// there is still room for an Enhanced Packet Block of Snaplen bytes.
	ngFlushAt = ngBufSize / 2
)

// ngWriter writes one pcapng section to w, gathering blocks in a buffer that flush (or a
// full buffer) writes out.
type ngWriter struct {
	w      io.Writer
	buf    []byte
	ifaces uint32 // interfaces described so far: the next one's id
}

// newNgWriter starts a section written by app; nothing reaches w before a flush.
func newNgWriter(w io.Writer, app string) *ngWriter {
	nw := &ngWriter{w: w, buf: make([]byte, 0, ngBufSize)}
	nw.buf = appendSHB(nw.buf, runtime.GOOS, app)
	return nw
}

// addInterface describes a port's interface and returns its id.
func (nw *ngWriter) addInterface(name, descr string) (id uint32, err error) {
	nw.buf = appendIDB(nw.buf, Snaplen, name, descr, runtime.GOOS)
	id = nw.ifaces
	nw.ifaces++
	return id, nw.spill()
}

// packet writes a frame's Enhanced Packet Block (see appendEPB).
func (nw *ngWriter) packet(id uint32, ts int64, dir Direction, drops uint64, data []byte, size int) error {
	nw.buf = appendEPB(nw.buf, id, ts, dir, drops, data, size)
	return nw.spill()
}

// stats writes an interface's statistics (see appendISB).
func (nw *ngWriter) stats(id uint32, ts, start, end int64, recv, drop uint64) error {
	nw.buf = appendISB(nw.buf, id, ts, start, end, recv, drop)
	return nw.spill()
}

// spill writes the buffer out once it is past ngFlushAt.
func (nw *ngWriter) spill() error {
	if len(nw.buf) < ngFlushAt {
		return nil
	}
	return nw.flush()
}

// flush writes out the blocks gathered.
func (nw *ngWriter) flush() error {
	if len(nw.buf) == 0 {
		return nil
	}
	_, err := nw.w.Write(nw.buf)
	nw.buf = nw.buf[:0]
	return err
}
