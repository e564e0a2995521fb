package applets

import (
	"fmt"
	"io"
	"log/syslog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// A Go program cannot fork, so -d re-executes this binary as the daemon: a new session
// with stdin and stdout on /dev/null, stderr on a pipe back to the starting process, and
// a second pipe, named by daemonReadyEnv, on which the daemon writes one byte once its
// sockets accept connections. The starting process copies the daemon's stderr to its own
// and exits 0 only after that byte, so `vde_switch -d -s X && vde_plug X` never races; if
// the daemon dies first, its messages have been shown and its exit status is ours.

// daemonReadyEnv marks the re-executed daemon and names its readiness fd.
const daemonReadyEnv = "_VDE_SWITCH_DAEMON_READY_FD"

// selfExe is the binary that the daemon re-executes.
var selfExe = "/proc/self/exe"

// takeDaemonReadyFile returns the readiness pipe if this process is the re-executed
// daemon, and removes the marker so that nothing the daemon starts inherits it.
func takeDaemonReadyFile() *os.File {
	s, ok := os.LookupEnv(daemonReadyEnv)
	if !ok {
		return nil
	}
	os.Unsetenv(daemonReadyEnv)
	// Executing /proc/self/exe names the process "exe"; ps, pidof and pkill should see
	// vde_switch, as they do for the C daemon. Writing /proc/self/comm renames the
	// main thread, which is the name they read.
	os.WriteFile("/proc/self/comm", []byte("vde_switch"), 0)
	fd, err := strconv.Atoi(s)
	if err != nil || fd < 3 {
		return nil
	}
	return os.NewFile(uintptr(fd), "daemon-ready")
}

// spawnSwitchDaemon starts the daemon with the same arguments and waits until it is
// ready or dead.
func spawnSwitchDaemon(args []string, stdio Stdio) error {
	readyR, readyW, err := os.Pipe()
	if err != nil {
		fmt.Fprintf(stdio.Err, "vde_switch: daemon: %v\n", err)
		return exit(1)
	}
	defer readyR.Close()
	errR, errW, err := os.Pipe()
	if err != nil {
		readyW.Close()
		fmt.Fprintf(stdio.Err, "vde_switch: daemon: %v\n", err)
		return exit(1)
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		readyW.Close()
		errR.Close()
		errW.Close()
		fmt.Fprintf(stdio.Err, "vde_switch: daemon: %v\n", err)
		return exit(1)
	}
	cmd := &exec.Cmd{
		Path: selfExe,
		// argv[0] selects the applet in the multicall binary.
		Args:        append([]string{"vde_switch"}, args...),
		Env:         append(environWithout(daemonReadyEnv), daemonReadyEnv+"=3"),
		Stdin:       devnull,
		Stdout:      devnull,
		Stderr:      errW,
		ExtraFiles:  []*os.File{readyW}, // fd 3
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	err = cmd.Start()
	// Our copies of the write ends must go, or we would never see EOF.
	readyW.Close()
	errW.Close()
	devnull.Close()
	if err != nil {
		errR.Close()
		fmt.Fprintf(stdio.Err, "vde_switch: daemon: %v\n", err)
		return exit(1)
	}
	copied := make(chan struct{})
	go func() {
		io.Copy(stdio.Err, errR)
		errR.Close()
		close(copied)
	}()

	var b [1]byte
	n, _ := io.ReadFull(readyR, b[:])
	if n == 1 {
		// The daemon moved its stderr to /dev/null before it wrote the byte,
		// so the copy ends now with everything it said while starting.
		<-copied
		cmd.Process.Release()
		return nil
	}
	cmd.Wait()
	<-copied
	switch code := cmd.ProcessState.ExitCode(); {
	case code > 0:
		return exit(code)
	case code == 0:
		fmt.Fprintf(stdio.Err, "vde_switch: daemon exited before it was ready\n")
	default:
		fmt.Fprintf(stdio.Err, "vde_switch: daemon: %v\n", cmd.ProcessState)
	}
	return exit(1)
}

// signalReady tells the starting process that the daemon is up: stderr goes to
// /dev/null first (closing the pipe the starter copies), then the byte is written.
func signalReady(ready *os.File) {
	if devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0); err == nil {
		unix.Dup3(int(devnull.Fd()), 2, 0)
		devnull.Close()
	}
	ready.Write([]byte{1}) // if the starter is gone there is no one to tell
	ready.Close()
}

func environWithout(key string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, key+"=") {
			env = append(env, kv)
		}
	}
	return env
}

// syslogLogger logs to syslog as the C daemon does (ident vde_switch, LOG_USER, with the
// pid), or nowhere when there is no syslog.
func syslogLogger() func(string, ...any) {
	w, err := syslog.New(syslog.LOG_USER|syslog.LOG_INFO, "vde_switch")
	if err != nil {
		return func(string, ...any) {}
	}
	w.Info("VDE_SWITCH started")
	return func(format string, args ...any) {
		w.Warning(fmt.Sprintf(format, args...))
	}
}
