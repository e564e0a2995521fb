package main

// The slirp rows of `make bench`: TCP between a guest namespace and a server on the slirp
// host's loopback, reached from the guest at the router address 10.0.2.2, in both
// directions, through four user-mode routers on the same machine:
//
//   - ours:        our vde_switch (-t TAP in the guest) + our slirpvde
//   - debian:      /usr/bin/vde_switch (-t TAP in the guest) + /usr/bin/slirpvde
//   - slirp4netns: `slirp4netns --configure --mtu=1500` on the guest namespace (libslirp)
//   - pasta:       `pasta --config-net -m 1500` on the guest namespace (passt)
//   - ours-plug:   `vde_plug slirp:// tap://TAP`, our router with no switch
//
// and three with a guest that sends one frame per datagram, as QEMU's -netdev vde does:
// the guest's TAP is Debian's `vde_plug vde://SW tap://TAP` (libvdeplug's tap module: one
// read and one send per frame, no GSO), on
//
//   - vp-ours:     our vde_switch + our slirpvde
//   - vp-ours-dsw: /usr/bin/vde_switch + our slirpvde
//   - vp-debian:   /usr/bin/vde_switch + /usr/bin/slirpvde
//
// and two that keep that per-frame guest path but put the best router there is behind it,
// the host's own kernel: the switch's `-t TAP` is in S with the address 10.0.2.2, and the
// servers listen on it there, so TCP goes guest -> plug -> switch -> kernel with no
// user-mode router at all. What they move bounds what a router can reach on that path
// (one that waits for room at the switch's socket, as ours does, can pass the kernel on
// Debian's switch, which drops what the plug's socket will not take: the kernel's TAP
// writes have no such flow control):
//
//   - vp-kernel:     our vde_switch
//   - vp-kernel-dsw: /usr/bin/vde_switch
//
// Each round sets every router up afresh, one after the other (ours, debian, slirp4netns,
// pasta), in two namespaces created for it: S, where the router runs and whose loopback
// holds the servers (so nothing leaves the machine and no server is seen by anyone else),
// and G, the guest, whose only interface is the TAP at MTU 1500 with a default route via
// 10.0.2.2. For ours and Debian's, the switch runs in G with `-t TAP` (TAP -> switch ->
// slirp, the path a VM's NIC takes) and slirpvde runs in S.
//
// Two methods:
//
//   - stream: the benchmark itself opens a TCP connection from G to 10.0.2.2 (a socket made
//     on a thread that joined G) and accepts it on 127.0.0.1 in S, then one side writes
//     for the whole measurement while the other counts what it reads: bytes received per
//     second after a warm-up. It needs no end-of-test exchange, so it works through
//     Debian's slirpvde, where iperf3 stalls at the end of a test; every router is measured
//     with it, and the ours/debian ratio is taken from it.
//   - iperf3: `iperf3 -c 10.0.2.2 [-R] -O 1 -J` in G against `iperf3 -s -1 -B 127.0.0.1` in
//     S: the receiver's rate and the sender's retransmissions. Not run through Debian's
//     slirpvde.
//
// Both report the longest time in the measurement during which nothing arrived (a stall).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"
)

// Router names, in the order a round runs them.
const (
	slirpOurs        = "ours"
	slirpDebian      = "debian"
	slirpSlirp4netns = "slirp4netns"
	slirpPasta       = "pasta"
	// Our router with no switch: `vde_plug slirp:// tap://TAP`, one process like
	// slirp4netns, to tell the router's own speed from the switch hop's cost.
	slirpOursPlug = "ours-plug"
	// A per-frame guest (Debian's vde_plug tap://) on our switch with our router, on
	// Debian's switch with our router, and on Debian's switch with Debian's router.
	slirpVPOurs    = "vp-ours"
	slirpVPOursDSw = "vp-ours-dsw"
	slirpVPDebian  = "vp-debian"
	// The same per-frame guest with the host's kernel as its router (the switch's -t TAP in
	// S): the bound of the per-frame rows, on our switch and on Debian's.
	slirpVPKernel    = "vp-kernel"
	slirpVPKernelDSw = "vp-kernel-dsw"
)

var slirpRouters = []string{slirpOurs, slirpDebian, slirpSlirp4netns, slirpPasta, slirpOursPlug, slirpVPOurs, slirpVPOursDSw, slirpVPDebian, slirpVPKernel, slirpVPKernelDSw}

// slirpRatios are the ratio columns: ours against each reference, and each per-frame
// guest's router against the reference on the same footing.
var slirpRatios = [][2]string{
	{slirpOurs, slirpDebian}, {slirpOurs, slirpSlirp4netns}, {slirpOurs, slirpPasta}, {slirpOurs, slirpOursPlug},
	{slirpVPOurs, slirpSlirp4netns}, {slirpVPOursDSw, slirpVPDebian},
	{slirpVPKernel, slirpSlirp4netns}, {slirpVPKernelDSw, slirpVPDebian},
}

// debianSlirp reports whether router is Debian's slirpvde, through which iperf3 stalls.
func debianSlirp(router string) bool { return router == slirpDebian || router == slirpVPDebian }

// parseSlirpRouters parses -slirp-routers: names from slirpRouters, kept in its order.
func parseSlirpRouters(list string) ([]string, error) {
	want := map[string]bool{}
	for _, n := range strings.Split(list, ",") {
		n = strings.TrimSpace(n)
		if !slices.Contains(slirpRouters, n) {
			return nil, fmt.Errorf("-slirp-routers: %q is not one of %s", n, strings.Join(slirpRouters, ", "))
		}
		want[n] = true
	}
	var rs []string
	for _, r := range slirpRouters {
		if want[r] {
			rs = append(rs, r)
		}
	}
	return rs, nil
}

