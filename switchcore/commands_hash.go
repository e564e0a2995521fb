package switchcore

import (
	"strings"

	"golang.org/x/sys/unix"
)

var hashCommands = []command{
	menu("hash", "HASH TABLE MENU"),
	{path: "hash/showinfo", help: "show hash info", withFile: true, run: cmdHashShowinfo},
	{path: "hash/setsize", syntax: "N", help: "change hash size", run: cmdHashSetsize},
	{path: "hash/setgcint", syntax: "N", help: "change garbage collector interval", run: cmdHashSetgcint},
	{path: "hash/setexpire", syntax: "N", help: "change hash entries expire time", run: cmdHashSetexpire},
	{path: "hash/setminper", syntax: "N", help: "minimum persistence time", run: cmdHashSetminper},
	{path: "hash/setmax", syntax: "N", help: "maximum number of hash entries", run: cmdHashSetmax},
	{path: "hash/print", help: "print the hash table", withFile: true, run: cmdHashPrint},
	{path: "hash/find", syntax: "MAC [VLAN]", help: "MAC lookup", withFile: true, run: cmdHashFind},
}

// cmdHashShowinfo prints the C switch's four lines and then ours: the entry limit
// (hash/setmax), the entries now, and how many frames' sources were not learned because
// the table was full.
func cmdHashShowinfo(c *cmdCtx) error {
	s := c.s
	c.printf("Hash size %d\nGC interval %d secs\nGC expire %d secs\nMin persistence %d secs\n",
		s.hashSize.Load(), s.gcInterval.Load(), s.expireSecs.Load(), s.macs.minPers.Load())
	c.printf("Max entries %d\nEntries %d\nNot learned (table full) %d\n",
		s.macs.limit.Load(), s.macs.len(), s.macs.full.Load())
	return nil
}

func cmdHashSetsize(c *cmdCtx) error {
	n := atoi(c.arg)
	if n <= 0 {
		return unix.EINVAL
	}
	c.s.hashSize.Store(int64(roundPow2(n)))
	for _, e := range c.s.macs.flushAll() {
		c.s.hashEvent(catHashDel, e)
	}
	return nil
}

func cmdHashSetgcint(c *cmdCtx) error {
	c.s.gcInterval.Store(int64(atoi(c.arg)))
	select {
	case c.s.gcKick <- struct{}{}:
	default:
	}
	return nil
}

func cmdHashSetexpire(c *cmdCtx) error {
	c.s.expireSecs.Store(int64(atoi(c.arg)))
	return nil
}

// cmdHashSetmax sets the most entries the table holds (ours; the C table has no bound).
// Lowering it below the entries there are removes none: nothing new is learned until
// expiry or a flush brings the count below it.
func cmdHashSetmax(c *cmdCtx) error {
	n := atoi(c.arg)
	if n <= 0 {
		return unix.EINVAL
	}
	c.s.macs.setLimit(n)
	return nil
}

func cmdHashSetminper(c *cmdCtx) error {
	c.s.macs.minPers.Store(int64(atoi(c.arg)))
	return nil
}

func (c *cmdCtx) hashRow(e *macEntry, now int64) {
	m := e.key.mac()
	c.printf("Hash: %04d Addr: %s VLAN %04d to port: %03d  age %d secs\n",
		e.key.hash()&uint64(c.s.hashSize.Load()-1), macString(m[:]), e.key.vlan(), e.port, now-e.lastSeen.Load())
}

func cmdHashPrint(c *cmdCtx) error {
	now := c.s.now()
	for _, e := range c.s.macs.snapshot(int(c.s.hashSize.Load())) {
		c.hashRow(e, now)
	}
	return nil
}

// cmdHashFind prints the entry's real port (the C switch prints port+1, a bug).
func cmdHashFind(c *cmdCtx) error {
	f := strings.Fields(c.arg)
	if len(f) == 0 {
		return unix.EINVAL
	}
	mac, ok := parseMAC(f[0])
	if !ok {
		return unix.EINVAL
	}
	vlan := 0
	if len(f) > 1 {
		vlan = atoi(f[1])
	}
	if vlan < 0 || vlan >= maxVLANs {
		return unix.EINVAL
	}
	k := makeKey(mac[:], uint16(vlan))
	e, _ := c.s.macs.tab.Load().find(k)
	if e == nil {
		return unix.ENODEV
	}
	c.hashRow(e, c.s.now())
	return nil
}
