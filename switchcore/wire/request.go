// Package wire is the VDE wire protocol on both sides of a switch: the control request and
// reply, the datagram data channel with batched I/O, and the client dialer. It is the leaf
// package every other package may import; it imports none of ours.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// Sizes and constants of the control protocol (shared/spec/wire-protocol.md §3-§4).
const (
	// Magic opens every request (host order on the wire).
	Magic = 0xfeedface
	// Version3 is the request version every current client sends.
	Version3 = 3
	// VersionOffload is request_v3's layout with version 4: ours only. The client asks for
	// a data channel with offloads: every datagram, both ways, is a 12-byte virtio_net_hdr
	// (OffloadHdrLen) and a packet of up to MaxPacket bytes, which may be a GSO packet or
	// have its checksum left to do. A switch that does not know it (Debian's) logs
	// "Request for a version 4 port" and closes the connection: the client asks again
	// with version 3 (Dial).
	VersionOffload = 4
	// ReqNewControl asks for a normal endpoint on any or a given port.
	ReqNewControl = 0
	// ReqNewPort0 asks for an endpoint on the reserved port 0.
	ReqNewPort0 = 1
	// SockaddrSize is the size of struct sockaddr_un: the reply is exactly this long.
	SockaddrSize = 110
	// SunPathSize is the size of sockaddr_un.sun_path.
	SunPathSize = 108
	// V3FixedSize is the fixed part of request_v3 (magic, version, type, sockaddr_un).
	V3FixedSize = 122
	// V1FixedSize is the fixed part of request_v1 (magic, type, addr[6], sockaddr_un).
	V1FixedSize = 124
	// MaxRequestSize caps what a switch reads for one request (fixed part plus description).
	MaxRequestSize = 250
	// MaxDescription is the longest description vdeplug4 sends.
	MaxDescription = 127
)

// Errors of request decoding; the switch logs them and closes the control connection.
var (
	ErrShortRequest = errors.New("request too short")
	ErrBadMagic     = errors.New("V0 request not supported")
	ErrBadType      = errors.New("bad request type")
	ErrBadFamily    = errors.New("request socket family is not AF_UNIX")
	ErrPathTooLong  = errors.New("data socket path longer than sun_path")
)

// VersionError reports a request version the switch does not speak.
type VersionError struct{ Version uint32 }

func (e *VersionError) Error() string {
	return fmt.Sprintf("Request for a version %d port, which this vde_switch doesn't support", e.Version)
}

// Request is a decoded control request.
type Request struct {
	// Version is 3 for request_v3 (4 for VersionOffload) or 1 for the legacy request_v1.
	Version int
	// Offload says the client asked for a data channel with offloads (VersionOffload).
	Offload bool
	// Type is ReqNewControl or ReqNewPort0.
	Type int
	// Port is the port asked for (bits 8..31 of type); 0 means any port. Always 0 for v1.
	Port int
	// Path is the client's bound data socket the switch must connect to.
	Path string
	// Description is the free text shown by port/print (cut at the first NUL).
	Description string
}

var hostOrder = binary.NativeEndian

// ParseRequest decodes a request_v3 or request_v1 as the C switch tells them apart: the
// 32-bit word at offset 4 is 3 for v3, 0 or 1 for a v1 type, anything else is refused.
func ParseRequest(b []byte) (Request, error) {
	var r Request
	if len(b) < 8 {
		return r, ErrShortRequest
	}
	if hostOrder.Uint32(b[0:4]) != Magic {
		return r, ErrBadMagic
	}
	word := hostOrder.Uint32(b[4:8])
	var sun []byte
	var rest []byte
	switch {
	case word == Version3 || word == VersionOffload:
		if len(b) < V3FixedSize {
			return r, ErrShortRequest
		}
		typ := int32(hostOrder.Uint32(b[8:12]))
		r.Version, r.Offload = int(word), word == VersionOffload
		r.Type = int(typ & 0xff)
		r.Port = int(typ >> 8)
		sun = b[12:V3FixedSize]
		rest = b[V3FixedSize:]
	case word == 0 || word == 1:
		if len(b) < V1FixedSize {
			return r, ErrShortRequest
		}
		r.Version = 1
		r.Type = int(word)
		sun = b[14:V1FixedSize]
		rest = b[V1FixedSize:]
	default:
		return r, &VersionError{Version: word}
	}
	if r.Type != ReqNewControl && r.Type != ReqNewPort0 {
		return r, fmt.Errorf("%w : %d", ErrBadType, r.Type)
	}
	path, err := parseSockaddr(sun)
	if err != nil {
		return r, err
	}
	r.Path = path
	if i := strings.IndexByte(string(rest), 0); i >= 0 {
		rest = rest[:i]
	}
	r.Description = string(rest)
	return r, nil
}

// AppendRequest appends the v3 encoding of r (its Version is ignored; version 4,
// VersionOffload, if r.Offload) to dst: the fixed 122 bytes and the description without a
// NUL, as vdeplug4 sends it.
func AppendRequest(dst []byte, r Request) ([]byte, error) {
	if len(r.Path) >= SunPathSize {
		return dst, fmt.Errorf("%w: %s", ErrPathTooLong, r.Path)
	}
	dst = hostOrder.AppendUint32(dst, Magic)
	version := uint32(Version3)
	if r.Offload {
		version = VersionOffload
	}
	dst = hostOrder.AppendUint32(dst, version)
	dst = hostOrder.AppendUint32(dst, uint32(int32(r.Port)<<8|int32(r.Type&0xff)))
	dst = appendSockaddr(dst, r.Path)
	d := r.Description
	if len(d) > MaxDescription {
		d = d[:MaxDescription]
	}
	return append(dst, d...), nil
}

// AppendReply appends the 110-byte reply naming the switch-side data socket.
func AppendReply(dst []byte, path string) ([]byte, error) {
	if len(path) >= SunPathSize {
		return dst, fmt.Errorf("%w: %s", ErrPathTooLong, path)
	}
	return appendSockaddr(dst, path), nil
}

// ParseReply decodes the switch's reply into the path of its data socket.
func ParseReply(b []byte) (string, error) {
	if len(b) < SockaddrSize {
		return "", fmt.Errorf("reply is %d bytes, want %d", len(b), SockaddrSize)
	}
	return parseSockaddr(b[:SockaddrSize])
}

func appendSockaddr(dst []byte, path string) []byte {
	dst = hostOrder.AppendUint16(dst, 1) // AF_UNIX
	n := len(dst)
	dst = append(dst, path...)
	for len(dst)-n < SunPathSize {
		dst = append(dst, 0)
	}
	return dst
}

func parseSockaddr(sun []byte) (string, error) {
	if hostOrder.Uint16(sun[0:2]) != 1 {
		return "", ErrBadFamily
	}
	p := sun[2:]
	if i := strings.IndexByte(string(p), 0); i >= 0 {
		p = p[:i]
	}
	return string(p), nil
}