// slirpCase is one measured column of a row: a direction and a method.
type slirpCase struct {
	reverse bool   // host -> guest (iperf3 -R)
	method  string // "stream" or "iperf3"
}

func (c slirpCase) path() string {
	if c.reverse {
		return "host→guest"
	}
	return "guest→host"
}

var slirpCases = []slirpCase{
	{false, "stream"}, {true, "stream"}, {false, "iperf3"}, {true, "iperf3"},
}

// slirpSample is one measurement.
type slirpSample struct {
	bitsPerSec  float64
	retransmits int                // iperf3 only: the sender's TCP retransmissions
	stall       time.Duration      // longest stretch with nothing received
	cpuPerMB    map[string]float64 // stream only: CPU ms per MB received of each process of the router (slirpEnv.cpuOf)
	skipped     string             // why it was not run ("" if it was)
	err         error
}

func (s slirpSample) ok() bool { return s.skipped == "" && s.err == nil }

// slirpSummary holds every sample: [router][case] -> one per round.
type slirpSummary struct {
	routers  []string // measured, in slirpRouters' order
	rounds   int
	dur      time.Duration
	daemons  bool
	samples  map[string]map[slirpCase][]slirpSample
	versions string
}

// slirpBins are the binaries of ours and Debian's routers.
type slirpBins struct {
	oursSwitch, oursSlirp     string
	oursPlug                  string
	debianSwitch, debianSlirp string
	debianPlug                string // Debian's vde_plug (vdeplug4), the per-frame guest's TAP
	daemons                   bool   // -daemons: each router process in a session of its own
}

func slirpBinaries(cfg *config) slirpBins {
	return slirpBins{
		oursSwitch: cfg.ours, oursSlirp: filepath.Join(filepath.Dir(cfg.ours), "slirpvde"),
		oursPlug:     filepath.Join(filepath.Dir(cfg.ours), "vde_plug"),
		debianSwitch: cfg.debian, debianSlirp: "/usr/bin/slirpvde",
		debianPlug: "/usr/bin/vde_plug",
		daemons:    cfg.daemons,
	}
}

// startRouter starts a router process (slirpvde, slirp4netns, pasta, vde_plug): as a
// daemon would run (daemonAttr) with -daemons, else in the bench's session like the rest.
func (b slirpBins) startRouter(ctx context.Context, name string, args ...string) (*bgProc, error) {
	if b.daemons {
		return startDaemonBg(ctx, name, args...)
	}
	return startBg(ctx, name, args...)
}

const slirpWarmup = time.Second

// runSlirpBench runs cfg.rounds rounds of every router and reports each sample on w.
// It returns an error only when ctx is cancelled or the machine cannot run it at all
// (not root, no iproute2); a router that fails is reported as failed and the rest go on.
func runSlirpBench(ctx context.Context, cfg *config, w io.Writer) (*slirpSummary, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("slirp rows need root (network namespaces, TAP devices)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, fmt.Errorf("slirp rows need iproute2: %w", err)
	}
	bins := slirpBinaries(cfg)
	s := &slirpSummary{routers: cfg.slirpRouters, rounds: cfg.rounds, dur: cfg.slirpDur, daemons: cfg.daemons, samples: map[string]map[slirpCase][]slirpSample{}, versions: slirpVersions()}
	for _, r := range s.routers {
		s.samples[r] = map[slirpCase][]slirpSample{}
	}
	for round := 1; round <= cfg.rounds; round++ {
		for _, router := range inRoundOrder(s.routers, round) {
			report := func(c slirpCase, smp slirpSample) {
				if smp.skipped != "" && round > 1 {
					return // said once is enough
				}
				fmt.Fprintf(w, "round %d/%d  %-11s slirp %s %-6s %s\n", round, cfg.rounds, router, c.path(), c.method, smp.describe())
			}
			got := slirpRound(ctx, bins, router, round, cfg.slirpDur, report)
			if ctx.Err() != nil {
				return s, ctx.Err()
			}
			for _, c := range slirpCases {
				s.samples[router][c] = append(s.samples[router][c], got[c])
			}
		}
	}
	return s, nil
}

