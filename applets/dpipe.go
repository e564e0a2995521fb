package applets

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"
)

func init() {
	register(Applet{Name: "dpipe", Main: DpipeMain})
}

// dpipe joins commands with pairs of pipes, as vdeplug4's dpipe (Debian's) does
// (spec plug-dpipe-unixterm-vdeq.md §2):
//
//	dpipe [OPTIONS] cmd1 [args] = cmd2 [args] [= cmd3 [args] ...]
//
// The wrapper process (this one) starts every command, waits for all of them and exits
// with the last command's exit status. What the C tool does beyond the spec, observed on
// /usr/bin/dpipe and kept here:
//   - a command that cannot be executed exits 127 without a message (execvp in the child);
//     a file without #! runs under /bin/sh, as execvp does;
//   - the exit status is WEXITSTATUS of the last command: 0 if a signal killed it;
//   - the children inherit SIGPIPE, SIGALRM, SIGUSR1/2, SIGVTALRM, SIGIO and SIGPWR
//     ignored (so a writer to a closed pipe gets EPIPE, not death);
//   - getopt's complaints ("dpipe: invalid option -- 'x'") are only warnings: the option
//     is skipped and the chain runs;
//   - an empty word followed by a word starting with '=' is read as a separator (the C
//     splitter looks one byte past the empty string into the next argv string), which
//     ends in the usage text; so `dpipe echo "" = cat` is a usage error;
//   - the pid file is written with fopen("w") (replaced if present; a failure is silent);
//   - -d is daemon(0,0): relative paths (pid files, ./cmd) are taken from "/", and the
//     commands' stderr is /dev/null.
//
// Where this one deliberately differs:
//   - SIGTERM: the C tool terminates only the last command, exits at once and leaves the
//     others to see EOF; a command that never reads (sleep) outlives it. We SIGTERM the
//     last command as C does, give the others up to a second to end by EOF (so their EOF
//     handling runs as with C), then SIGTERM those still running, so that killing dpipe
//     ends the whole chain;
//   - -h: the C tool kills its caller's process group (it runs before setpgrp), which
//     takes down a calling script; we end only ourselves, by the same SIGTERM;
//   - a usage error in the chain is found before any command starts (C starts the
//     commands to the left of the error and then kills its process group);
//   - the children do not inherit SIGPROF and SIGSTKFLT ignored (C ignores them too):
//     the Go runtime will not let go of those two;
//   - ALTERNATE_STDIN/ALTERNATE_STDOUT are the lowest two free descriptors from 3 up
//     (C's could be 0-2 if dpipe started with those closed).

// dpipeUsage is the vdeplug4 usage text (spec §2.5), with the "[OPTIONS}" typo.
const dpipeUsage = `Usage:
  %s [OPTIONS} cmd1 [arg1...] = cmd2 [arg2...] [ = cmd3 [arg3...] ]
    using: ... =} cmd [arg] }= ...
       or: ... ={ cmd [arg] {= ...
    instead of ... = cmd [arg] = ...
  means that the intermediate command processes data flowing in one direction only
  (left to right, or right to left respectively as indicated by the brackets)
OPTIONS:
  -p PIDFILE | --pidfile PIDFILE     write process id to PIDFILE
  -P PGRPFILE | --pgrpfile PGRPFILE  write process group id to PIDFILE
  -d | --daemon                      daemonize the process group
  -n | --nowrapproc                  do not create the dpipe parent process
  -N | --nowrapnoclean               -n and do not remove pid/pgrp file
  -h | --help                        show this short summary
`

