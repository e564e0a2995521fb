package switchcore

import "encoding/binary"

// VLAN ids: 0..4094 are usable as indexes, NoVLAN (4095) on a port means "no untagged VLAN".
const (
	NoVLAN   = 4095
	maxVLANs = 4096
	// tpid8021Q is the EtherType of an 802.1Q tag.
	tpid8021Q = 0x8100
)

// vlanSet is a bitmap of VLAN ids.
type vlanSet [maxVLANs / 64]uint64

func (s *vlanSet) has(v uint16) bool { return s[v>>6]&(1<<(v&63)) != 0 }
func (s *vlanSet) add(v uint16)      { s[v>>6] |= 1 << (v & 63) }
func (s *vlanSet) del(v uint16)      { s[v>>6] &^= 1 << (v & 63) }

// frameVLAN classifies a frame: tagged reports an 802.1Q tag, vid is its 12-bit VLAN id
// (priority and CFI ignored, as the C switch does).
func frameVLAN(f []byte) (vid uint16, tagged bool) {
	if len(f) >= 18 && binary.BigEndian.Uint16(f[12:14]) == tpid8021Q {
		return binary.BigEndian.Uint16(f[14:16]) & 0x0fff, true
	}
	return 0, false
}

// insertTag writes f with an 802.1Q tag (priority 0, VLAN vid) after the source MAC into
// dst, which must have room for len(f)+4 bytes, and returns the tagged frame.
func insertTag(dst, f []byte, vid uint16) []byte {
	dst = dst[:len(f)+4]
	copy(dst[:12], f[:12])
	binary.BigEndian.PutUint16(dst[12:14], tpid8021Q)
	binary.BigEndian.PutUint16(dst[14:16], vid&0x0fff)
	copy(dst[16:], f[12:])
	return dst
}

// stripTag writes f without its 802.1Q tag into dst and returns the untagged frame.
func stripTag(dst, f []byte) []byte {
	dst = dst[:len(f)-4]
	copy(dst[:12], f[:12])
	copy(dst[12:], f[16:])
	return dst
}
