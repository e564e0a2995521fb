package wire

// Offload says what a packet's virtio_net_hdr says: a checksum left to whoever puts the
// packet on a wire (NeedsCsum, from CsumStart, stored CsumOffset further), or a GSO packet
// larger than a frame, to be cut into segments of GSOSize bytes of payload behind HdrLen
// bytes of headers. The zero value is a plain frame. TAPs opened with IFF_VNET_HDR and
// virtio-net guests on vhost-user ports read and write such packets: between two of them
// a TSO packet crosses the switch as one unit, and it is cut into frames only for the
// ports that cannot take it whole.
type Offload struct {
	Flags      uint8 // OffloadNeedsCsum, OffloadDataValid
	GSOType    uint8 // GSONone, GSOTCPv4, GSOTCPv6, GSOUDP (| GSOECN)
	HdrLen     uint16
	GSOSize    uint16
	CsumStart  uint16
	CsumOffset uint16
}

// Offload flags and GSO types: linux/virtio_net.h's.
const (
	OffloadNeedsCsum = 1
	OffloadDataValid = 2

	GSONone  = 0
	GSOTCPv4 = 1
	GSOUDP   = 3
	GSOTCPv6 = 4
	GSOECN   = 0x80
)

// MaxPacket is the longest packet an OffloadEndpoint reads: 64 KiB of IP behind an
// Ethernet header, a VLAN tag and an IPv6 header's worth of slack.
const MaxPacket = 65535 + 14 + 4 + 40

// Plain reports whether the packet is an ordinary, complete frame.
func (o Offload) Plain() bool { return o.Flags&OffloadNeedsCsum == 0 && o.GSOType == GSONone }

// Fits reports whether o can describe a packet of size bytes as the kernel and the
// switch's cutter take them: a TCP GSO type (with or without ECN) and a segment size for
// a GSO packet, no other GSO type (UDP is not offered), and headers and the checksum
// field inside the packet. The switch checks every packet with offloads before passing
// it whole: a client of ours, a guest or a TAP could send anything in its header.
func (o Offload) Fits(size int) bool {
	if o.Flags&OffloadNeedsCsum != 0 && int(o.CsumStart)+int(o.CsumOffset)+2 > size {
		return false
	}
	switch o.GSOType &^ GSOECN {
	case GSONone:
		return o.GSOType == GSONone
	case GSOTCPv4, GSOTCPv6:
		// virtio: a GSO packet has NEEDS_CSUM; hdr_len is a hint (0 from some drivers).
		return o.GSOSize > 0 && int(o.HdrLen) < size && o.Flags&OffloadNeedsCsum != 0
	}
	return false
}

// OffloadEndpoint is an Endpoint that can also move packets with offloads (GSO, and
// checksums left to do) together with what their virtio_net_hdr says.
type OffloadEndpoint interface {
	Endpoint
	// ReadOffload is ReadBatch for buffers of MaxPacket bytes: offl[i] says what packet i
	// is (the zero Offload for a plain frame).
	ReadOffload(frames [][]byte, sizes []int, offl []Offload) (n int, err error)
	// WriteOffload is WriteBatch with each packet's offloads; a packet the endpoint
	// cannot take now is dropped and not counted in n.
	WriteOffload(frames [][]byte, offl []Offload) (n int, err error)
	// TakesOffload reports whether WriteOffload may be given GSO packets and packets
	// with checksums left to do (a guest that did not negotiate them may not).
	TakesOffload() bool
}
