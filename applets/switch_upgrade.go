package applets

// Upgrading a running vde_switch in place (issue 22). On SIGUSR2 or the console's
// `upgrade [PATH]`, the switch checks the new binary (it must run `--version` and print a
// "VDE " line), stops for a hand-over (switchcore.Handover), writes the state into a memfd
// and execs the binary in its own process (the pid stays; argv[0] vde_switch and the
// original arguments), passing the descriptors' numbers in VDE_HANDOVER. The new image
// sees the variable and restores the switch instead of starting a new one.
//
// Failure paths: anything that fails before the exec (the check, Handover, the memfd, the
// exec call itself) resumes the old switch, which goes on serving and logs why. If the exec
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
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vde-go/vde/switchcore"
	"github.com/vde-go/vde/switchcore/handover"
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
)

// upgradeCheckTimeout bounds the new binary's `--version`.
const upgradeCheckTimeout = 10 * time.Second

// handoverIn is what a process started by an upgrade was handed.
type handoverIn struct {
	state []byte
	files []*os.File // not close-on-exec: a fallback passes them on
	fds   string     // handoverEnv's value, for a fallback
	prev  *os.File   // the old binary, or nil
	cwd   string
	t0    time.Time // when the old image stopped serving; zero if unknown
}

// takeHandover reads and clears the hand-over variables; nil if there are none.
func takeHandover() (*handoverIn, error) {
	v, ok := os.LookupEnv(handoverEnv)
	if !ok {
		return nil, nil
	}
	h := &handoverIn{fds: v, cwd: os.Getenv(handoverCwdEnv)}
	if ns, err := strconv.ParseInt(os.Getenv(handoverT0Env), 10, 64); err == nil {
		h.t0 = time.Unix(0, ns)
	}
	os.Unsetenv(handoverT0Env)
	prev := os.Getenv(handoverPrevEnv)
	os.Unsetenv(handoverEnv)
	os.Unsetenv(handoverPrevEnv)
	os.Unsetenv(handoverCwdEnv)
	if prev != "" {
		if n, err := strconv.Atoi(prev); err == nil {
			h.prev = os.NewFile(uintptr(n), "previous vde_switch")
		}
	}
	statePart, filesPart, ok := strings.Cut(v, ":")
	sfd, err := strconv.Atoi(statePart)
	if !ok || err != nil {
		return h, fmt.Errorf("%s=%q: not STATEFD:FD,FD,...", handoverEnv, v)
	}
	st := os.NewFile(uintptr(sfd), "hand-over state")
	defer st.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(st); err != nil {
		return h, fmt.Errorf("reading the hand-over state (descriptor %d): %w", sfd, err)
	}
	h.state = buf.Bytes()
	if filesPart != "" {
		for _, f := range strings.Split(filesPart, ",") {
			n, err := strconv.Atoi(f)
			if err != nil {
				return h, fmt.Errorf("%s=%q: descriptor %q is not a number", handoverEnv, v, f)
			}
			h.files = append(h.files, os.NewFile(uintptr(n), "handed-over descriptor "+f))
		}
	}
	return h, nil
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
	mfd, err := stateMemfd(h.state)
	if err != nil {
		return err
	}
	_, filesPart, _ := strings.Cut(h.fds, ":")
	env := append(os.Environ(), // takeHandover cleared ours
		fmt.Sprintf("%s=%d:%s", handoverEnv, mfd, filesPart), handoverCwdEnv+"="+h.cwd)
	// No handoverPrevEnv: if the old binary fails too, there is nowhere else to go.
	prevFD := -1
	rawControl(h.prev, func(fd int) { prevFD = fd })
	err = syscall.Exec(fmt.Sprintf("/proc/self/fd/%d", prevFD), append([]string{"vde_switch"}, args...), env)
	unix.Close(mfd)
	return fmt.Errorf("exec the previous binary: %w", err)
}

// upgrader execs a new binary in place of the running switch.
type upgrader struct {
	mu   sync.Mutex
	sw   *switchcore.Switch
	args []string // the switch's arguments, without argv[0]
	cwd  string
	exe  *os.File // this binary, opened at start-up (close-on-exec)
	logf func(string, ...any)
}

// newUpgrader opens this binary for a fallback; nil if it cannot (no upgrades then).
func newUpgrader(sw *switchcore.Switch, args []string, cwd string, logf func(string, ...any)) *upgrader {
	exe, err := os.Open("/proc/self/exe")
	if err != nil {
		logf("upgrades disabled: %v", err)
		return nil
	}
	return &upgrader{sw: sw, args: args, cwd: cwd, exe: exe, logf: logf}
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
	if err := checkBinary(path); err != nil {
		return fmt.Errorf("upgrade to %s: %w", path, err)
	}
	start := time.Now()
	state, files, err := u.sw.Handover()
	if err != nil {
		return fmt.Errorf("upgrade to %s: %w", path, err)
	}
	err = u.exec(path, state, files, start)
	// Still here: the exec failed and the switch goes on.
	for _, f := range files {
		f.Close()
	}
	if rerr := u.sw.Resume(); rerr != nil {
		return fmt.Errorf("upgrade to %s: %v; resuming: %v", path, err, rerr)
	}
	return fmt.Errorf("upgrade to %s: %w (the switch resumed after %v)", path, err, time.Since(start).Round(time.Microsecond))
}

