package applets

// Upgrading a running vde_switch in place (issue 22). On SIGUSR2 or the console's
// `upgrade [PATH]`, the switch checks the new binary (it must run `--version` and print a
// "VDE " line), stops for a hand-over (switchcore.Handover), writes the state into a memfd
// and execs the binary in its own process (the pid stays; argv[0] vde_switch and the
// original arguments), passing the descriptors' numbers in VDE_HANDOVER. The new image
// sees the variable and restores the switch instead of starting a new one.
//
// Failure paths: anything that fails before the exec (the check, Handover, the memfd, the
// exec call itself) resumes the old switch, which goes on serving and logs why; its mgmt
// sessions are ended (EndSessions) only right before the exec call, so only a failing
// exec call costs them. If the exec
// succeeds but the new image cannot restore the state (it refuses the state's version, say),
// it re-executes the old binary through a descriptor of it opened at start-up
// (VDE_HANDOVER_PREV; /proc/self/exe then, so a replaced file does not matter), with the
// same state and descriptors: the old binary restores them and serves on. If that also
// fails, the switch is lost: the process logs why and exits 1.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vde-go/vde/switchcore"
	"github.com/vde-go/vde/switchcore/handover"
	"github.com/vde-go/vde/switchcore/vhostuser"
	"golang.org/x/sys/unix"
)

const (
	// handoverEnv is STATEFD:FD,FD,...: the memfd holding the state and the descriptors
	// the state names, in its order.
	handoverEnv = "VDE_HANDOVER"
	// handoverPrevEnv is the descriptor of the binary that handed over: re-executed if
	// this one cannot restore the state.
	handoverPrevEnv = "VDE_HANDOVER_PREV"
	// handoverCwdEnv is the directory the switch was started in: a daemon has moved to /
	// since, and its arguments are parsed again.
	handoverCwdEnv = "VDE_HANDOVER_CWD"
	// handoverT0Env is when the old image stopped serving (Unix nanoseconds): the new one
	// logs how long the switch did not read, which is what an upgrade costs its clients.
	handoverT0Env = "VDE_HANDOVER_T0"
	// handoverVhostEnv is STATEFD:FD,FD,... for the vhost-user servers' part
	// (switchcore/vhostuser's State, its own format and version), when the switch has any.
	handoverVhostEnv = "VDE_HANDOVER_VHOST"
)

// upgradeCheckTimeout bounds the new binary's `--version`.
const upgradeCheckTimeout = 10 * time.Second

// handoverIn is what a process started by an upgrade was handed.
type handoverIn struct {
	passedState              // the switch's
	vhost       *passedState // the vhost-user servers', nil if none
	prev        *os.File     // the old binary, or nil
	cwd         string
	t0          time.Time // when the old image stopped serving; zero if unknown
}

// passedState is a state and the descriptors it names, as an upgrade passes them.
type passedState struct {
	state []byte
	files []*os.File // not close-on-exec: a fallback passes them on
	fds   string     // the variable's value, for a fallback
}

// takeHandover reads and clears the hand-over variables; nil if there are none.
func takeHandover() (*handoverIn, error) {
	v, ok := os.LookupEnv(handoverEnv)
	if !ok {
		return nil, nil
	}
	h := &handoverIn{cwd: os.Getenv(handoverCwdEnv)}
	if ns, err := strconv.ParseInt(os.Getenv(handoverT0Env), 10, 64); err == nil {
		h.t0 = time.Unix(0, ns)
	}
	os.Unsetenv(handoverT0Env)
	prev := os.Getenv(handoverPrevEnv)
	vh, vhOK := os.LookupEnv(handoverVhostEnv)
	os.Unsetenv(handoverEnv)
	os.Unsetenv(handoverPrevEnv)
	os.Unsetenv(handoverCwdEnv)
	os.Unsetenv(handoverVhostEnv)
	if prev != "" {
		if n, err := strconv.Atoi(prev); err == nil {
			h.prev = os.NewFile(uintptr(n), "previous vde_switch")
		}
	}
	err := h.passedState.read(handoverEnv, v)
	if vhOK {
		h.vhost = &passedState{}
		if verr := h.vhost.read(handoverVhostEnv, vh); err == nil {
			err = verr
		}
	}
	return h, err
}