// dpipeFlags are the C tool's options (getopt_long, "+dp:P:hnN"), long names in the
// order of its option table, which is the order of getopt's "ambiguous" list.
var dpipeFlags = []cli.Flag{
	&cli.BoolFlag{Name: "nowrapproc", Aliases: []string{"n"}, Usage: "no dpipe process waits as the parent of the commands"},
	&cli.BoolFlag{Name: "nowrapnoclean", Aliases: []string{"N"}, Usage: "as -n, and the pid and pgrp files stay when the commands end"},
	&cli.StringFlag{Name: "pidfile", Aliases: []string{"p"}, Usage: "write the process id to `PIDFILE`"},
	&cli.StringFlag{Name: "pgrpfile", Aliases: []string{"P"}, Usage: "write the process group id to `PGRPFILE`"},
	&cli.BoolFlag{Name: "daemon", Aliases: []string{"d"}, Usage: "run the commands in the background, as a process group of their own"},
	&cli.BoolFlag{Name: "help", Aliases: []string{"h"}, Usage: "print the usage summary and exit"},
}

// dpipeOptions is a parsed dpipe command line.
type dpipeOptions struct {
	// PidFile is -p: the file that gets the wrapper's pid.
	PidFile string
	// PgrpFile is -P: the file that gets "-PGRP", for kill -- $(cat FILE).
	PgrpFile string
	// Daemon is -d.
	Daemon bool
	// NoWrap is -n or -N: the last command replaces dpipe instead of being its child.
	NoWrap bool
	// NoClean is -N: nothing removes the pid files.
	NoClean bool
	// Help is -h: the options after it were not looked at.
	Help bool
	// Diags are getopt's complaints, without the "prog: " prefix, in order. They do not
	// stop dpipe.
	Diags []string
	// Words is the chain: everything after the options.
	Words []string
}

// parseDpipeOptions reads the options before cmd1 as glibc's getopt_long with a
// leading '+' does: the first word that is not an option, or "--", ends them.
func parseDpipeOptions(args []string) dpipeOptions {
	t := newGetoptTable(dpipeFlags)
	var r getoptResult
	i := 0
	for ; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			i++
			break
		}
		if len(a) < 2 || a[0] != '-' {
			break
		}
		if strings.HasPrefix(a, "--") {
			ev, next, found := t.longOption("--", a[2:], args, i)
			if !found {
				ev = optEvent{Err: fmt.Sprintf("unrecognized option '%s'", a)}
			}
			r.Opts = append(r.Opts, ev)
			i = next
			continue
		}
		i = t.shortOptions(a[1:], args, i, &r)
	}
	o := dpipeOptions{Words: args[i:]}
	for _, ev := range r.Opts {
		switch ev.Name {
		case "":
			o.Diags = append(o.Diags, ev.Err)
		case "pidfile":
			o.PidFile = ev.Value
		case "pgrpfile":
			o.PgrpFile = ev.Value
		case "daemon":
			o.Daemon = true
		case "nowrapproc":
			o.NoWrap = true
		case "nowrapnoclean":
			o.NoWrap, o.NoClean = true, true
		case "help":
			// usage_and_exit() runs inside the getopt loop: what follows is never seen.
			o.Help = true
			return o
		}
	}
	return o
}

// dpipeFlow is how a command is joined to the one on its left: the bracket of the
// separator before it.
type dpipeFlow byte

const (
	// flowBoth is "= cmd": two pipes; a middle command talks to its right on fds 3 and 4.
	flowBoth dpipeFlow = 0
	// flowRight is "=} cmd }=": cmd only carries data from left to right.
	flowRight dpipeFlow = '}'
	// flowLeft is "={ cmd {=": cmd only carries data from right to left.
	flowLeft dpipeFlow = '{'
)

// dpipeCommand is one command of the chain.
type dpipeCommand struct {
	// Argv is the command and its arguments, as given to execvp.
	Argv []string
	// Flow is how the command is joined to the command before it.
	Flow dpipeFlow
}

// errDpipeUsage is a chain that dpipe answers with its usage text.
var errDpipeUsage = errors.New("dpipe: bad command chain")

