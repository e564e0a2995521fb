package applets

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// writePidFile creates path with O_CREAT|O_EXCL, mode 0644, holding "<pid>\n", as the C
// switch does. Unlike C, a file left by a process that is gone is replaced: only a pid
// file naming a live process (or one we cannot read a pid from) stops us.
func writePidFile(path string) error {
	err := createPidFile(path)
	if !errors.Is(err, os.ErrExist) {
		return err
	}
	if !pidFileIsStale(path) {
		return err
	}
	if rmErr := os.Remove(path); rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) {
		return rmErr
	}
	// Another process may have created it since we looked; O_EXCL tells.
	return createPidFile(path)
}

func createPidFile(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(f, "%d\n", os.Getpid())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
	}
	return err
}

// readPidFile returns the pid a pid file holds.
func readPidFile(path string) (int, error) {
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

// pidFileIsStale reports whether path names a process that no longer exists. An empty or
// garbled file is not stale: its writer may be between create and write.
func pidFileIsStale(path string) bool {
	pid, err := readPidFile(path)
	if err != nil {
		return false
	}
	if pid == os.Getpid() {
		return true // a previous owner of our pid; we have not written it yet
	}
	err = unix.Kill(pid, 0)
	return errors.Is(err, syscall.ESRCH)
}

// removePidFile removes the pid file we wrote, unless someone replaced it since.
func removePidFile(path string) error {
	pid, err := readPidFile(path)
	if err != nil {
		return err
	}
	if pid != os.Getpid() {
		return fmt.Errorf("pid file %s now holds pid %d, left alone", path, pid)
	}
	return os.Remove(path)
}
