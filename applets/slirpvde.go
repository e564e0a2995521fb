package applets

import "context"

func init() {
	register(Applet{Name: "slirpvde", Main: SlirpvdeMain})
}

// SlirpvdeMain is slirpvde: a user-mode NAT router with DHCP and DNS on a switch port.
// Not implemented yet: it exits 2.
func SlirpvdeMain(ctx context.Context, args []string, stdio Stdio) error {
	return notImplemented("slirpvde")(ctx, args, stdio)
}
