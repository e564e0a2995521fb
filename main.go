// Command vde is the multicall binary of the VDE tools: run as vde_switch (or
// vde-switch, vdeswitch, vde_plug, dpipe, ...) through a link, or as `vde APPLET ARGS`.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"

	"github.com/vde-go/vde/applets"
)

func main() {
	stop := startProfile(os.Getenv("VDE_CPUPROFILE"))
	code := run(context.Background(), os.Args, applets.Stdio{In: os.Stdin, Out: os.Stdout, Err: os.Stderr})
	stop()
	writeHeapProfile(os.Getenv("VDE_MEMPROFILE"))
	os.Exit(code)
}

// writeHeapProfile writes the heap profile at the end of a run to path
// (VDE_MEMPROFILE=FILE): what was allocated, and what is still in use.
func writeHeapProfile(path string) {
	if path == "" {
		return
	}
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "vde: VDE_MEMPROFILE: %v\n", err)
		return
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		fmt.Fprintf(os.Stderr, "vde: VDE_MEMPROFILE: %v\n", err)
	}
}

// startProfile writes a CPU profile of this run to path (VDE_CPUPROFILE=FILE), for
// profiling a tool under real load; an applet that ends normally (a signal it handles,
// EOF) completes the profile.
func startProfile(path string) (stop func()) {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "vde: VDE_CPUPROFILE: %v\n", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintf(os.Stderr, "vde: VDE_CPUPROFILE: %v\n", err)
		f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

const usage = `usage: vde APPLET [ARGS...]
       vde --list | --version
       vde --man NAME | --completion bash|zsh
The applets also run under their own names (vde_switch, vde_plug, dpipe, ...),
e.g. through a symbolic link to vde. "vde --list" names them all.
`

// run dispatches argv to an applet and returns the exit status.
func run(ctx context.Context, argv []string, stdio applets.Stdio) int {
	if len(argv) > 0 {
		if a, pre, ok := applets.ForName(filepath.Base(argv[0])); ok {
			setProcessors(a)
			return exitStatus(a.Main(ctx, append(pre, argv[1:]...), stdio), stdio.Err)
		}
	}
	// Any other argv[0] (vde, vde.test, a renamed copy) is the multicall front end.
	if len(argv) < 2 {
		io.WriteString(stdio.Err, usage)
		return 2
	}
	switch argv[1] {
	case "--list":
		for _, a := range applets.All() {
			fmt.Fprintln(stdio.Out, a.Name)
		}
		return 0
	case "--version":
		fmt.Fprintf(stdio.Out, "vde %s\n", applets.Version)
		return 0
	case "-h", "--help":
		io.WriteString(stdio.Out, usage)
		return 0
	case "--man", "--completion":
		return exitStatus(applets.DocMain(ctx, argv[1:], stdio), stdio.Err)
	}
	a, ok := applets.Lookup(argv[1])
	if !ok {
		fmt.Fprintf(stdio.Err, "vde: unknown applet '%s'\n%s", argv[1], usage)
		return 2
	}
	setProcessors(a)
	return exitStatus(a.Main(ctx, argv[2:], stdio), stdio.Err)
}

// setProcessors applies the applet's choice of GOMAXPROCS, unless the environment
// names one that the runtime takes (a number above 0). The choice is made from the
// runtime's default, however often it is called in one process (tests).
func setProcessors(a applets.Applet) {
	if a.Processors == nil {
		return
	}
	if n, err := strconv.Atoi(os.Getenv("GOMAXPROCS")); err == nil && n > 0 {
		return
	}
	runtime.SetDefaultGOMAXPROCS()
	runtime.GOMAXPROCS(a.Processors(runtime.GOMAXPROCS(0)))
}

// exitStatus is the one place where an applet's result becomes an exit status: nil is
// 0, an *applets.ExitError carries its code (and maybe a message for us to print), and
// any other error is printed and gives 1.
func exitStatus(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	var ee *applets.ExitError
	if errors.As(err, &ee) {
		if ee.Err != nil {
			fmt.Fprintf(stderr, "vde: %v\n", ee.Err)
		}
		return ee.Code
	}
	fmt.Fprintf(stderr, "vde: %v\n", err)
	return 1
}
