package ifupdown

import (
	"io"
	"path/filepath"
	"time"
)

// Defaults of Config, as Debian's hooks have them.
const (
	// DefaultRunDir is where the sockets and pid files live (/var/run is /run today).
	DefaultRunDir = "/var/run/vde2"
	// DefaultUser runs slirpvde; DefaultGroup owns the run directory and the sockets.
	DefaultUser  = "vde2-net"
	DefaultGroup = "vde2-net"
)

// Config is where and as whom the hook runs things.
type Config struct {
	// RunDir holds $IFACE.ctl, $IFACE.mgmt and the pid files (default /var/run/vde2).
	RunDir string
	// User runs slirpvde (default vde2-net).
	User string
	// Group owns RunDir and the switch's sockets (default vde2-net).
	Group string
	// Vde is the multicall binary; it runs as vde_switch, slirpvde, dpipe and vde_plug.
	Vde string
	// Stdout and Stderr get the started tools' output: the switch's start-up errors
	// reach ifup's stderr through them.
	Stdout, Stderr io.Writer
	// StopTimeout is how long a SIGTERMed tool has before SIGKILL (default 5s).
	StopTimeout time.Duration
	// PlugGrace is how long a new dpipe is watched: if it ends in that time the plug
	// failed (ssh refused, no such command) and ifup fails (default 1.5s).
	PlugGrace time.Duration
}

func (c Config) withDefaults() Config {
	if c.RunDir == "" {
		c.RunDir = DefaultRunDir
	}
	if c.User == "" {
		c.User = DefaultUser
	}
	if c.Group == "" {
		c.Group = DefaultGroup
	}
	if c.Stdout == nil {
		c.Stdout = io.Discard
	}
	if c.Stderr == nil {
		c.Stderr = io.Discard
	}
	if c.StopTimeout == 0 {
		c.StopTimeout = 5 * time.Second
	}
	if c.PlugGrace == 0 {
		c.PlugGrace = 1500 * time.Millisecond
	}
	return c
}

// Paths are the files of one interface under the run directory.
type Paths struct {
	// Ctl is the switch's control directory, $IFACE.ctl.
	Ctl string
	// Mgmt is the switch's management socket, $IFACE.mgmt (next to Ctl, not in it).
	Mgmt string
	// SwitchPid, SlirpPid and PlugPid are $IFACE.pid, $IFACE-slirp.pid, $IFACE-plug.pid.
	SwitchPid, SlirpPid, PlugPid string
}

// PathsFor gives the files of iface under runDir.
func PathsFor(runDir, iface string) Paths {
	j := func(s string) string { return filepath.Join(runDir, iface+s) }
	return Paths{
		Ctl:       j(".ctl"),
		Mgmt:      j(".mgmt"),
		SwitchPid: j(".pid"),
		SlirpPid:  j("-slirp.pid"),
		PlugPid:   j("-plug.pid"),
	}
}

// SwitchArgs is vde_switch's command line (without argv[0]) for vde2-switch, in the order
// Debian's hook uses: the fixed options, -t $IFACE unless the method is manual, -d, then
// the stanza's own words.
func SwitchArgs(e Env, c Config) []string {
	c = c.withDefaults()
	p := PathsFor(c.RunDir, e.Iface)
	args := []string{"-s", p.Ctl, "-m", "660", "-g", c.Group, "-p", p.SwitchPid}
	if e.Method != "manual" {
		args = append(args, "-t", e.Iface)
	}
	args = append(args, "-M", p.Mgmt, "--mgmtmode", "660", "-d")
	return append(args, extraArgs(e.Switch)...)
}

// SlirpArgs is slirpvde's command line (without argv[0]) for vde2-slirp.
func SlirpArgs(e Env, c Config) []string {
	c = c.withDefaults()
	p := PathsFor(c.RunDir, e.Iface)
	args := []string{"-s", p.Ctl, "-m", "660", "-p", p.SlirpPid, "-d"}
	return append(args, extraArgs(e.Slirp)...)
}

// PlugArgs is dpipe's command line (without argv[0]) for vde2-plug: our vde_plug on the
// switch, "=", and the stanza's words unchanged (no "-" is dropped here: it would be the
// command). plug is how dpipe runs our vde_plug: a path, or the binary and "plug". dpipe
// writes its own pid to the plug pid file too, and removes it when the chain ends.
func PlugArgs(e Env, c Config, plug []string) []string {
	c = c.withDefaults()
	p := PathsFor(c.RunDir, e.Iface)
	args := []string{"-p", p.PlugPid}
	args = append(args, plug...)
	args = append(args, "-g", c.Group, "-m", "660", p.Ctl, "=")
	return append(args, Split(e.Plug)...)
}
