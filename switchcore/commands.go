package switchcore

import (
	"bytes"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// command is one management command. Commands are matched by prefix in registry order, as
// the C switch does (so "showinfoXYZ" runs showinfo); menus are listed but not runnable.
type command struct {
	path, syntax, help string
	menu               bool
	withFile           bool // the response carries a data block
	run                func(*cmdCtx) error
}

// cmdCtx is what a command runs with: the switch, the session, its argument text and the
// writer for its data lines.
type cmdCtx struct {
	s   *Switch
	ss  *session
	arg string
	w   *bytes.Buffer
}

func (c *cmdCtx) printf(format string, args ...any) { fmt.Fprintf(c.w, format, args...) }

func menu(path, help string) command {
	return command{path: path, syntax: "============", help: help, menu: true}
}

// registry lists every command in the C switch's module order (help prints this order).
var registry []command

func init() {
	for _, group := range [][]command{generalCommands, debugCommands, pluginCommands, hashCommands,
		fstpCommands, portCommands, captureCommands, vlanCommands} {
		registry = append(registry, group...)
	}
}

func lookupCommand(line string) *command {
	for i := range registry {
		c := &registry[i]
		if !c.menu && strings.HasPrefix(line, c.path) {
			return c
		}
	}
	return nil
}

var generalCommands = []command{
	menu("ds", "DATA SOCKET MENU"),
	{path: "ds/showinfo", help: "show ds info", withFile: true, run: cmdDSShowinfo},
	{path: "help", syntax: "[arg]", help: "Help (limited to arg when specified)", withFile: true, run: cmdHelp},
	{path: "logout", help: "logout from this mgmt terminal"},
	{path: "shutdown", help: "shutdown of the switch"},
	{path: "upgrade", syntax: "[path]", help: "exec path (default: this binary) in place, keeping every client", run: cmdUpgrade},
	{path: "showinfo", help: "show switch version and info", withFile: true, run: cmdShowinfo},
	{path: "load", syntax: "path", help: "load a configuration script", run: cmdLoad},
}

func cmdDSShowinfo(c *cmdCtx) error {
	c.printf("ctl dir %s\nstd mode 0%03o\n", c.s.ctlDir, c.s.sockMode)
	return nil
}

func cmdHelp(c *cmdCtx) error {
	c.printf("%-18s %-15s %s\n", "COMMAND PATH", "SYNTAX", "HELP")
	c.printf("%-18s %-15s %s\n", "------------", "--------------", "------------")
	for _, cmd := range c.s.commands() {
		if strings.HasPrefix(cmd.path, c.arg) {
			c.printf("%-18s %-15s %s\n", cmd.path, cmd.syntax, cmd.help)
		}
	}
	return nil
}

func cmdShowinfo(c *cmdCtx) error {
	s := c.s
	c.w.WriteString(s.Banner())
	c.printf("\npid %d MAC %s uptime %d\n", os.Getpid(), macString(s.mac[:]), s.now())
	if s.cfg.MgmtPath != "" {
		c.printf("mgmt %s perm 0%03o\n", s.cfg.MgmtPath, s.cfg.MgmtMode)
	}
	return nil
}

// cmdLoad runs a script, echoing each line and its response as the C switch does.
func cmdLoad(c *cmdCtx) error {
	data, err := c.s.readScript(c.ss, c.arg)
	if err != nil {
		c.s.logf("mgmt: load %s: %v", c.arg, err)
		return errnoOf(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		c.printf("vde[%s]: %s\n", c.arg, line)
		var w bytes.Buffer
		if done, _ := c.s.runLine(c.ss, line, &w); done {
			break // logout and shutdown do not end a session from inside a script
		}
		c.w.Write(w.Bytes())
	}
	return nil
}

var debugCommands = []command{
	menu("debug", "DEBUG MENU"),
	{path: "debug/list", help: "list debug categories", withFile: true, run: cmdDebugList},
	{path: "debug/add", syntax: "dbgpath", help: "enable debug info for a given category", run: cmdDebugAdd},
	{path: "debug/del", syntax: "dbgpath", help: "disable debug info for a given category", run: cmdDebugDel},
}

func cmdDebugList(c *cmdCtx) error {
	c.printf("%-22s %s %-6s %s\n", "CATEGORY", "TAG", "STATUS", "HELP")
	c.printf("%-22s %s %-6s %s\n", "------------", "---", "------", "----")
	s := c.s
	s.sessMu.Lock()
	defer s.sessMu.Unlock()
	n := 0
	for _, cat := range s.debugCategories() {
		if !strings.HasPrefix(cat.path, c.arg) {
			continue
		}
		st := "OFF"
		if c.ss.subs[cat] {
			st = "ON"
		}
		c.printf("%-22s %03o %-6s %s\n", cat.path, cat.tag, st, cat.help)
		n++
	}
	if n == 0 {
		return unix.ENOENT
	}
	return nil
}

func cmdDebugAdd(c *cmdCtx) error { return c.setDebug(true) }
func cmdDebugDel(c *cmdCtx) error { return c.setDebug(false) }

func (c *cmdCtx) setDebug(on bool) error {
	s := c.s
	s.sessMu.Lock()
	defer s.sessMu.Unlock()
	before := len(c.ss.subs) > 0
	matched, changed := 0, 0
	for _, cat := range s.debugCategories() {
		if !strings.HasPrefix(cat.path, c.arg) {
			continue
		}
		matched++
		if c.ss.subs[cat] != on {
			changed++
			if on {
				c.ss.subs[cat] = true
			} else {
				delete(c.ss.subs, cat)
			}
		}
	}
	after := len(c.ss.subs) > 0
	switch {
	case before && !after:
		s.debugSubs.Add(-1)
	case !before && after:
		s.debugSubs.Add(1)
	}
	switch {
	case matched == 0:
		return unix.EINVAL
	case changed == 0 && on:
		return unix.EEXIST
	case changed == 0:
		return unix.ENOENT
	}
	return nil
}

// atoi parses like C's atoi: leading blanks, a sign, digits; anything else stops it.
func atoi(s string) int {
	s = strings.TrimLeft(s, " \t")
	i, neg, n := 0, false, 0
	if i < len(s) && (s[i] == '-' || s[i] == '+') {
		neg = s[i] == '-'
		i++
	}
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		n = n*10 + int(s[i]-'0')
		if n > 1<<30 {
			n = 1 << 30
		}
	}
	if neg {
		return -n
	}
	return n
}

// ints parses exactly n integers (sscanf %i style) or fails with EINVAL.
func ints(s string, n int) ([]int, error) {
	f := strings.Fields(s)
	if len(f) < n {
		return nil, unix.EINVAL
	}
	out := make([]int, n)
	for i := 0; i < n; i++ {
		v, err := strconv.ParseInt(f[i], 0, 32)
		if err != nil {
			return nil, unix.EINVAL
		}
		out[i] = int(v)
	}
	return out, nil
}

func errnoOf(err error) error {
	var en unix.Errno
	if pe, ok := err.(*os.PathError); ok {
		if e, ok := pe.Err.(unix.Errno); ok {
			return e
		}
	}
	if e, ok := err.(unix.Errno); ok {
		return e
	}
	_ = en
	return unix.EINVAL
}

func macString(m []byte) string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}

// parseMAC accepts a:b:c:d:e:f or a.b.c.d.e.f in hex, as the C switch does.
func parseMAC(s string) ([6]byte, bool) {
	var m [6]byte
	f := strings.FieldsFunc(s, func(r rune) bool { return r == ':' || r == '.' })
	if len(f) != 6 {
		return m, false
	}
	for i, x := range f {
		v, err := strconv.ParseUint(x, 16, 8)
		if err != nil {
			return m, false
		}
		m[i] = byte(v)
	}
	return m, true
}

// userName and groupName print ids as the C switch does: names when known, NONE for -1.
func userName(uid int) string {
	if uid < 0 {
		return "NONE"
	}
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return u.Username
	}
	return strconv.Itoa(uid)
}

func groupName(gid int) string {
	if gid < 0 {
		return "NONE"
	}
	if g, err := user.LookupGroupId(strconv.Itoa(gid)); err == nil {
		return g.Name
	}
	return strconv.Itoa(gid)
}
