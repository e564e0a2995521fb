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
// a second pipe, named by the applet's ready variable, on which the daemon writes one
// byte once it is up (a switch accepts connections, a plug is connected). The starting
// process copies the daemon's stderr to its own and exits 0 only after that byte, so
// `vde_switch -d -s X && vde_plug X` never races; if the daemon dies first, its messages
// have been shown and its exit status is ours.

// daemonSpec is how one applet daemonizes.
type daemonSpec struct {
	// Name is the daemon's argv[0] (which selects the applet in the multicall
	// binary), its process name, and the prefix of the starter's own messages.
	Name string
	// ReadyEnv marks the re-executed daemon and names its readiness fd.
	ReadyEnv string
}

// selfExe is the binary that the daemon re-executes.
var selfExe = "/proc/self/exe"

// takeReadyFile returns the readiness pipe if this process is the re-executed daemon,
// and removes the marker so that nothing the daemon starts inherits it.
func (s daemonSpec) takeReadyFile() *os.File {
	v, ok := os.LookupEnv(s.ReadyEnv)
	if !ok {
		return nil
	}
	os.Unsetenv(s.ReadyEnv)
	// Executing /proc/self/exe names the process "exe"; ps, pidof and pkill should see
	// the tool's name, as they do for the C daemon. Writing /proc/self/comm renames the
	// main thread, which is the name they read.
	os.WriteFile("/proc/self/comm", []byte(s.Name), 0)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return nil
	}
	return os.NewFile(uintptr(fd), "daemon-ready")
}

// spawn starts the daemon with the same arguments and waits until it is ready or dead.
func (s daemonSpec) spawn(args []string, stdio Stdio) error {
	fail := func(err error) error {
		fmt.Fprintf(stdio.Err, "%s: daemon: %v\n", s.Name, err)
		return exit(1)
	}
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return fail(err)
	}
	defer readyR.Close()
	errR, errW, err := os.Pipe()
	if err != nil {
		readyW.Close()
		return fail(err)
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		readyW.Close()
		errR.Close()
		errW.Close()
		return fail(err)
	}
	cmd := &exec.Cmd{
		Path: selfExe,
		// argv[0] selects the applet in the multicall binary.
		Args:        append([]string{s.Name}, args...),
		Env:         append(environWithout(s.ReadyEnv), s.ReadyEnv+"=3"),
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
		return fail(err)
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
		fmt.Fprintf(stdio.Err, "%s: daemon exited before it was ready\n", s.Name)
	default:
		fmt.Fprintf(stdio.Err, "%s: daemon: %v\n", s.Name, cmd.ProcessState)
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

// syslogLogger logs to syslog as the C daemons do (ident, LOG_USER, with the pid), after
// logging started (e.g. "VDE_SWITCH started") at LOG_INFO; or nowhere when there is no
// syslog.
func syslogLogger(ident, started string) func(string, ...any) {
	w, err := syslog.New(syslog.LOG_USER|syslog.LOG_INFO, ident)
	if err != nil {
		return func(string, ...any) {}
	}
	w.Info(started)
	return func(format string, args ...any) {
		w.Warning(fmt.Sprintf(format, args...))
	}
}