// read takes the state and descriptors that variable env's value v names.
func (p *passedState) read(env, v string) error {
	p.fds = v
	statePart, filesPart, ok := strings.Cut(v, ":")
	sfd, err := strconv.Atoi(statePart)
	if !ok || err != nil {
		return fmt.Errorf("%s=%q: not STATEFD:FD,FD,...", env, v)
	}
	st := os.NewFile(uintptr(sfd), "hand-over state")
	defer st.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(st); err != nil {
		return fmt.Errorf("reading the hand-over state (%s, descriptor %d): %w", env, sfd, err)
	}
	p.state = buf.Bytes()
	if filesPart != "" {
		for _, f := range strings.Split(filesPart, ",") {
			n, err := strconv.Atoi(f)
			if err != nil {
				return fmt.Errorf("%s=%q: descriptor %q is not a number", env, v, f)
			}
			p.files = append(p.files, os.NewFile(uintptr(n), "handed-over descriptor "+f))
		}
	}
	return nil
}

// close closes the passed descriptors (the state was restored: what uses them holds
// duplicates).
func (p *passedState) close() {
	if p == nil {
		return
	}
	for _, f := range p.files {
		f.Close()
	}
}

// restoreSwitch builds the switch from what h holds. Restore gets close-on-exec
// duplicates; the originals stay for a fallback and are closed on success.
func restoreSwitch(cfg switchcore.Config, h *handoverIn) (*switchcore.Switch, error) {
	var dups []*os.File
	for _, f := range h.files {
		d, err := dupCloexec(f)
		if err != nil {
			for _, d := range dups {
				d.Close()
			}
			return nil, err
		}
		dups = append(dups, d)
	}
	sw, err := switchcore.Restore(cfg, h.state, dups)
	if err != nil {
		return nil, err
	}
	for _, f := range h.files {
		f.Close()
	}
	if h.prev != nil {
		h.prev.Close()
	}
	return sw, nil
}

// fallBack re-executes the binary that handed over (h.prev) with the same state: this
// one could not restore it. It returns only if that cannot be done.
func fallBack(h *handoverIn, args []string) error {
	if h.prev == nil {
		return errors.New("no previous binary to go back to")
	}
	if len(h.state) == 0 {
		return errors.New("no state to hand back")
	}
	env := append(os.Environ(), handoverCwdEnv+"="+h.cwd) // takeHandover cleared ours
	// The descriptors are still open, not close-on-exec, under the same numbers.
	for _, p := range []struct {
		env string
		st  *passedState
	}{{handoverEnv, &h.passedState}, {handoverVhostEnv, h.vhost}} {
		if p.st == nil {
			continue
		}
		mfd, err := stateMemfd(p.st.state)
		if err != nil {
			return err
		}
		defer unix.Close(mfd)
		_, filesPart, _ := strings.Cut(p.st.fds, ":")
		env = append(env, fmt.Sprintf("%s=%d:%s", p.env, mfd, filesPart))
	}
	if !h.t0.IsZero() { // the old binary logs the whole pause, the way there and back
		env = append(env, fmt.Sprintf("%s=%d", handoverT0Env, h.t0.UnixNano()))
	}
	// No handoverPrevEnv: if the old binary fails too, there is nowhere else to go. Its
	// descriptor is close-on-exec, so that the old image, which would not know of it, does
	// not keep it: the kernel opens the binary before it closes those (a script would
	// need it open, but the previous binary is a vde_switch, an ELF file).
	prevFD := -1
	rawControl(h.prev, func(fd int) {
		prevFD = fd
		unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC)
	})
	err := syscall.Exec(fmt.Sprintf("/proc/self/fd/%d", prevFD), append([]string{"vde_switch"}, args...), env)
	return fmt.Errorf("exec the previous binary: %w", err)
}

