package switchcore

import (
	"strings"

	"golang.org/x/sys/unix"
)

var vlanCommands = []command{
	menu("vlan", "VLAN MANAGEMENT MENU"),
	{path: "vlan/create", syntax: "N", help: "create the VLAN with tag N", run: cmdVLANCreate},
	{path: "vlan/remove", syntax: "N", help: "remove the VLAN with tag N", run: cmdVLANRemove},
	{path: "vlan/addport", syntax: "N PORT", help: "add port to the vlan N (tagged)", run: cmdVLANAddport},
	// The C switch's help really says "add port" here; tools compare help output.
	{path: "vlan/delport", syntax: "N PORT", help: "add port to the vlan N (tagged)", run: cmdVLANDelport},
	{path: "vlan/print", syntax: "[N]", help: "print the list of defined vlan", withFile: true, run: func(c *cmdCtx) error { return c.vlanPrint(false) }},
	{path: "vlan/allprint", syntax: "[N]", help: "print the list of defined vlan (including inactive port)", withFile: true, run: func(c *cmdCtx) error { return c.vlanPrint(true) }},
}

func cmdVLANCreate(c *cmdCtx) error {
	n := atoi(c.arg)
	if n < 1 || n > 4093 {
		return unix.EINVAL
	}
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.vlans[n] {
		return unix.EEXIST
	}
	s.vlans[n] = true
	s.publishLocked()
	return nil
}

func cmdVLANRemove(c *cmdCtx) error {
	n := atoi(c.arg)
	if n < 0 || n > 4094 {
		return unix.EINVAL
	}
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.vlans[n] {
		return unix.ENXIO
	}
	for _, p := range s.ports {
		if p != nil && p.member(uint16(n)) {
			return unix.EADDRINUSE
		}
	}
	s.vlans[n] = false
	s.flushVLAN(uint16(n))
	s.publishLocked()
	return nil
}

// vlanPortArgs validates "N PORT" for addport/delport.
func (c *cmdCtx) vlanPortArgs() (uint16, *Port, error) {
	a, err := ints(c.arg, 2)
	if err != nil {
		return 0, nil, err
	}
	s := c.s
	if a[0] < 0 || a[0] > 4093 || a[1] < 0 || a[1] >= s.numPorts {
		return 0, nil, unix.EINVAL
	}
	if !s.vlans[a[0]] || s.ports[a[1]] == nil {
		return 0, nil, unix.ENXIO
	}
	return uint16(a[0]), s.ports[a[1]], nil
}

func cmdVLANAddport(c *cmdCtx) error {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	vid, p, err := c.vlanPortArgs()
	if err != nil {
		return err
	}
	if p.untagged == vid || p.tagged.has(vid) {
		return nil
	}
	p.tagged.add(vid)
	if p.active() {
		s.flushVLAN(vid)
	}
	s.publishLocked()
	return nil
}

func cmdVLANDelport(c *cmdCtx) error {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	vid, p, err := c.vlanPortArgs()
	if err != nil {
		return err
	}
	if p.untagged == vid {
		return unix.EADDRINUSE
	}
	p.tagged.del(vid)
	for _, e := range s.macs.remove(func(e *macEntry) bool { return e.port == p.num && e.key.vlan() == vid }) {
		s.hashEvent(catHashDel, e)
	}
	s.publishLocked()
	return nil
}

func (c *cmdCtx) vlanPrint(all bool) error {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	one := -1
	if strings.TrimSpace(c.arg) != "" {
		one = atoi(c.arg)
		lo := 0
		if all {
			lo = 1 // the C switch refuses "vlan/allprint 0"
		}
		if one < lo || one > 4093 {
			return unix.EINVAL
		}
		if !s.vlans[one] {
			return unix.ENXIO
		}
	}
	for vid := range s.vlans {
		if !s.vlans[vid] || (one >= 0 && vid != one) {
			continue
		}
		c.printf("VLAN %04d\n", vid)
		if (s.hub || s.fst.on) && !all {
			continue // no port forwards by VLAN in hub mode; C lists none with FSTP on
		}
		// Members in port order, as the C switch lists them.
		for _, p := range s.ports {
			if p == nil || (!all && !p.active()) || !p.member(uint16(vid)) {
				continue
			}
			t, a, status := 0, 0, "Learning"
			if p.untagged != uint16(vid) {
				t = 1
			}
			if p.active() {
				a, status = 1, "Forwarding"
				if v := s.fst.vl[vid]; v != nil && v.status(p.num) == stDiscarding {
					status = "Discarding"
				}
			}
			c.printf(" -- Port %04d tagged=%d active=%d status=%s\n", p.num, t, a, status)
		}
	}
	return nil
}
