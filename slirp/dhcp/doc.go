// Package dhcp is the DHCPv4 server of the slirp router: it answers BOOTP/DHCP requests
// the way the C slirpvde does (QEMU 0.12 slirp), from a small pool whose leases never expire.
//
// It works on UDP payloads only. The caller takes the payload of a frame sent to UDP port 67,
// passes it to [Server.Handle], and wraps the reply in UDP router:67 → 255.255.255.255:68,
// IPv4 and Ethernet addressed to the returned client MAC. The package also holds the BOOTP
// codec ([Message], [Parse], [Message.Append]) that the server is built on.
package dhcp