// upgrader execs a new binary in place of the running switch.
type upgrader struct {
	mu    sync.Mutex
	sw    *switchcore.Switch
	vhost *vhostServers // nil without --vhost-user
	args  []string      // the switch's arguments, without argv[0]
	cwd   string
	exe   *os.File // this binary, opened at start-up (close-on-exec)
	logf  func(string, ...any)
	// rearm asks for SIGUSR2 again after a failed exec (exec ignores it meanwhile).
	rearm func()
}

// newUpgrader opens this binary for a fallback; nil if it cannot (no upgrades then).
func newUpgrader(sw *switchcore.Switch, vhost *vhostServers, args []string, cwd string, logf func(string, ...any)) *upgrader {
	exe, err := os.Open("/proc/self/exe")
	if err != nil {
		logf("upgrades disabled: %v", err)
		return nil
	}
	return &upgrader{sw: sw, vhost: vhost, args: args, cwd: cwd, exe: exe, logf: logf}
}

// upgrade replaces this process's binary by path (this binary's path if empty) and hands
// the switch over to it. It returns only on failure, the switch serving as before.
func (u *upgrader) upgrade(path string) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if path == "" {
		exe, err := os.Executable() // strips " (deleted)": the file now at our path
		if err != nil {
			return fmt.Errorf("upgrade: this binary's path: %w", err)
		}
		path = exe
	}
	if err := checkBinary(path, u.vhost != nil); err != nil {
		return fmt.Errorf("upgrade to %s: %w", path, err)
	}
	start := time.Now()
	// The vhost-user servers stop reading messages first, then the switch stops every
	// reader (the devices' too); the devices' rings are still only then.
	if u.vhost != nil {
		if err := u.vhost.pause(); err != nil {
			return fmt.Errorf("upgrade to %s: %w", path, err)
		}
	}
	resumeVhost := func() error {
		if u.vhost == nil {
			return nil
		}
		return u.vhost.resume()
	}
	state, files, err := u.sw.Handover()
	if err != nil {
		if rerr := resumeVhost(); rerr != nil {
			err = fmt.Errorf("%v; resuming vhost-user: %v", err, rerr)
		}
		return fmt.Errorf("upgrade to %s: %w", path, err)
	}
	var vstate []byte
	var vfiles []*os.File
	if u.vhost != nil {
		vstate, vfiles, err = u.vhost.snapshot()
	}
	if err == nil {
		err = u.exec(path, state, files, vstate, vfiles, start)
	}
	// Still here: the hand-over failed and the switch goes on.
	for _, f := range append(files, vfiles...) {
		f.Close()
	}
	rerr := errors.Join(u.sw.Resume(), resumeVhost())
	if rerr != nil {
		return fmt.Errorf("upgrade to %s: %v; resuming: %v", path, err, rerr)
	}
	return fmt.Errorf("upgrade to %s: %w (the switch resumed after %v)", path, err, time.Since(start).Round(time.Microsecond))
}

