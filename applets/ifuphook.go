package applets

import "context"

func init() {
	register(Applet{Name: "ifup-hook", Main: IfupHookMain})
}

// IfupHookMain is vde ifup-hook: what the ifupdown hooks run for vde2-* stanzas.
// Not implemented yet: it exits 2.
func IfupHookMain(ctx context.Context, args []string, stdio Stdio) error {
	return notImplemented("ifup-hook")(ctx, args, stdio)
}
