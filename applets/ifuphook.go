package applets

import (
	"context"
	"fmt"
	"os"

	"github.com/vde-go/vde/ifupdown"
)

func init() {
	register(Applet{Name: "ifup-hook", Main: IfupHookMain})
}

const ifupHookUsage = `Usage: vde ifup-hook
Run by ifupdown from /etc/network/if-pre-up.d/vde2 and /etc/network/if-post-down.d/vde2
for the vde2-switch, vde2-slirp and vde2-plug options of /etc/network/interfaces. It reads
IFACE, METHOD, MODE, PHASE, VERBOSITY and IF_VDE2_* from the environment; sockets and pid
files go to /var/run/vde2.
`

// ifupHookEnv reads the environment; tests substitute their own.
var ifupHookEnv = os.Getenv

// ifupHookConfig is where and as whom the hook runs; tests point it elsewhere.
var ifupHookConfig = func(stdio Stdio) (ifupdown.Config, error) {
	exe, err := os.Executable()
	if err != nil {
		return ifupdown.Config{}, fmt.Errorf("cannot find the vde binary: %w", err)
	}
	return ifupdown.Config{Vde: exe, Stdout: stdio.Out, Stderr: stdio.Err}, nil
}

// IfupHookMain is vde ifup-hook: what the ifupdown hooks run for vde2-* stanzas. It
// exits 0 for a phase or a stanza that is not its business, 1 when a tool failed (ifup
// then fails with the tool's message and the hook's on stderr).
func IfupHookMain(ctx context.Context, args []string, stdio Stdio) error {
	if len(args) > 0 {
		if args[0] == "-h" || args[0] == "--help" {
			fmt.Fprint(stdio.Out, ifupHookUsage)
			return nil
		}
		fmt.Fprint(stdio.Err, ifupHookUsage)
		return exit(2)
	}
	e := ifupdown.FromEnv(ifupHookEnv)
	if e.Action() == ifupdown.None {
		return nil
	}
	cfg, err := ifupHookConfig(stdio)
	if err != nil {
		fmt.Fprintf(stdio.Err, "vde ifup-hook: %v\n", err)
		return exit(1)
	}
	if err := ifupdown.Run(e, cfg); err != nil {
		fmt.Fprintf(stdio.Err, "vde ifup-hook: %s: %v\n", e.Iface, err)
		return exit(1)
	}
	return nil
}
