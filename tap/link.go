package tap

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// The link helpers act, through netlink, on the interface of that name in the calling
// thread's network namespace (like `ip link` and `ip addr`). They work on any interface;
// Info's TAP fields are filled for TUN/TAP devices only.

// Info describes an interface.
type Info struct {
	// Name and Index identify the interface.
	Name  string
	Index int
	// Up is the administrative state (IFF_UP, `ip link set NAME up`).
	Up bool
	// MTU is the link MTU.
	MTU int
	// HardwareAddr is the MAC address.
	HardwareAddr net.HardwareAddr
	// IsTunTap is set for TUN/TAP devices; the fields below are meaningful only then.
	IsTunTap bool
	// TUN is set for a TUN (layer 3) device, clear for a TAP.
	TUN bool
	// Persist is set if the device outlives its descriptors.
	Persist bool
	// Owner and Group are the uid and gid allowed to attach, -1 if not set.
	Owner, Group int
}

// LinkInfo describes the interface name.
func LinkInfo(name string) (Info, error) {
	l, err := link(name, "link show")
	if err != nil {
		return Info{}, err
	}
	a := l.Attrs()
	info := Info{Name: a.Name, Index: a.Index, Up: a.Flags&net.FlagUp != 0, MTU: a.MTU, HardwareAddr: a.HardwareAddr, Owner: -1, Group: -1}
	if t, ok := l.(*netlink.Tuntap); ok {
		info.IsTunTap = true
		info.TUN = t.Mode == netlink.TUNTAP_MODE_TUN
		info.Persist = !t.NonPersist
		// netlink.Tuntap reads an absent owner or group as 0 (root); the kernel
		// leaves the attribute out when none is set, so look for it ourselves.
		if info.Owner, info.Group, err = tunOwnerGroup(a.Index); err != nil {
			return Info{}, &Error{Name: name, Op: "link show", Err: err}
		}
	}
	return info, nil
}

// tunOwnerGroup reads IFLA_TUN_OWNER and IFLA_TUN_GROUP of a TUN/TAP link; -1 for absent.
func tunOwnerGroup(index int) (owner, group int, err error) {
	req := nl.NewNetlinkRequest(unix.RTM_GETLINK, unix.NLM_F_ACK)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(index)
	req.AddData(msg)
	msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWLINK)
	if err != nil {
		return -1, -1, err
	}
	owner, group = -1, -1
	for _, m := range msgs {
		if len(m) < unix.SizeofIfInfomsg {
			continue
		}
		attrs, err := nl.ParseRouteAttr(m[unix.SizeofIfInfomsg:])
		if err != nil {
			return -1, -1, err
		}
		for _, a := range attrs {
			if a.Attr.Type&^unix.NLA_F_NESTED != unix.IFLA_LINKINFO {
				continue
			}
			info, err := nl.ParseRouteAttr(a.Value)
			if err != nil {
				return -1, -1, err
			}
			for _, i := range info {
				if i.Attr.Type&^unix.NLA_F_NESTED != unix.IFLA_INFO_DATA {
					continue
				}
				data, err := nl.ParseRouteAttr(i.Value)
				if err != nil {
					return -1, -1, err
				}
				for _, d := range data {
					if len(d.Value) < 4 {
						continue
					}
					v := int(int32(binary.NativeEndian.Uint32(d.Value)))
					switch d.Attr.Type {
					case nl.IFLA_TUN_OWNER:
						owner = v
					case nl.IFLA_TUN_GROUP:
						group = v
					}
				}
			}
		}
	}
	return owner, group, nil
}

// SetUp brings the interface up (`ip link set NAME up`).
func SetUp(name string) error {
	l, err := link(name, "link up")
	if err != nil {
		return err
	}
	return wrap(name, "link up", netlink.LinkSetUp(l))
}

// SetDown takes the interface down (`ip link set NAME down`).
func SetDown(name string) error {
	l, err := link(name, "link down")
	if err != nil {
		return err
	}
	return wrap(name, "link down", netlink.LinkSetDown(l))
}

// SetMTU sets the interface MTU.
func SetMTU(name string, mtu int) error {
	l, err := link(name, "set mtu")
	if err != nil {
		return err
	}
	return wrap(name, "set mtu", netlink.LinkSetMTU(l, mtu))
}

// SetHardwareAddr sets the interface MAC address.
func SetHardwareAddr(name string, mac net.HardwareAddr) error {
	l, err := link(name, "set address")
	if err != nil {
		return err
	}
	return wrap(name, "set address "+mac.String(), netlink.LinkSetHardwareAddr(l, mac))
}

// AddAddr adds an address with its prefix length, e.g. 10.0.0.1/24
// (`ip addr add 10.0.0.1/24 dev NAME`).
func AddAddr(name string, p netip.Prefix) error {
	l, err := link(name, "add address")
	if err != nil {
		return err
	}
	return wrap(name, "add address "+p.String(), netlink.AddrAdd(l, nlAddr(p)))
}

// DelAddr removes an address.
func DelAddr(name string, p netip.Prefix) error {
	l, err := link(name, "delete address")
	if err != nil {
		return err
	}
	return wrap(name, "delete address "+p.String(), netlink.AddrDel(l, nlAddr(p)))
}

// Addrs lists the interface's IPv4 and IPv6 addresses.
func Addrs(name string) ([]netip.Prefix, error) {
	l, err := link(name, "list addresses")
	if err != nil {
		return nil, err
	}
	as, err := netlink.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return nil, wrap(name, "list addresses", err)
	}
	var out []netip.Prefix
	for _, a := range as {
		if a.IPNet == nil {
			continue
		}
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		ones, _ := a.Mask.Size()
		out = append(out, netip.PrefixFrom(ip.Unmap(), ones))
	}
	return out, nil
}

func nlAddr(p netip.Prefix) *netlink.Addr {
	bits := 32
	if p.Addr().Is6() && !p.Addr().Is4In6() {
		bits = 128
	}
	a := p.Addr().Unmap()
	return &netlink.Addr{IPNet: &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(p.Bits(), bits)}}
}

func link(name, op string) (netlink.Link, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			err = unix.ENODEV
		}
		return nil, &Error{Name: name, Op: op, Err: err}
	}
	return l, nil
}

func wrap(name, op string, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Name: name, Op: op, Err: err}
}
