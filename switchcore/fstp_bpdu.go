package switchcore

import (
	"encoding/binary"
	"errors"
)

// The BPDU of the C switch's fast spanning tree (vde-2 fstp.c): an 802.3 frame with LLC
// 42 42 03 to 01:80:c2:00:00:00 whose fields look like an RSTP BPDU's but are not all
// encoded as IEEE's: the identifiers and the root path cost are big-endian, the port id
// is 0x80|(port>>4), port&0xff, and the four timers are whole seconds, little-endian.
// IEEE bridges cannot take part; VDE switches (Debian's and ours) can.

// bpduAddr is the destination of every BPDU.
var bpduAddr = [6]byte{0x01, 0x80, 0xc2, 0x00, 0x00, 0x00}

const (
	// bpduLen is an untagged BPDU's length; a tagged one has 4 bytes more.
	bpduLen = 53
	// bpduMinLen is the shortest (untagged) BPDU the C switch accepts: it reads up to
	// the hello time and ignores the rest.
	bpduMinLen = 51
	// bpduLLCLen is the 802.3 length field the C switch writes: LLC and BPDU, 39 bytes.
	bpduLLCLen = 0x0027
)

// Flag bits of a BPDU as the C switch sets them (bits 1 and 2 mean "backup" and "not
// backup", not IEEE's proposal and role, so the role field bits 2-3 reads 01 for a root
// port, 11 for a designated one and 10 for a backup one).
const (
	flagTC        = 0x01 // topology change
	flagBackup    = 0x02 // the sending port is an alternate/backup port
	flagNotBackup = 0x04
	flagNotRoot   = 0x08 // the sending port is not the sender's root port
	flagRoleMask  = 0x0c
	flagRoleRoot  = 0x04 // role field of a root port
	flagStateMask = 0x30 // port state: 0 discarding, 1 learning, 3 forwarding
	flagAgreement = 0x40
	flagTCAck     = 0x80
)

// Errors of decodeBPDU.
var (
	// ErrBPDUShort is a frame too short to hold the fields the protocol reads.
	ErrBPDUShort = errors.New("fstp: BPDU too short")
	// ErrBPDUVersion is a BPDU whose version or type is not 2 (RSTP's), which the C
	// switch drops.
	ErrBPDUVersion = errors.New("fstp: BPDU version or type is not 2")
)

// bridgeID is a bridge identifier: the priority (big-endian) and the switch's MAC.
type bridgeID [8]byte

func makeBridgeID(prio int, mac [6]byte) (id bridgeID) {
	binary.BigEndian.PutUint16(id[:2], uint16(prio))
	copy(id[2:], mac[:])
	return id
}

// bpdu is the content of a BPDU, without the Ethernet and LLC headers.
type bpdu struct {
	// Flags holds the flag bits (flagTC ... flagTCAck).
	Flags byte
	// Root is the bridge the sender believes to be the root.
	Root bridgeID
	// RootCost is the sender's cost to the root.
	RootCost uint32
	// Bridge is the sender's bridge id.
	Bridge bridgeID
	// Port is the sender's port id (0x80|(port>>4), port&0xff).
	Port [2]byte
	// Age is how many seconds ago the sender heard from the root (0 when it is the root).
	Age uint16
	// MaxAge, Hello and FwdDelay are the sender's timers in seconds (40, 4 and 0).
	MaxAge, Hello, FwdDelay uint16
}

// portID is a port's id as the C switch writes it (only ports below 2048 stay distinct).
func portID(port int) [2]byte {
	return [2]byte{0x80 | byte(port>>4), byte(port)}
}

// isBPDUDest reports whether f (at least 14 bytes) is addressed to the BPDU group.
func isBPDUDest(f []byte) bool {
	return binary.BigEndian.Uint32(f) == 0x0180c200 && f[4] == 0 && f[5] == 0
}

// decodeBPDU reads the BPDU of frame f as the C switch does: after the 802.1Q tag if
// tagged, not checking the length field, the LLC header or the protocol id, and
// refusing only frames shorter than 51 bytes (untagged) and versions or types but 2.
// Fields past the hello time are read when present.
func decodeBPDU(f []byte, tagged bool) (b bpdu, err error) {
	if tagged {
		if len(f) < 4 {
			return b, ErrBPDUShort
		}
		f = f[4:]
	}
	if len(f) < bpduMinLen {
		return b, ErrBPDUShort
	}
	if f[19] != 2 || f[20] != 2 {
		return b, ErrBPDUVersion
	}
	b.Flags = f[21]
	copy(b.Root[:], f[22:30])
	b.RootCost = binary.BigEndian.Uint32(f[30:34])
	copy(b.Bridge[:], f[34:42])
	copy(b.Port[:], f[42:44])
	b.Age = binary.LittleEndian.Uint16(f[44:46])
	b.MaxAge = binary.LittleEndian.Uint16(f[46:48])
	b.Hello = binary.LittleEndian.Uint16(f[48:50])
	b.FwdDelay = uint16(f[50])
	if len(f) > 51 {
		b.FwdDelay |= uint16(f[51]) << 8
	}
	return b, nil
}

// appendBPDU appends the frame carrying b from src, with an 802.1Q tag for VLAN vid
// when tagged (57 bytes) or without one (53 bytes), as the C switch builds them.
func appendBPDU(dst []byte, src [6]byte, tagged bool, vid uint16, b *bpdu) []byte {
	dst = append(dst, bpduAddr[:]...)
	dst = append(dst, src[:]...)
	if tagged {
		dst = append(dst, 0x81, 0x00, byte(vid>>8)&0x0f, byte(vid))
	}
	dst = append(dst, bpduLLCLen>>8, bpduLLCLen&0xff, 0x42, 0x42, 0x03, 0, 0, 2, 2, b.Flags)
	dst = append(dst, b.Root[:]...)
	dst = binary.BigEndian.AppendUint32(dst, b.RootCost)
	dst = append(dst, b.Bridge[:]...)
	dst = append(dst, b.Port[:]...)
	dst = binary.LittleEndian.AppendUint16(dst, b.Age)
	dst = binary.LittleEndian.AppendUint16(dst, b.MaxAge)
	dst = binary.LittleEndian.AppendUint16(dst, b.Hello)
	dst = binary.LittleEndian.AppendUint16(dst, b.FwdDelay)
	return append(dst, 0) // version 1 length
}
