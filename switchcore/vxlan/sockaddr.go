package vxlan

import (
	"encoding/binary"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// vtep is a tunnel endpoint as a message header wants it: a raw socket address that stays
// where it is for as long as the endpoint lives, so a sendmmsg can point at it.
type vtep struct {
	addr    netip.AddrPort
	name    unix.RawSockaddrInet6 // room for either family; namelen says which
	namelen uint32
	peer    bool // one of the configured unicast peers (or the group)
}

// newVTEP builds the socket address of ap; scope is the interface index of a link-local
// or interface-local IPv6 address (0 for none).
func newVTEP(ap netip.AddrPort, scope uint32) *vtep {
	v := &vtep{addr: ap}
	if ap.Addr().Is4() {
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&v.name))
		sa.Family = unix.AF_INET
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], ap.Port())
		sa.Addr = ap.Addr().As4()
		v.namelen = unix.SizeofSockaddrInet4
		return v
	}
	sa := &v.name
	sa.Family = unix.AF_INET6
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], ap.Port())
	sa.Addr = ap.Addr().As16()
	sa.Scope_id = scope
	v.namelen = unix.SizeofSockaddrInet6
	return v
}

// addrOf reads the source address the kernel wrote into name (namelen bytes of it). An
// IPv4-mapped IPv6 address is unmapped, so a peer has one address whatever socket saw it.
func addrOf(name *unix.RawSockaddrInet6, namelen uint32) (netip.AddrPort, bool) {
	switch name.Family {
	case unix.AF_INET:
		if namelen < unix.SizeofSockaddrInet4 {
			return netip.AddrPort{}, false
		}
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(name))
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), port), true
	case unix.AF_INET6:
		if namelen < unix.SizeofSockaddrInet6 {
			return netip.AddrPort{}, false
		}
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&name.Port))[:])
		return netip.AddrPortFrom(netip.AddrFrom16(name.Addr).Unmap(), port), true
	}
	return netip.AddrPort{}, false
}
