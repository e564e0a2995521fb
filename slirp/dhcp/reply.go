package dhcp

import "net/netip"

// reply builds the answer to req: OFFER or ACK of yiaddr, or NAK. Like slirp it copies only
// xid and chaddr from the request, plus flags and giaddr (RFC 2131 table 3, so that a relay
// or a client that wants broadcast replies is served), and always fills the 548 bytes.
func (s *Server) reply(req *Message, answer uint8, yiaddr netip.Addr) []byte {
	server := netip.AddrFrom4(s.serverID)
	m := Message{
		Op:     OpReply,
		HType:  1,
		HLen:   6,
		XID:    req.XID,
		Flags:  req.Flags,
		CIAddr: netip.IPv4Unspecified(),
		YIAddr: yiaddr,
		SIAddr: server,
		GIAddr: req.GIAddr,
	}
	copy(m.CHAddr[:6], req.CHAddr[:6])
	m.Options = make([]Option, 0, 3+len(s.extra))
	m.Options = append(m.Options, Option{Code: optMessageType, Data: []byte{answer}})
	if answer == typeNak {
		// slirp's NAK has no option 54; RFC 2131 requires it and clients check it.
		m.Options = append(m.Options,
			Option{Code: optServerID, Data: s.serverID[:]},
			Option{Code: optMessage, Data: []byte(nakMessage)})
	} else {
		m.File = s.file
		m.Options = append(m.Options, s.extra...)
	}
	b, err := m.Append(make([]byte, 0, replyLen))
	if err != nil {
		// New checked every field and the size, so this is a programming error.
		panic("dhcp: building reply: " + err.Error())
	}
	// Pad with zeros (pad options) after the end option to slirp's fixed size.
	return b[:replyLen]
}
