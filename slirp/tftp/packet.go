// Package tftp is the read-only TFTP server that slirpvde runs at its router address
// (UDP port 69) when started with -t DIR, for PXE and iPXE boots.
//
// It speaks RFC 1350 read requests in octet mode, with the option extension (RFC 2347)
// and the blksize, tsize and timeout options (RFC 2348, RFC 2349) that boot ROMs use.
// Write requests are refused. The server never opens sockets itself: the router gives it
// the port-69 connection and a function that opens a transfer socket towards a peer, so it
// runs unchanged over the kernel (tests) or a gVisor netstack (the router).
//
// This file is the codec: one parser and one builder per packet type, byte-exact with the
// RFCs.
package tftp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
)

// Opcode is the first two bytes of every TFTP packet.
type Opcode uint16

// The TFTP opcodes (RFC 1350, and OACK from RFC 2347).
const (
	OpRRQ   Opcode = 1 // read request
	OpWRQ   Opcode = 2 // write request
	OpDATA  Opcode = 3 // one block of file data
	OpACK   Opcode = 4 // acknowledgement of a block (or of an OACK, as block 0)
	OpERROR Opcode = 5 // error: ends the transfer
	OpOACK  Opcode = 6 // option acknowledgement
)

// ErrorCode is the code carried by an ERROR packet.
type ErrorCode uint16

// The TFTP error codes (RFC 1350, and 8 from RFC 2347).
const (
	CodeNotDefined       ErrorCode = 0 // not defined, see the message
	CodeFileNotFound     ErrorCode = 1 // file not found
	CodeAccessViolation  ErrorCode = 2 // access violation
	CodeDiskFull         ErrorCode = 3 // disk full or allocation exceeded
	CodeIllegalOperation ErrorCode = 4 // illegal TFTP operation
	CodeUnknownTID       ErrorCode = 5 // unknown transfer ID
	CodeFileExists       ErrorCode = 6 // file already exists
	CodeNoSuchUser       ErrorCode = 7 // no such user
	CodeOptionRefused    ErrorCode = 8 // option negotiation refused (RFC 2347)
)

// Parse errors. Parsers wrap nothing: they return these sentinels as they are.
var (
	// ErrShortPacket means the packet ends before its fixed fields do.
	ErrShortPacket = errors.New("tftp: short packet")
	// ErrOpcode means the packet's opcode is not the one (or ones) the parser reads.
	ErrOpcode = errors.New("tftp: unexpected opcode")
	// ErrUnterminated means a string field is missing its terminating NUL.
	ErrUnterminated = errors.New("tftp: unterminated string")
	// ErrEmptyField means a request's filename or mode is empty.
	ErrEmptyField = errors.New("tftp: empty filename or mode")
)

// Option is one name/value pair of a request or an OACK (RFC 2347).
type Option struct {
	// Name is the option name as the peer spelt it; names compare case-insensitively.
	Name string
	// Value is the option value, a string (numbers are in decimal).
	Value string
}

// Request is a parsed RRQ or WRQ.
type Request struct {
	// Op is OpRRQ or OpWRQ.
	Op Opcode
	// Filename is the requested file, exactly as sent.
	Filename string
	// Mode is the transfer mode as sent ("octet", "netascii", "mail"; any case).
	Mode string
	// Options are the RFC 2347 options in the order they were sent.
	Options []Option
}

// Option returns the value of the first option called name (case-insensitively).
func (r Request) Option(name string) (string, bool) {
	for _, o := range r.Options {
		if strings.EqualFold(o.Name, name) {
			return o.Value, true
		}
	}
	return "", false
}

// OpcodeOf returns the opcode of packet b.
func OpcodeOf(b []byte) (Opcode, error) {
	if len(b) < 2 {
		return 0, ErrShortPacket
	}
	return Opcode(binary.BigEndian.Uint16(b)), nil
}

