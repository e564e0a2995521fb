package applets

import "context"

func init() {
	register(Applet{Name: "unixterm", Main: UnixtermMain})
}

// UnixtermMain is unixterm: a terminal for a switch's management socket.
// Not implemented yet: it exits 2.
func UnixtermMain(ctx context.Context, args []string, stdio Stdio) error {
	return notImplemented("unixterm")(ctx, args, stdio)
}
