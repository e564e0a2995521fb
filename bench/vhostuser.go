package main

// The vhost-user rows: frames/s between two DPDK virtio_user frontends through a vhost-user
// backend, and the CPU an idle switch with ten vhost-user ports uses.
//
// One dpdk-testpmd process holds both frontends (net_virtio_user0 and 1, no hugepages) and
// runs pinned to CPU 0 with both of its lcores there; the backend runs on CPU 1. Two
// pollers on two CPUs: a second frontend process would make three, and they collapse.
// testpmd forwards in mac mode, port 0's frames addressed to port 1's MAC and back, and
// `start tx_first N` puts N bursts of 32 frames of the size (--txpkts) in flight on each
// port; from then on every frame one port receives it sends again to the other. The
// figure is the sum of both ports' Rx-pps over the window (testpmd's own clock, between two
// `show port stats all`): the frames the backend forwarded per second, both ways together.
//
// The backends, each fresh per round, in alternating order:
//
//   - ours:        `vde_switch --vhost-user DIR/vh.sock` under `taskset -c 1`; both
//     frontends connect to the one socket and each becomes a port.
//   - ovs-dpdk:    Open vSwitch with its DPDK datapath (Debian's openvswitch-switch-dpdk),
//     a private ovsdb-server and ovs-vswitchd-dpdk in a temp dir, bridge br0 of datapath
//     netdev with two dpdkvhostuser ports and the NORMAL action, its PMD thread on CPU 1
//     (pmd-cpu-mask=0x2), EAL `--no-huge -m 4096 --no-pci --legacy-mem`.
//   - dpdk-bridge: a second testpmd on CPU 1 with two net_vhost ports (vhost-user
//     backends) joined by io forwarding: no learning, no lookup, DPDK's own vhost code. It
//     is the frontend's ceiling on this machine: what a backend that does nothing else
//     gets out of the same frontend.
//
// Beside them, our datagram path measured the same way: our switch under `taskset -c 1`,
// the bench's two wire clients (the unicast row's load generator, A→B) with the bench's
// threads pinned to CPU 0. And the idle row: our switch with ten virtio_user frontends
// connected (one testpmd at its interactive prompt, forwarding nothing), its utime+stime
// over 10 s as % of a CPU.

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
	vhOurs    = "ours"
	vhOVS     = "ovs-dpdk"
	vhBridge  = "dpdk-bridge"
	vhDgram   = "ours-dgram"
	vhBursts  = 4                // bursts of 32 frames per port put in flight by tx_first
	vhIdleDur = 10 * time.Second // the idle row's window
	vhIdleN   = 10               // frontends of the idle row
	vhMAC0    = "02:00:00:00:0a:01"
	vhMAC1    = "02:00:00:00:0a:02"
	vhOVSBin  = "/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk"
	vhOVSEAL  = "--no-huge -m 4096 --no-pci --legacy-mem"
)

var vhostSizes = []int{64, 1500}

// vhBackend is one backend under test: start brings it up in dir (a fresh temp dir) with
// its server sockets for the two frontends, the PIDs whose CPU the window samples, and a
// stop that ends every process it started (by PID) and removes what it made outside dir.
type vhBackend struct {
	name  string
	start func(ctx context.Context, dir string) (socks [2]string, pids []int, stop func(), err error)
}

// vhostSummary holds every round's figures, metrics keyed as in newVhostSummary, one
// value per round and backend (NaN: failed).
type vhostSummary struct {
	rounds   int
	dur      time.Duration
	warmup   time.Duration
	dgDur    time.Duration // the datagram path's window and warm-up (-duration, -warmup)
	dgWarmup time.Duration
	backends []string
	m        map[string]*metric
	order    []string
	skipped  map[string]string // backend -> why it was not measured
}

