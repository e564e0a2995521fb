package dhcp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// BOOTP header layout (RFC 951, RFC 2131 §2): a fixed 236-byte header, then the options
// area, which for DHCP starts with the 4-byte magic cookie.
const (
	headerLen  = 236
	cookieLen  = 4
	chaddrLen  = 16
	snameLen   = 64
	fileLen    = 128
	optionsOff = headerLen + cookieLen
)

// magicCookie opens the options area of every DHCP message (RFC 2131 §3).
var magicCookie = [cookieLen]byte{99, 130, 83, 99}

// BOOTP op codes.
const (
	OpRequest = 1 // BOOTREQUEST, client to server
	OpReply   = 2 // BOOTREPLY, server to client
)

// Sentinel errors, wrapped with details by [Parse] and [Message.Append]; match with errors.Is.
var (
	// ErrShort reports a payload shorter than the BOOTP header plus the magic cookie.
	ErrShort = errors.New("message too short")
	// ErrBadCookie reports an options area that does not start with 99.130.83.99.
	ErrBadCookie = errors.New("bad magic cookie")
	// ErrBadOption reports an option that is truncated, too long or has a bad length.
	ErrBadOption = errors.New("bad option")
	// ErrBadAddr reports an address field that is neither IPv4 nor unset.
	ErrBadAddr = errors.New("bad address")
)

// Option is one DHCP option (RFC 2132) other than pad (0) and end (255).
type Option struct {
	// Code is the option tag, 1 to 254.
	Code uint8
	// Data is the option payload, at most 255 bytes.
	Data []byte
}

// Message is a BOOTP/DHCP message. Address fields are IPv4 (0.0.0.0 when unset); fixed-size
// fields keep their on-wire size so that a parsed message appends back unchanged.
type Message struct {
	// Op is OpRequest or OpReply.
	Op uint8
	// HType is the hardware address type, 1 for Ethernet.
	HType uint8
	// HLen is the hardware address length, 6 for Ethernet.
	HLen uint8
	// Hops is incremented by relay agents.
	Hops uint8
	// XID is the transaction id chosen by the client and echoed in replies.
	XID uint32
	// Secs is the time in seconds since the client began acquiring an address.
	Secs uint16
	// Flags holds the broadcast flag (bit 15).
	Flags uint16
	// CIAddr is the client's current address, set when it is renewing.
	CIAddr netip.Addr
	// YIAddr is the address the server offers or assigns ("your" address).
	YIAddr netip.Addr
	// SIAddr is the address of the next server to use (here always the router).
	SIAddr netip.Addr
	// GIAddr is the relay agent address.
	GIAddr netip.Addr
	// CHAddr is the client hardware address, its first HLen bytes significant.
	CHAddr [chaddrLen]byte
	// SName is the optional NUL-terminated server host name.
	SName [snameLen]byte
	// File is the optional NUL-terminated boot file name.
	File [fileLen]byte
	// Options are the options in wire order, without pad and end.
	Options []Option
}

// Parse decodes a BOOTP message with the DHCP magic cookie. Options end at an end option
// (255) or at the end of b; pads (0) are skipped; a truncated option is ErrBadOption.
// Option overload (52) is not followed: sname and file are returned as raw bytes.
// The message does not alias b.
func Parse(b []byte) (*Message, error) {
	if len(b) < optionsOff {
		return nil, fmt.Errorf("dhcp: %d bytes, want at least %d: %w", len(b), optionsOff, ErrShort)
	}
	if [cookieLen]byte(b[headerLen:optionsOff]) != magicCookie {
		return nil, fmt.Errorf("dhcp: cookie % x: %w", b[headerLen:optionsOff], ErrBadCookie)
	}
	m := &Message{
		Op:     b[0],
		HType:  b[1],
		HLen:   b[2],
		Hops:   b[3],
		XID:    binary.BigEndian.Uint32(b[4:8]),
		Secs:   binary.BigEndian.Uint16(b[8:10]),
		Flags:  binary.BigEndian.Uint16(b[10:12]),
		CIAddr: netip.AddrFrom4([4]byte(b[12:16])),
		YIAddr: netip.AddrFrom4([4]byte(b[16:20])),
		SIAddr: netip.AddrFrom4([4]byte(b[20:24])),
		GIAddr: netip.AddrFrom4([4]byte(b[24:28])),
		CHAddr: [chaddrLen]byte(b[28:44]),
		SName:  [snameLen]byte(b[44:108]),
		File:   [fileLen]byte(b[108:236]),
	}
	opts, err := parseOptions(b[optionsOff:])
	if err != nil {
		return nil, err
	}
	m.Options = opts
	return m, nil
}