// splitDpipeChain splits the words after the options at the separators, as the C tool's
// start_dpipe/rec_dpipe/splitindex do: any word starting with '=' is a separator ("=",
// "==", "=x"), "=}"/"={" open a one-way segment that "}="/"{=" close (the bracket is
// stripped and the rest is the separator), at least 3 words, no empty command, no open
// bracket at the end. words is not modified.
func splitDpipeChain(words []string) ([]dpipeCommand, error) {
	w := slices.Clone(words) // splitindex strips brackets in place, as C does with argv
	n := len(w)
	split, dir := dpipeSplitIndex(w, 0)
	if n < 3 || split == 0 || split >= n-1 {
		return nil, errDpipeUsage
	}
	cmds := []dpipeCommand{{Argv: w[:split:split], Flow: flowBoth}}
	rest, old := w[split+1:], dir
	for {
		split, dir = dpipeSplitIndex(rest, old)
		if split >= len(rest) {
			if dir != 0 {
				return nil, errDpipeUsage // "=}" or "={" never closed
			}
			return append(cmds, dpipeCommand{Argv: rest, Flow: dpipeFlow(old)}), nil
		}
		if len(rest) < 3 || split == 0 || split == len(rest)-1 {
			return nil, errDpipeUsage
		}
		cmds = append(cmds, dpipeCommand{Argv: rest[:split:split], Flow: dpipeFlow(old)})
		rest, old = rest[split+1:], dir
	}
}

// dpipeSplitIndex is C's splitindex: the index of the next separator in argv (len(argv)
// if none) and the bracket it opens. dir is the open bracket: a word "}=..." (for '}')
// closes it and loses its first byte. argv must be the tail of the original argv, since
// C reads one byte past an empty word into the next word (see dpipeByte).
func dpipeSplitIndex(argv []string, dir byte) (int, byte) {
	for i := range argv {
		if dir == dpipeByte(argv, i, 0) && dpipeByte(argv, i, 1) == '=' {
			// (argv[i])++: for an empty word the pointer moves onto the next word.
			if argv[i] == "" {
				argv[i] = argv[i+1]
			} else {
				argv[i] = argv[i][1:]
			}
			dir = 0
		}
		if dpipeByte(argv, i, 0) == '=' {
			if c := dpipeByte(argv, i, 1); c == '}' || c == '{' {
				dir = c
			}
			return i, dir
		}
	}
	return len(argv), dir
}

// dpipeByte is argv[i][k] as C sees it: argv strings lie one after the other in memory,
// each ended by a NUL, so reading past the end of one word reads the next. Past the last
// word (the environment in C) it answers 0.
func dpipeByte(argv []string, i, k int) byte {
	for i < len(argv) {
		s := argv[i]
		switch {
		case k < len(s):
			return s[k]
		case k == len(s):
			return 0
		}
		k -= len(s) + 1
		i++
	}
	return 0
}

// dpipeFDs says which pipe ends a command gets. Pipe p has ends 2p (read) and 2p+1
// (write); -1 is none (the command has no such descriptor from dpipe).
type dpipeFDs struct {
	Stdin, Stdout int
	// AltIn and AltOut are the middle command's link to its right neighbour:
	// ALTERNATE_STDIN (normally fd 3) reads, ALTERNATE_STDOUT (fd 4) writes.
	AltIn, AltOut int
}

// planDpipeWiring lays the pipes as the C tool's forks do, and returns every command's
// ends and the number of pipes. Every end of every pipe goes to exactly one command.
func planDpipeWiring(cmds []dpipeCommand) ([]dpipeFDs, int) {
	pipes := 0
	newPipe := func() (r, w int) {
		p := pipes
		pipes++
		return 2 * p, 2*p + 1
	}
	fds := make([]dpipeFDs, len(cmds))
	if len(cmds) == 0 {
		return fds, 0
	}
	// cmd1 reads p1 and writes p2; dpipe keeps the other ends (its stdin and stdout)
	// for the rest of the chain.
	p1r, p1w := newPipe()
	p2r, p2w := newPipe()
	fds[0] = dpipeFDs{Stdin: p1r, Stdout: p2w, AltIn: -1, AltOut: -1}
	in, out := p2r, p1w
	for k := 1; k < len(cmds)-1; k++ {
		switch cmds[k].Flow {
		case flowLeft: // ={ this {=: reads from the right, writes to the left
			r, w := newPipe()
			fds[k] = dpipeFDs{Stdin: r, Stdout: out, AltIn: -1, AltOut: -1}
			out = w
		case flowRight: // =} this }=: reads from the left, writes to the right
			r, w := newPipe()
			fds[k] = dpipeFDs{Stdin: in, Stdout: w, AltIn: -1, AltOut: -1}
			in = r
		default: // = this =: stdio to the left, the alternate fds to the right
			ar, aw := newPipe() // the right neighbour writes aw, this one reads ar
			br, bw := newPipe() // this one writes bw, the right neighbour reads br
			fds[k] = dpipeFDs{Stdin: in, Stdout: out, AltIn: ar, AltOut: bw}
			in, out = br, aw
		}
	}
	fds[len(cmds)-1] = dpipeFDs{Stdin: in, Stdout: out, AltIn: -1, AltOut: -1}
	return fds, pipes
}