func newVhostSummary(cfg *config, backends []string) *vhostSummary {
	s := &vhostSummary{rounds: cfg.rounds, dur: vhDur(cfg), warmup: vhWarmup(cfg), dgDur: cfg.duration, dgWarmup: cfg.warmup, backends: backends,
		m: map[string]*metric{}, skipped: map[string]string{}}
	def := func(key, unit, format string, a ...any) {
		s.m[key] = &metric{label: fmt.Sprintf(format, a...), unit: unit, vals: map[string][]float64{}, why: map[string]string{}}
		s.order = append(s.order, key)
	}
	for _, size := range vhostSizes {
		def(fmt.Sprintf("vh/%d", size), "frames/s", "%d B, frames/s forwarded (both ways)", size)
	}
	for _, size := range vhostSizes {
		def(fmt.Sprintf("vh/cores/%d", size), "cores", "%d B, backend's CPU (cores)", size)
	}
	for _, size := range vhostSizes {
		def(fmt.Sprintf("vh/ns/%d", size), "ns/frame", "%d B, backend's CPU per frame (ns)", size)
	}
	for _, size := range vhostSizes {
		def(fmt.Sprintf("vh/wait/%d", size), "cores", "%d B, backend runnable, waiting for a CPU (cores)", size)
	}
	for _, size := range vhostSizes {
		def(fmt.Sprintf("vh/front/%d", size), "cores", "%d B, frontend's CPU (cores)", size)
	}
	for _, size := range vhostSizes {
		def(fmt.Sprintf("vh/busy/%d", size), "%", "%d B, machine busy (%%)", size)
	}
	def("vh/idle", "%", "idle, %d vhost-user ports: switch CPU (%% of a CPU)", vhIdleN)
	return s
}

// vhDur and vhWarmup are the window and warm-up of a testpmd measurement: the bench's
// -duration and -warmup, but at least 3 s and 1 s (testpmd's first frames take a moment
// to go round, and its pps are since the last `show`).
func vhDur(cfg *config) time.Duration    { return max(cfg.duration, 3*time.Second) }
func vhWarmup(cfg *config) time.Duration { return max(cfg.warmup, time.Second) }

// vhostPreflight says why the rows cannot run here, or nil.
func vhostPreflight() error {
	if os.Geteuid() != 0 {
		return errors.New("vhost-user rows need root (DPDK's /var/run/dpdk, OVS-DPDK)")
	}
	if numCPU() < 2 {
		return fmt.Errorf("vhost-user rows pin the frontend to CPU 0 and the backend to CPU 1: need 2 CPUs, have %d", numCPU())
	}
	for _, tool := range []string{"dpdk-testpmd", "taskset", "stdbuf"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("vhost-user rows need %s: %w", tool, err)
		}
	}
	return nil
}

// runVhostBench runs every round and reports each measurement on w. It fails only when the
// rows cannot run at all or ctx is cancelled; a failed measurement is a NaN.
func runVhostBench(ctx context.Context, cfg *config, w io.Writer) (*vhostSummary, error) {
	if err := vhostPreflight(); err != nil {
		return nil, err
	}
	if err := checkExec(cfg.ours); err != nil {
		return nil, fmt.Errorf("vhost-user rows: %w", err)
	}
	backends := []vhBackend{
		{vhOurs, func(ctx context.Context, dir string) ([2]string, []int, func(), error) {
			return startOursVhost(ctx, cfg, dir)
		}},
		{vhBridge, startBridge},
	}
	s := newVhostSummary(cfg, []string{vhOurs, vhOVS, vhBridge, vhDgram})
	if why := ovsMissing(); why != "" {
		s.skipped[vhOVS] = why
	} else {
		backends = append(backends[:1], vhBackend{vhOVS, startOVS}, backends[1])
	}
	record := func(name string, vals map[string]float64, keys ...string) {
		for _, k := range keys {
			v, ok := vals[k]
			if !ok {
				v = math.NaN()
			}
			s.m[k].add(name, v)
		}
	}
	perSize := func(prefixes ...string) []string {
		var keys []string
		for _, p := range prefixes {
			for _, size := range vhostSizes {
				keys = append(keys, fmt.Sprintf("%s/%d", p, size))
			}
		}
		return keys
	}
	for round := 1; round <= cfg.rounds; round++ {
		for _, b := range inRoundOrder(backends, round) {
			vals := vhostRound(ctx, cfg, b, round, func(line string) {
				fmt.Fprintf(w, "round %d/%d  %-11s vhost-user  %s\n", round, cfg.rounds, b.name, line)
			})
			if ctx.Err() != nil {
				return s, ctx.Err()
			}
			record(b.name, vals, perSize("vh", "vh/cores", "vh/ns", "vh/wait", "vh/front", "vh/busy")...)
		}
		vals := dgramRound(ctx, cfg, func(line string) {
			fmt.Fprintf(w, "round %d/%d  %-11s datagram    %s\n", round, cfg.rounds, vhDgram, line)
		})
		if ctx.Err() != nil {
			return s, ctx.Err()
		}
		record(vhDgram, vals, perSize("vh", "vh/cores", "vh/ns", "vh/wait", "vh/busy")...)
		idle, err := idleRound(ctx, cfg, round)
		if ctx.Err() != nil {
			return s, ctx.Err()
		}
		if err != nil {
			fmt.Fprintf(w, "round %d/%d  %-11s idle        failed: %v\n", round, cfg.rounds, vhOurs, err)
			idle = math.NaN()
		} else {
			fmt.Fprintf(w, "round %d/%d  %-11s idle        %d vhost-user ports, switch %.2f%% of a CPU over %v\n", round, cfg.rounds, vhOurs, vhIdleN, idle, vhIdleDur)
		}
		s.m["vh/idle"].add(vhOurs, idle)
	}
	return s, nil
}