// ParseRequest parses an RRQ or WRQ: opcode, filename NUL, mode NUL, then any number of
// option NUL value NUL pairs. The filename and mode must be terminated and not empty.
// RFC 2347 lets servers ignore options they cannot use, so option parsing is lenient: it
// stops at an empty option name (NUL padding some ROMs append) and drops a trailing
// option whose name or value is cut short.
func ParseRequest(b []byte) (Request, error) {
	op, err := OpcodeOf(b)
	if err != nil {
		return Request{}, err
	}
	if op != OpRRQ && op != OpWRQ {
		return Request{}, ErrOpcode
	}
	r := Request{Op: op}
	rest := b[2:]
	var ok bool
	if r.Filename, rest, ok = cstring(rest); !ok {
		return Request{}, ErrUnterminated
	}
	if r.Mode, rest, ok = cstring(rest); !ok {
		return Request{}, ErrUnterminated
	}
	if r.Filename == "" || r.Mode == "" {
		return Request{}, ErrEmptyField
	}
	r.Options, _ = parseOptions(rest)
	return r, nil
}

// parseOptions reads name/value pairs until b runs out, an empty name appears or a pair
// is cut short; complete reports whether every byte of b belonged to a complete pair.
func parseOptions(b []byte) (opts []Option, complete bool) {
	for len(b) > 0 {
		name, rest, ok := cstring(b)
		if !ok || name == "" {
			return opts, false
		}
		value, rest, ok := cstring(rest)
		if !ok {
			return opts, false
		}
		opts = append(opts, Option{Name: name, Value: value})
		b = rest
	}
	return opts, true
}

// cstring splits a NUL-terminated string off the front of b.
func cstring(b []byte) (s string, rest []byte, ok bool) {
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return "", b, false
	}
	return string(b[:i]), b[i+1:], true
}

// ParseData parses a DATA packet. data aliases b.
func ParseData(b []byte) (block uint16, data []byte, err error) {
	if err := expect(b, OpDATA, 4); err != nil {
		return 0, nil, err
	}
	return binary.BigEndian.Uint16(b[2:]), b[4:], nil
}

// ParseAck parses an ACK packet. Bytes after the block number are ignored, as some
// clients pad their ACKs.
func ParseAck(b []byte) (block uint16, err error) {
	if err := expect(b, OpACK, 4); err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint16(b[2:]), nil
}

// ParseError parses an ERROR packet. An unterminated message is taken as it is, so that
// a peer's complaint is never lost to a missing NUL.
func ParseError(b []byte) (code ErrorCode, msg string, err error) {
	if err := expect(b, OpERROR, 4); err != nil {
		return 0, "", err
	}
	m := b[4:]
	if i := bytes.IndexByte(m, 0); i >= 0 {
		m = m[:i]
	}
	return ErrorCode(binary.BigEndian.Uint16(b[2:])), string(m), nil
}

// ParseOACK parses an OACK packet: option NUL value NUL pairs in order.
func ParseOACK(b []byte) ([]Option, error) {
	if err := expect(b, OpOACK, 2); err != nil {
		return nil, err
	}
	opts, complete := parseOptions(b[2:])
	if !complete {
		return nil, ErrUnterminated
	}
	return opts, nil
}

func expect(b []byte, op Opcode, min int) error {
	got, err := OpcodeOf(b)
	if err != nil {
		return err
	}
	if got != op {
		return ErrOpcode
	}
	if len(b) < min {
		return ErrShortPacket
	}
	return nil
}

// AppendRequest appends r in wire form to b. Strings must not contain NUL bytes.
func AppendRequest(b []byte, r Request) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(r.Op))
	b = appendCString(b, r.Filename)
	b = appendCString(b, r.Mode)
	return appendOptions(b, r.Options)
}

// AppendData appends a DATA packet for block carrying data to b.
func AppendData(b []byte, block uint16, data []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(OpDATA))
	b = binary.BigEndian.AppendUint16(b, block)
	return append(b, data...)
}

// AppendAck appends an ACK packet for block to b.
func AppendAck(b []byte, block uint16) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(OpACK))
	return binary.BigEndian.AppendUint16(b, block)
}

// AppendError appends an ERROR packet with code and msg to b.
func AppendError(b []byte, code ErrorCode, msg string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(OpERROR))
	b = binary.BigEndian.AppendUint16(b, uint16(code))
	return appendCString(b, msg)
}

// AppendOACK appends an OACK packet carrying opts, in order, to b.
func AppendOACK(b []byte, opts []Option) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(OpOACK))
	return appendOptions(b, opts)
}

func appendOptions(b []byte, opts []Option) []byte {
	for _, o := range opts {
		b = appendCString(b, o.Name)
		b = appendCString(b, o.Value)
	}
	return b
}

func appendCString(b []byte, s string) []byte {
	b = append(b, s...)
	return append(b, 0)
}