// exec passes state and files to path in this process. It returns only on failure.
func (u *upgrader) exec(path string, state []byte, files []*os.File, t0 time.Time) error {
	mfd, err := stateMemfd(state)
	if err != nil {
		return err
	}
	defer unix.Close(mfd)
	fds := make([]string, len(files))
	for i, f := range files {
		var cerr error
		rawControl(f, func(fd int) {
			fds[i] = strconv.Itoa(fd)
			_, cerr = unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0)
		})
		if cerr != nil {
			return fmt.Errorf("passing %s: %w", f.Name(), cerr)
		}
	}
	exeFD := -1
	rawControl(u.exe, func(fd int) { exeFD = fd })
	if _, err := unix.FcntlInt(uintptr(exeFD), unix.F_SETFD, 0); err != nil {
		return fmt.Errorf("passing this binary's descriptor: %w", err)
	}
	// A failed exec leaves the switch running: this descriptor must not leak into the
	// children it starts later.
	defer unix.FcntlInt(uintptr(exeFD), unix.F_SETFD, unix.FD_CLOEXEC)
	env := append(os.Environ(), // takeHandover cleared ours
		fmt.Sprintf("%s=%d:%s", handoverEnv, mfd, strings.Join(fds, ",")),
		fmt.Sprintf("%s=%d", handoverPrevEnv, exeFD), handoverCwdEnv+"="+u.cwd,
		fmt.Sprintf("%s=%d", handoverT0Env, t0.UnixNano()))
	u.logf("upgrade: handing %d descriptors over to %s", len(files), path)
	err = syscall.Exec(path, append([]string{"vde_switch"}, u.args...), env)
	return fmt.Errorf("exec: %w", err)
}

// checkBinary runs `path --version` (argv[0] vde_switch) and wants exit 0 and a "VDE "
// line: what can be known of the new binary without losing the switch.
func checkBinary(path string) error {
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
	vde := false
	for _, l := range strings.Split(string(out), "\n") {
		vde = vde || strings.HasPrefix(l, "VDE ")
		if v, ok := strings.CutPrefix(l, handoverProbeLine); ok {
			if v != strconv.Itoa(handover.Version) {
				return fmt.Errorf("%s reads switch state version %s, this switch writes version %d", path, v, handover.Version)
			}
			if vde {
				return nil
			}
		}
	}
	if !vde {
		return fmt.Errorf("%s --version printed no \"VDE \" line: %q", path, out)
	}
	// A vde_switch from before upgrades in place would start afresh, find its sockets
	// taken, and exit: the switch would be lost.
	return fmt.Errorf("%s cannot take a running switch over (no %q in its --version)", path, strings.TrimSpace(handoverProbeLine))
}

// handoverProbeEnv asks `vde_switch --version` to say which state version it reads
// (handoverProbeLine N): checkBinary upgrades only to a binary that can take the state.
const (
	handoverProbeEnv  = "VDE_HANDOVER_PROBE"
	handoverProbeLine = "switch state version "
)

// handoverProbeText is what --version adds under handoverProbeEnv.
func handoverProbeText() string {
	if os.Getenv(handoverProbeEnv) != "1" {
		return ""
	}
	return handoverProbeLine + strconv.Itoa(handover.Version) + "\n"
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

// restoreOrFallBack restores the switch an upgrade handed this process, or else re-executes
// the binary that handed it over; it returns an error only when the switch is lost.
func restoreOrFallBack(cfg switchcore.Config, o *switchOptions, logf func(string, ...any)) (switchCore, error) {
	err := o.handoverErr
	if err == nil {
		var sw *switchcore.Switch
		if sw, err = restoreSwitch(cfg, o.handover); err == nil {
			if o.handover.t0.IsZero() {
				logf("upgrade: version %s serves the handed-over switch", Version)
			} else {
				logf("upgrade: version %s serves the handed-over switch, %.1f ms after the old one stopped reading",
					Version, float64(time.Since(o.handover.t0).Microseconds())/1000)
			}
			return sw, nil
		}
	}
	logf("upgrade: version %s cannot restore the switch: %v; going back to the previous binary", Version, err)
	ferr := fallBack(o.handover, o.args)
	return nil, fmt.Errorf("upgrade: the switch is lost: restoring it: %v; going back to the previous binary: %v", err, ferr)
}