// exec passes the switch's state and files, and the vhost-user servers' (vstate and
// vfiles, if vstate is not nil), to path in this process. It returns only on failure.
func (u *upgrader) exec(path string, state []byte, files []*os.File, vstate []byte, vfiles []*os.File, t0 time.Time) error {
	pass, err := passing(handoverEnv, state, files)
	if err != nil {
		return err
	}
	defer unix.Close(pass.mfd)
	env := append(os.Environ(), pass.env) // takeHandover cleared ours
	nfiles := len(files)
	if vstate != nil {
		vpass, err := passing(handoverVhostEnv, vstate, vfiles)
		if err != nil {
			return err
		}
		defer unix.Close(vpass.mfd)
		env = append(env, vpass.env)
		nfiles += len(vfiles)
	}
	exeFD := -1
	rawControl(u.exe, func(fd int) { exeFD = fd })
	if _, err := unix.FcntlInt(uintptr(exeFD), unix.F_SETFD, 0); err != nil {
		return fmt.Errorf("passing this binary's descriptor: %w", err)
	}
	// A failed exec leaves the switch running: this descriptor must not leak into the
	// children it starts later.
	defer unix.FcntlInt(uintptr(exeFD), unix.F_SETFD, unix.FD_CLOEXEC)
	env = append(env, fmt.Sprintf("%s=%d", handoverPrevEnv, exeFD), handoverCwdEnv+"="+u.cwd,
		fmt.Sprintf("%s=%d", handoverT0Env, t0.UnixNano()))
	u.logf("upgrade: handing %d descriptors over to %s", nfiles, path)
	// A SIGUSR2 caught (signal.Notify) is reset to its default, death, by the exec: one
	// that came before the new image set its own disposition would kill the switch. An
	// ignored one stays ignored across the exec, until the new image asks for it.
	signal.Ignore(syscall.SIGUSR2)
	// The exec is all that is left: only now are the mgmt sessions told goodbye (the
	// exec would cut them), so that any failure above left them working.
	u.sw.EndSessions()
	err = syscall.Exec(path, append([]string{"vde_switch"}, u.args...), env)
	if u.rearm != nil {
		u.rearm()
	}
	return fmt.Errorf("exec: %w", err)
}

// passed is a state ready for exec: env names the memfd holding it and the descriptors,
// whose close-on-exec flags are cleared.
type passed struct {
	env string
	mfd int
}

// passing writes state into a memfd and clears the close-on-exec flag of files, for the
// variable env.
func passing(env string, state []byte, files []*os.File) (passed, error) {
	fds := make([]string, len(files))
	for i, f := range files {
		var cerr error
		rawControl(f, func(fd int) {
			fds[i] = strconv.Itoa(fd)
			_, cerr = unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0)
		})
		if cerr != nil {
			return passed{}, fmt.Errorf("passing %s: %w", f.Name(), cerr)
		}
	}
	mfd, err := stateMemfd(state)
	if err != nil {
		return passed{}, err
	}
	return passed{env: fmt.Sprintf("%s=%d:%s", env, mfd, strings.Join(fds, ",")), mfd: mfd}, nil
}

// checkBinary runs `path --version` (argv[0] vde_switch) and wants exit 0 and a "VDE "
// line: what can be known of the new binary without losing the switch. With vhost, the
// binary must also read this one's vhost-user state version.
func checkBinary(path string, vhost bool) error {
	if err := unix.Access(path, unix.X_OK); err != nil {
		return fmt.Errorf("not executable: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), upgradeCheckTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "--version")
	cmd.Args[0] = "vde_switch"
	cmd.Env = append(os.Environ(), handoverProbeEnv+"=1")
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("%s --version: %w", path, err)
	}
	vde, state, vstate := false, false, false
	for _, l := range strings.Split(string(out), "\n") {
		vde = vde || strings.HasPrefix(l, "VDE ")
		if v, ok := strings.CutPrefix(l, handoverProbeLine); ok {
			if v != strconv.Itoa(handover.Version) {
				return fmt.Errorf("%s reads switch state version %s, this switch writes version %d", path, v, handover.Version)
			}
			state = true
		}
		if v, ok := strings.CutPrefix(l, vhostProbeLine); ok && vhost {
			if v != strconv.Itoa(vhostuser.StateVersion) {
				return fmt.Errorf("%s reads vhost-user state version %s, this switch writes version %d", path, v, vhostuser.StateVersion)
			}
			vstate = true
		}
	}
	switch {
	case !vde:
		return fmt.Errorf("%s --version printed no \"VDE \" line: %q", path, out)
	case !state:
		// A vde_switch from before upgrades in place would start afresh, find its
		// sockets taken, and exit: the switch would be lost.
		return fmt.Errorf("%s cannot take a running switch over (no %q in its --version)", path, strings.TrimSpace(handoverProbeLine))
	case vhost && !vstate:
		return fmt.Errorf("%s cannot take vhost-user ports over (no %q in its --version)", path, strings.TrimSpace(vhostProbeLine))
	}
	return nil
}

// handoverProbeEnv asks `vde_switch --version` to say which state version it reads
// (handoverProbeLine N): checkBinary upgrades only to a binary that can take the state.
const (
	handoverProbeEnv  = "VDE_HANDOVER_PROBE"
	handoverProbeLine = "switch state version "
	vhostProbeLine    = "vhost-user state version "
)

// handoverProbeText is what --version adds under handoverProbeEnv.
func handoverProbeText() string {
	if os.Getenv(handoverProbeEnv) != "1" {
		return ""
	}
	return handoverProbeLine + strconv.Itoa(handover.Version) + "\n" +
		vhostProbeLine + strconv.Itoa(vhostuser.StateVersion) + "\n"
}

// stateMemfd is a memfd holding state, positioned at its start, not close-on-exec.
func stateMemfd(state []byte) (int, error) {
	fd, err := unix.MemfdCreate("vde_switch hand-over", 0)
	if err != nil {
		return -1, fmt.Errorf("memfd for the state: %w", err)
	}
	for b := state; len(b) > 0; {
		n, err := unix.Write(fd, b)
		if err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("writing the state to a memfd: %w", err)
		}
		b = b[n:]
	}
	if _, err := unix.Seek(fd, 0, 0); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("memfd: %w", err)
	}
	return fd, nil
}

