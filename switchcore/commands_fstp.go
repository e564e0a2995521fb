package switchcore

import "golang.org/x/sys/unix"

// FSTP is not in this release: its commands stay listed, report it disabled, and refuse to
// turn it on with ENOSYS, the C switch's code for what it does not implement.
var fstpCommands = []command{
	menu("fstp", "FAST SPANNING TREE MENU"),
	{path: "fstp/showinfo", help: "show fstp info", withFile: true, run: cmdFSTPShowinfo},
	{path: "fstp/setfstp", syntax: "0/1", help: "Fast spanning tree protocol 1=ON 0=OFF", withFile: true, run: cmdFSTPSet},
	{path: "fstp/setedge", syntax: "VLAN PORT 1/0", help: "Define an edge port for a vlan 1=Y 0=N", run: cmdFSTPUnsupported},
	{path: "fstp/bonus", syntax: "VLAN PORT COST", help: "set the port bonus for a vlan", run: cmdFSTPUnsupported},
	{path: "fstp/print", syntax: "[N]", help: "print fst data for the defined vlan", withFile: true, run: cmdFSTPPrint},
}

func cmdFSTPShowinfo(c *cmdCtx) error {
	c.printf("MAC %s Priority %d (0x%x)\nFSTP=false\n", macString(c.s.mac[:]), c.s.cfg.Priority&0xffff, c.s.cfg.Priority&0xffff)
	return nil
}

func cmdFSTPSet(c *cmdCtx) error {
	c.s.mu.Lock()
	hub := c.s.hub
	c.s.mu.Unlock()
	if hub {
		c.printf("Can't use fstp in hub mode\n")
		return nil
	}
	if atoi(c.arg) != 0 {
		return unix.ENOSYS
	}
	return nil
}

func cmdFSTPUnsupported(*cmdCtx) error { return unix.ENOSYS }

func cmdFSTPPrint(c *cmdCtx) error {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	print := func(vid int) {
		pr := s.cfg.Priority & 0xffff
		c.printf("FST DATA VLAN %04d ROOTSWITCH FSTP IS DISABLED\n", vid)
		c.printf(" ++ root %02x:%02x:%s\n", pr>>8, pr&0xff, macString(s.mac[:]))
		c.printf(" ++ designated ff:ff:ff:ff:ff:ff:ff:ff\n")
		c.printf(" ++ rootport 0000 cost 0 age 0 bonusport 0000 bonuscost 0\n")
	}
	if c.arg != "" {
		n := atoi(c.arg)
		if n < 0 || n > 4093 {
			return unix.EINVAL
		}
		if !s.vlans[n] {
			return unix.ENXIO
		}
		print(n)
		return nil
	}
	for vid := range s.vlans {
		if s.vlans[vid] {
			print(vid)
		}
	}
	return nil
}
