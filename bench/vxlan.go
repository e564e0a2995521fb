package main

// The vxlan rows: two switches of one implementation joined by that implementation's
// `vde_plug vde://SW vxlan://...` cable over a veth underlay, frames A→B across it and TCP
// between TAP hosts at the two ends.
//
// Each round sets every implementation up afresh, in four network namespaces of its own:
//
//	UA ──veth (MTU 1550)── UB        the underlay, 10.78.0.1/24 and 10.78.0.2/24
//	HA                     HB        the TAP hosts, 10.79.0.1/24 and 10.79.0.2/24
//
// Switch A runs in HA with `-t TAP` (so its TAP is born there), switch B likewise in HB;
// their unix sockets live in temp dirs, so the bench's wire clients reach both from here.
// Plug A runs in UA (`vde_plug vde://SWA vxlan://GROUP/vni=78/if=ula`), plug B in UB. The
// TAP hosts have no link but their TAP: what they say to each other crosses the VXLAN.
//
//   - ours:         bin/vde_switch + bin/vde_plug, multicast group 239.78.0.1
//   - debian:       /usr/bin/vde_switch + /usr/bin/vde_plug (vdeplug4), the same group, with
//     hashsize=0 (vdeplug4 4.0.1 learns unusable addresses and loses unicast otherwise;
//     with no table it sends everything to the group)
//   - ours-unicast: ours with the peer's address instead of the group
//     (vxlan://10.78.0.2/local=10.78.0.1/vni=78), no multicast in the underlay
//
// For each: frames of 64 B and 1500 B from a wire client on switch A to one on switch B,
// counted at B (as the cable row), then iperf3 TCP from HA to HB.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

const (
	vxGroup   = "239.78.0.1"
	vxVNI     = 78
	vxMTU     = 1550 // a 1500-byte IP packet in a 1514-byte frame, plus 50 bytes of VXLAN
	vxTCPDur  = 4 * time.Second
	vxUnicast = "ours-unicast"
)

// Underlay and TAP host addresses (the prefix is /24 for all).
var (
	vxUnder = [2]string{"10.78.0.1", "10.78.0.2"}
	vxHost  = [2]string{"10.79.0.1", "10.79.0.2"}
	vxDev   = [2]string{"ula", "ulb"}
)

// vxlanSizes are the frame sizes of the frames/s rows.
var vxlanSizes = []int{64, 1500}

// vxImpl is the switch and vde_plug of one implementation, and the URL its plug on side i
// (0: A, 1: B) is given.
type vxImpl struct {
	name     string
	sw, plug string
	url      func(i int) string
}

func vxlanImpls(cfg *config) []vxImpl {
	plug := filepath.Join(filepath.Dir(cfg.ours), "vde_plug")
	mcast := func(extra string) func(int) string {
		return func(i int) string {
			return fmt.Sprintf("vxlan://%s/vni=%d%s/if=%s", vxGroup, vxVNI, extra, vxDev[i])
		}
	}
	return []vxImpl{
		{"ours", cfg.ours, plug, mcast("")},
		{"debian", cfg.debian, "/usr/bin/vde_plug", mcast("/hashsize=0")},
		{vxUnicast, cfg.ours, plug, func(i int) string {
			return fmt.Sprintf("vxlan://%s/local=%s/vni=%d", vxUnder[1-i], vxUnder[i], vxVNI)
		}},
	}
}

// vxlanSummary holds the figures of every round: metrics keyed as below, each with one
// value per round and implementation (NaN: failed).
type vxlanSummary struct {
	rounds int
	dur    time.Duration
	warmup time.Duration
	impls  []string
	order  []string
	m      map[string]*metric
	urls   map[string][2]string
}

func newVXLANSummary(cfg *config, impls []vxImpl) *vxlanSummary {
	s := &vxlanSummary{rounds: cfg.rounds, dur: cfg.duration, warmup: cfg.warmup, m: map[string]*metric{}, urls: map[string][2]string{}}
	for _, im := range impls {
		s.impls = append(s.impls, im.name)
		s.urls[im.name] = [2]string{im.url(0), im.url(1)}
	}
	def := func(key, unit, format string, a ...any) {
		s.m[key] = &metric{label: fmt.Sprintf(format, a...), unit: unit, vals: map[string][]float64{}, why: map[string]string{}}
		s.order = append(s.order, key)
	}
	for _, size := range vxlanSizes {
		def(fmt.Sprintf("vx/%d", size), "frames/s", "vxlan cable A→B %d B, frames/s at B", size)
	}
	def("vx/tcp", "Mbit/s", "iperf3 TCP between the TAP hosts, HA→HB (Mbit/s)")
	for _, size := range vxlanSizes {
		def(fmt.Sprintf("vx/plugcpu/%d", size), "ns/frame", "both plugs' CPU per frame at B, %d B (ns)", size)
	}
	for _, size := range vxlanSizes {
		def(fmt.Sprintf("vx/plugkern/%d", size), "%", "share of the plugs' CPU spent in the kernel, %d B (%%)", size)
	}
	for _, size := range vxlanSizes {
		def(fmt.Sprintf("vx/swcpu/%d", size), "ns/frame", "both switches' CPU per frame at B, %d B (ns)", size)
	}
	for _, size := range vxlanSizes {
		def(fmt.Sprintf("vx/busy/%d", size), "%", "machine busy while %d B frames flow (%%)", size)
	}
	return s
}

