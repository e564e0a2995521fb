// Package applets holds the programs of the vde multicall binary: one file per applet,
// each with the C tool's command line and a Main that tests can run in-process.
package applets

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"syscall"
)

// Version is the release of vde. The Makefile sets it with
// -ldflags "-X github.com/vde-go/vde/applets.Version=...". It starts with the VDE2
// release we reproduce, so tools that read "VDE switch V.2.3.2..." or "VDE 2.3.2..."
// with sscanf("%d.%d.%d") see the numbers they expect.
var Version = "2.3.2-go"

// Stdio is the standard input, output and error of an applet run.
type Stdio struct {
	// In is standard input (the switch console reads commands from it).
	In io.Reader
	// Out is standard output (usage and version texts, console responses).
	Out io.Writer
	// Err is standard error (diagnostics and, in the foreground, log lines).
	Err io.Writer
}

// MainFunc runs an applet with its arguments (argv[1:]). It returns nil for exit status
// 0, an *ExitError for any other status, or another error that main prints and maps to 1.
type MainFunc func(ctx context.Context, args []string, stdio Stdio) error

// Applet is one program of the multicall binary.
type Applet struct {
	// Name is what `vde NAME` and `vde --list` use.
	Name string
	// Aliases are the other names that select the applet, as argv[0] basename or as
	// `vde ALIAS` (vde_switch, vde-switch, vdeswitch, ...).
	Aliases []string
	// Main runs the applet.
	Main MainFunc
	// Processors, if set, chooses how many processors (GOMAXPROCS) the applet's process
	// runs Go code on, given the runtime's default; the GOMAXPROCS environment variable
	// still decides when set. main applies it before Main.
	Processors func(def int) int
}

// ExitError ends an applet with a non-zero exit status. The applet has already printed
// what the user needs to see, unless Err is set: then main prints "vde: Err" first.
type ExitError struct {
	// Code is the process exit status.
	Code int
	// Err, when not nil, is printed by main on standard error.
	Err error
}

func (e *ExitError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("exit status %d: %v", e.Code, e.Err)
	}
	return fmt.Sprintf("exit status %d", e.Code)
}

func (e *ExitError) Unwrap() error { return e.Err }

// exit is the ExitError for an applet that already printed its message.
func exit(code int) error { return &ExitError{Code: code} }

var registry = map[string]*Applet{}
var applets []*Applet

// register adds an applet; every file registers its own from init(). A name taken twice
// is a programming error, so it panics at start-up rather than shadowing silently.
func register(a Applet) {
	p := &a
	for _, n := range append([]string{a.Name}, a.Aliases...) {
		if _, dup := registry[n]; dup {
			panic("applets: name registered twice: " + n)
		}
		registry[n] = p
	}
	applets = append(applets, p)
}

// vdeNames gives the spellings the C tools and distributions use for an applet that was
// called vde_NAME: vde_NAME, vde-NAME and vdeNAME.
func vdeNames(name string) []string {
	return []string{"vde_" + name, "vde-" + name, "vde" + name}
}

// Lookup finds an applet by its name or one of its aliases.
func Lookup(name string) (Applet, bool) {
	a, ok := registry[name]
	if !ok {
		return Applet{}, false
	}
	return *a, true
}

// ForName finds the applet that argv[0]'s basename selects, and arguments to put before
// the command line's: an applet's name or alias, or else vde<NAME> (vdeqemu, vdekvm;
// vdeo<NAME> in the old syntax's spelling), which is vdeq running NAME.
func ForName(base string) (Applet, []string, bool) {
	if a, ok := Lookup(base); ok {
		return a, nil, true
	}
	for _, prefix := range []string{"vdeo", "vde"} {
		if rest, ok := strings.CutPrefix(base, prefix); ok && isProgramName(rest) {
			a, ok := Lookup("vdeq")
			return a, []string{rest}, ok
		}
	}
	return Applet{}, nil, false
}

// isProgramName reports whether s can be a program vdeq runs: it starts with a letter
// (so vde.test, vde-foo and the front end vde itself are not taken for vdeq).
func isProgramName(s string) bool {
	return s != "" && (s[0] >= 'a' && s[0] <= 'z' || s[0] >= 'A' && s[0] <= 'Z') && !strings.ContainsAny(s, "./")
}

// All returns every applet, sorted by name.
func All() []Applet {
	out := make([]Applet, 0, len(applets))
	for _, a := range applets {
		out = append(out, *a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// strerror renders the errno inside err the way C's strerror does ("File exists", not
// "open x: file exists"), so messages copied from the C tools read the same.
func strerror(err error) string {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return err.Error()
	}
	s := errno.Error()
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
