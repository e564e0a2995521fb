package wire

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// VDEArg is a parsed vde:// argument: path[param/param...] (shared/spec/wire-protocol.md §9.2).
type VDEArg struct {
	// Path is the switch directory; empty means the default switch.
	Path string
	// Port is the numeric port asked for (0: any), Port0 an explicit "[0]".
	Port  int
	Port0 bool
	// Portgroup is a non-numeric port name (a vde-4 feature; a vde-2 switch ignores it).
	Portgroup string
	// Mode and Group of the client socket, when given.
	Mode     uint32
	HasMode  bool
	Group    int
	HasGroup bool
}

// ErrUnknownKey is a [key=value] the vde module does not know (vdeplug4 has no vlan=).
var ErrUnknownKey = errors.New("unknown key")

// ParseVDEArg parses the vde module's argument with vdeplug4's rules: the path runs to the
// first unquoted '[', the parameters to the last unquoted ']'; keys match by prefix in
// the order port, portgroup, group, mode; '…', "…", backslash and %XX escapes work.
func ParseVDEArg(s string) (VDEArg, error) {
	var a VDEArg
	path, params := SplitPathParams(s)
	a.Path = path
	for _, p := range params {
		if p == "" {
			continue
		}
		key, val, hasKey := strings.Cut(p, "=")
		if !hasKey {
			key, val = "port", p
		}
		switch full := matchKey(key); full {
		case "port", "portgroup":
			if n, err := strconv.Atoi(val); err == nil && n >= 0 && isDigits(val) {
				a.Port, a.Port0 = n, n == 0
			} else {
				a.Portgroup = val
			}
		case "group":
			gid, err := LookupGroup(val)
			if err != nil {
				return a, err
			}
			a.Group, a.HasGroup = gid, true
		case "mode":
			m, err := strconv.ParseUint(val, 8, 32)
			if err != nil {
				return a, fmt.Errorf("mode %q: not octal", val)
			}
			a.Mode, a.HasMode = uint32(m), true
		default:
			return a, fmt.Errorf("%w: %s", ErrUnknownKey, key)
		}
	}
	return a, nil
}

// SplitPathParams splits a module argument "path[param/param...]" as vdeplug4's
// vde_parsepathparms does: the path runs to the first unquoted '[', the parameters to the
// last unquoted ']' (or the end) and are separated by unquoted '/'. Quotes ('…', "…"),
// backslash and %XX escapes are resolved in the path and in each parameter.
func SplitPathParams(s string) (path string, params []string) {
	open, closeIdx := -1, -1
	var cuts []int // unquoted '/' inside the brackets
	var q byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case q != 0:
			if c == q {
				q = 0
			} else if c == '\\' && i+1 < len(s) {
				i++
			}
		case c == '\'' || c == '"':
			q = c
		case c == '\\':
			i++
		case c == '[' && open < 0:
			open = i
		case c == ']' && open >= 0:
			closeIdx = i
		case c == '/' && open >= 0:
			cuts = append(cuts, i)
		}
	}
	if open < 0 {
		return Unquote(s), nil
	}
	if closeIdx < 0 {
		closeIdx = len(s)
	}
	start := open + 1
	for _, c := range cuts {
		if c > closeIdx {
			break
		}
		params = append(params, Unquote(s[start:c]))
		start = c + 1
	}
	if start < closeIdx || len(params) > 0 {
		params = append(params, Unquote(s[start:closeIdx]))
	}
	return Unquote(s[:open]), params
}

