package ifupdown

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vde-go/vde/tap"
)

// Run does what e asks for: Up on ifup's pre-up, Down on ifdown's post-down, nothing
// for other phases, the --all pass and stanzas without vde2-* options.
func Run(e Env, c Config) error {
	switch e.Action() {
	case Up:
		return UpIface(e, c)
	case Down:
		return DownIface(e, c)
	}
	return nil
}

// UpIface starts, in Debian's order, the switch, the plug and the slirp router the stanza
// asks for. One that already runs (its pid file names a live process of that tool) is
// left alone, so a second ifup starts nothing twice; a pid file left by a crash is
// replaced. If anything fails, what this call started is stopped again and the error
// says which tool failed (the tool's own message has gone to c.Stderr).
func UpIface(e Env, c Config) error {
	if err := CheckIface(e.Iface); err != nil {
		return err
	}
	c = c.withDefaults()
	if c.Vde == "" {
		return errors.New("no vde binary to run")
	}
	p := PathsFor(c.RunDir, e.Iface)
	if err := ensureRunDir(c); err != nil {
		return err
	}
	var undo []func()
	fail := func(err error) error {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
		return err
	}

	if e.Switch != "" {
		if pid, alive := livePid(p.SwitchPid, switchNames); alive {
			c.logf(e, "vde2-switch: vde_switch already runs (pid %d)", pid)
		} else {
			// Leftovers of a switch that died (its pid file was stale) are ours to
			// remove if this start fails; sockets someone else made are not.
			stale := removeStale(p.SwitchPid, switchNames)
			ctlKeep := exists(p.Ctl) && !stale
			mgmtKeep := exists(p.Mgmt) && !stale
			undoSwitch := func() {
				stopByPidFile(p.SwitchPid, switchNames, c.StopTimeout)
				if !ctlKeep {
					os.RemoveAll(p.Ctl)
				}
				if !mgmtKeep {
					removeSocket(p.Mgmt)
				}
			}
			if err := c.runTool(e, "vde_switch", SwitchArgs(e, c), nil); err != nil {
				undoSwitch()
				return fail(fmt.Errorf("vde2-switch: vde_switch %w", err))
			}
			undo = append(undo, undoSwitch)
			if e.Method != "manual" {
				// The switch goes on without a TAP it cannot open (as in C); ifup
				// would then fail to configure a missing interface.
				if _, err := net.InterfaceByName(e.Iface); err != nil {
					return fail(fmt.Errorf("vde2-switch: vde_switch did not attach TAP %s: %v", e.Iface, err))
				}
			}
		}
	}

	if e.Plug != "" {
		if pid, alive := livePid(p.PlugPid, dpipeNames); alive {
			c.logf(e, "vde2-plug: dpipe already runs (pid %d)", pid)
		} else {
			removeStale(p.PlugPid, dpipeNames)
			undoPlug, err := c.startPlug(e, p)
			if err != nil {
				return fail(fmt.Errorf("vde2-plug: %w", err))
			}
			undo = append(undo, undoPlug)
		}
	}

	if e.Slirp != "" {
		if pid, alive := livePid(p.SlirpPid, slirpNames); alive {
			c.logf(e, "vde2-slirp: slirpvde already runs (pid %d)", pid)
		} else {
			removeStale(p.SlirpPid, slirpNames)
			cred, err := credential(c.User)
			if err != nil {
				return fail(fmt.Errorf("vde2-slirp: %w", err))
			}
			if err := c.runTool(e, "slirpvde", SlirpArgs(e, c), cred); err != nil {
				stopByPidFile(p.SlirpPid, slirpNames, c.StopTimeout)
				return fail(fmt.Errorf("vde2-slirp: slirpvde %w", err))
			}
		}
	}
	return nil
}

// DownIface stops the plug, the slirp router and the switch of e.Iface (whichever pid
// files exist, as Debian's hook does), removes their pid files, the switch's control
// directory and its management socket (which Debian's hook forgets), and makes the TAP
// $IFACE non-persistent (so it goes with the switch). It goes on after a failure and
// returns all of them.
func DownIface(e Env, c Config) error {
	if err := CheckIface(e.Iface); err != nil {
		return err
	}
	c = c.withDefaults()
	p := PathsFor(c.RunDir, e.Iface)
	var errs []error
	note := func(what string, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", what, err))
		}
	}
	_, err := stopByPidFile(p.PlugPid, dpipeNames, c.StopTimeout)
	note("vde2-plug", err)
	_, err = stopByPidFile(p.SlirpPid, slirpNames, c.StopTimeout)
	note("vde2-slirp", err)
	hadSwitch, err := stopByPidFile(p.SwitchPid, switchNames, c.StopTimeout)
	note("vde2-switch", err)
	note("remove "+p.Ctl, os.RemoveAll(p.Ctl))
	if m, _ := filepath.Glob(globEscape(p.Ctl) + ".*"); len(m) > 0 {
		for _, f := range m {
			note("remove "+f, os.RemoveAll(f))
		}
	}
	note("remove "+p.Mgmt, removeSocket(p.Mgmt))
	if hadSwitch || e.Switch != "" {
		note("TAP "+e.Iface, unpersistTap(e.Iface))
	}
	return errors.Join(errs...)
}

// logf prints a note under ifup --verbose.
func (c Config) logf(e Env, format string, args ...any) {
	if e.Verbose {
		fmt.Fprintf(c.Stderr, "vde ifup-hook: %s: "+format+"\n", append([]any{e.Iface}, args...)...)
	}
}

