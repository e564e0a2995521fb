package applets

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/user"
	"strconv"
	"strings"

	"github.com/vde-go/vde/tap"
)

func init() {
	register(Applet{Name: "tunctl", Aliases: vdeNames("tunctl"), Main: TunctlMain})
}

// tunctlUsage is the C tool's usage text, on standard error with exit status 1.
const tunctlUsage = `Create: vde_tunctl [-b] [-u owner] [-g group] [-n] [-t device-name] [-f tun-clone-device]
Delete: vde_tunctl -d device-name [-f tun-clone-device]

The default tun clone device is /dev/net/tun - some systems use
/dev/misc/net/tun instead

-b will result in brief output (just the device name)
-n create a tun interface (not needed if the device name prefix is tun
`

// tunctlOptString is the C tool's getopt string, with the "g:" its usage and code have
// but Debian's build leaves out (so Debian's says "invalid option -- 'g'"). -i is in it
// but has no case: it prints the usage.
const tunctlOptString = "bd:f:t:u:g:in"

// tunctlOptions is a parsed vde_tunctl command line.
type tunctlOptions struct {
	// Delete is -d: clear the persist flag instead of setting it.
	Delete bool
	// Name is -t or -d (the last one given); empty lets the kernel pick.
	Name string
	// Clone is -f, the clone device.
	Clone string
	// Brief is -b: print only the device's name.
	Brief bool
	// TUN is -n, or a name that starts with "tun".
	TUN bool
	// Owner and Group are -u and -g as C keeps them (uid_t and gid_t); noID (-1) is
	// "not set", whatever way it was spelled.
	Owner, Group uint32
}

// noID is C's (uid_t)-1: no owner, no group.
const noID = math.MaxUint32

// parseTunctlArgs parses vde_tunctl's arguments as the C tool's getopt loop does:
// options in order, the first bad one ends it with the usage (status 1).
func parseTunctlArgs(args []string, lookupUser, lookupGroup func(string) (int, error)) (*tunctlOptions, error) {
	usage := func(msg string) error { return &parseExit{Code: 1, Stderr: msg + tunctlUsage} }
	o := &tunctlOptions{Clone: tap.CloneDevice, Owner: noID, Group: noID}
	opts, operands, bad := getoptShort(tunctlOptString, args)
	for _, ev := range opts {
		v := ev.Value
		switch ev.Name {
		case "b":
			o.Brief = true
		case "d":
			o.Delete, o.Name = true, v
		case "f":
			o.Clone = v
		case "t":
			o.Name = v
		case "n":
			o.TUN = true
		case "u":
			id, ok := tunctlID(v, lookupUser)
			if !ok {
				return nil, usage(fmt.Sprintf("'%s' is neither a username nor a numeric uid.\n", v))
			}
			o.Owner = id
		case "g":
			id, ok := tunctlID(v, lookupGroup)
			if !ok {
				return nil, usage(fmt.Sprintf("'%s' is neither a groupname nor a numeric group.\n", v))
			}
			o.Group = id
		default: // -i
			return nil, usage("")
		}
	}
	if bad != "" {
		return nil, usage("vde_tunctl: " + bad + "\n")
	}
	if len(operands) > 0 {
		return nil, usage("")
	}
	if strings.HasPrefix(o.Name, "tun") {
		o.TUN = true
	}
	return o, nil
}

// tunctlID is a -u or -g value: a name the system knows, else a number as strtol reads
// it (base 0, all of the text; the empty text is 0), cut to 32 bits as C's uid_t keeps it.
func tunctlID(s string, lookup func(string) (int, error)) (uint32, bool) {
	if id, err := lookup(s); err == nil {
		return uint32(id), true
	}
	if s == "" {
		return 0, true // strtol reads nothing, and the end it points at is the text's
	}
	// sscanf's %i is strtol but for a "0x" without a hex digit, which strtol reads as
	// 0 followed by "x".
	t := strings.TrimLeft(s, " \t\n\v\f\r")
	if t != "" && (t[0] == '+' || t[0] == '-') {
		t = t[1:]
	}
	if len(t) >= 2 && t[0] == '0' && (t[1] == 'x' || t[1] == 'X') && (len(t) == 2 || !isHexDigit(t[2])) {
		return 0, false
	}
	v, rest, ok := scanC(s, 'i')
	return v, ok && rest == ""
}

func isHexDigit(c byte) bool {
	d, ok := digitValue(c)
	return ok && d < 16
}

