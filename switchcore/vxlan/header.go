// Package vxlan is VXLAN (RFC 7348) as a frame endpoint: the vxlan:// cable, which joins
// a VDE LAN to kernel VTEPs and other VXLAN tunnel endpoints over multicast or a list of
// unicast peers, and vdeplug4's switchless vxvde:// segment. Both register their schemes
// with wire from init(); nothing else in the project needs to know them.
package vxlan

import (
	"encoding/binary"
	"errors"
)

// HeaderLen is the length of the VXLAN header in front of every encapsulated frame.
const HeaderLen = 8

// flagVNI is the I flag, the only bit RFC 7348 defines: the VNI field is valid.
const flagVNI = 0x08

// MaxVNI is the largest 24-bit VNI.
const MaxVNI = 1<<24 - 1

// Why a datagram is not a frame for us. Each is counted separately; none is forwarded.
var (
	// ErrShort is a datagram too short for a VXLAN header and an Ethernet header.
	ErrShort = errors.New("vxlan: datagram shorter than a header and a frame")
	// ErrFlags is a header whose flags are not exactly the I flag, or with a reserved bit
	// set (the kernel drops these too).
	ErrFlags = errors.New("vxlan: flags other than 0x08 or reserved bits set")
	// ErrVNI is a header for another network.
	ErrVNI = errors.New("vxlan: other VNI")
)

// Header is the 8-byte VXLAN header: flags 0x08, 24 reserved bits, the 24-bit VNI and
// 8 reserved bits, all in network byte order.
type Header [HeaderLen]byte

// NewHeader returns the header that carries frames of vni.
func NewHeader(vni uint32) Header {
	var h Header
	binary.BigEndian.PutUint32(h[0:4], flagVNI<<24)
	binary.BigEndian.PutUint32(h[4:8], vni<<8)
	return h
}

// VNI is the header's network identifier.
func (h *Header) VNI() uint32 { return binary.BigEndian.Uint32(h[4:8]) >> 8 }

// Check tells whether a datagram of n bytes that starts with h carries a frame of vni.
// Every reserved bit must be zero, as the kernel's vxlan_rcv requires of a device without
// extensions (GBP, GPE, remote checksum offload).
func (h *Header) Check(n int, vni uint32) error {
	switch {
	case n < HeaderLen+14:
		return ErrShort
	case h[0] != flagVNI || h[1] != 0 || h[2] != 0 || h[3] != 0 || h[7] != 0:
		return ErrFlags
	case h.VNI() != vni:
		return ErrVNI
	}
	return nil
}
