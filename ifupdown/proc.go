package ifupdown

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The names a tool's process has in argv[0]: what our daemons and Debian's binaries are
// started as. A pid file whose process has another argv[0] is stale (the pid was reused);
// this is start-stop-daemon's --exec check, by name because ours are all one binary.
var (
	switchNames = []string{"vde_switch", "vde-switch", "vdeswitch"}
	slirpNames  = []string{"slirpvde", "slirp"}
	dpipeNames  = []string{"dpipe"}
)

// readPid returns the pid a pid file holds.
func readPid(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("pid file %s: no pid in %q", path, b)
	}
	return pid, nil
}

// procName is the base name of argv[0] of pid, "" if it is gone or a zombie.
func procName(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(b) == 0 {
		return ""
	}
	a, _, _ := strings.Cut(string(b), "\x00")
	return filepath.Base(a)
}

// livePid returns the pid in path if that process runs under one of names.
func livePid(path string, names []string) (int, bool) {
	pid, err := readPid(path)
	if err != nil {
		return 0, false
	}
	return pid, slices.Contains(names, procName(pid))
}

// removeStale removes a pid file that names no live process of names, and reports
// whether one was removed.
func removeStale(path string, names []string) bool {
	if _, alive := livePid(path, names); alive {
		return false
	}
	return os.Remove(path) == nil
}

// writePid writes "<pid>\n" to path, replacing what was there.
func writePid(path string, pid int) error {
	return os.WriteFile(path, []byte(strconv.Itoa(pid)+"\n"), 0o644)
}

// stopPid ends pid: SIGTERM, then SIGKILL after timeout. It returns once the process is
// gone (not necessarily reaped: our daemons are not our children).
func stopPid(pid int, timeout time.Duration) error {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return nil
		}
		return fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	defer unix.Close(fd)
	if err := unix.PidfdSendSignal(fd, unix.SIGTERM, nil, 0); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return nil
		}
		return fmt.Errorf("kill %d: %w", pid, err)
	}
	if waitPidfd(fd, timeout) {
		return nil
	}
	unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
	if waitPidfd(fd, timeout) {
		return nil
	}
	return fmt.Errorf("pid %d survived SIGKILL", pid)
}

// waitPidfd waits up to timeout for the process of a pidfd to end.
func waitPidfd(fd int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		ms := int(time.Until(deadline) / time.Millisecond)
		if ms < 0 {
			ms = 0
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, ms)
		if err == nil && n > 0 {
			return true
		}
		if errors.Is(err, unix.EINTR) && time.Now().Before(deadline) {
			continue
		}
		return false
	}
}

// stopByPidFile stops the process a pid file names (if it runs under one of names) and
// removes the file. It reports whether the file existed.
func stopByPidFile(path string, names []string, timeout time.Duration) (existed bool, err error) {
	if _, err := os.Lstat(path); err != nil {
		return false, nil
	}
	if pid, alive := livePid(path, names); alive {
		err = stopPid(pid, timeout)
	}
	if rmErr := os.Remove(path); rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) && err == nil {
		err = rmErr
	}
	return true, err
}