// getoptShort scans args like glibc's getopt(3) with optstring (letters, "x:" for one
// that takes a value): options in order, operands permuted to the end, "--" ending the
// options. It stops at the first bad option and returns getopt's message for it, as
// the C tools that exit on it see it.
func getoptShort(optstring string, args []string) (opts []optEvent, operands []string, bad string) {
	takes := func(c byte) (known, hasArg bool) {
		i := strings.IndexByte(optstring, c)
		if i < 0 || c == ':' {
			return false, false
		}
		return true, i+1 < len(optstring) && optstring[i+1] == ':'
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return opts, append(operands, args[i+1:]...), ""
		}
		if len(a) < 2 || a[0] != '-' {
			operands = append(operands, a)
			continue
		}
		for j := 1; j < len(a); j++ {
			c := a[j]
			known, hasArg := takes(c)
			switch {
			case !known:
				return opts, operands, fmt.Sprintf("invalid option -- '%c'", c)
			case !hasArg:
				opts = append(opts, optEvent{Name: string(c)})
				continue
			case j+1 < len(a):
				opts = append(opts, optEvent{Name: string(c), Value: a[j+1:]})
			case i+1 < len(args):
				i++
				opts = append(opts, optEvent{Name: string(c), Value: args[i]})
			default:
				return opts, operands, fmt.Sprintf("option requires an argument -- '%c'", c)
			}
			break
		}
	}
	return opts, operands, ""
}

// lookupUserID is getpwnam's uid for name.
func lookupUserID(name string) (int, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(u.Uid)
}

// lookupGroupID is getgrnam's gid for name.
func lookupGroupID(name string) (int, error) {
	g, err := user.LookupGroup(name)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(g.Gid)
}

// TunctlMain is vde_tunctl: it makes a persistent TAP (or TUN) owned by a user or a
// group, or makes one nonpersistent again (-d), as Debian's does.
func TunctlMain(ctx context.Context, args []string, stdio Stdio) error {
	o, err := parseTunctlArgs(args, lookupUserID, lookupGroupID)
	if err != nil {
		return parseFailure(err, stdio)
	}
	return runTunctl(o, os.Geteuid(), stdio)
}

// runTunctl does what o says; euid is the owner when neither -u nor -g is given (C's
// emulation of tunctl before TUNSETGROUP).
func runTunctl(o *tunctlOptions, euid int, stdio Stdio) error {
	c := tap.Config{Name: o.Name, TUN: o.TUN, Clone: o.Clone}
	if o.Delete {
		// tap.Release, but the name may be the kernel's pick (-d "" or a pattern).
		d, err := tap.OpenConfig(c)
		if err != nil {
			return tunctlFailure(err, o, stdio)
		}
		err = d.SetPersist(false)
		d.Close()
		if err != nil {
			return tunctlFailure(err, o, stdio)
		}
		fmt.Fprintf(stdio.Out, "Set '%s' nonpersistent\n", d.Name())
		return nil
	}
	owner, group := o.Owner, o.Group
	if owner == noID && group == noID {
		owner = uint32(euid)
	}
	if owner != noID {
		c.Owner, c.HasOwner = int(owner), true
	}
	if group != noID {
		c.Group, c.HasGroup = int(group), true
	}
	name, err := tap.Create(c)
	if err != nil {
		return tunctlFailure(err, o, stdio)
	}
	if o.Brief {
		fmt.Fprintf(stdio.Out, "%s\n", name)
		return nil
	}
	msg := fmt.Sprintf("Set '%s' persistent and owned by", name)
	if owner != noID {
		msg += fmt.Sprintf(" uid %d", int32(owner)) // C prints the uid_t with %d
	}
	if group != noID {
		msg += fmt.Sprintf(" gid %d", int32(group))
	}
	fmt.Fprintln(stdio.Out, msg)
	return nil
}

// tunctlFailure prints what the C tool prints when a step fails ("TUNSETIFF: Device or
// resource busy", perror's form), or our message where C has none, and ends with status 1.
func tunctlFailure(err error, o *tunctlOptions, stdio Stdio) error {
	var te *tap.Error
	switch {
	case errors.As(err, &te) && strings.HasPrefix(te.Op, "open "):
		fmt.Fprintf(stdio.Err, "Failed to open '%s' : %s\n", o.Clone, strerror(te.Err))
	case errors.As(err, &te) && strings.HasPrefix(te.Op, "TUNSET"):
		op, _, _ := strings.Cut(te.Op, " ")
		fmt.Fprintf(stdio.Err, "%s: %s\n", op, strerror(te.Err))
	case errors.Is(err, tap.ErrNameTooLong):
		fmt.Fprintf(stdio.Err, "vde_tunctl: '%s': %v\n", o.Name, tap.ErrNameTooLong)
	default:
		fmt.Fprintf(stdio.Err, "vde_tunctl: %v\n", err)
	}
	return exit(1)
}
