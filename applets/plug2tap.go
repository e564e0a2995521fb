package applets

import "context"

func init() {
	register(Applet{Name: "plug2tap", Aliases: vdeNames("plug2tap"), Main: Plug2TapMain})
}

// Plug2TapMain is vde_plug2tap: it joins a switch port to a TAP interface.
// Not implemented yet: it exits 2.
func Plug2TapMain(ctx context.Context, args []string, stdio Stdio) error {
	return notImplemented("plug2tap")(ctx, args, stdio)
}
