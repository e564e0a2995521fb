package switchcore

import (
	"fmt"
	"os/user"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

var portCommands = []command{
	menu("port", "PORT STATUS MENU"),
	{path: "port/showinfo", help: "show port info", withFile: true, run: cmdPortShowinfo},
	{path: "port/setnumports", syntax: "N", help: "set the number of ports", run: cmdPortSetnumports},
	{path: "port/sethub", syntax: "0/1", help: "1=HUB 0=switch", run: cmdPortSethub},
	{path: "port/setvlan", syntax: "N VLAN", help: "set port VLAN (untagged)", run: cmdPortSetvlan},
	{path: "port/createauto", help: "create a port with an automatically allocated id (inactive|notallocatable)", withFile: true, run: cmdPortCreateauto},
	{path: "port/create", syntax: "N", help: "create the port N (inactive|notallocatable)", run: cmdPortCreate},
	{path: "port/remove", syntax: "N", help: "remove the port N", run: cmdPortRemove},
	{path: "port/allocatable", syntax: "N 0/1", help: "Is the port allocatable as unnamed? 1=Y 0=N", run: cmdPortAllocatable},
	{path: "port/setuser", syntax: "N user", help: "access control: set user", run: cmdPortSetuser},
	{path: "port/setgroup", syntax: "N user", help: "access control: set group", run: cmdPortSetgroup},
	{path: "port/epclose", syntax: "N ID", help: "remove the endpoint port N/id ID", run: cmdPortEpclose},
	{path: "port/resetcounter", syntax: "[N]", help: "reset the port (N) counters", run: cmdPortResetcounter},
	{path: "port/print", syntax: "[N]", help: "print the port/endpoint table", withFile: true, run: func(c *cmdCtx) error { return c.portPrint(false) }},
	{path: "port/allprint", syntax: "[N]", help: "print the port/endpoint table (including inactive port)", withFile: true, run: func(c *cmdCtx) error { return c.portPrint(true) }},
	// Ours: the drop counters, which port/print leaves out to stay byte-identical to the C
	// switch's.
	{path: "port/drops", syntax: "[N]", help: "print the dropped and bad frame counters", withFile: true, run: cmdPortDrops},
}

func cmdPortShowinfo(c *cmdCtx) error {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	c.printf("Numports=%d\nHUB=%t\ncounters=true\n", s.numPorts, s.hub)
	return nil
}

func cmdPortSetnumports(c *cmdCtx) error {
	n := atoi(c.arg)
	if n <= 0 || n > MaxNumPorts {
		return unix.EINVAL
	}
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := n; i < len(s.ports); i++ {
		if s.ports[i] != nil {
			return unix.EADDRINUSE
		}
	}
	ports := make([]*Port, n)
	copy(ports, s.ports)
	s.ports, s.numPorts = ports, n
	s.publishLocked()
	return nil
}

func cmdPortSethub(c *cmdCtx) error {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hub = atoi(c.arg) != 0
	s.publishLocked()
	return nil
}

// portLocked returns port n, EINVAL when n is out of range, ENXIO when it is not allocated.
func (s *Switch) portLocked(n int) (*Port, error) {
	if n < 0 || n >= s.numPorts {
		return nil, unix.EINVAL
	}
	if s.ports[n] == nil {
		return nil, unix.ENXIO
	}
	return s.ports[n], nil
}

func cmdPortSetvlan(c *cmdCtx) error {
	a, err := ints(c.arg, 2)
	if err != nil {
		return err
	}
	n, vid := a[0], a[1]
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if n < 0 || n >= s.numPorts || vid < 0 || vid > NoVLAN {
		return unix.EINVAL
	}
	if vid != NoVLAN && !s.vlans[vid] {
		return unix.ENXIO
	}
	p, err := s.portLocked(n)
	if err != nil {
		return err
	}
	old := p.untagged
	if p.active() {
		if old != NoVLAN {
			s.flushVLAN(old)
		}
		if vid != NoVLAN {
			s.flushVLAN(uint16(vid))
		}
	}
	p.untagged = uint16(vid)
	if vid != NoVLAN {
		p.tagged.del(uint16(vid))
	}
	for _, e := range s.macs.flushPort(n) {
		s.hashEvent(catHashDel, e)
	}
	s.publishLocked()
	return nil
}

func cmdPortCreateauto(c *cmdCtx) error {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := 1; i < s.numPorts; i++ {
		p := s.ports[i]
		if p == nil {
			p = newPort(i)
			s.ports[i] = p
			s.event(catPortAdd, fmt.Sprintf("%02d", i))
		} else if p.active() || !p.allocatable {
			continue
		}
		p.allocatable = false
		c.printf("Port %04d\n", i)
		return nil
	}
	return unix.ENOSPC
}

func cmdPortCreate(c *cmdCtx) error {
	n := atoi(c.arg)
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if n < 0 || n >= s.numPorts {
		return unix.EINVAL
	}
	if s.ports[n] != nil {
		return unix.EEXIST
	}
	p := newPort(n)
	p.allocatable = false
	s.ports[n] = p
	s.event(catPortAdd, fmt.Sprintf("%02d", n))
	return nil
}

func cmdPortRemove(c *cmdCtx) error {
	n := atoi(c.arg)
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.portLocked(n)
	if err != nil {
		return err
	}
	if p.active() {
		return unix.EADDRINUSE
	}
	s.ports[n] = nil
	s.publishLocked()
	s.event(catPortDel, fmt.Sprintf("%02d", n))
	return nil
}

func cmdPortAllocatable(c *cmdCtx) error {
	a, err := ints(c.arg, 2)
	if err != nil {
		return err
	}
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.portLocked(a[0])
	if err != nil {
		return err
	}
	p.allocatable = a[1] != 0
	return nil
}

// splitPortArg splits "N rest" for the access-control commands.
func splitPortArg(arg string) (int, string, error) {
	f := strings.Fields(arg)
	if len(f) < 2 {
		return 0, "", unix.EINVAL
	}
	n, err := strconv.ParseInt(f[0], 0, 32)
	if err != nil {
		return 0, "", unix.EINVAL
	}
	return int(n), f[1], nil
}

// resolveID turns NONE/ANY, a number or a name into an id (-1 = unrestricted).
func resolveID(name string, lookup func(string) (string, error)) (int, error) {
	if name == "NONE" || name == "ANY" {
		return -1, nil
	}
	if n, err := strconv.Atoi(name); err == nil && n >= 0 {
		return n, nil
	}
	id, err := lookup(name)
	if err != nil {
		return 0, unix.EINVAL
	}
	n, err := strconv.Atoi(id)
	if err != nil {
		return 0, unix.EINVAL
	}
	return n, nil
}

func lookupUID(name string) (string, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return "", err
	}
	return u.Uid, nil
}