// vhostRound starts backend b afresh and measures each frame size with a fresh frontend.
func vhostRound(ctx context.Context, cfg *config, b vhBackend, round int, report func(string)) map[string]float64 {
	vals := map[string]float64{}
	dir, err := os.MkdirTemp("", "vde-bench-vh-")
	if err != nil {
		report("temp dir: " + err.Error())
		return vals
	}
	reap.addDir(dir)
	defer func() { os.RemoveAll(dir); reap.delDir(dir) }()
	socks, pids, stop, err := b.start(ctx, dir)
	if err != nil {
		report("setup failed: " + err.Error())
		return vals
	}
	defer stop()
	for _, size := range vhostSizes {
		r, err := runFrontend(ctx, cfg, socks, size, pids, fmt.Sprintf("vdebench-%d-%d-%s-%d", os.Getpid(), round, b.name, size))
		if err != nil {
			report(fmt.Sprintf("%5d B  failed: %v", size, err))
			if ctx.Err() != nil {
				return vals
			}
			continue
		}
		vals[fmt.Sprintf("vh/%d", size)] = r.fps
		vals[fmt.Sprintf("vh/cores/%d", size)] = r.backCores
		vals[fmt.Sprintf("vh/ns/%d", size)] = r.backCores * 1e9 / r.fps
		vals[fmt.Sprintf("vh/wait/%d", size)] = r.backWait
		vals[fmt.Sprintf("vh/front/%d", size)] = r.frontCores
		if !math.IsNaN(r.busy) {
			vals[fmt.Sprintf("vh/busy/%d", size)] = 100 * r.busy
		}
		report(fmt.Sprintf("%5d B  %10s frames/s (port 0 %s, port 1 %s), %6.2f Gbit/s  [backend %.2f cores (%.0f ns/frame), %.2f waiting for a CPU; frontend %.2f; machine %.0f%% busy]",
			size, thousands(r.fps), thousands(r.pps[0]), thousands(r.pps[1]), r.fps*float64(size)*8/1e9, r.backCores, r.backCores*1e9/r.fps, r.backWait, r.frontCores, 100*r.busy))
	}
	return vals
}

