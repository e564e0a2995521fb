package switchcore

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// The fstp/* commands, with the C switch's arguments, errors and outputs.
var fstpCommands = []command{
	menu("fstp", "FAST SPANNING TREE MENU"),
	{path: "fstp/showinfo", help: "show fstp info", withFile: true, run: cmdFSTPShowinfo},
	{path: "fstp/setfstp", syntax: "0/1", help: "Fast spanning tree protocol 1=ON 0=OFF", withFile: true, run: cmdFSTPSet},
	{path: "fstp/setedge", syntax: "VLAN PORT 1/0", help: "Define an edge port for a vlan 1=Y 0=N", run: cmdFSTPSetedge},
	{path: "fstp/bonus", syntax: "VLAN PORT COST", help: "set the port bonus for a vlan", run: cmdFSTPBonus},
	{path: "fstp/print", syntax: "[N]", help: "print fst data for the defined vlan", withFile: true, run: cmdFSTPPrint},
}

func cmdFSTPShowinfo(c *cmdCtx) error {
	s := c.s
	s.mu.Lock()
	on := s.fst.on
	s.mu.Unlock()
	pr := s.cfg.Priority & 0xffff
	c.printf("MAC %s Priority %d (0x%x)\nFSTP=%t\n", macString(s.mac[:]), pr, pr, on)
	return nil
}

func cmdFSTPSet(c *cmdCtx) error {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hub {
		c.printf("Can't use fstp in hub mode\n")
		return nil
	}
	s.fst.setOn(atoi(c.arg) != 0)
	s.publishLocked()
	return nil
}

// fstpArgs parses "VLAN PORT N" as the C switch's sscanf("%i %i %i") and checks it.
func (c *cmdCtx) fstpArgs() (uint16, int, int, error) {
	a, err := ints(c.arg, 3)
	if err != nil {
		return 0, 0, 0, err
	}
	if a[0] < 0 || a[0] >= maxVLANs || a[1] < 0 || a[1] >= c.s.numPorts {
		return 0, 0, 0, unix.EINVAL
	}
	if !c.s.vlans[a[0]] || c.s.fst.vl[a[0]] == nil {
		return 0, 0, 0, unix.ENXIO
	}
	return uint16(a[0]), a[1], a[2], nil
}

func cmdFSTPSetedge(c *cmdCtx) error {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	vid, port, val, err := c.fstpArgs()
	if err != nil {
		return err
	}
	f := s.fst
	v := f.vl[vid]
	if val != 0 {
		v.edge.set(port)
		if v.untag.has(port) { // C checks the untagged set twice, never the tagged one
			f.setStatus(vid, port, stForwarding)
		}
		if v.pending.has(port) {
			v.pending.clr(port)
			f.dirty = true
		}
	} else {
		v.edge.clr(port)
		v.backup.clr(port)
	}
	s.publishLocked()
	return nil
}

func cmdFSTPBonus(c *cmdCtx) error {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	vid, port, cost, err := c.fstpArgs()
	if err != nil {
		return err
	}
	v := s.fst.vl[vid]
	v.bonusPort, v.bonusCost = port, cost
	return nil
}

func cmdFSTPPrint(c *cmdCtx) error {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if strings.TrimSpace(c.arg) != "" {
		n := atoi(c.arg)
		if n < 0 || n > 4094 {
			return unix.EINVAL
		}
		if !s.vlans[n] || s.fst.vl[n] == nil {
			return unix.ENXIO
		}
		c.fstpPrintVLAN(uint16(n))
		return nil
	}
	for vid := range s.vlans {
		if s.vlans[vid] && s.fst.vl[vid] != nil {
			c.fstpPrintVLAN(uint16(vid))
		}
	}
	return nil
}

func idString(id bridgeID) string {
	return fmt.Sprintf("%02x:%02x:%s", id[0], id[1], macString(id[2:]))
}

// fstpPrintVLAN prints one VLAN as fstprintactive does, blanks and quirks included.
func (c *cmdCtx) fstpPrintVLAN(vid uint16) {
	f := c.s.fst
	v := f.vl[vid]
	rootSw, disabled := "", ""
	if v.root == f.myID {
		rootSw = "ROOTSWITCH"
	}
	if !f.on {
		disabled = "FSTP IS DISABLED"
	}
	c.printf("FST DATA VLAN %04d %s %s\n", vid, rootSw, disabled)
	c.printf(" ++ root %s\n", idString(v.root))
	c.printf(" ++ designated %s\n", idString(v.desBridge))
	c.printf(" ++ rootport %04d cost %d age %d bonusport %04d bonuscost %d\n",
		v.rootPort, int32(v.rootCost), c.s.now()-v.rootTime, v.bonusPort, v.bonusCost)
	role := func(p int) string {
		switch {
		case !v.untag.has(p): // C tests the untagged set twice: tagged ports are "Unknown"
			return "Unknown"
		case v.edge.has(p):
			return "Edge"
		case v.rootPort == p:
			return "Root"
		case v.backup.has(p):
			return "Alternate/Backup"
		}
		return "Designated"
	}
	v.untag.each(func(p int) {
		c.printf(" -- Port %04d tagged=%d portcost=%d role=%s\n", p, 0, fstpPortCost, role(p))
	})
	v.tagged.each(func(p int) {
		c.printf(" -- Port %04d tagged=%d portcost=%d role=%s\n", p, 1, fstpPortCost, role(p))
	})
}