func lookupGID(name string) (string, error) {
	g, err := user.LookupGroup(name)
	if err != nil {
		return "", err
	}
	return g.Gid, nil
}

func cmdPortSetuser(c *cmdCtx) error {
	return c.setACL(lookupUID, func(p *Port, id int) { p.user = id })
}
func cmdPortSetgroup(c *cmdCtx) error {
	return c.setACL(lookupGID, func(p *Port, id int) { p.group = id })
}

func (c *cmdCtx) setACL(lookup func(string) (string, error), set func(*Port, int)) error {
	n, name, err := splitPortArg(c.arg)
	if err != nil {
		return err
	}
	id, err := resolveID(name, lookup)
	if err != nil {
		return err
	}
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.portLocked(n)
	if err != nil {
		return err
	}
	set(p, id)
	return nil
}

func cmdPortEpclose(c *cmdCtx) error {
	a, err := ints(c.arg, 2)
	if err != nil {
		return err
	}
	s := c.s
	s.mu.Lock()
	p, err := s.portLocked(a[0])
	if err != nil {
		s.mu.Unlock()
		return unix.ENXIO
	}
	var found *endpoint
	for _, ep := range p.eps {
		if ep.id == a[1] {
			found = ep
		}
	}
	s.mu.Unlock()
	if found == nil {
		return unix.ENXIO
	}
	s.detach(found)
	return nil
}

func cmdPortResetcounter(c *cmdCtx) error {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if strings.TrimSpace(c.arg) == "" {
		for _, p := range s.ports {
			if p != nil {
				p.counters.reset()
			}
		}
		return nil
	}
	n := atoi(c.arg)
	if n < 0 || n >= s.numPorts {
		return unix.EINVAL
	}
	if p := s.ports[n]; p != nil {
		p.counters.reset()
	}
	return nil
}

func (c *cmdCtx) portPrint(all bool) error {
	return c.eachPort(all, c.portRecord)
}

// cmdPortDrops prints, for the ports port/print lists, the frames each port's full queue
// did not take (storm control's included) and the frames it sent that were not forwarded
// (too short or long, a VLAN it is not on): "Port 0001 drops N bad N".
func cmdPortDrops(c *cmdCtx) error {
	return c.eachPort(false, func(p *Port) {
		c.printf("Port %04d drops %d bad %d\n", p.num, p.counters.drops.Load(), p.counters.bad.Load())
	})
}

// eachPort runs record for port N (the argument) or for every port, as port/print and
// port/allprint choose them: active ports, or all allocated ones when all is set. N out
// of range is EINVAL; N not allocated (or inactive, unless all) is ENXIO.
func (c *cmdCtx) eachPort(all bool, record func(*Port)) error {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if strings.TrimSpace(c.arg) != "" {
		n := atoi(c.arg)
		if n < 0 || n >= s.numPorts {
			return unix.EINVAL
		}
		p := s.ports[n]
		if p == nil || (!all && !p.active()) {
			return unix.ENXIO
		}
		record(p)
		return nil
	}
	for _, p := range s.ports {
		if p != nil && (all || p.active()) {
			record(p)
		}
	}
	return nil
}

func (c *cmdCtx) portRecord(p *Port) {
	in, notAlloc := "", ""
	if !p.active() {
		in = "IN"
	}
	if !p.allocatable {
		notAlloc = "NOT "
	}
	c.printf("Port %04d untagged_vlan=%04d %sACTIVE - %sUnnamed Allocatable\n", p.num, p.untagged, in, notAlloc)
	c.printf(" Current User: %s Access Control: (User: %s - Group: %s)\n", userName(p.curUser), userName(p.user), groupName(p.group))
	k := &p.counters
	c.printf(" IN:  pkts %10d          bytes %20d\n", k.inPkts.Load(), k.inBytes.Load())
	c.printf(" OUT: pkts %10d          bytes %20d\n", k.outPkts.Load(), k.outBytes.Load())
	for _, ep := range p.eps {
		d := ep.descr
		if d == "" {
			d = "no endpoint description"
		}
		c.printf("  -- endpoint ID %04d module %-12s: %s\n", ep.id, ep.module, d)
	}
}