// runVXLANBench runs every round of every implementation and reports each run on w. It
// fails only when it cannot run at all or ctx is cancelled; a failed run is a NaN.
func runVXLANBench(ctx context.Context, cfg *config, w io.Writer) (*vxlanSummary, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("vxlan rows need root (network namespaces, veth, TAP devices)")
	}
	for _, tool := range []string{"ip", "iperf3"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("vxlan rows need %s: %w", tool, err)
		}
	}
	impls := vxlanImpls(cfg)
	for _, im := range impls {
		for _, bin := range []string{im.sw, im.plug} {
			if err := checkExec(bin); err != nil {
				return nil, fmt.Errorf("vxlan rows, %s: %w", im.name, err)
			}
		}
	}
	s := newVXLANSummary(cfg, impls)
	for round := 1; round <= cfg.rounds; round++ {
		for _, im := range inRoundOrder(impls, round) {
			vals := vxlanRound(ctx, cfg, im, round, func(line string) {
				fmt.Fprintf(w, "round %d/%d  %-12s vxlan  %s\n", round, cfg.rounds, im.name, line)
			})
			if ctx.Err() != nil {
				return s, ctx.Err()
			}
			for _, k := range s.order {
				v, ok := vals[k]
				if !ok {
					v = math.NaN()
				}
				s.m[k].add(im.name, v)
			}
		}
	}
	return s, nil
}

// vxlanRound sets one implementation up in fresh namespaces, measures it and tears it all
// down. It returns the figures by metric key; a missing key failed.
func vxlanRound(ctx context.Context, cfg *config, im vxImpl, round int, report func(string)) map[string]float64 {
	vals := map[string]float64{}
	p, cleanup, err := vxlanSetup(ctx, im, round)
	if err != nil {
		report("setup failed: " + err.Error())
		return vals
	}
	defer cleanup()
	for _, size := range vxlanSizes {
		r := p.pair.measure(ctx, size, cfg.duration, cfg.warmup, cfg.backoff)
		if r.err != nil {
			report(fmt.Sprintf("%5d B  failed: %v", size, r.err))
			if ctx.Err() != nil {
				return vals
			}
			continue
		}
		vals[fmt.Sprintf("vx/%d", size)] = r.fps
		plugs, plugSys := r.procs[0].cpu+r.procs[1].cpu, r.procs[0].sys+r.procs[1].sys
		sws := r.procs[2].cpu + r.procs[3].cpu
		dt := r.cpu.dt
		if r.frames > 0 {
			vals[fmt.Sprintf("vx/plugcpu/%d", size)] = plugs * 1e9 / float64(r.frames)
			vals[fmt.Sprintf("vx/swcpu/%d", size)] = sws * 1e9 / float64(r.frames)
		}
		if plugs > 0 {
			vals[fmt.Sprintf("vx/plugkern/%d", size)] = 100 * plugSys / plugs
		}
		if !math.IsNaN(r.cpu.busyF) {
			vals[fmt.Sprintf("vx/busy/%d", size)] = 100 * r.cpu.busyF
		}
		line := fmt.Sprintf("%5d B  %9s frames/s at B, %6.0f Mbit/s (%s/s accepted at A", size, thousands(r.fps), r.bitRate/1e6, thousands(r.sentFPS))
		if r.sentFPS > 0 {
			line += fmt.Sprintf(", %.1f%% delivered", 100*r.fps/r.sentFPS)
		}
		line += ")"
		if dt > 0 {
			line += fmt.Sprintf("  [plug A %.2f, plug B %.2f, switch A %.2f, switch B %.2f cores; plugs %.0f%% kernel; machine %.0f%% busy]",
				r.procs[0].cpu/dt, r.procs[1].cpu/dt, r.procs[2].cpu/dt, r.procs[3].cpu/dt, 100*plugSys/plugs, 100*r.cpu.busyF)
		}
		report(line)
	}
	// The TAP hosts' path crosses the cable only: wait until it answers, then iperf3.
	if err := waitPing(ctx, p.ns[2], vxHost[1], 20*time.Second); err != nil {
		report("  TCP  failed: " + err.Error())
		return vals
	}
	t, err := iperfTCP(ctx, p.ns[3], p.ns[2], vxHost[1], vxTCPDur)
	if err != nil {
		report("  TCP  failed: " + err.Error())
		return vals
	}
	vals["vx/tcp"] = t.bitsPerSec / 1e6
	report(fmt.Sprintf("  TCP  %6.0f Mbit/s HA→HB  (%d retransmits)", t.bitsPerSec/1e6, t.retransmits))
	return vals
}

