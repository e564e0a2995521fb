// Package ifupdown is what `vde ifup-hook` does for the vde2-switch, vde2-slirp and
// vde2-plug options of /etc/network/interfaces (shared/spec/ifupdown.md): on ifup's
// pre-up phase it starts a switch on /var/run/vde2/$IFACE.ctl (with a TAP named $IFACE
// unless the method is manual), a slirpvde router and a dpipe plug on it; on ifdown's
// post-down phase it stops them and removes what they leave behind.
//
// The work is split in two: Env and the argument builders are pure (what Debian's two hook
// scripts compute from the environment), Up and Down run them.
package ifupdown

import (
	"errors"
	"fmt"
	"strings"
)

// Env is what ifupdown passes to a hook in its environment (interfaces(5)).
type Env struct {
	// Iface is IFACE: the physical interface name, "--all" for `ifup -a`'s global pass.
	Iface string
	// Logical is LOGICAL: the stanza's name.
	Logical string
	// AddrFam is ADDRFAM: inet, inet6, ... (meta for the --all pass).
	AddrFam string
	// Method is METHOD: static, dhcp, manual, ... (none for the --all pass).
	Method string
	// Mode is MODE: start for ifup, stop for ifdown.
	Mode string
	// Phase is PHASE: pre-up, post-up, pre-down, post-down.
	Phase string
	// Verbose is VERBOSITY=1 (ifup --verbose).
	Verbose bool
	// Switch is IF_VDE2_SWITCH: "-" or the switch's extra arguments.
	Switch string
	// Slirp is IF_VDE2_SLIRP: "-" or slirpvde's extra arguments.
	Slirp string
	// Plug is IF_VDE2_PLUG: the command line on the far side of dpipe's "=".
	Plug string
}

// FromEnv reads Env with getenv (os.Getenv in the applet).
func FromEnv(getenv func(string) string) Env {
	return Env{
		Iface:   getenv("IFACE"),
		Logical: getenv("LOGICAL"),
		AddrFam: getenv("ADDRFAM"),
		Method:  getenv("METHOD"),
		Mode:    getenv("MODE"),
		Phase:   getenv("PHASE"),
		Verbose: getenv("VERBOSITY") == "1",
		Switch:  getenv("IF_VDE2_SWITCH"),
		Slirp:   getenv("IF_VDE2_SLIRP"),
		Plug:    getenv("IF_VDE2_PLUG"),
	}
}

// Action is what a hook call asks for.
type Action int

const (
	// None: a phase or a stanza that is not ours; the hook does nothing, silently.
	None Action = iota
	// Up: ifup's pre-up phase of a stanza with vde2-* options.
	Up
	// Down: ifdown's post-down phase of a stanza with vde2-* options.
	Down
)

func (a Action) String() string {
	switch a {
	case Up:
		return "up"
	case Down:
		return "down"
	}
	return "none"
}

// Ours reports whether the stanza has a vde2-* option (Debian's test: a non-empty value).
// The --all pass and stanzas without one are not ours.
func (e Env) Ours() bool { return e.Switch != "" || e.Slirp != "" || e.Plug != "" }

// Action tells what this call is for. The hooks are installed in if-pre-up.d and
// if-post-down.d only, but the same binary may be linked elsewhere: other phases do
// nothing. Without PHASE (ifupdown before 0.7, or a manual call) MODE decides.
func (e Env) Action() Action {
	if !e.Ours() {
		return None
	}
	switch {
	case e.Mode == "start" && (e.Phase == "pre-up" || e.Phase == ""):
		return Up
	case e.Mode == "stop" && (e.Phase == "post-down" || e.Phase == ""):
		return Down
	}
	return None
}

// ErrBadIface is a stanza name that cannot be a network interface, and so cannot be
// part of a file name under the run directory.
var ErrBadIface = errors.New("not a valid interface name")

// CheckIface accepts what the kernel takes as an interface name (dev_valid_name): 1 to
// 15 bytes, not "." or "..", no '/', ':' or white space. IFACE becomes a file name under
// the run directory, so this is also what keeps the hook inside it.
func CheckIface(name string) error {
	bad := name == "" || len(name) > 15 || name == "." || name == ".." ||
		strings.ContainsAny(name, "/: \t\n\v\f\r\x00")
	if bad {
		return fmt.Errorf("IFACE %q: %w", name, ErrBadIface)
	}
	return nil
}

// Split splits an option value into words as the hooks' `set -- $IF_VDE2_...` does with
// the default IFS (space, tab, newline). Unlike the shell it does not expand globs: a
// '*' in an option is passed on as it is.
func Split(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '\t' || r == '\n' })
}

// extraArgs is the words of a vde2-switch or vde2-slirp value without a leading "-",
// which stands for "no arguments".
func extraArgs(value string) []string {
	w := Split(value)
	if len(w) > 0 && w[0] == "-" {
		w = w[1:]
	}
	return w
}
