package switchcore

import (
	"encoding/binary"
	"fmt"
	"log/syslog"
	"os"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// iplog logs which IP source addresses (in ranges the user names) appear on which port,
// with the MAC, VLAN, user and endpoint descriptions, as VDE2's iplog.so does: one line
// per new (address, port, MAC), to a file or to syslog.

var catIplogNewIP = &debugCat{"iplog/newip", 0301, "show new ip addresses"}

// Defaults of the C plugin.
const (
	iplogGCInterval = 10
	iplogGCExpire   = 360
	// iplogQueue bounds the new-address notices waiting for the logger goroutine; more are
	// dropped (and counted in the log) rather than waited for.
	iplogQueue = 256
)

var iplogPlugin = &pluginDef{
	name: "iplog",
	help: "log ip/port/user assignment",
	commands: []command{
		menu("iplog", "IP/Mac/User Logging"),
		{path: "iplog/showinfo", help: "Show info on logging", withFile: true, run: cmdIplogShowinfo},
		{path: "iplog/logfile", syntax: "pathname", help: "Set the logfile", run: cmdIplogLogfile},
		{path: "iplog/ipadd", syntax: "ipaddr/mask", help: "add an ipv4/v6 range", run: cmdIplogIPAdd},
		{path: "iplog/ipdel", syntax: "ipaddr/mask", help: "del an ipv6/v6 range", run: cmdIplogIPDel},
		{path: "iplog/list", help: "list ip ranges", withFile: true, run: cmdIplogList},
		{path: "iplog/setgcint", syntax: "N", help: "change garbage collector interval", run: cmdIplogSetGCInt},
		{path: "iplog/setexpire", syntax: "N", help: "change iplog entries expire time", run: cmdIplogSetExpire},
		{path: "iplog/iplist", help: "list active IP", withFile: true, run: cmdIplogIPList},
		{path: "iplog/ipport", syntax: "port", help: "list active IP on a port", withFile: true, run: cmdIplogIPPort},
		{path: "iplog/ipuser", syntax: "user", help: "list active IP of a user", withFile: true, run: cmdIplogIPUser},
		{path: "iplog/ipsearch", syntax: "ipaddr", help: "search an IP address", withFile: true, run: cmdIplogIPSearch},
	},
	cats:  []*debugCat{catIplogNewIP},
	start: startIplog,
}

// ipKey identifies an address seen: its length (4 or 16), VLAN and bytes.
type ipKey struct {
	n    uint8
	vlan uint16
	addr [16]byte
}

type ipEntry struct {
	key      ipKey
	seq      uint64 // creation order, for listing in the C plugin's order
	lastSeen int64
	port     int
	mac      [6]byte
}

// ipNotice is a new (address, port, MAC) for the logger goroutine.
type ipNotice struct {
	key  ipKey
	port int
	mac  [6]byte
}

// Where the log goes.
const (
	iplogOff = iota
	iplogSyslog
	iplogFile
)

// iplogState is a loaded iplog.
type iplogState struct {
	s      *Switch
	ranges atomic.Pointer[[]ipRange] // v4 ranges first, then v6, each in the order added

	mu      sync.Mutex // guards the table
	table   map[ipKey]*ipEntry
	seq     uint64
	dropped uint64 // notices the logger had no room for

	notices    chan ipNotice
	drainReq   chan chan struct{} // drain: the logger closes it once the queue is written
	done       chan struct{}
	wg         sync.WaitGroup
	gcInterval atomic.Int64
	gcExpire   atomic.Int64
	gcKick     chan struct{}

	logMu   sync.Mutex // guards the destination
	logTo   int
	logPath string   // absolute
	logAs   fileUser // whose rights the file was opened with, to reopen it with
	logFile *os.File
	syslog  *syslog.Writer
}

func startIplog(s *Switch) pluginState {
	ip := &iplogState{
		s:        s,
		table:    map[ipKey]*ipEntry{},
		notices:  make(chan ipNotice, iplogQueue),
		drainReq: make(chan chan struct{}),
		done:     make(chan struct{}),
		gcKick:   make(chan struct{}, 1),
	}
	ip.ranges.Store(&[]ipRange{})
	ip.gcInterval.Store(iplogGCInterval)
	ip.gcExpire.Store(iplogGCExpire)
	ip.wg.Add(2)
	go ip.logLoop()
	go ip.gcLoop()
	return ip
}

func (ip *iplogState) watching() bool { return len(*ip.ranges.Load()) > 0 }

func (ip *iplogState) stop() {
	close(ip.done)
	ip.wg.Wait()
	ip.logMu.Lock()
	ip.closeLogLocked()
	ip.logMu.Unlock()
}

// frame looks at a received frame: an IPv4 (header length 5) or IPv6 (traffic class 0)
// packet whose source is in a watched range updates the table, and a new address, or one
// that moved port or MAC, is logged. The VLAN is the frame's tag, 0 when untagged, as in C.
func (ip *iplogState) frame(port int, f []byte) {
	if len(f) < 14 {
		return
	}
	vlan, off := uint16(0), 12
	if f[12] == 0x81 && f[13] == 0x00 {
		if len(f) < 18 {
			return
		}
		vlan, off = binary.BigEndian.Uint16(f[14:16])&0xfff, 16
	}
	et, body := binary.BigEndian.Uint16(f[off:off+2]), f[off+2:]
	var src []byte
	switch {
	case et == 0x0800 && len(body) >= 20 && body[0] == 0x45:
		src = body[12:16]
	case et == 0x86dd && len(body) >= 40 && body[0] == 0x60:
		src = body[8:24]
	default:
		return
	}
	for _, r := range *ip.ranges.Load() {
		if r.n == len(src) && r.contains(src) {
			ip.seen(port, vlan, src, f[6:12])
			return
		}
	}
}

func (ip *iplogState) seen(port int, vlan uint16, src, mac []byte) {
	k := ipKey{n: uint8(len(src)), vlan: vlan}
	copy(k.addr[:], src)
	now := ip.s.now()
	ip.mu.Lock()
	defer ip.mu.Unlock()
	e := ip.table[k]
	if e == nil {
		ip.seq++
		e = &ipEntry{key: k, seq: ip.seq, port: -1}
		ip.table[k] = e
	}
	e.lastSeen = now
	if e.port == port && [6]byte(mac) == e.mac {
		return
	}
	e.port, e.mac = port, [6]byte(mac)
	select {
	case ip.notices <- ipNotice{key: k, port: port, mac: e.mac}:
	default:
		ip.dropped++
	}
}

// portGone forgets the addresses of a port whose last endpoint left.
func (ip *iplogState) portGone(port int) {
	ip.mu.Lock()
	for k, e := range ip.table {
		if e.port == port {
			delete(ip.table, k)
		}
	}
	ip.mu.Unlock()
}

// logLoop writes the log lines, off the frame path.
func (ip *iplogState) logLoop() {
	defer ip.wg.Done()
	for {
		select {
		case n := <-ip.notices:
			ip.log(n)
		case drained := <-ip.drainReq:
			ip.logQueued()
			close(drained)
		case <-ip.done:
			ip.logQueued()
			return
		}
	}
}

// logQueued writes the notices queued now.
func (ip *iplogState) logQueued() {
	for {
		select {
		case n := <-ip.notices:
			ip.log(n)
		default:
			return
		}
	}
}

// log writes "ipv4 ADDR mac=MAC port=N vlan=N user=NAME" and the port's endpoint
// descriptions, each quoted; a file line starts with the time as ctime prints it.
func (ip *iplogState) log(n ipNotice) {
	s := ip.s
	uid, descrs := s.portUserDescrs(n.port)
	m := n.mac
	msg := fmt.Sprintf("ipv%d %s mac=%02x:%02x:%02x:%02x:%02x:%02x port=%d vlan=%d user=%s",
		ipVersion(n.key.n), ipString(n.key.addr[:n.key.n]), m[0], m[1], m[2], m[3], m[4], m[5], n.port, n.key.vlan, pwName(uid))
	for _, d := range descrs {
		msg += ` "` + d + `"`
	}
	ip.mu.Lock()
	dropped := ip.dropped
	ip.dropped = 0
	ip.mu.Unlock()
	if dropped > 0 {
		s.logf("iplog: %d new addresses came faster than they could be logged and were not logged", dropped)
	}
	ip.logMu.Lock()
	switch ip.logTo {
	case iplogFile:
		line := time.Now().Format("Jan _2 15:04:05 ") + msg + "\n"
		if _, err := ip.logFile.WriteString(line); err != nil {
			s.logf("iplog: %s: %s", ip.logPath, errText(err))
		}
	case iplogSyslog:
		if ip.syslog == nil {
			ip.syslog, _ = syslog.New(syslog.LOG_INFO|syslog.LOG_USER, "vde_switch")
		}
		if ip.syslog != nil {
			ip.syslog.Info(msg)
		} else {
			s.logf("%s", msg)
		}
	}
	ip.logMu.Unlock()
	s.event(catIplogNewIP, msg)
}

// portUserDescrs gives the uid of a port's endpoints (-1 if none) and their descriptions,
// newest first up to the first endpoint without one (C's port_descr ends there).
func (s *Switch) portUserDescrs(port int) (int, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if port < 0 || port >= len(s.ports) || s.ports[port] == nil {
		return -1, nil
	}
	p := s.ports[port]
	var d []string
	for _, ep := range p.eps {
		if ep.descr == "" {
			break
		}
		d = append(d, ep.descr)
	}
	return p.curUser, d
}

func (s *Switch) portUser(port int) int {
	uid, _ := s.portUserDescrs(port)
	return uid
}

// pwName is getpwuid's name for uid, "(none)" when there is none.
func pwName(uid int) string {
	if uid < 0 {
		return "(none)"
	}
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return u.Username
	}
	return "(none)"
}