// vxlanEnv is one implementation's cable, set up.
type vxlanEnv struct {
	ns   [4]string // UA, UB, HA, HB
	pair *pair     // wire clients on switch A and switch B, MACs learnt across the cable
}

// vxlanSetup builds the namespaces, the underlay, the switches with their TAPs and the
// plugs, and waits until frames cross the cable. cleanup stops every process (by PID) and
// deletes the namespaces; on error, setup has already cleaned up.
func vxlanSetup(ctx context.Context, im vxImpl, round int) (_ *vxlanEnv, _ func(), err error) {
	var undo []func()
	cleanup := func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	defer func() {
		if err != nil {
			cleanup()
		}
	}()
	env := &vxlanEnv{}
	id := fmt.Sprintf("%d-%d-%s", os.Getpid(), round, im.name)
	for i, role := range []string{"ua", "ub", "ha", "hb"} {
		name := "vdebench-vx" + role + "-" + id
		if err := netnsAdd(ctx, name); err != nil {
			return nil, nil, err
		}
		undo = append(undo, func() { netnsDel(name) })
		env.ns[i] = name
		// No IPv6: nothing but the bench's own traffic on the links (no DAD, no MLD, no RS).
		if out, err := exec.CommandContext(ctx, "ip", "netns", "exec", name, "sysctl", "-q", "-w",
			"net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1").CombinedOutput(); err != nil {
			return nil, nil, fmt.Errorf("disable IPv6 in %s: %v: %s", name, err, out)
		}
	}
	mtu := fmt.Sprint(vxMTU)
	if err := ipCmd(ctx, "-n", env.ns[0], "link", "add", vxDev[0], "mtu", mtu, "type", "veth", "peer", "name", vxDev[1], "mtu", mtu, "netns", env.ns[1]); err != nil {
		return nil, nil, err
	}
	for i := range 2 {
		if err := ipCmd(ctx, "-n", env.ns[i], "addr", "add", vxUnder[i]+"/24", "dev", vxDev[i]); err != nil {
			return nil, nil, err
		}
		if err := ipCmd(ctx, "-n", env.ns[i], "link", "set", vxDev[i], "up"); err != nil {
			return nil, nil, err
		}
	}

	const tap = "vxtap"
	var sws [2]*switchProc
	for i := range 2 {
		sw, err := startNetnsSwitch(ctx, im.sw, env.ns[2+i], tap, false)
		if err != nil {
			return nil, nil, err
		}
		undo = append(undo, func() { sw.stop() })
		sws[i] = sw
		if err := waitLink(ctx, env.ns[2+i], tap, 10*time.Second); err != nil {
			return nil, nil, fmt.Errorf("%w; switch output:\n%s", err, sw.out.String())
		}
		for _, args := range [][]string{
			{"addr", "add", vxHost[i] + "/24", "dev", tap},
			{"link", "set", tap, "mtu", "1500", "up"},
		} {
			if err := ipCmd(ctx, append([]string{"-n", env.ns[2+i]}, args...)...); err != nil {
				return nil, nil, err
			}
		}
	}
	var plugs [2]*bgProc
	for i := range 2 {
		// `ip netns exec` execs the plug: the PID is the plug's own.
		plug, err := startBg(ctx, "ip", "netns", "exec", env.ns[i], im.plug, "vde://"+sws[i].ctlDir, im.url(i))
		if err != nil {
			return nil, nil, err
		}
		undo = append(undo, plug.stop)
		plugs[i] = plug
	}
	p, err := openCablePair(ctx, sws[0], sws[1])
	if err != nil {
		for i, pl := range plugs {
			select {
			case <-pl.done:
				err = fmt.Errorf("%w; plug %c exited: %s", err, 'A'+i, strings.TrimSpace(pl.out.String()))
			default:
			}
		}
		return nil, nil, err
	}
	undo = append(undo, p.close)
	p.procs = []int{plugs[0].cmd.Process.Pid, plugs[1].cmd.Process.Pid, sws[0].cmd.Process.Pid, sws[1].cmd.Process.Pid}
	env.pair = p
	return env, cleanup, nil
}

// Reporting.

