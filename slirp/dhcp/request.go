package dhcp

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// errNotEthernetRequest is why a well-formed message is not answered.
var errNotEthernetRequest = errors.New("dhcp: not an Ethernet BOOTREQUEST")

// request is what the server reads from a client message.
type request struct {
	msgType   uint8   // option 53; a plain BOOTP request (no option 53) counts as REQUEST
	requested uint32  // option 50, or ciaddr in a REQUEST; 0 when none
	mac       [6]byte // chaddr
}

// decodeRequest reads the fields slirp's dhcp_decode reads and refuses anything it would not
// answer. Unlike slirp, a badly sized option 53 or 50 is refused instead of half read.
func decodeRequest(m *Message) (request, error) {
	if m.Op != OpRequest || m.HType != 1 || m.HLen != 6 {
		return request{}, fmt.Errorf("%w: op %d htype %d hlen %d", errNotEthernetRequest, m.Op, m.HType, m.HLen)
	}
	r := request{mac: [6]byte(m.CHAddr[:6])}
	explicitType := false
	if d, ok := m.Option(optMessageType); ok {
		if len(d) != 1 {
			return request{}, fmt.Errorf("dhcp: option 53: length %d, want 1: %w", len(d), ErrBadOption)
		}
		r.msgType = d[0]
		explicitType = true
	}
	if d, ok := m.Option(optRequestedIP); ok {
		if len(d) != 4 {
			return request{}, fmt.Errorf("dhcp: option 50: length %d, want 4: %w", len(d), ErrBadOption)
		}
		r.requested = binary.BigEndian.Uint32(d)
	}
	// Only an explicit DHCPREQUEST falls back on ciaddr (a renewing client); a plain BOOTP
	// request does not, as in slirp, which applies this before defaulting the type.
	if explicitType && r.msgType == typeRequest && r.requested == 0 {
		ci, err := addrBytes(m.CIAddr)
		if err != nil {
			return request{}, fmt.Errorf("dhcp: ciaddr %v: %w", m.CIAddr, err)
		}
		r.requested = binary.BigEndian.Uint32(ci[:])
	}
	if !explicitType {
		r.msgType = typeRequest
	}
	if r.msgType != typeDiscover && r.msgType != typeRequest {
		return request{}, fmt.Errorf("dhcp: message type %d is neither DISCOVER nor REQUEST", r.msgType)
	}
	return r, nil
}