func (s slirpSample) describe() string {
	switch {
	case s.skipped != "":
		return "not run: " + s.skipped
	case s.err != nil:
		return "failed: " + s.err.Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%8.0f Mbit/s", s.bitsPerSec/1e6)
	var p []string
	if s.retransmits >= 0 {
		p = append(p, fmt.Sprintf("%d retransmits", s.retransmits))
	}
	if s.stall >= 500*time.Millisecond {
		p = append(p, fmt.Sprintf("stalled %.1f s", s.stall.Seconds()))
	}
	if len(p) > 0 {
		b.WriteString("  (" + strings.Join(p, ", ") + ")")
	}
	return b.String()
}

// slirpRound sets up one router in fresh namespaces, measures every case and tears it
// all down, calling report with each sample as it comes. A setup failure fails every case
// of the round.
func slirpRound(ctx context.Context, bins slirpBins, router string, round int, dur time.Duration, report func(slirpCase, slirpSample)) map[slirpCase]slirpSample {
	res := map[slirpCase]slirpSample{}
	failAll := func(err error) map[slirpCase]slirpSample {
		for _, c := range slirpCases {
			if _, done := res[c]; !done {
				res[c] = slirpSample{err: err}
				if ctx.Err() == nil {
					report(c, res[c])
				}
			}
		}
		return res
	}
	env, cleanup, err := slirpSetup(ctx, bins, router, round)
	defer cleanup()
	if err != nil {
		return failAll(err)
	}
	for _, c := range slirpCases {
		if ctx.Err() != nil {
			return failAll(ctx.Err())
		}
		if c.method == "iperf3" && debianSlirp(router) {
			res[c] = slirpSample{skipped: "iperf3 stalls through Debian's slirpvde at the end of a test; see the stream row"}
			report(c, res[c])
			continue
		}
		var smp slirpSample
		if c.method == "stream" {
			smp = streamMeasure(ctx, env, c.reverse, slirpWarmup, dur)
		} else {
			smp = iperfMeasure(ctx, env, c.reverse, dur)
		}
		if smp.err != nil {
			if out := env.output(); out != "" {
				smp.err = fmt.Errorf("%w; router output:\n%s", smp.err, out)
			}
		}
		res[c] = smp
		if ctx.Err() == nil {
			report(c, smp)
		}
	}
	return res
}

// slirpEnv is a router set up between two namespaces.
type slirpEnv struct {
	hostNS, guestNS string
	hostAddr        string         // where the servers listen in S: 127.0.0.1, or 10.0.2.2 for the kernel rows
	procs           []*bgProc      // router processes (slirp, slirp4netns, pasta)
	sw              *switchProc    // ours/debian: the switch in G
	output          func() string  // the router's recent output, for error messages
	cpuOf           map[string]int // the router's processes by role ("router", "switch", "plug"): PIDs whose CPU time streamMeasure takes
}

// cpuSeconds is the CPU time (user+system) of each of env's processes now; a process
// that is gone counts 0.
func (env *slirpEnv) cpuSeconds() map[string]float64 {
	t := map[string]float64{}
	for role, pid := range env.cpuOf {
		if v, _, err := procCPU(pid); err == nil {
			t[role] = v
		}
	}
	return t
}

// slirpSetup creates S and G and starts router between them; cleanup (never nil) stops
// everything it started and deletes the namespaces, whatever happened.
func slirpSetup(ctx context.Context, bins slirpBins, router string, round int) (env *slirpEnv, cleanup func(), err error) {
	id := fmt.Sprintf("%d-%d-%s", os.Getpid(), round, router)
	env = &slirpEnv{hostNS: "vdebench-s-" + id, guestNS: "vdebench-g-" + id, hostAddr: "127.0.0.1", output: func() string { return "" }, cpuOf: map[string]int{}}
	var undo []func()
	cleanup = func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	for _, ns := range []string{env.hostNS, env.guestNS} {
		if err := netnsAdd(ctx, ns); err != nil {
			return env, cleanup, err
		}
		undo = append(undo, func() { netnsDel(ns) })
	}
	tap := "tap0"
	switch router {
	case slirpOurs, slirpDebian, slirpVPOurs, slirpVPOursDSw, slirpVPDebian:
		swBin, slBin := bins.oursSwitch, bins.oursSlirp
		if router == slirpDebian || router == slirpVPOursDSw || router == slirpVPDebian {
			swBin = bins.debianSwitch
		}
		if debianSlirp(router) {
			slBin = bins.debianSlirp
		}
		if err := checkExec(slBin); err != nil {
			return env, cleanup, err
		}
		tap = fmt.Sprintf("vbs%x", os.Getpid()&0xfffff)
		perFrame := router != slirpOurs && router != slirpDebian
		var swArgs []string
		if !perFrame {
			swArgs = []string{"-t", tap}
		}
		sw, err := startSwitchCmd(ctx, swBin, []string{"ip", "netns", "exec", env.guestNS}, bins.daemons, swArgs...)
		if err != nil {
			return env, cleanup, err
		}
		env.sw = sw
		env.cpuOf["switch"] = sw.cmd.Process.Pid
		undo = append(undo, func() { sw.stop() })
		if perFrame {
			stop, err := env.startGuestPlug(ctx, bins, sw, tap)
			if err != nil {
				return env, cleanup, err
			}
			undo = append(undo, stop)
		}
		slArgs := []string{"netns", "exec", env.hostNS, slBin, "-s", sw.ctlDir, "-dhcp"}
		if bins.daemons && !debianSlirp(router) && os.Getenv("GOMAXPROCS") == "" {
			// The processors our slirpvde -d picks for its daemon (applets.SlirpvdeProcessors,
			// keyed on the re-executed daemon's environment, which this start is not).
			procs := "GOMAXPROCS=" + strconv.Itoa(max(1, runtime.GOMAXPROCS(0)/2))
			slArgs = append([]string{"netns", "exec", env.hostNS, "env", procs}, slArgs[3:]...)
		}
		sl, err := bins.startRouter(ctx, "ip", slArgs...)
		if err != nil {
			return env, cleanup, err
		}
		env.procs = append(env.procs, sl)
		env.cpuOf["router"] = sl.cmd.Process.Pid
		undo = append(undo, sl.stop)
		env.output = func() string { return sl.out.String() }
		if err := waitLink(ctx, env.guestNS, tap, 10*time.Second); err != nil {
			return env, cleanup, fmt.Errorf("%w; switch output:\n%s", err, sw.out.String())
		}
		for _, args := range [][]string{
			{"addr", "add", "10.0.2.15/24", "dev", tap},
			{"link", "set", tap, "mtu", "1500", "up"},
			{"route", "add", "default", "via", "10.0.2.2"},
		} {
			if err := ipCmd(ctx, append([]string{"-n", env.guestNS}, args...)...); err != nil {
				return env, cleanup, err
			}
		}
	case slirpVPKernel, slirpVPKernelDSw:
		swBin := bins.oursSwitch
		if router == slirpVPKernelDSw {
			swBin = bins.debianSwitch
		}
		// The switch runs in S with its TAP there: the host's kernel answers at 10.0.2.2.
		hostTap := fmt.Sprintf("vbk%x", os.Getpid()&0xfffff)
		tap = fmt.Sprintf("vbs%x", os.Getpid()&0xfffff)
		sw, err := startSwitchCmd(ctx, swBin, []string{"ip", "netns", "exec", env.hostNS}, bins.daemons, "-t", hostTap)
		if err != nil {
			return env, cleanup, err
		}
		env.sw = sw
		env.cpuOf["switch"] = sw.cmd.Process.Pid
		undo = append(undo, func() { sw.stop() })
		env.output = func() string { return sw.out.String() }
		stop, err := env.startGuestPlug(ctx, bins, sw, tap)
		if err != nil {
			return env, cleanup, err
		}
		undo = append(undo, stop)
		for _, l := range []struct{ ns, tap string }{{env.hostNS, hostTap}, {env.guestNS, tap}} {
			if err := waitLink(ctx, l.ns, l.tap, 10*time.Second); err != nil {
				return env, cleanup, fmt.Errorf("%w; switch output:\n%s", err, sw.out.String())
			}
		}
		env.hostAddr = "10.0.2.2"
		for _, args := range [][]string{
			{"-n", env.hostNS, "addr", "add", "10.0.2.2/24", "dev", hostTap},
			{"-n", env.hostNS, "link", "set", hostTap, "mtu", "1500", "up"},
			{"-n", env.guestNS, "addr", "add", "10.0.2.15/24", "dev", tap},
			{"-n", env.guestNS, "link", "set", tap, "mtu", "1500", "up"},
			{"-n", env.guestNS, "route", "add", "default", "via", "10.0.2.2"},
		} {
			if err := ipCmd(ctx, args...); err != nil {
				return env, cleanup, err
			}
		}
	case slirpSlirp4netns:
		if _, err := exec.LookPath("slirp4netns"); err != nil {
			return env, cleanup, fmt.Errorf("slirp4netns is not installed: %w", err)
		}
		// Host loopback stays reachable at 10.0.2.2: no --disable-host-loopback.
		p, err := bins.startRouter(ctx, "ip", "netns", "exec", env.hostNS, "slirp4netns", "--configure", "--mtu=1500",
			"--netns-type=path", "/run/netns/"+env.guestNS, tap)
		if err != nil {
			return env, cleanup, err
		}
		env.procs = append(env.procs, p)
		env.cpuOf["router"] = p.cmd.Process.Pid
		undo = append(undo, p.stop)
		env.output = func() string { return p.out.String() }
	case slirpOursPlug:
		if err := checkExec(bins.oursPlug); err != nil {
			return env, cleanup, err
		}
		// The plug opens the TAP in S, where its slirp's host sockets must be; the TAP then
		// moves to the guest's namespace and keeps working (its fd stays attached).
		tap = fmt.Sprintf("vbp%x", os.Getpid()&0xfffff)
		p, err := bins.startRouter(ctx, "ip", "netns", "exec", env.hostNS, bins.oursPlug, "slirp://", "tap://"+tap)
		if err != nil {
			return env, cleanup, err
		}
		env.procs = append(env.procs, p)
		env.cpuOf["router"] = p.cmd.Process.Pid
		undo = append(undo, p.stop)
		env.output = func() string { return p.out.String() }
		if err := waitLink(ctx, env.hostNS, tap, 10*time.Second); err != nil {
			return env, cleanup, fmt.Errorf("%w; vde_plug output:\n%s", err, p.out.String())
		}
		for _, args := range [][]string{
			{"-n", env.hostNS, "link", "set", tap, "netns", env.guestNS},
			{"-n", env.guestNS, "addr", "add", "10.0.2.15/24", "dev", tap},
			{"-n", env.guestNS, "link", "set", tap, "mtu", "1500", "up"},
			{"-n", env.guestNS, "route", "add", "default", "via", "10.0.2.2"},
		} {
			if err := ipCmd(ctx, args...); err != nil {
				return env, cleanup, err
			}
		}
	case slirpPasta:
		if _, err := exec.LookPath("pasta"); err != nil {
			return env, cleanup, fmt.Errorf("pasta (Debian package passt) is not installed: %w", err)
		}
		// pasta copies its addresses and routes from a host interface with a default route:
		// give S one that leads nowhere (a veth pair with both ends in S).
		for _, args := range [][]string{
			{"link", "add", "vbh0", "type", "veth", "peer", "name", "vbh1"},
			{"link", "set", "vbh1", "up"},
			{"addr", "add", "192.0.2.1/24", "dev", "vbh0"},
			{"link", "set", "vbh0", "up"},
			{"route", "add", "default", "via", "192.0.2.254", "dev", "vbh0"},
		} {
			if err := ipCmd(ctx, append([]string{"-n", env.hostNS}, args...)...); err != nil {
				return env, cleanup, err
			}
		}
		// The gateway address maps to the host's loopback unless --no-map-gw. -f keeps it in
		// the foreground (its PID is ours to stop); --runas 0 because as nobody it cannot
		// join the namespace; no port forwarding either way.
		p, err := bins.startRouter(ctx, "ip", "netns", "exec", env.hostNS, "pasta", "-f", "-q", "-4", "--runas", "0",
			"--config-net", "-m", "1500", "-a", "10.0.2.15", "-n", "24", "-g", "10.0.2.2",
			"-t", "none", "-u", "none", "-T", "none", "-U", "none",
			"--netns", "/run/netns/"+env.guestNS, "-I", tap)
		if err != nil {
			return env, cleanup, err
		}
		env.procs = append(env.procs, p)
		env.cpuOf["router"] = p.cmd.Process.Pid
		undo = append(undo, p.stop)
		env.output = func() string { return p.out.String() }
	default:
		return env, cleanup, fmt.Errorf("unknown router %q", router)
	}
	if err := waitTCPThrough(ctx, env, 20*time.Second); err != nil {
		if out := env.output(); out != "" {
			err = fmt.Errorf("%w; router output:\n%s", err, out)
		}
		return env, cleanup, err
	}
	// Whatever the router configured, the guest's MTU is 1500.
	if err := ipCmd(ctx, "-n", env.guestNS, "link", "set", tap, "mtu", "1500"); err != nil {
		return env, cleanup, err
	}
	return env, cleanup, nil
}

// startGuestPlug starts the per-frame guest's TAP in G: Debian's `vde_plug vde://SW
// tap://TAP`. libvdeplug's tap module reads one frame per read() and sends it as one
// datagram: what a guest on QEMU's -netdev vde sends. stop ends it.
func (env *slirpEnv) startGuestPlug(ctx context.Context, bins slirpBins, sw *switchProc, tap string) (stop func(), err error) {
	if err := checkExec(bins.debianPlug); err != nil {
		return nil, err
	}
	vp, err := bins.startRouter(ctx, "ip", "netns", "exec", env.guestNS, bins.debianPlug, "vde://"+sw.ctlDir, "tap://"+tap)
	if err != nil {
		return nil, err
	}
	env.procs = append(env.procs, vp)
	env.cpuOf["plug"] = vp.cmd.Process.Pid
	return vp.stop, nil
}

// waitTCPThrough waits until a TCP connection from G to 10.0.2.2 reaches a listener on
// 127.0.0.1 in S (env.hostAddr): the router is up, the guest configured and the loopback
// mapping works.
func waitTCPThrough(ctx context.Context, env *slirpEnv, timeout time.Duration) error {
	ln, err := listenIn(env.hostNS, net.JoinHostPort(env.hostAddr, "0"))
	if err != nil {
		return err
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	addr := net.JoinHostPort("10.0.2.2", strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
	deadline := time.Now().Add(timeout)
	for {
		c, err := dialIn(ctx, env.guestNS, addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		for _, p := range env.procs {
			select {
			case <-p.done:
				return fmt.Errorf("%s exited before the guest could connect", p.cmd.Path)
			default:
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("guest %s cannot connect to %s (host loopback in %s) within %v: %v", env.guestNS, addr, env.hostNS, timeout, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// streamMeasure opens one TCP connection from G to 10.0.2.2, accepted on env.hostAddr in S;
// the guest writes (or, reverse, the host writes) for warmup+dur and the receiver's
// byte count over dur gives the rate.
func streamMeasure(ctx context.Context, env *slirpEnv, reverse bool, warmup, dur time.Duration) slirpSample {
	smp := slirpSample{retransmits: -1}
	ln, err := listenIn(env.hostNS, net.JoinHostPort(env.hostAddr, "0"))
	if err != nil {
		smp.err = err
		return smp
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	addr := net.JoinHostPort("10.0.2.2", strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
	guest, err := dialIn(ctx, env.guestNS, addr, 10*time.Second)
	if err != nil {
		smp.err = fmt.Errorf("connect %s from the guest: %w", addr, err)
		return smp
	}
	defer guest.Close()
	var host net.Conn
	select {
	case c, ok := <-accepted:
		if !ok {
			smp.err = errors.New("accept on host loopback failed")
			return smp
		}
		host = c
	case <-time.After(10 * time.Second):
		smp.err = errors.New("the guest connected but nothing was accepted on host loopback within 10s")
		return smp
	case <-ctx.Done():
		smp.err = ctx.Err()
		return smp
	}
	defer host.Close()
	sender, receiver := guest, host
	if reverse {
		sender, receiver = host, guest
	}

	var received atomic.Int64
	sent, drained := make(chan struct{}), make(chan struct{})
	var stopping atomic.Bool
	go func() {
		defer close(sent)
		buf := make([]byte, 128<<10)
		for !stopping.Load() {
			if _, err := sender.Write(buf); err != nil {
				return
			}
		}
	}()
	go func() {
		defer close(drained)
		buf := make([]byte, 128<<10)
		for {
			n, err := receiver.Read(buf)
			received.Add(int64(n))
			if err != nil {
				return
			}
		}
	}()
	// stop ends the stream the way a program would: the sender finishes its write and
	// closes, the receiver reads to EOF (bounded), then closes. (Closing both at once,
	// with data unread, leaves Debian's slirpvde unable to take the next connection.)
	stop := func() {
		stopping.Store(true)
		select {
		case <-sent:
		case <-time.After(2 * time.Second): // a stalled router: the write does not return
		}
		sender.Close()
		<-sent
		select {
		case <-drained:
		case <-time.After(5 * time.Second):
		}
		receiver.Close()
		<-drained
	}

	select {
	case <-ctx.Done():
		stop()
		smp.err = ctx.Err()
		return smp
	case <-time.After(warmup):
	}
	b0, t0, c0 := received.Load(), time.Now(), env.cpuSeconds()
	last, lastT := b0, t0
	tick := time.NewTicker(50 * time.Millisecond)
	end := t0.Add(dur)
	for now := range tick.C {
		if n := received.Load(); n != last {
			last, lastT = n, now
		} else if gap := now.Sub(lastT); gap > smp.stall {
			smp.stall = gap
		}
		if ctx.Err() != nil || !now.Before(end) {
			break
		}
	}
	tick.Stop()
	b1, t1, c1 := received.Load(), time.Now(), env.cpuSeconds()
	stop()
	if ctx.Err() != nil {
		smp.err = ctx.Err()
		return smp
	}
	smp.bitsPerSec = float64(b1-b0) * 8 / t1.Sub(t0).Seconds()
	if mb := float64(b1-b0) / 1e6; mb > 0 {
		smp.cpuPerMB = map[string]float64{}
		for role, t := range c1 {
			smp.cpuPerMB[role] = (t - c0[role]) * 1000 / mb
		}
	}
	return smp
}

// iperfMeasure runs iperf3 from G to a one-shot server on env.hostAddr in S, omitting the
// first second (slow start) and bounding the whole run so a stall cannot hang the bench.
func iperfMeasure(ctx context.Context, env *slirpEnv, reverse bool, dur time.Duration) slirpSample {
	var smp slirpSample
	if _, err := exec.LookPath("iperf3"); err != nil {
		smp.err = fmt.Errorf("needs iperf3: %w", err)
		return smp
	}
	port := strconv.Itoa(20000 + rand.IntN(20000))
	srv, err := startBg(ctx, "ip", "netns", "exec", env.hostNS, "iperf3", "-s", "-1", "-B", env.hostAddr, "-p", port)
	if err != nil {
		smp.err = err
		return smp
	}
	defer srv.stop()
	secs := strconv.Itoa(max(1, int(dur/time.Second)))
	args := []string{"netns", "exec", env.guestNS, "iperf3", "-c", "10.0.2.2", "-p", port, "-t", secs, "-O", "1", "-J", "--connect-timeout", "2000"}
	if reverse {
		args = append(args, "-R")
	}
	rctx, cancel := context.WithTimeout(ctx, dur+30*time.Second)
	defer cancel()
	var out []byte
	deadline := time.Now().Add(10 * time.Second)
	for {
		cmd := exec.CommandContext(rctx, "ip", args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		out, err = cmd.Output()
		// iperf3 -J may exit 0 and report the failure in "error".
		if !bytes.Contains(out, []byte("unable to connect")) || time.Now().After(deadline) || rctx.Err() != nil {
			break
		}
		time.Sleep(100 * time.Millisecond) // the server is not listening yet
	}
	if rctx.Err() != nil && ctx.Err() == nil {
		smp.err = fmt.Errorf("iperf3 did not finish within %v (stalled)", dur+30*time.Second)
		return smp
	}
	var j struct {
		Intervals []struct {
			Sum struct {
				Seconds float64 `json:"seconds"`
				Bytes   float64 `json:"bytes"`
				Omitted bool    `json:"omitted"`
			} `json:"sum"`
		} `json:"intervals"`
		End struct {
			SumSent struct {
				Retransmits int `json:"retransmits"`
			} `json:"sum_sent"`
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
		Error string `json:"error"`
	}
	if jerr := json.Unmarshal(out, &j); jerr != nil || j.Error != "" || err != nil {
		smp.err = fmt.Errorf("iperf3 client: %v %s %v\n%s", err, j.Error, jerr, bytes.TrimSpace(out))
		return smp
	}
	smp.bitsPerSec = j.End.SumReceived.BitsPerSecond
	smp.retransmits = j.End.SumSent.Retransmits
	var gap time.Duration
	for _, iv := range j.Intervals {
		if iv.Sum.Omitted {
			continue
		}
		if iv.Sum.Bytes == 0 {
			gap += time.Duration(iv.Sum.Seconds * float64(time.Second))
			smp.stall = max(smp.stall, gap)
		} else {
			gap = 0
		}
	}
	return smp
}

// listenIn listens on TCP addr inside network namespace ns.
func listenIn(ns, addr string) (net.Listener, error) {
	var ln net.Listener
	err := inNetns(ns, func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen on %s in %s: %w", addr, ns, err)
	}
	return ln, nil
}

// dialIn connects to TCP addr from inside network namespace ns.
func dialIn(ctx context.Context, ns, addr string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := inNetns(ns, func() error {
		d := net.Dialer{Timeout: timeout}
		var err error
		c, err = d.DialContext(ctx, "tcp", addr)
		return err
	})
	return c, err
}

// inNetns runs f on an OS thread that has joined network namespace ns, so the sockets f
// makes belong to ns (a socket keeps its namespace for life). The thread returns to our
// namespace afterwards; if it cannot, it stays locked and Go discards it.
func inNetns(ns string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer self.Close()
		target, err := os.Open(filepath.Join("/run/netns", ns))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("network namespace %s: %w", ns, err)
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		ferr := f()
		if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("setns back from %s: %w", ns, err))
			return // still locked: the thread dies with this goroutine
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// netnsReg remembers the namespaces the bench created, so that an interrupt can delete
// what a deferred cleanup did not reach.
var netnsReg = struct {
	sync.Mutex
	names map[string]bool
}{names: map[string]bool{}}

func netnsAdd(ctx context.Context, name string) error {
	if err := ipCmd(ctx, "netns", "add", name); err != nil {
		return err
	}
	netnsReg.Lock()
	netnsReg.names[name] = true
	netnsReg.Unlock()
	return ipCmd(ctx, "-n", name, "link", "set", "lo", "up")
}

func netnsDel(name string) {
	exec.Command("ip", "netns", "del", name).Run()
	netnsReg.Lock()
	delete(netnsReg.names, name)
	netnsReg.Unlock()
}

// cleanupNetns deletes every namespace still registered (after reap.killAll has stopped
// the processes in them).
func cleanupNetns() {
	netnsReg.Lock()
	names := make([]string, 0, len(netnsReg.names))
	for n := range netnsReg.names {
		names = append(names, n)
	}
	netnsReg.Unlock()
	for _, n := range names {
		netnsDel(n)
	}
}

func checkExec(path string) error {
	st, err := os.Stat(path)
	switch {
	case err != nil:
		return err
	case st.IsDir() || st.Mode().Perm()&0o111 == 0:
		return fmt.Errorf("%s is not an executable file", path)
	}
	return nil
}

// slirpVersions names the reference tools' package versions.
func slirpVersions() string {
	var p []string
	for _, pkg := range []string{"vde2", "slirp4netns", "passt", "iperf3"} {
		if out, err := exec.Command("dpkg-query", "-W", "-f", "${Version}", pkg).Output(); err == nil && len(out) > 0 {
			p = append(p, pkg+" "+strings.TrimSpace(string(out)))
		}
	}
	return strings.Join(p, ", ")
}

// Reporting.

type slirpStats struct {
	n, failed        int
	skipped          string
	min, median, max float64 // bits/s
	retransmits      float64 // median, iperf3 only; NaN otherwise
	stall            time.Duration
}

func slirpStatsOf(ss []slirpSample) slirpStats {
	st := slirpStats{retransmits: math.NaN()}
	var v, re []float64
	for _, s := range ss {
		switch {
		case s.skipped != "":
			st.skipped = s.skipped
		case s.err != nil:
			st.failed++
		default:
			v = append(v, s.bitsPerSec)
			if s.retransmits >= 0 {
				re = append(re, float64(s.retransmits))
			}
			st.stall = max(st.stall, s.stall)
		}
	}
	st.n = len(v)
	if st.n > 0 {
		st.min, st.max, st.median = slices.Min(v), slices.Max(v), median(v)
	}
	if len(re) > 0 {
		st.retransmits = median(re)
	}
	return st
}

func (st slirpStats) String() string {
	switch {
	case st.skipped != "":
		return "not run"
	case st.n == 0:
		return "failed"
	}
	s := fmt.Sprintf("%.0f / %.0f / %.0f", st.min/1e6, st.median/1e6, st.max/1e6)
	var p []string
	if st.failed > 0 {
		p = append(p, fmt.Sprintf("%d failed", st.failed))
	}
	if st.stall >= 500*time.Millisecond {
		p = append(p, fmt.Sprintf("stalls ≤%.1f s", st.stall.Seconds()))
	}
	if len(p) > 0 {
		s += " (" + strings.Join(p, ", ") + ")"
	}
	return s
}

// perRoundRatio is the median over rounds of ours/other, NaN when no round has both.
func perRoundRatio(ours, other []slirpSample) float64 {
	var r []float64
	for i := range min(len(ours), len(other)) {
		if ours[i].ok() && other[i].ok() && other[i].bitsPerSec > 0 {
			r = append(r, ours[i].bitsPerSec/other[i].bitsPerSec)
		}
	}
	if len(r) == 0 {
		return math.NaN()
	}
	return median(r)
}

const slirpHead = "TCP between a guest namespace (TAP, MTU 1500) and a server on the slirp host's loopback at 10.0.2.2; Mbit/s received, min / median / max"

// table returns the header and the cells of the slirp table.
func (s *slirpSummary) table() ([]string, [][]string) {
	head := []string{"path", "method"}
	head = append(head, s.routers...)
	pairs := s.ratioPairs()
	for _, p := range pairs {
		head = append(head, p[0]+"/"+p[1])
	}
	var rows [][]string
	for _, c := range slirpCases {
		row := []string{c.path(), c.method}
		for _, r := range s.routers {
			row = append(row, slirpStatsOf(s.samples[r][c]).String())
		}
		for _, p := range pairs {
			row = append(row, ratio(perRoundRatio(s.samples[p[0]][c], s.samples[p[1]][c])))
		}
		rows = append(rows, row)
	}
	return head, rows
}

// ratioPairs are the slirpRatios whose two routers were both measured.
func (s *slirpSummary) ratioPairs() [][2]string {
	var ps [][2]string
	for _, p := range slirpRatios {
		if s.samples[p[0]] != nil && s.samples[p[1]] != nil {
			ps = append(ps, p)
		}
	}
	return ps
}

func (s *slirpSummary) print(w io.Writer) {
	fmt.Fprintf(w, "slirp: %s, %d rounds of %v (ratios: median of per-round ratios)\n", slirpHead, s.rounds, s.dur)
	head, rows := s.table()
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
	for _, l := range s.notes() {
		fmt.Fprintln(w, l)
	}
}

// cpuRoles are the processes of a router whose CPU time is taken, in the order shown.
var cpuRoles = []string{"router", "switch", "plug"}

// cpu describes the CPU time per MB received that router's processes took in case c
// (stream only), medians over the rounds: "router 9.1 + switch 3.0 + plug 4.2 = 16.3 ms/MB",
// or "" when not measured.
func (s *slirpSummary) cpu(router string, c slirpCase) string {
	var parts []string
	sum := 0.0
	for _, role := range cpuRoles {
		var v []float64
		for _, smp := range s.samples[router][c] {
			if x, ok := smp.cpuPerMB[role]; ok && smp.ok() {
				v = append(v, x)
			}
		}
		if len(v) == 0 {
			continue
		}
		m := median(v)
		sum += m
		parts = append(parts, fmt.Sprintf("%s %.1f", role, m))
	}
	if len(parts) == 0 {
		return ""
	}
	if len(parts) == 1 {
		return parts[0] + " ms/MB"
	}
	return fmt.Sprintf("%s = %.1f ms/MB", strings.Join(parts, " + "), sum)
}

// notes are the CPU time per MB of each router's processes, the iperf3 retransmissions
// and the skipped cells, one line each.
func (s *slirpSummary) notes() []string {
	var n []string
	for _, c := range slirpCases {
		if c.method != "stream" {
			continue
		}
		var per []string
		for _, r := range s.routers {
			if d := s.cpu(r, c); d != "" {
				per = append(per, r+": "+d)
			}
		}
		if len(per) > 0 {
			n = append(n, fmt.Sprintf("CPU time per MB received, %s stream (median per run; the guest's kernel and the servers not counted): %s", c.path(), strings.Join(per, "; ")))
		}
	}
	var re []string
	for _, c := range slirpCases {
		if c.method != "iperf3" {
			continue
		}
		for _, r := range s.routers {
			if st := slirpStatsOf(s.samples[r][c]); !math.IsNaN(st.retransmits) {
				re = append(re, fmt.Sprintf("%s %s %.0f", r, c.path(), st.retransmits))
			}
		}
	}
	if len(re) > 0 {
		n = append(n, "iperf3 retransmits (median per run): "+strings.Join(re, ", "))
	}
	seen := map[string]bool{}
	for _, r := range s.routers {
		for _, c := range slirpCases {
			if st := slirpStatsOf(s.samples[r][c]); st.skipped != "" && !seen[r+st.skipped] {
				seen[r+st.skipped] = true
				n = append(n, fmt.Sprintf("%s %s not run: %s", r, c.method, st.skipped))
			}
		}
	}
	return n
}

func daemonsNote(daemons bool) string {
	if !daemons {
		return " Switches and routers run in the bench's session, as the iperf3 ends do."
	}
	return " Every switch and router process starts a session of its own (-daemons), as `-d` " +
		"daemons do: the kernel's autogroups then schedule each as a group of its own against the rest (the iperf3 ends stay in the bench's session). " +
		"Our slirpvde also gets the processors its `-d` daemon would pick (GOMAXPROCS: half, at least one)."
}

func (s *slirpSummary) markdown() string {
	var b strings.Builder
	b.WriteString("\n## Slirp: TCP to host loopback through a user-mode router\n\n")
	fmt.Fprintf(&b, "%s. Each round sets up every router afresh in two namespaces of its own (ours: our "+
		"vde_switch with `-t TAP` in the guest + our slirpvde; debian: /usr/bin/vde_switch + /usr/bin/slirpvde; "+
		"`slirp4netns --configure --mtu=1500`; `pasta --config-net -m 1500`; ours-plug: our router with no switch, "+
		"`vde_plug slirp:// tap://TAP`, one process like slirp4netns; vp-ours, vp-ours-dsw and vp-debian: a guest that "+
		"sends one frame per datagram, as QEMU's -netdev vde does, its TAP Debian's `vde_plug vde://SW tap://TAP`, on our switch with our "+
		"slirpvde, on Debian's switch with our slirpvde, and on Debian's switch with Debian's slirpvde; vp-kernel and vp-kernel-dsw: "+
		"the same per-frame guest on our switch and on Debian's switch with no user-mode router, the switch's `-t TAP` in the host's namespace "+
		"at 10.0.2.2 and the servers listening there, so that the host's kernel routes: what the best router there is reaches on that path, the bound of the per-frame rows "+
		"(a user-mode router can pass it only where it sends more gently than the kernel into a switch that drops, Debian's: the kernel's TAP has no flow control)), in this order in odd rounds and in the reverse order in even ones.%s *stream* is one TCP "+
		"connection written for %v after %v of warm-up and counted by the receiver; *iperf3* is `iperf3 -O 1 -t %d` "+
		"(`-R` for host→guest). %d rounds; ratios are the median of the per-round ratios.\n\n",
		slirpHead, daemonsNote(s.daemons), s.dur, slirpWarmup, max(1, int(s.dur/time.Second)), s.rounds)
	head, rows := s.table()
	b.WriteString("| " + strings.Join(head, " | ") + " |\n")
	b.WriteString("|---|---|" + strings.Repeat("---:|", len(head)-2) + "\n")
	for _, r := range rows {
		b.WriteString("| " + strings.Join(r, " | ") + " |\n")
	}
	b.WriteString("\n")
	for _, l := range s.notes() {
		b.WriteString(l + "\n\n")
	}
	b.WriteString("Per round (Mbit/s):\n\n| path | method | router |")
	for i := 1; i <= s.rounds; i++ {
		fmt.Fprintf(&b, " round %d |", i)
	}
	b.WriteString("\n|---|---|---|" + strings.Repeat("---:|", s.rounds) + "\n")
	for _, c := range slirpCases {
		for _, r := range s.routers {
			ss := s.samples[r][c]
			if len(ss) > 0 && ss[0].skipped != "" {
				continue
			}
			fmt.Fprintf(&b, "| %s | %s | %s |", c.path(), c.method, r)
			for _, smp := range ss {
				if smp.err != nil {
					b.WriteString(" failed |")
				} else {
					fmt.Fprintf(&b, " %.0f |", smp.bitsPerSec/1e6)
				}
			}
			b.WriteString("\n")
		}
	}
	if s.versions != "" {
		fmt.Fprintf(&b, "\nReference tools: %s.\n", s.versions)
	}
	return b.String()
}