// dgramRound measures our datagram path the same way: our switch on CPU 1, the bench's
// load generator (every thread of this process) on CPU 0, A→B at each size.
func dgramRound(ctx context.Context, cfg *config, report func(string)) map[string]float64 {
	vals := map[string]float64{}
	restore, err := pinSelf(0)
	if err != nil {
		report("pin the bench to CPU 0: " + err.Error())
		return vals
	}
	defer restore()
	sw, err := startSwitchCmd(ctx, cfg.ours, []string{"taskset", "-c", "1"}, false)
	if err != nil {
		report("setup failed: " + err.Error())
		return vals
	}
	defer sw.stop()
	p, err := openPair(ctx, sw)
	if err != nil {
		report("setup failed: " + err.Error())
		return vals
	}
	defer p.close()
	for _, size := range vhostSizes {
		w0, t0 := schedWait([]int{sw.cmd.Process.Pid}), time.Now()
		r := p.measure(ctx, size, cfg.duration, cfg.warmup, cfg.backoff)
		wait := (schedWait([]int{sw.cmd.Process.Pid}) - w0) / time.Since(t0).Seconds() // warm-up included
		if !r.ok() {
			report(fmt.Sprintf("%5d B  %s", size, describe(r)))
			continue
		}
		vals[fmt.Sprintf("vh/%d", size)] = r.fps
		vals[fmt.Sprintf("vh/cores/%d", size)] = r.cpu.sw / r.cpu.dt
		vals[fmt.Sprintf("vh/ns/%d", size)] = r.cpuPerFrame()
		vals[fmt.Sprintf("vh/wait/%d", size)] = wait
		if !math.IsNaN(r.cpu.busyF) {
			vals[fmt.Sprintf("vh/busy/%d", size)] = 100 * r.cpu.busyF
		}
		report(fmt.Sprintf("%5d B  %s  [%.2f waiting for a CPU]", size, describe(r), wait))
	}
	return vals
}

// idleRound starts our switch with one vhost-user socket and one testpmd with ten
// virtio_user ports on it, left at its prompt (nothing forwarded), waits until the switch
// shows ten vhost-user ports, then gives the switch's CPU over vhIdleDur in % of a CPU.
func idleRound(ctx context.Context, cfg *config, round int) (float64, error) {
	dir, err := os.MkdirTemp("", "vde-bench-vh-")
	if err != nil {
		return 0, err
	}
	reap.addDir(dir)
	defer func() { os.RemoveAll(dir); reap.delDir(dir) }()
	sock, mgmt := filepath.Join(dir, "vh.sock"), filepath.Join(dir, "mgmt")
	sw, err := startSwitchCmd(ctx, cfg.ours, nil, false, "-M", mgmt, "--vhost-user", sock)
	if err != nil {
		return 0, err
	}
	defer sw.stop()
	if err := waitSocket(ctx, sock, 10*time.Second); err != nil {
		return 0, err
	}
	eal := []string{"-m", "512"}
	for i := range vhIdleN {
		eal = append(eal, fmt.Sprintf("--vdev=net_virtio_user%d,path=%s,queues=1,mac=02:00:00:00:0b:%02x", i, sock, i))
	}
	t, err := startTestpmd(ctx, 0, fmt.Sprintf("vdebench-%d-%d-idle", os.Getpid(), round), eal, []string{"--total-num-mbufs=16384"})
	if err != nil {
		return 0, err
	}
	defer t.stop()
	if err := t.waitFor(ctx, "prompt", 60*time.Second, func(s string) bool { return strings.Contains(s, "testpmd> ") }); err != nil {
		return 0, err
	}
	unixcmd := filepath.Join(filepath.Dir(cfg.ours), "unixcmd")
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, _ := exec.CommandContext(ctx, unixcmd, "-s", mgmt, "port/print").CombinedOutput()
		n := strings.Count(string(out), "module vhost-user")
		if n >= vhIdleN {
			break
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("the switch shows %d vhost-user ports, not %d, after 30 s", n, vhIdleN)
		}
		if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
			return 0, err
		}
	}
	if err := sleepCtx(ctx, time.Second); err != nil { // the console's own work settles
		return 0, err
	}
	pid := []int{sw.cmd.Process.Pid}
	c0, t0 := sampleProcs(pid), time.Now()
	if err := sleepCtx(ctx, vhIdleDur); err != nil {
		return 0, err
	}
	c1, t1 := sampleProcs(pid), time.Now()
	if gone, werr := sw.exited(); gone {
		return 0, fmt.Errorf("switch exited (%v): %s", werr, sw.out.String())
	}
	return 100 * procsBetween(c0, c1)[0].cpu / t1.Sub(t0).Seconds(), nil
}