// Internal markers of the re-executed dpipe (Go cannot fork).
const (
	// dpipeDaemonEnv marks the process that -d re-executed in a new session.
	dpipeDaemonEnv = "_VDE_DPIPE_DAEMON"
	// dpipeCleanupEnv marks -n's helper, which removes the pid files once the process
	// that became the last command is gone: "PPID:MASK" (see startDpipeCleaner).
	dpipeCleanupEnv = "_VDE_DPIPE_CLEANUP"
)

// dpipeIgnored are the signals C's setsighandlers ignores. The ignored disposition
// passes on to the commands. SIGPROF is left out and SIGSTKFLT stays caught: the Go
// runtime does not let a program ignore them.
var dpipeIgnored = []os.Signal{
	syscall.SIGPIPE, syscall.SIGALRM, syscall.SIGUSR1, syscall.SIGUSR2,
	syscall.SIGVTALRM, syscall.SIGIO, syscall.SIGSTKFLT, syscall.SIGPWR,
}

// dpipeProgName is C's argv[0], which the usage text and getopt's messages start with.
func dpipeProgName() string {
	if len(os.Args) > 0 && filepath.Base(os.Args[0]) == "dpipe" {
		return os.Args[0]
	}
	return "dpipe"
}

// dpipeRaise ends this process with sig as the C tool does: with group, by sending sig
// to the whole process group (SIGHUP, SIGINT); else to itself only. It returns only if
// the signal did not end the process. Tests replace it.
var dpipeRaise = func(sig syscall.Signal, group bool) {
	signal.Reset(sig)
	sigDefault(sig) // C: signal(sig, SIG_DFL), also if sig was ignored when we started
	target := os.Getpid()
	if group {
		target = -unix.Getpgrp()
	}
	unix.Kill(target, sig)
	time.Sleep(200 * time.Millisecond)
}

// sigDefault sets sig's disposition to SIG_DFL. signal.Reset restores what the process
// started with, which may be SIG_IGN. An all-zero struct sigaction is SIG_DFL, no flags,
// empty mask in every architecture's layout.
func sigDefault(sig syscall.Signal) {
	var act [16]uint64
	unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&act)), 0, 8, 0, 0)
}

