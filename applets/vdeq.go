package applets

import "context"

func init() {
	register(Applet{Name: "vdeq", Main: VdeqMain})
}

// VdeqMain is vdeq: the old wrapper that starts QEMU on VDE networks.
// Not implemented yet: it exits 2.
func VdeqMain(ctx context.Context, args []string, stdio Stdio) error {
	return notImplemented("vdeq")(ctx, args, stdio)
}