// Reporting.

func (s *vhostSummary) head() []string {
	return []string{"row", "ours min / median / max", "ovs-dpdk", "ours/ovs-dpdk", "dpdk-bridge (testpmd net_vhost, io)", "ours/dpdk-bridge", "ours-dgram (datagram path)", "ours/ours-dgram"}
}

func (s *vhostSummary) cells() [][]string {
	var rows [][]string
	for _, k := range s.order {
		m := s.m[k]
		row := []string{m.label, vhCell(m, vhOurs)}
		for _, other := range []string{vhOVS, vhBridge, vhDgram} {
			c := vhCell(m, other)
			if why := s.skipped[other]; why != "" {
				c = why
			}
			r := "—"
			if m.unit == "frames/s" || m.unit == "ns/frame" {
				a, _ := ratios(m.vals[vhOurs], m.vals[other])
				r = ratio(a)
			}
			row = append(row, c, r)
		}
		rows = append(rows, row)
	}
	return rows
}

func (s *vhostSummary) print(w io.Writer) {
	fmt.Fprintf(w, "vhost-user: one testpmd with two virtio_user ports on CPU 0, the backend on CPU 1, %d rounds (ratios: median of per-round ratios; for ns/frame lower is better):\n", s.rounds)
	printRows(w, s.head(), s.cells())
}