func (ip *iplogState) gcLoop() {
	defer ip.wg.Done()
	for {
		var tick <-chan time.Time
		if iv := ip.gcInterval.Load(); iv > 0 {
			tick = time.After(time.Duration(iv) * time.Second)
		}
		select {
		case <-ip.done:
			return
		case <-ip.gcKick:
			continue
		case <-tick:
		}
		limit := ip.s.now() - ip.gcExpire.Load()
		ip.mu.Lock()
		for k, e := range ip.table {
			if e.lastSeen <= limit {
				delete(ip.table, k)
			}
		}
		ip.mu.Unlock()
	}
}

// closeLogLocked closes the log file; call with logMu held.
func (ip *iplogState) closeLogLocked() {
	if ip.logFile != nil {
		ip.logFile.Close()
		ip.logFile = nil
	}
	if ip.syslog != nil {
		ip.syslog.Close()
		ip.syslog = nil
	}
	ip.logPath = ""
}

// reopen closes and reopens the log file (SIGHUP: after logrotate), noting both in it.
func (ip *iplogState) reopen() {
	ip.logMu.Lock()
	defer ip.logMu.Unlock()
	if ip.logTo != iplogFile || ip.logFile == nil {
		return
	}
	stamp := func() string { return time.Now().Format("Jan _2 15:04:05 ") }
	ip.logFile.WriteString(stamp() + "SIGHUP: closing file\n")
	ip.logFile.Close()
	f, err := openFileAs(ip.logAs, ip.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0600)
	if err != nil {
		ip.s.logf("iplog: %s: %s", ip.logPath, errText(err))
		ip.logFile, ip.logTo = nil, iplogOff
		return
	}
	ip.logFile = f
	f.WriteString(stamp() + "SIGHUP: opening file\n")
}