// rawControl runs fn with f's descriptor without f.Fd(), which would make a socket
// blocking (for the old switch too: the file description is shared).
func rawControl(f *os.File, fn func(fd int)) {
	if rc, err := f.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) { fn(int(fd)) })
	}
}

func dupCloexec(f *os.File) (*os.File, error) {
	nfd, derr := -1, error(nil)
	rawControl(f, func(fd int) { nfd, derr = unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0) })
	if derr != nil || nfd < 0 {
		return nil, fmt.Errorf("dup %s: %v", f.Name(), derr)
	}
	return os.NewFile(uintptr(nfd), f.Name()), nil
}

// restoreAll restores the vhost-user servers h holds, if any, then the switch, which
// finds their devices; then it serves them.
func restoreAll(cfg switchcore.Config, h *handoverIn, o *switchOptions, logf func(string, ...any)) (*switchcore.Switch, *vhostServers, error) {
	var vh *vhostServers
	if h.vhost != nil {
		v, find, err := restoreVhostUser(h.vhost, o, logf)
		if err != nil {
			return nil, nil, err
		}
		vh, cfg.InProcess = v, find
	}
	sw, err := restoreSwitch(cfg, h)
	if err != nil {
		if vh != nil {
			vh.drop()
		}
		return nil, nil, err
	}
	if vh != nil {
		h.vhost.close()
		vh.serve(sw)
	}
	return sw, vh, nil
}

// restoreOrFallBack restores the switch (and its vhost-user servers) an upgrade handed
// this process, or else re-executes the binary that handed it over; it returns an error
// only when the switch is lost.
func restoreOrFallBack(cfg switchcore.Config, o *switchOptions, logf func(string, ...any)) (switchCore, *vhostServers, error) {
	err := o.handoverErr
	if err == nil {
		var sw *switchcore.Switch
		var vh *vhostServers
		if sw, vh, err = restoreAll(cfg, o.handover, o, logf); err == nil {
			if o.handover.t0.IsZero() {
				logf("upgrade: version %s serves the handed-over switch", Version)
			} else {
				logf("upgrade: version %s serves the handed-over switch, %.1f ms after the old one stopped reading",
					Version, float64(time.Since(o.handover.t0).Microseconds())/1000)
			}
			return sw, vh, nil
		}
	}
	logf("upgrade: version %s cannot restore the switch: %v; going back to the previous binary", Version, err)
	ferr := fallBack(o.handover, o.args)
	return nil, nil, fmt.Errorf("upgrade: the switch is lost: restoring it: %v; going back to the previous binary: %v", err, ferr)
}
