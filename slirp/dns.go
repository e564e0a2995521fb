package slirp

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The DNS proxy relays queries as they are; it only checks that what a guest sends to
// 10.0.2.3:53 is a DNS query at all, so that junk is logged and dropped here rather than
// sent to the host's nameserver.

// ErrDNSQuery is a UDP payload to the DNS proxy that is not a well-formed query.
var ErrDNSQuery = errors.New("not a DNS query")

const dnsHeaderSize = 12

// checkDNSQuery checks the header and the question section of a DNS message: QR clear
// (a query), at least one question, and every question name made of labels of at most
// 63 bytes, 255 in all, within the message.
func checkDNSQuery(b []byte) error {
	if len(b) < dnsHeaderSize {
		return fmt.Errorf("%w: %d bytes, shorter than a header", ErrDNSQuery, len(b))
	}
	if b[2]&0x80 != 0 {
		return fmt.Errorf("%w: QR set (a response)", ErrDNSQuery)
	}
	qd := int(binary.BigEndian.Uint16(b[4:6]))
	if qd == 0 {
		return fmt.Errorf("%w: no question", ErrDNSQuery)
	}
	off := dnsHeaderSize
	for q := 0; q < qd; q++ {
		n, err := skipName(b, off)
		if err != nil {
			return fmt.Errorf("%w: question %d: %v", ErrDNSQuery, q+1, err)
		}
		off = n + 4 // type and class
		if off > len(b) {
			return fmt.Errorf("%w: question %d: cut short", ErrDNSQuery, q+1)
		}
	}
	return nil
}

// skipName returns the offset after the name at off; a compression pointer ends it.
func skipName(b []byte, off int) (int, error) {
	total := 0
	for {
		if off >= len(b) {
			return 0, errors.New("name runs past the end")
		}
		l := int(b[off])
		switch {
		case l == 0:
			return off + 1, nil
		case l&0xc0 == 0xc0:
			if off+2 > len(b) {
				return 0, errors.New("compression pointer cut short")
			}
			if int(binary.BigEndian.Uint16(b[off:])&0x3fff) >= off {
				return 0, errors.New("compression pointer points forward")
			}
			return off + 2, nil
		case l > 63:
			return 0, fmt.Errorf("label of %d bytes", l)
		}
		total += l + 1
		if total > 255 {
			return 0, errors.New("name longer than 255 bytes")
		}
		off += l + 1
	}
}