// runTool runs our binary as name (argv[0] selects the applet) and waits for it: the
// daemons return once they are ready, or with the reason they are not on stderr.
func (c Config) runTool(e Env, name string, args []string, cred *syscall.Credential) error {
	c.logf(e, "%s %s", name, strings.Join(args, " "))
	cmd := &exec.Cmd{
		Path:        c.Vde,
		Args:        append([]string{name}, args...),
		Dir:         "/", // the daemons must not keep ifup's directory busy
		Stdout:      c.Stdout,
		Stderr:      c.Stderr,
		SysProcAttr: &syscall.SysProcAttr{Credential: cred},
	}
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return fmt.Errorf("failed (%v)", ee.ProcessState)
		}
		return err
	}
	return nil
}

// plugCommand is how dpipe runs our vde_plug: the vde_plug link next to the binary if
// there is one (so ps shows vde_plug), else the binary with the applet's name.
func (c Config) plugCommand() []string {
	link := filepath.Join(filepath.Dir(c.Vde), "vde_plug")
	if a, err := os.Stat(link); err == nil {
		if b, err := os.Stat(c.Vde); err == nil && os.SameFile(a, b) {
			return []string{link}
		}
	}
	return []string{c.Vde, "plug"}
}

// startPlug starts dpipe in a process group of its own (dpipe makes one itself, which a
// session leader could not), writes its pid file and watches it for
// PlugGrace: a chain that ends in that time failed, and what it said goes to c.Stderr.
// Afterwards its stderr is closed (start-stop-daemon --background gives it /dev/null).
func (c Config) startPlug(e Env, p Paths) (undo func(), err error) {
	args := PlugArgs(e, c, c.plugCommand())
	c.logf(e, "dpipe %s", strings.Join(args, " "))
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer devnull.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd := &exec.Cmd{
		Path:        c.Vde,
		Args:        append([]string{"dpipe"}, args...),
		Dir:         "/",
		Stdin:       devnull,
		Stdout:      devnull,
		Stderr:      w,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
	}
	err = cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("dpipe: %w", err)
	}
	pid := cmd.Process.Pid
	if err := writePid(p.PlugPid, pid); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		r.Close()
		return nil, err
	}
	var said bytes.Buffer
	copied := make(chan struct{})
	go func() {
		io.Copy(&said, r)
		close(copied)
	}()
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	select {
	case <-exited:
		// Its children may hold the pipe: give them a moment to say why.
		select {
		case <-copied:
		case <-time.After(500 * time.Millisecond):
		}
		r.Close()
		os.Remove(p.PlugPid)
		c.Stderr.Write(said.Bytes())
		return nil, fmt.Errorf("dpipe %s ended at once (%v)", strings.Join(args, " "), cmd.ProcessState)
	case <-time.After(c.PlugGrace):
	}
	r.Close()
	<-copied
	c.Stderr.Write(said.Bytes())
	return func() { stopByPidFile(p.PlugPid, dpipeNames, c.StopTimeout) }, nil
}

// ensureRunDir creates the run directory as Debian's hook does, if it is not a
// directory yet: owner user, group group, mode 2770 (setgid, so that the sockets in it
// belong to the group).
func ensureRunDir(c Config) error {
	if st, err := os.Stat(c.RunDir); err == nil && st.IsDir() {
		return nil
	}
	uid, gid, err := lookupOwner(c.User, c.Group)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(c.RunDir, 0o770); err != nil {
		return err
	}
	if err := os.Chown(c.RunDir, uid, gid); err != nil {
		return err
	}
	return os.Chmod(c.RunDir, 0o770|os.ModeSetgid)
}

func lookupOwner(userName, groupName string) (uid, gid int, err error) {
	u, err := user.Lookup(userName)
	if err != nil {
		return 0, 0, fmt.Errorf("user %s: %w (make install creates it)", userName, err)
	}
	g, err := user.LookupGroup(groupName)
	if err != nil {
		return 0, 0, fmt.Errorf("group %s: %w (make install creates it)", groupName, err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(g.Gid)
	return uid, gid, nil
}

// credential is start-stop-daemon --chuid USER: the user's uid, primary group and
// supplementary groups.
func credential(name string) (*syscall.Credential, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("user %s: %w (make install creates it)", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	ids, _ := u.GroupIds()
	for _, s := range ids {
		if n, err := strconv.Atoi(s); err == nil {
			cred.Groups = append(cred.Groups, uint32(n))
		}
	}
	if len(cred.Groups) == 0 {
		cred.Groups = []uint32{uint32(gid)}
	}
	return cred, nil
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// removeSocket removes path if it is a socket (nothing else of that name is ours).
func removeSocket(path string) error {
	st, err := os.Lstat(path)
	if err != nil || st.Mode().Type() != os.ModeSocket {
		return nil
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// globEscape quotes the pattern characters of a literal path for filepath.Glob.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// unpersistTap makes a persistent TAP called name non-persistent (vde_tunctl -d), so
// that it goes away once no one has it open. Anything else of that name is left alone.
func unpersistTap(name string) error {
	info, err := tap.LinkInfo(name)
	if err != nil || !info.IsTunTap || info.TUN || !info.Persist {
		return nil
	}
	d, err := tap.Open(name)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := unix.IoctlSetInt(d.FD(), unix.TUNSETPERSIST, 0); err != nil {
		return fmt.Errorf("TUNSETPERSIST 0: %w", err)
	}
	return nil
}