// parseOptions splits an options area (after the cookie) into options. The data of all
// options shares one copy of area.
func parseOptions(area []byte) ([]Option, error) {
	area = append([]byte(nil), area...)
	var opts []Option
	for i := 0; i < len(area); {
		code := area[i]
		switch code {
		case optPad:
			i++
			continue
		case optEnd:
			return opts, nil
		}
		off := optionsOff + i
		if i+1 >= len(area) {
			return nil, fmt.Errorf("dhcp: option %d at offset %d: no length byte: %w", code, off, ErrBadOption)
		}
		n := int(area[i+1])
		start := i + 2
		if start+n > len(area) {
			return nil, fmt.Errorf("dhcp: option %d at offset %d: length %d, only %d bytes left: %w",
				code, off, n, len(area)-start, ErrBadOption)
		}
		opts = append(opts, Option{Code: code, Data: area[start : start+n : start+n]})
		i = start + n
	}
	return opts, nil
}

// Option returns the data of the last instance of option code, as slirp reads it (a repeated
// option overrides the earlier one rather than being concatenated as in RFC 3396).
func (m *Message) Option(code uint8) (data []byte, ok bool) {
	for i := len(m.Options) - 1; i >= 0; i-- {
		if m.Options[i].Code == code {
			return m.Options[i].Data, true
		}
	}
	return nil, false
}

// Append appends the encoded message to b: header, magic cookie, the options in order and an
// end option, without padding. It fails on a non-IPv4 address, a pad or end option in
// Options, or option data longer than 255 bytes.
func (m *Message) Append(b []byte) ([]byte, error) {
	var addrs [4][4]byte
	for i, f := range []struct {
		name string
		a    netip.Addr
	}{{"ciaddr", m.CIAddr}, {"yiaddr", m.YIAddr}, {"siaddr", m.SIAddr}, {"giaddr", m.GIAddr}} {
		a4, err := addrBytes(f.a)
		if err != nil {
			return b, fmt.Errorf("dhcp: %s %v: %w", f.name, f.a, err)
		}
		addrs[i] = a4
	}
	for _, o := range m.Options {
		if o.Code == optPad || o.Code == optEnd {
			return b, fmt.Errorf("dhcp: option %d: pad and end are written by Append: %w", o.Code, ErrBadOption)
		}
		if len(o.Data) > 255 {
			return b, fmt.Errorf("dhcp: option %d: length %d, want at most 255: %w", o.Code, len(o.Data), ErrBadOption)
		}
	}
	b = append(b, m.Op, m.HType, m.HLen, m.Hops)
	b = binary.BigEndian.AppendUint32(b, m.XID)
	b = binary.BigEndian.AppendUint16(b, m.Secs)
	b = binary.BigEndian.AppendUint16(b, m.Flags)
	for _, a := range addrs {
		b = append(b, a[:]...)
	}
	b = append(b, m.CHAddr[:]...)
	b = append(b, m.SName[:]...)
	b = append(b, m.File[:]...)
	b = append(b, magicCookie[:]...)
	for _, o := range m.Options {
		b = append(b, o.Code, byte(len(o.Data)))
		b = append(b, o.Data...)
	}
	return append(b, optEnd), nil
}

// addrBytes returns the 4 bytes of an IPv4 (or IPv4-mapped) address; an unset address is
// 0.0.0.0.
func addrBytes(a netip.Addr) ([4]byte, error) {
	if !a.IsValid() {
		return [4]byte{}, nil
	}
	a = a.Unmap()
	if !a.Is4() {
		return [4]byte{}, ErrBadAddr
	}
	return a.As4(), nil
}