// DpipeMain is dpipe: commands joined by pairs of pipes (cmd1 = cmd2 [= cmd3 ...]).
func DpipeMain(ctx context.Context, args []string, stdio Stdio) error {
	if v, ok := os.LookupEnv(dpipeCleanupEnv); ok {
		return dpipeCleanupMain(v, args, stdio)
	}
	_, daemonized := os.LookupEnv(dpipeDaemonEnv)
	if daemonized {
		os.Unsetenv(dpipeDaemonEnv)
		os.WriteFile("/proc/self/comm", []byte("dpipe"), 0) // not "exe"
	}
	prog := dpipeProgName()
	o := parseDpipeOptions(args)
	for _, d := range o.Diags {
		fmt.Fprintf(stdio.Err, "%s: %s\n", prog, d)
	}
	if o.Help {
		fmt.Fprintf(stdio.Err, dpipeUsage, prog)
		dpipeRaise(syscall.SIGTERM, false)
		return exit(255) // C's exit(-1), if SIGTERM did not end us
	}
	if o.Daemon && !daemonized {
		return dpipeDaemonize(prog, args, stdio)
	}
	if !o.Daemon {
		// The chain is one process group, which -P names and SIGINT reaches.
		if err := unix.Setpgid(0, 0); err != nil {
			fmt.Fprintf(stdio.Err, "Err: cannot create pgrp\n")
			return exit(1)
		}
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	signal.Ignore(dpipeIgnored...)

	var files []string // pid files written, removed at exit
	writeFile := func(path, content string) {
		if path == "" {
			return
		}
		// C: fopen(path, "w"); a file that cannot be written is skipped silently.
		if os.WriteFile(path, []byte(content), 0o666) == nil {
			files = append(files, path)
		}
	}
	writeFile(o.PidFile, fmt.Sprintf("%d\n", os.Getpid()))
	writeFile(o.PgrpFile, fmt.Sprintf("-%d\n", unix.Getpgrp()))
	cleanup := func() {
		for _, f := range files {
			os.Remove(f)
		}
	}

	cmds, err := splitDpipeChain(o.Words)
	if err != nil {
		fmt.Fprintf(stdio.Err, dpipeUsage, prog)
		cleanup()
		return nil // C SIGTERMs its own group; its handler exits 0
	}
	r := &dpipeRun{
		cmds:    cmds,
		stdio:   stdio,
		sigs:    sigs,
		cleanup: cleanup,
	}
	if o.NoWrap {
		var cleaner func()
		if !o.NoClean && (o.PidFile != "" || o.PgrpFile != "") {
			mask := 0
			if fileIf(files, o.PidFile) != "" {
				mask |= 1
			}
			if fileIf(files, o.PgrpFile) != "" {
				mask |= 2
			}
			cleaner = func() { startDpipeCleaner(os.Getpid(), mask, prog, args, stdio) }
		}
		return r.execLast(cleaner)
	}
	return r.wrap(ctx)
}

// fileIf is path if it was written, else "".
func fileIf(written []string, path string) string {
	if path != "" && slices.Contains(written, path) {
		return path
	}
	return ""
}

// dpipeRun is one chain being started and waited for.
type dpipeRun struct {
	cmds    []dpipeCommand
	stdio   Stdio
	sigs    chan os.Signal
	cleanup func()

	pipes    []*os.File // 2p read end, 2p+1 write end of pipe p; nil once closed
	fds      []dpipeFDs
	env      []string
	altIn    int
	altOut   int
	inherit  []*os.File // descriptors below altOut that dpipe inherited, kept for children
	children []*dpipeChild
}

// dpipeChild is a started command.
type dpipeChild struct {
	cmd  *exec.Cmd // nil if the command could not be executed
	done chan struct{}
	// status is what C's WEXITSTATUS gives: the exit status, 0 after a signal, 127 when
	// execvp failed.
	status int
}

// prepare makes the pipes and the children's environment.
func (r *dpipeRun) prepare() error {
	fds, n := planDpipeWiring(r.cmds)
	r.fds = fds
	for p := 0; p < n; p++ {
		pr, pw, err := os.Pipe()
		if err != nil {
			r.closePipes()
			return err
		}
		r.pipes = append(r.pipes, pr, pw)
	}
	inherited := inheritedFDs()
	r.altIn, r.altOut = alternateFDs(inherited)
	for fd := 3; fd < r.altOut; fd++ {
		var f *os.File
		if inherited[fd] {
			f = os.NewFile(uintptr(fd), "inherited")
		}
		r.inherit = append(r.inherit, f)
	}
	r.env = append(os.Environ(),
		"ALTERNATE_STDIN="+strconv.Itoa(r.altIn),
		"ALTERNATE_STDOUT="+strconv.Itoa(r.altOut))
	return nil
}

func (r *dpipeRun) end(i int) *os.File {
	if i < 0 {
		return nil
	}
	return r.pipes[i]
}

func (r *dpipeRun) closePipes() {
	for i, f := range r.pipes {
		if f != nil {
			f.Close()
			r.pipes[i] = nil
		}
	}
}

// start starts command k as execvp would run it; a command that cannot be executed
// counts as a child that exited 127.
func (r *dpipeRun) start(k int) *dpipeChild {
	c := &dpipeChild{done: make(chan struct{})}
	r.children = append(r.children, c)
	fds := r.fds[k]
	argv := r.cmds[k].Argv
	var extra []*os.File
	if fds.AltIn >= 0 {
		extra = make([]*os.File, r.altOut-2)
		copy(extra, r.inherit)
		extra[r.altIn-3] = r.end(fds.AltIn)
		extra[r.altOut-3] = r.end(fds.AltOut)
	}
	mk := func(path string, argv []string) *exec.Cmd {
		return &exec.Cmd{
			Path:       path,
			Args:       argv,
			Env:        r.env,
			Stdin:      r.end(fds.Stdin),
			Stdout:     r.end(fds.Stdout),
			Stderr:     r.stdio.Err,
			ExtraFiles: extra,
		}
	}
	path, err := execvpPath(argv[0])
	if err == nil {
		cmd := mk(path, argv)
		err = cmd.Start()
		if errors.Is(err, syscall.ENOEXEC) {
			cmd = mk("/bin/sh", append([]string{"/bin/sh", path}, argv[1:]...))
			err = cmd.Start()
		}
		if err == nil {
			c.cmd = cmd
			go func() {
				cmd.Wait()
				c.status = wexitstatus(cmd.ProcessState)
				close(c.done)
			}()
			return c
		}
	}
	c.status = 127 // C's child: execvp failed, exit(127), no message
	close(c.done)
	return c
}

// wexitstatus is C's WEXITSTATUS: 0 for a process that a signal ended.
func wexitstatus(ps *os.ProcessState) int {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Exited() {
		return ws.ExitStatus()
	}
	return 0
}

// execvpPath finds the file execvp would run: a name with a slash as it is, else the
// first executable regular file in $PATH (an empty element is the current directory;
// no PATH is glibc's default "/bin:/usr/bin").
func execvpPath(name string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	if name == "" {
		return "", syscall.ENOENT
	}
	path, ok := os.LookupEnv("PATH")
	if !ok {
		path = "/bin:/usr/bin"
	}
	for _, dir := range strings.Split(path, ":") {
		if dir == "" {
			dir = "."
		}
		p := dir + "/" + name
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && unix.Access(p, unix.X_OK) == nil {
			return p, nil
		}
	}
	return "", syscall.ENOENT
}

// pendingSignal returns a signal that arrived, without waiting.
func (r *dpipeRun) pendingSignal() (os.Signal, bool) {
	select {
	case s := <-r.sigs:
		return s, true
	default:
		return nil, false
	}
}

// wrap is the normal mode: every command is a child; dpipe waits for all of them and
// exits with the last one's status.
func (r *dpipeRun) wrap(ctx context.Context) error {
	if err := r.prepare(); err != nil {
		fmt.Fprintf(r.stdio.Err, "pipe: %s\n", strerror(err))
		r.cleanup()
		return exit(1)
	}
	for k := range r.cmds {
		r.start(k)
		if s, ok := r.pendingSignal(); ok {
			r.closePipes()
			return r.onSignal(s, false)
		}
	}
	r.closePipes()
	dropStdio(r.stdio)

	all := make(chan struct{})
	go func() {
		for _, c := range r.children {
			<-c.done
		}
		close(all)
	}()
	last := r.children[len(r.children)-1]
	select {
	case <-all:
	case s := <-r.sigs:
		return r.onSignal(s, true)
	case <-ctx.Done():
		return r.onSignal(syscall.SIGTERM, true)
	}
	r.cleanup()
	if last.status != 0 {
		return exit(last.status)
	}
	return nil
}

// dpipeGrace is how long, after SIGTERM, dpipe lets the commands end by EOF before it
// sends them SIGTERM too.
var dpipeGrace = time.Second

// onSignal is C's sig_handler with sigcleanup: remove the pid files, SIGTERM the last
// command (once all have started), then for SIGTERM exit 0, for SIGHUP and SIGINT send
// the signal to the process group and die of it.
//
// On SIGTERM the C tool leaves the other commands to see EOF, so one that never reads
// outlives it. We give them dpipeGrace to end that way (their EOF handling runs as with
// C), then SIGTERM by pid those still running, so that killing dpipe ends the chain.
// SIGHUP/SIGINT reach every command through the process group; one that left the group
// gets it by pid.
func (r *dpipeRun) onSignal(s os.Signal, allStarted bool) error {
	r.cleanup()
	r.closePipes()
	sig, _ := s.(syscall.Signal)
	var last *dpipeChild
	if allStarted && len(r.children) > 0 {
		last = r.children[len(r.children)-1]
		if last.cmd != nil {
			last.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	if sig == syscall.SIGHUP || sig == syscall.SIGINT {
		pgrp := unix.Getpgrp()
		for _, c := range r.children {
			if c == last || c.cmd == nil {
				continue
			}
			if pg, err := unix.Getpgid(c.cmd.Process.Pid); err == nil && pg != pgrp {
				c.cmd.Process.Signal(sig)
			}
		}
		dpipeRaise(sig, true)
		return exit(128 + int(sig))
	}
	deadline := time.NewTimer(dpipeGrace)
	defer deadline.Stop()
wait:
	for _, c := range r.children {
		select {
		case <-c.done:
		case <-deadline.C:
			break wait
		}
	}
	for _, c := range r.children {
		if c.cmd != nil {
			c.cmd.Process.Signal(syscall.SIGTERM) // a no-op once it has been waited for
		}
	}
	return nil
}

// dropStdio closes dpipe's own stdin and stdout as C does once the pipes have taken
// their place: no command has them, and a reader of dpipe's stdout sees EOF now.
// /dev/null takes the descriptors, so nothing else lands on 0 and 1.
func dropStdio(stdio Stdio) {
	in, ok1 := stdio.In.(*os.File)
	out, ok2 := stdio.Out.(*os.File)
	if !ok1 || !ok2 || in != os.Stdin || out != os.Stdout {
		return // run in-process, not as the program
	}
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return
	}
	unix.Dup3(int(null.Fd()), 0, 0)
	unix.Dup3(int(null.Fd()), 1, 0)
	null.Close()
}

// execLast is -n: the commands but the last are children; the last replaces dpipe
// (same pid, so -p names it). cleaner, when set, starts the helper that removes the pid
// files once that pid is gone.
func (r *dpipeRun) execLast(cleaner func()) error {
	if err := r.prepare(); err != nil {
		fmt.Fprintf(r.stdio.Err, "pipe: %s\n", strerror(err))
		r.cleanup()
		return exit(1)
	}
	n := len(r.cmds)
	for k := 0; k < n-1; k++ {
		r.start(k)
		if s, ok := r.pendingSignal(); ok {
			r.closePipes()
			return r.onSignal(s, false)
		}
	}
	if cleaner != nil {
		cleaner()
	}
	if s, ok := r.pendingSignal(); ok {
		r.closePipes()
		return r.onSignal(s, false)
	}
	fds := r.fds[n-1]
	argv := r.cmds[n-1].Argv
	path, err := execvpPath(argv[0])
	if err == nil {
		// Fd() also puts the pipes back in blocking mode for the program.
		if err = unix.Dup3(int(r.end(fds.Stdin).Fd()), 0, 0); err == nil {
			err = unix.Dup3(int(r.end(fds.Stdout).Fd()), 1, 0)
		}
	}
	if err == nil {
		err = syscall.Exec(path, argv, r.env)
		if errors.Is(err, syscall.ENOEXEC) {
			err = syscall.Exec("/bin/sh", append([]string{"/bin/sh", path}, argv[1:]...), r.env)
		}
	}
	r.closePipes()
	r.cleanup()
	return exit(127)
}

// startDpipeCleaner starts -n's helper (C forks it): it polls every second until ppid
// is gone, then removes the pid files that mask names (1: -p, 2: -P). It runs with
// dpipe's own arguments, from which it takes the file names, and so looks like dpipe in
// ps, as the C fork does. It has neither stdin nor stdout, so it holds no pipe open.
func startDpipeCleaner(ppid, mask int, prog string, args []string, stdio Stdio) {
	cmd := &exec.Cmd{
		Path:   selfExe,
		Args:   append([]string{prog}, args...),
		Env:    append(environWithout(dpipeCleanupEnv), fmt.Sprintf("%s=%d:%d", dpipeCleanupEnv, ppid, mask)),
		Stderr: stdio.Err,
	}
	if cmd.Start() == nil {
		cmd.Process.Release()
	}
}

// dpipeCleanupMain is the helper of startDpipeCleaner. It has C's signal handling: on
// SIGTERM it removes the files and exits 0, on SIGHUP/SIGINT it also passes the signal
// on to the process group.
func dpipeCleanupMain(marker string, args []string, stdio Stdio) error {
	os.Unsetenv(dpipeCleanupEnv)
	os.WriteFile("/proc/self/comm", []byte("dpipe"), 0)
	var ppid, mask int
	if n, _ := fmt.Sscanf(marker, "%d:%d", &ppid, &mask); n != 2 || ppid <= 0 {
		fmt.Fprintf(stdio.Err, "dpipe: %s=%q: want PPID:MASK\n", dpipeCleanupEnv, marker)
		return exit(1)
	}
	o := parseDpipeOptions(args)
	var files []string
	if mask&1 != 0 && o.PidFile != "" {
		files = append(files, o.PidFile)
	}
	if mask&2 != 0 && o.PgrpFile != "" {
		files = append(files, o.PgrpFile)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	signal.Ignore(dpipeIgnored...)
	remove := func() {
		for _, f := range files {
			os.Remove(f)
		}
	}
	for unix.Kill(ppid, 0) == nil {
		select {
		case <-time.After(time.Second):
		case s := <-sigs:
			remove()
			if sig := s.(syscall.Signal); sig != syscall.SIGTERM {
				dpipeRaise(sig, true)
				return exit(128 + int(sig))
			}
			return nil
		}
	}
	remove()
	return nil
}

// dpipeDaemonize is daemon(0,0): the chain runs in a new session, from "/", with stdin,
// stdout and stderr on /dev/null, and this process exits 0 at once. Go cannot fork, so
// the daemon is this binary run again with the same arguments.
func dpipeDaemonize(prog string, args []string, stdio Stdio) error {
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		fmt.Fprintf(stdio.Err, "%s daemonize: %s\n", prog, strerror(err))
		return exit(1)
	}
	defer null.Close()
	cmd := &exec.Cmd{
		Path:        selfExe,
		Args:        append([]string{prog}, args...),
		Env:         append(environWithout(dpipeDaemonEnv), dpipeDaemonEnv+"=1"),
		Dir:         "/",
		Stdin:       null,
		Stdout:      null,
		Stderr:      null,
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(stdio.Err, "%s daemonize: %s\n", prog, strerror(err))
		return exit(1)
	}
	cmd.Process.Release()
	return nil
}

// inheritedFDs are the descriptors from 3 up that this process got from its parent: open
// and without close-on-exec (the Go runtime sets it on everything it opens). The C tool
// hands such descriptors to every command, and so do we.
func inheritedFDs() map[int]bool {
	fds := map[int]bool{}
	var candidates []int
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		for _, e := range ents {
			if fd, err := strconv.Atoi(e.Name()); err == nil {
				candidates = append(candidates, fd)
			}
		}
	} else {
		for fd := 3; fd < 256; fd++ {
			candidates = append(candidates, fd)
		}
	}
	for _, fd := range candidates {
		if fd < 3 {
			continue
		}
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err == nil && flags&unix.FD_CLOEXEC == 0 {
			fds[fd] = true
		}
	}
	return fds
}

// alternateFDs are the two lowest descriptors from 3 up that are not inherited: where C's
// two open("/dev/null") would land, normally 3 and 4.
func alternateFDs(inherited map[int]bool) (int, int) {
	a := 3
	for inherited[a] {
		a++
	}
	b := a + 1
	for inherited[b] {
		b++
	}
	return a, b
}