// Hangup is what SIGHUP does to a running switch: plugins that log to files reopen them.
func (s *Switch) Hangup() {
	s.plugins.mu.Lock()
	ip := s.plugins.iplog
	s.plugins.mu.Unlock()
	if ip != nil {
		ip.reopen()
	}
}

func iplogOf(c *cmdCtx) *iplogState {
	c.s.plugins.mu.Lock()
	defer c.s.plugins.mu.Unlock()
	return c.s.plugins.iplog
}

// iplogCmd wraps an iplog command: the state it needs, or ENOSYS once the plugin is gone.
func iplogCmd(f func(c *cmdCtx, ip *iplogState) error) func(*cmdCtx) error {
	return func(c *cmdCtx) error {
		ip := iplogOf(c)
		if ip == nil {
			return unix.ENOSYS
		}
		return f(c, ip)
	}
}

var (
	cmdIplogShowinfo = iplogCmd(func(c *cmdCtx, ip *iplogState) error {
		c.printf("iplog: ip/port/user logging plugin\n")
		ip.logMu.Lock()
		switch ip.logTo {
		case iplogOff:
			c.printf("log disabled\n")
		case iplogSyslog:
			c.printf("log on syslog\n")
		default:
			c.printf("log on file %s\n", ip.logPath)
		}
		ip.logMu.Unlock()
		c.printf("GC interval %d secs\n", ip.gcInterval.Load())
		c.printf("GC expire %d secs\n", ip.gcExpire.Load())
		return nil
	})
	// cmdIplogLogfile: a path logs there (appending, mode 0600), "-" logs to syslog, nothing
	// stops logging. A file that cannot be opened is ENOENT whatever the reason, as in C.
	cmdIplogLogfile = iplogCmd(func(c *cmdCtx, ip *iplogState) error {
		ip.logMu.Lock()
		defer ip.logMu.Unlock()
		switch c.arg {
		case "":
			ip.closeLogLocked()
			ip.logTo = iplogOff
		case "-":
			ip.closeLogLocked()
			ip.logTo = iplogSyslog
		default:
			path := inStartDir(c.arg)
			f, as, err := openForSession(c.ss, path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0600)
			if err != nil {
				return unix.ENOENT
			}
			ip.logAs = as
			ip.closeLogLocked()
			if real, err := filepath.EvalSymlinks(path); err == nil {
				path = real
			}
			ip.logFile, ip.logPath, ip.logTo = f, filepath.Clean(path), iplogFile
		}
		return nil
	})
	cmdIplogIPAdd = iplogCmd(func(c *cmdCtx, ip *iplogState) error {
		return ip.editRanges(c, func(old []ipRange, r ipRange) ([]ipRange, error) {
			for _, o := range old {
				if o == r {
					return nil, unix.EEXIST
				}
			}
			// v4 ranges list before v6 ones, each in the order added (C keeps two lists).
			i := 0
			for i < len(old) && old[i].n <= r.n {
				i++
			}
			return append(append(old[:i:i], r), old[i:]...), nil
		})
	})
	cmdIplogIPDel = iplogCmd(func(c *cmdCtx, ip *iplogState) error {
		return ip.editRanges(c, func(old []ipRange, r ipRange) ([]ipRange, error) {
			for i, o := range old {
				if o == r {
					return append(old[:i:i], old[i+1:]...), nil
				}
			}
			return nil, unix.ENOENT
		})
	})
	cmdIplogList = iplogCmd(func(c *cmdCtx, ip *iplogState) error {
		for _, r := range *ip.ranges.Load() {
			c.printf("  ipv%d: %s\n", ipVersion(uint8(r.n)), r)
		}
		return nil
	})
	cmdIplogSetGCInt = iplogCmd(func(c *cmdCtx, ip *iplogState) error {
		ip.gcInterval.Store(int64(atoi(c.arg)))
		select {
		case ip.gcKick <- struct{}{}:
		default:
		}
		return nil
	})
	cmdIplogSetExpire = iplogCmd(func(c *cmdCtx, ip *iplogState) error {
		ip.gcExpire.Store(int64(atoi(c.arg)))
		return nil
	})
	cmdIplogIPList = iplogCmd(func(c *cmdCtx, ip *iplogState) error {
		ip.list(c, func(*ipEntry, int) bool { return true })
		return nil
	})
	cmdIplogIPPort = iplogCmd(func(c *cmdCtx, ip *iplogState) error {
		port := atoi(c.arg)
		ip.list(c, func(e *ipEntry, _ int) bool { return e.port == port })
		return nil
	})
	// cmdIplogIPUser lists the addresses on ports of a user, named or by number.
	cmdIplogIPUser = iplogCmd(func(c *cmdCtx, ip *iplogState) error {
		if c.arg == "" {
			return unix.EINVAL
		}
		var u *user.User
		var err error
		if c.arg[0] >= '0' && c.arg[0] <= '9' {
			u, err = user.LookupId(strconv.Itoa(atoi(c.arg)))
		} else {
			u, err = user.Lookup(c.arg)
		}
		if err != nil {
			return unix.EINVAL
		}
		uid, _ := strconv.Atoi(u.Uid)
		ip.list(c, func(_ *ipEntry, owner int) bool { return owner == uid })
		return nil
	})
	cmdIplogIPSearch = iplogCmd(func(c *cmdCtx, ip *iplogState) error {
		a, err := parseHost(c.arg, lookupHost)
		if err != nil {
			return unix.EINVAL
		}
		var want []byte
		if a.Is4() {
			b := a.As4()
			want = b[:]
		} else {
			b := a.As16()
			want = b[:]
		}
		found := false
		ip.list(c, func(e *ipEntry, _ int) bool {
			if found || int(e.key.n) != len(want) || string(e.key.addr[:e.key.n]) != string(want) {
				return false
			}
			found = true
			return true
		})
		return nil
	})
)