func (s *vhostSummary) markdown() string {
	var b strings.Builder
	b.WriteString("\n## vhost-user ports\n\n")
	fmt.Fprintf(&b, "One `dpdk-testpmd` (no hugepages) with two `net_virtio_user` ports runs on CPU 0 (both lcores); the backend "+
		"runs on CPU 1. testpmd forwards in mac mode, each port's frames addressed to the other port's MAC, with "+
		"`start tx_first %d` (%d frames in flight per port); the figure is the sum of both ports' Rx-pps over %v after "+
		"%v of warm-up, testpmd's own count: the frames the backend forwarded per second, both ways together. "+
		"Backends, each fresh per round in alternating order: *ours* `vde_switch --vhost-user SOCK` under `taskset -c 1`; "+
		"*ovs-dpdk* a private Open vSwitch %s (`ovs-vswitchd-dpdk`, EAL `%s`, pmd-cpu-mask=0x2) with bridge br0 of "+
		"datapath netdev, two `dpdkvhostuser` ports and the NORMAL action; *dpdk-bridge* a second testpmd on CPU 1 whose "+
		"two `net_vhost` ports are joined by io forwarding (DPDK's own vhost code, no learning, no lookup: on a quiet machine the frontend's ceiling). "+
		"*ours-dgram* is our datagram path measured the same way: our switch under `taskset -c 1`, the bench's two wire "+
		"clients (A→B, the unicast row's load generator) pinned to CPU 0, for %v after %v. The idle row: our switch with %d "+
		"virtio_user frontends connected (one testpmd at its prompt, forwarding nothing), utime+stime over %v. "+
		"A backend's CPU is utime+stime of its processes over the window; per frame, divided by the frames forwarded; "+
		"*waiting for a CPU* is the time its threads were runnable but not running (schedstat), which tells a backend "+
		"that sleeps from one that shares CPU 1 with the rest of the machine. "+
		"%d rounds.\n\n",
		vhBursts, vhBursts*32, s.dur, s.warmup, ovsVersion(), vhOVSEAL, s.dgDur, s.dgWarmup, vhIdleN, vhIdleDur, s.rounds)
	mdTable(&b, s.head(), "|---|---:|---:|---:|---:|---:|---:|---:|", s.cells())
	b.WriteString("\nPer round:\n\n| row | backend |")
	for i := 1; i <= s.rounds; i++ {
		fmt.Fprintf(&b, " round %d |", i)
	}
	b.WriteString("\n|---|---|" + strings.Repeat("---:|", s.rounds) + "\n")
	for _, k := range s.order {
		m := s.m[k]
		for _, name := range s.backends {
			if len(m.vals[name]) == 0 {
				continue
			}
			fmt.Fprintf(&b, "| %s | %s |", m.label, name)
			for _, x := range m.vals[name] {
				if math.IsNaN(x) {
					b.WriteString(" — |")
				} else {
					fmt.Fprintf(&b, " %s |", vhFormat(m.unit, x))
				}
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}

func vhFormat(unit string, x float64) string {
	if unit == "cores" || unit == "%" {
		return fmt.Sprintf("%.2f", x)
	}
	return formatUnit(unit, x)
}

// vhCell is metric.cell with two decimals for cores and shares.
func vhCell(m *metric, name string) string {
	st := fstatsOf(m.vals[name])
	if st.n == 0 {
		return m.cell(name)
	}
	c := fmt.Sprintf("%s / %s / %s", vhFormat(m.unit, st.min), vhFormat(m.unit, st.median), vhFormat(m.unit, st.max))
	if st.missing > 0 {
		c += fmt.Sprintf(" (%d failed)", st.missing)
	}
	return c
}

// targets are the vhost-user lines of the targets table: frames/s at 64 and 1500 B against
// OVS-DPDK, at 64 B against our datagram path, and the idle switch's CPU. Each names what
// this run says bounds it: the switch's CPU, the frontend's ceiling (dpdk-bridge), load.
func (s *vhostSummary) targets() []target {
	med := func(key, name string) float64 { return fstatsOf(s.m[key].vals[name]).median }
	fps := func(size int) string { return fmt.Sprintf("vh/%d", size) }
	bound := func(size int) string {
		ceil, _ := ratios(s.m[fps(size)].vals[vhOurs], s.m[fps(size)].vals[vhBridge])
		k := func(p string) string { return fmt.Sprintf("%s/%d", p, size) }
		return fmt.Sprintf("ours is %s of dpdk-bridge (DPDK's own vhost, io forwarding: %s frames/s); our switch ran %.2f cores (%.0f ns/frame) and waited %.2f for a CPU (ovs-dpdk %.2f and %.2f, dpdk-bridge %.2f and %.2f); frontend %.2f cores; machine %.0f%% busy",
			ratio(ceil), thousands(med(fps(size), vhBridge)), med(k("vh/cores"), vhOurs), med(k("vh/ns"), vhOurs), med(k("vh/wait"), vhOurs),
			med(k("vh/cores"), vhOVS), med(k("vh/wait"), vhOVS), med(k("vh/cores"), vhBridge), med(k("vh/wait"), vhBridge),
			med(k("vh/front"), vhOurs), med(k("vh/busy"), vhOurs))
	}
	var ts []target
	for _, size := range vhostSizes {
		got, _ := ratios(s.m[fps(size)].vals[vhOurs], s.m[fps(size)].vals[vhOVS])
		ts = append(ts, target{name: fmt.Sprintf("vhost-user frames/s %d B, over OVS-DPDK", size), got: got, unit: "×", want: 0.5, bound: bound(size)})
	}
	got, _ := ratios(s.m[fps(64)].vals[vhOurs], s.m[fps(64)].vals[vhDgram])
	cost, _ := ratios(s.m["vh/ns/64"].vals[vhDgram], s.m["vh/ns/64"].vals[vhOurs])
	ts = append(ts, target{name: "vhost-user frames/s 64 B, over our datagram path", got: got, unit: "×", want: 10,
		bound: fmt.Sprintf("a datagram frame costs our switch %s the CPU of a vhost-user one (the most the ratio reaches at equal CPU); datagram path %s frames/s, the switch at %.2f cores (%.0f ns/frame); ",
			ratio(cost), thousands(med(fps(64), vhDgram)), med("vh/cores/64", vhDgram), med("vh/ns/64", vhDgram)) + bound(64)})
	ts = append(ts, target{name: fmt.Sprintf("idle switch, %d vhost-user ports (%% of a CPU)", vhIdleN), got: med("vh/idle", vhOurs), unit: "%", want: 1, below: true})
	return ts
}
