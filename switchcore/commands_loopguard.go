package switchcore

import (
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The loopguard/* commands (ours: Debian's switch has no loop guard). port/print and
// port/allprint stay Debian's to the byte; the guard's state is shown here.
var loopguardCommands = []command{
	menu("loopguard", "LOOP GUARD MENU"),
	{path: "loopguard/print", help: "print the loop guard state and the ports it blocked", withFile: true, run: cmdLoopguardPrint},
	// setrate before set: commands match by prefix, and "loopguard/set" is one of "loopguard/setrate".
	{path: "loopguard/setrate", syntax: "N", help: "flapping frames/s that block a port", run: cmdLoopguardSetrate},
	{path: "loopguard/set", syntax: "0/1", help: "loop guard (without FSTP) 1=ON 0=OFF", run: cmdLoopguardSet},
	{path: "loopguard/unblock", syntax: "N", help: "lift the loop guard's block of port N", run: cmdLoopguardUnblock},
}

// The loop guard's menu comes after FSTP's, before the port menu. commands.go's init,
// which fills the registry, runs first: a package's files initialise in name order.
func init() {
	at := len(registry)
	for i, c := range registry {
		if c.menu && c.path == "port" {
			at = i
			break
		}
	}
	registry = append(registry[:at:at], append(append([]command(nil), loopguardCommands...), registry[at:]...)...)
}

func cmdLoopguardPrint(c *cmdCtx) error {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.lg
	state := "ON"
	switch {
	case !g.on:
		state = "OFF"
	case s.hub:
		state = "ON, standing aside: hub mode learns no addresses"
	case s.fst.on:
		state = "ON, standing aside: FSTP is on"
	}
	c.printf("Loop guard %s\n", state)
	c.printf("Blocks a port when addresses flap at %d frames/s or more, for %.0f s doubling up to %.0f s; %d blocks\n",
		g.rate, lgBlockMin.Seconds(), lgBlockMax.Seconds(), g.blocks.Load())
	for _, st := range g.lgStates(time.Now()) {
		c.printf("%s\n", st)
	}
	return nil
}

func cmdLoopguardSet(c *cmdCtx) error {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lg.setOn(atoi(c.arg) != 0)
	s.publishLocked()
	return nil
}

func cmdLoopguardSetrate(c *cmdCtx) error {
	n := atoi(c.arg)
	if strings.TrimSpace(c.arg) == "" || n <= 0 {
		return unix.EINVAL
	}
	s := c.s
	s.mu.Lock()
	s.lg.rate = n
	s.mu.Unlock()
	return nil
}

func cmdLoopguardUnblock(c *cmdCtx) error {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	n := atoi(c.arg)
	if strings.TrimSpace(c.arg) == "" || n < 0 || n >= len(s.ports) {
		return unix.EINVAL
	}
	if n >= len(s.lg.ports) || !s.lg.ports[n].blocked {
		return unix.ENOENT
	}
	lp := s.lg.ports[n]
	now := time.Now()
	s.lg.unblock(lp, now, "unblocked from mgmt")
	lp.unblockedAt = now.Add(-lgProbation) // no probation: the user asked for it
	s.publishLocked()
	return nil
}