func matchKey(k string) string {
	if k == "" {
		return ""
	}
	for _, full := range []string{"port", "portgroup", "group", "mode"} {
		if strings.HasPrefix(full, k) {
			return full
		}
	}
	return ""
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// Unquote removes vdeplug4's quotes and resolves backslash and %XX escapes.
func Unquote(s string) string {
	var b strings.Builder
	var q byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case q != 0 && c == q:
			q = 0
		case q == 0 && (c == '\'' || c == '"'):
			q = c
		case c == '\\' && i+1 < len(s):
			i++
			b.WriteByte(s[i])
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			v, _ := strconv.ParseUint(s[i+1:i+3], 16, 8)
			b.WriteByte(byte(v))
			i += 2
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// LookupGroup resolves a group name, or else a number, to a gid, as chown(1) does. The C
// tools take names only (vdeplug4 also numbers); a number is handy where no name exists.
func LookupGroup(name string) (int, error) {
	if g, err := user.LookupGroup(name); err == nil {
		return strconv.Atoi(g.Gid)
	}
	if gid, err := strconv.Atoi(name); err == nil && gid >= 0 {
		return gid, nil
	}
	return -1, fmt.Errorf("no such group %q", name)
}

// DefaultSwitch finds the switch an empty URL means, as vdeplug4 does (§9.3): the user's
// ~/.vdeplug/default or ~/.vde2/default.switch (a link to a switch, or a file holding a
// URL), else /var/run/vde.ctl or /tmp/vde.ctl, whichever has a ctl socket.
func DefaultSwitch() (string, error) {
	if home, err := os.UserHomeDir(); err == nil {
		for _, p := range []string{filepath.Join(home, ".vdeplug", "default"), filepath.Join(home, ".vde2", "default.switch")} {
			if _, err := os.Lstat(p); err == nil {
				return resolveFileURL(p), nil
			}
		}
	}
	for _, d := range []string{"/var/run/vde.ctl", "/tmp/vde.ctl"} {
		if _, err := os.Stat(filepath.Join(d, "ctl")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("default switch: %w", os.ErrNotExist)
}

// resolveFileURL returns the URL a regular file holds on its first line, or p itself.
func resolveFileURL(p string) string {
	st, err := os.Stat(p)
	if err != nil || !st.Mode().IsRegular() {
		return p
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return p
	}
	line, _, _ := strings.Cut(string(data), "\n")
	return strings.TrimSpace(line)
}

func openVDE(arg string, o OpenOptions) (Endpoint, error) {
	a, err := ParseVDEArg(arg)
	if err != nil {
		return nil, err
	}
	if a.Path == "" {
		def, err := DefaultSwitch()
		if err != nil {
			return nil, err
		}
		if strings.Contains(def, "://") {
			return Open(def, o)
		}
		a.Path = def
	}
	d := DialOptions{Port: a.Port, Port0: a.Port0, Description: o.Description, Mode: o.Mode, Group: o.Group, HasGroup: o.HasGroup,
		Offload: o.Offload && !o.Reconnect, Logf: o.Logf}
	if d.Port == 0 && !a.Port0 {
		d.Port = o.Port
	}
	if a.HasMode {
		d.Mode = a.Mode
	}
	if a.HasGroup {
		d.Group, d.HasGroup = a.Group, true
	}
	c, err := Dial(a.Path, d)
	if err != nil {
		return nil, err
	}
	if !o.Reconnect {
		return c, nil
	}
	return NewRedial(c, a.Path, func() (*Conn, error) { return Dial(a.Path, d) }, RedialOptions{Logf: o.Logf}), nil
}

// nullEndpoint sinks every frame and never produces one.
type nullEndpoint struct {
	done chan struct{}
	once sync.Once
}

func (n *nullEndpoint) ReadBatch([][]byte, []int) (int, error) {
	<-n.done
	return 0, errors.New("null: closed")
}
func (n *nullEndpoint) WriteBatch(f [][]byte) (int, error) { return len(f), nil }
func (n *nullEndpoint) Close() error {
	n.once.Do(func() { close(n.done) })
	return nil
}

func init() {
	RegisterScheme("vde", openVDE)
	RegisterScheme("null", func(string, OpenOptions) (Endpoint, error) {
		return &nullEndpoint{done: make(chan struct{})}, nil
	})
}
