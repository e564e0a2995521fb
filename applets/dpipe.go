package applets

import "context"

func init() {
	register(Applet{Name: "dpipe", Main: DpipeMain})
}

// DpipeMain is dpipe: a bidirectional pipe between two commands (cmd1 = cmd2).
// Not implemented yet: it exits 2.
func DpipeMain(ctx context.Context, args []string, stdio Stdio) error {
	return notImplemented("dpipe")(ctx, args, stdio)
}
