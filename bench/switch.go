package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// reaper remembers every switch process and temp dir still alive, so that an error path,
// a deferred cleanup or a second ctrl-C can remove them all. Processes are killed by PID.
type reaper struct {
	mu    sync.Mutex
	procs map[int]*os.Process
	dirs  map[string]bool
}

var reap = &reaper{procs: map[int]*os.Process{}, dirs: map[string]bool{}}

func (r *reaper) addProc(p *os.Process) {
	r.mu.Lock()
	r.procs[p.Pid] = p
	r.mu.Unlock()
}

func (r *reaper) delProc(p *os.Process) {
	r.mu.Lock()
	delete(r.procs, p.Pid)
	r.mu.Unlock()
}

func (r *reaper) addDir(d string) {
	r.mu.Lock()
	r.dirs[d] = true
	r.mu.Unlock()
}

func (r *reaper) delDir(d string) {
	r.mu.Lock()
	delete(r.dirs, d)
	r.mu.Unlock()
}

// killAll sends SIGKILL to every remembered process and removes every remembered dir.
func (r *reaper) killAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for pid, p := range r.procs {
		p.Signal(syscall.SIGKILL)
		delete(r.procs, pid)
	}
	for d := range r.dirs {
		os.RemoveAll(d)
		delete(r.dirs, d)
	}
}

// tailBuffer keeps the last bytes a switch wrote to stdout/stderr, for error messages.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

const tailMax = 4096

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > tailMax {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-tailMax:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// switchProc is one running vde_switch in the foreground, in its own temp dir.
type switchProc struct {
	bin    string
	dir    string // temp dir, removed by stop
	ctlDir string // dir/sw.ctl, the -s argument
	cmd    *exec.Cmd
	stdin  io.WriteCloser // kept open: Debian's switch exits on EOF of stdin
	out    *tailBuffer
	done   chan struct{} // closed when the process has exited
	err    error         // cmd.Wait's result, valid after done
}

// startSwitch runs `bin -s DIR/sw.ctl extra...` with a stdin pipe and waits until
// DIR/sw.ctl/ctl accepts connections.
func startSwitch(ctx context.Context, bin string, extra ...string) (*switchProc, error) {
	return startSwitchCmd(ctx, bin, nil, false, extra...)
}

// startSwitchCmd runs `wrap... ABS(bin) -s DIR/sw.ctl extra...` in a fresh temp dir with a
// stdin pipe kept open, reaped on exit, and waits for its ctl socket. wrap is a command the
// switch runs under (e.g. `ip netns exec NS`), nil for none; startSwitch and
// startNetnsSwitch share it so both switches start and are cleaned up the same way. With
// session, the switch starts a session of its own, as `vde_switch -d` does (see
// daemonAttr).
func startSwitchCmd(ctx context.Context, bin string, wrap []string, session bool, extra ...string) (*switchProc, error) {
	dir, err := os.MkdirTemp("", "vde-bench-")
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	reap.addDir(dir)
	s := &switchProc{bin: bin, dir: dir, ctlDir: filepath.Join(dir, "sw.ctl"), out: &tailBuffer{}, done: make(chan struct{})}
	// The switch runs in its temp dir, so a relative path must be made absolute first (without
	// resolving symlinks: ours dispatches on the basename vde_switch).
	abs, err := filepath.Abs(bin)
	if err != nil {
		s.removeDir()
		return nil, fmt.Errorf("%s: %w", bin, err)
	}
	argv := append(append(append([]string{}, wrap...), abs, "-s", s.ctlDir), extra...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Stdout = s.out
	cmd.Stderr = s.out
	// Own process group: a ctrl-C at the terminal reaches only us, and we stop the switch
	// ourselves. Pdeathsig covers the case where we die without running our cleanup.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if session {
		cmd.SysProcAttr = daemonAttr()
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		s.removeDir()
		return nil, fmt.Errorf("%s: stdin pipe: %w", bin, err)
	}
	s.stdin = stdin
	if err := cmd.Start(); err != nil {
		s.removeDir()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	s.watch(cmd)
	if err := s.waitReady(ctx, 10*time.Second); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

// daemonAttr starts a process in a session of its own (a new process group too), as a
// daemon does: the kernel's autogroup scheduling then weighs it as a group of its own
// against the rest, which is how switches and routers started by `-d`, ifupdown or
// systemd compete for the CPU with their clients. Pdeathsig as for the others.
func daemonAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
}

// waitReady polls DIR/sw.ctl/ctl until a connection succeeds, the switch exits, the
// timeout passes or ctx is cancelled.
func (s *switchProc) waitReady(ctx context.Context, timeout time.Duration) error {
	ctl := filepath.Join(s.ctlDir, "ctl")
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("unix", ctl, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-s.done:
			return fmt.Errorf("%s -s %s exited before it was ready (%v); output:\n%s", s.bin, s.ctlDir, s.err, s.out.String())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s -s %s: %s does not accept connections after %v (%v); output:\n%s", s.bin, s.ctlDir, ctl, timeout, err, s.out.String())
		}
	}
}

// watch takes the started cmd as s's process: it is killed with the others on an
// interrupt, and reaped (s.done closed, s.err set) when it exits.
func (s *switchProc) watch(cmd *exec.Cmd) {
	s.cmd = cmd
	reap.addProc(cmd.Process)
	go func() {
		s.err = cmd.Wait()
		reap.delProc(cmd.Process)
		close(s.done)
	}()
}

// exited reports whether the process is gone, and why.
func (s *switchProc) exited() (bool, error) {
	select {
	case <-s.done:
		return true, s.err
	default:
		return false, nil
	}
}

// stop sends SIGTERM, waits (bounded), falls back to SIGKILL, then removes the temp dir.
// It returns an error only if the switch had to be killed.
func (s *switchProc) stop() error {
	var err error
	if s.cmd != nil {
		p := s.cmd.Process
		p.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(5 * time.Second):
			p.Signal(syscall.SIGKILL)
			err = fmt.Errorf("%s (pid %d) ignored SIGTERM for 5s; killed", s.bin, p.Pid)
			select {
			case <-s.done:
			case <-time.After(5 * time.Second):
				err = errors.Join(err, fmt.Errorf("%s (pid %d) still running after SIGKILL", s.bin, p.Pid))
			}
		}
		s.stdin.Close()
		reap.delProc(p)
	}
	s.removeDir()
	return err
}

func (s *switchProc) removeDir() {
	os.RemoveAll(s.dir)
	reap.delDir(s.dir)
}
