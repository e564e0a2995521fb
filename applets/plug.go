package applets

import "context"

func init() {
	register(Applet{Name: "plug", Aliases: vdeNames("plug"), Main: PlugMain})
}

// PlugMain is vde_plug: it joins a switch port to stdin/stdout or to another network.
// Not implemented yet: it exits 2.
func PlugMain(ctx context.Context, args []string, stdio Stdio) error {
	return notImplemented("plug")(ctx, args, stdio)
}