// list prints "ipv4 ADDR port=N user=NAME" for the entries keep selects (given the
// entry and its port's user), in the C plugin's order: by its hash bucket, newest first.
func (ip *iplogState) list(c *cmdCtx, keep func(e *ipEntry, uid int) bool) {
	ip.mu.Lock()
	es := make([]ipEntry, 0, len(ip.table))
	for _, e := range ip.table {
		es = append(es, *e)
	}
	ip.mu.Unlock()
	sort.Slice(es, func(i, j int) bool {
		hi, hj := ipHash(es[i].key), ipHash(es[j].key)
		if hi != hj {
			return hi < hj
		}
		return es[i].seq > es[j].seq
	})
	for i := range es {
		e := &es[i]
		uid := c.s.portUser(e.port)
		if keep(e, uid) {
			c.printf("ipv%d %s port=%d user=%s\n", ipVersion(e.key.n), ipString(e.key.addr[:e.key.n]), e.port, pwName(uid))
		}
	}
}

// ipHash is the C plugin's bucket of an address (1024 buckets).
func ipHash(k ipKey) int {
	a := k.addr
	var h int
	if k.n == 4 {
		h = int(a[0]) + 2*int(a[1]) + 3*int(a[2]) + 5*int(a[3])
	} else {
		w := [16]int{1, 2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47}
		for i := range w {
			h += w[i] * int(a[i])
		}
	}
	return h % 1024
}

// ipVersion is 4 or 6 for an address of n bytes.
func ipVersion(n uint8) int {
	if n == 4 {
		return 4
	}
	return 6
}

// editRanges parses the command's range and replaces the watched ranges with what edit
// makes of them and it (a new slice: readers hold the old one); EINVAL if it does not parse.
func (ip *iplogState) editRanges(c *cmdCtx, edit func(old []ipRange, r ipRange) ([]ipRange, error)) error {
	r, err := parseIPRange(c.arg, lookupHost)
	if err != nil {
		return unix.EINVAL
	}
	c.s.plugins.mu.Lock()
	defer c.s.plugins.mu.Unlock()
	nr, err := edit(*ip.ranges.Load(), r)
	if err != nil {
		return err
	}
	ip.ranges.Store(&nr)
	c.s.plugins.retapLocked()
	return nil
}