func (s *vxlanSummary) head() []string {
	return []string{"row", headSuiteOurs, headSuiteDebian, headMoR, headRoM, "ours, unicast mode, min / median / max"}
}

func (s *vxlanSummary) cells() [][]string {
	var rows [][]string
	for _, k := range s.order {
		m := s.m[k]
		mor, rom := "—", "—"
		if m.unit != "%" {
			a, b := ratios(m.vals["ours"], m.vals["debian"])
			mor, rom = ratio(a), ratio(b)
		}
		rows = append(rows, []string{m.label, m.cell("ours"), m.cell("debian"), mor, rom, m.cell(vxUnicast)})
	}
	return rows
}

func (s *vxlanSummary) print(w io.Writer) {
	fmt.Fprintf(w, "vxlan cable between two switches over a veth underlay, %d rounds (ratios ours/debian, multicast both; for CPU lower is better):\n", s.rounds)
	printRows(w, s.head(), s.cells())
}

func (s *vxlanSummary) markdown() string {
	var b strings.Builder
	b.WriteString("\n## vxlan cable between two switches\n\n")
	fmt.Fprintf(&b, "Two switches of one implementation joined by that implementation's `vde_plug vde://SW vxlan://...` "+
		"over a veth pair of MTU %d (1500-byte IP packets plus 50 bytes of VXLAN), each end in a network namespace of "+
		"its own with a 10.78.0.x address. Each switch runs in a third namespace of its own with `-t TAP` (MTU 1500, "+
		"10.79.0.x), so the two TAP hosts reach each other over the VXLAN only. Every round sets each implementation up "+
		"afresh, in the order ours, debian, ours-unicast in odd rounds and the reverse in even ones. *Frames/s*: a wire "+
		"client on switch A sends frames of the size to one on switch B (MACs learnt across the cable first) for %v "+
		"after %v of warm-up; the figure is what arrives at B. *TCP*: `iperf3 -t %d` from the TAP host on A to the one "+
		"on B, the receiver's rate. The plugs' and switches' CPU are utime+stime of the processes over the measuring "+
		"window divided by the frames received at B. %d rounds; ratios are ours/debian (median of the per-round ratios, "+
		"then the ratio of the medians).\n\n",
		vxMTU, s.dur, s.warmup, int(vxTCPDur/time.Second), s.rounds)
	b.WriteString("Plug URLs (A side; B's swaps the addresses and the device):\n\n")
	for _, name := range s.impls {
		fmt.Fprintf(&b, "- %s: `%s`\n", name, s.urls[name][0])
	}
	b.WriteString("\n")
	mdTable(&b, s.head(), "|---|---:|---:|---:|---:|---:|", s.cells())
	b.WriteString("\nPer round:\n\n| row | implementation |")
	for i := 1; i <= s.rounds; i++ {
		fmt.Fprintf(&b, " round %d |", i)
	}
	b.WriteString("\n|---|---|" + strings.Repeat("---:|", s.rounds) + "\n")
	for _, k := range s.order {
		m := s.m[k]
		for _, name := range s.impls {
			fmt.Fprintf(&b, "| %s | %s |", m.label, name)
			for _, x := range m.vals[name] {
				if math.IsNaN(x) {
					b.WriteString(" — |")
				} else {
					fmt.Fprintf(&b, " %s |", formatUnit(m.unit, x))
				}
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}

// targets are the vxlan lines of the targets table: frames/s at 64 and 1500 B against
// Debian's, each with the plugs' CPU per frame and the machine's load beside it.
func (s *vxlanSummary) targets() []target {
	med := func(key, name string) float64 { return fstatsOf(s.m[key].vals[name]).median }
	var ts []target
	for _, size := range vxlanSizes {
		got, _ := ratios(s.m[fmt.Sprintf("vx/%d", size)].vals["ours"], s.m[fmt.Sprintf("vx/%d", size)].vals["debian"])
		cpu, _ := ratios(s.m[fmt.Sprintf("vx/plugcpu/%d", size)].vals["ours"], s.m[fmt.Sprintf("vx/plugcpu/%d", size)].vals["debian"])
		kern := fmt.Sprintf("vx/plugkern/%d", size)
		busy := fmt.Sprintf("vx/busy/%d", size)
		ts = append(ts, target{
			name: fmt.Sprintf("vxlan cable frames/s, A→B %d B", size), got: got, unit: "×", want: 1.5,
			bound: fmt.Sprintf("the plugs' CPU per frame is %s Debian's, %.0f%% of it the kernel's (Debian's %.0f%%); machine %.0f%% busy (Debian's run %.0f%%)",
				ratio(cpu), med(kern, "ours"), med(kern, "debian"), med(busy, "ours"), med(busy, "debian")),
		})
	}
	return ts
}
