// Command bench is the project's switch benchmark (`make bench`): it runs our vde_switch and
// Debian's C vde_switch alternately, each fresh per round, and measures how many unicast
// frames per second one port forwards to another over the VDE unix-socket data path.
//
// Per round and implementation it starts `vde_switch -s DIR/sw.ctl` with a stdin pipe it
// keeps open, attaches ports A and B with switchcore/wire, lets the switch learn both MACs,
// then for each frame size blasts frames from A (batched sendmmsg) while a reader counts
// what arrives at B (batched recvmmsg). The figure is frames received at B per second.
// It prints min/median/max per implementation, the median of the per-round ratios
// ours/debian, the ratio of the medians, the environment and the command to reproduce.
//
// Beside them it measures the bare-socketpair ceiling of the same load generator, then the
// other switch rows (suite.go): 4→4 ports, broadcast fan-out, the switch's CPU time per
// frame, round-trip latency and memory with 256 ports.
//
// After the switch rows come the cable, TAP, vxlan, slirp and vhost-user rows (cable.go,
// tap.go, vxlan.go, slirp.go, vhostuser.go); `-only slirp` runs the slirp rows alone,
// `-only vxlan` the vxlan rows alone, `-only vhostuser` the vhost-user rows alone,
// `-only switch` the switch rows alone.
//
// It is a benchmark, not a test: nothing is asserted about the numbers.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type config struct {
	ours, debian string
	oursArgs     []string // -ours-args: extra options for our switch
	rounds       int
	duration     time.Duration
	warmup       time.Duration
	sizes        []int
	backoff      backoff
	out          string
	tap          bool
	cable        bool
	vxlan        bool          // also the vxlan cable rows (vxlan.go)
	slirp        bool          // also the slirp rows (slirp.go)
	vhost        bool          // also the vhost-user rows (vhostuser.go)
	slirpDur     time.Duration // per slirp measurement
	daemons      bool          // slirp rows: each router process in a session of its own
	slirpRouters []string      // slirp rows: the routers measured (-slirp-routers), in slirpRouters' order
	only         string        // "slirp", "vxlan": only those rows; "switch": only the switch rows
	rtts         int           // timed round trips of the latency row
	rssPorts     int           // ports attached for the memory row
}

// impl is one implementation under test.
type impl struct {
	name string // "ours" or "debian"
	path string
	args []string // extra switch options (-ours-args), before -s
}

// measurement keys results by implementation, size and round.
type measurements map[string]map[int][]result

func main() {
	if len(os.Args) == 2 && os.Args[1] == relayChildArg {
		os.Exit(runRelayChild())
	}
	os.Exit(run())
}

func run() int {
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 2
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	defer cleanupNetns()
	defer reap.killAll()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		<-sigs
		fmt.Fprintln(os.Stderr, "\nbench: interrupted; stopping the switch (again to kill at once)")
		cancel()
		<-sigs
		reap.killAll()
		cleanupNetns()
		os.Exit(130)
	}()

	impls := []impl{{"ours", cfg.ours, cfg.oursArgs}, {"debian", cfg.debian, nil}}
	for _, im := range impls {
		if err := checkBinary(im); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
	}

	env := environment(cfg)
	cmdline := reproduce(cfg)
	fmt.Println(env)
	fmt.Println("command:", cmdline)
	fmt.Println()
	if cfg.only == "slirp" {
		return rowsOnly(ctx, cfg, "slirp", env, cmdline, func() (rowsSummary, error) { return runSlirpBench(ctx, cfg, os.Stdout) })
	}
	if cfg.only == "vxlan" {
		return rowsOnly(ctx, cfg, "vxlan", env, cmdline, func() (rowsSummary, error) { return runVXLANBench(ctx, cfg, os.Stdout) })
	}
	if cfg.only == "vhostuser" {
		return rowsOnly(ctx, cfg, "vhost-user", env, cmdline, func() (rowsSummary, error) { return runVhostBench(ctx, cfg, os.Stdout) })
	}
	if cfg.only == "latency" {
		return latencyOnly(ctx, cfg, impls)
	}
	if cfg.only == "wirefilter" {
		return wirefilterOnly(ctx, cfg)
	}
	if cfg.only == "tap" {
		if _, err := tapRow(ctx, cfg); err != nil {
			fmt.Fprintln(os.Stderr, "bench: tap:", err)
			return 1
		}
		return 0
	}

	res := measurements{}
	for _, im := range impls {
		res[im.name] = map[int][]result{}
	}
	srows := newSuite(cfg)
	for round := 1; round <= cfg.rounds; round++ {
		for _, im := range inRoundOrder(impls, round) {
			rs, err := runOne(ctx, cfg, im, round)
			if err != nil {
				if ctx.Err() != nil {
					fmt.Fprintln(os.Stderr, "bench: interrupted")
					return 130
				}
				fmt.Fprintf(os.Stderr, "bench: round %d, %s (%s): %v\n", round, im.name, im.path, err)
				return 1
			}
			for i, size := range cfg.sizes {
				res[im.name][size] = append(res[im.name][size], rs[i])
			}
		}
		if cfg.only == "unicast" {
			continue
		}
		if err := srows.ceilingRound(ctx, round, 1); err != nil {
			fmt.Fprintln(os.Stderr, "bench: interrupted")
			return 130
		}
		if err := srows.relayRound(ctx, round); err != nil {
			fmt.Fprintln(os.Stderr, "bench: interrupted")
			return 130
		}
	}

	rows := summarize(cfg, res)
	fmt.Println()
	printTable(os.Stdout, rows)
	if cfg.only == "unicast" {
		return 0
	}
	srows.addUnicast(res)
	fmt.Println()
	srows.printCeiling(os.Stdout, 1)
	fmt.Println()
	srows.printRelay(os.Stdout)
	fmt.Println()
	if err := srows.run(ctx, impls); err != nil {
		fmt.Fprintln(os.Stderr, "bench: interrupted")
		return 130
	}
	fmt.Println()
	srows.print(os.Stdout)

	// A cable of two plugs under dpipe between two switches.
	var cableLines []string
	if cfg.cable {
		for _, size := range []int{64, 1500} {
			sum, err := runCableBench(ctx, cfg, cableImpls(cfg), size, os.Stdout)
			if err != nil {
				fmt.Fprintln(os.Stderr, "bench: cable:", err)
				return 1
			}
			cableLines = append(cableLines, sum.String())
		}
		for _, size := range []int{64, 1500} {
			sum, err := runWirefilterBench(ctx, cfg, size, os.Stdout)
			if err != nil {
				return rowsFailed(ctx, "wirefilter", err)
			}
			cableLines = append(cableLines, sum.String())
		}
		fmt.Println()
		for _, l := range cableLines {
			fmt.Println(l)
		}
	}

	// TCP through TAPs: iperf3 between a namespace on the switch's -t TAP and one on
	// vde_plug2tap's TAP.
	tapLine := ""
	if cfg.tap {
		var err error
		if tapLine, err = tapRow(ctx, cfg); err != nil {
			fmt.Fprintln(os.Stderr, "bench: tap:", err)
			return 1
		}
	}
	// Two switches joined by a vxlan:// cable over a veth underlay.
	var vx *vxlanSummary
	if cfg.vxlan {
		var err error
		if vx, err = runVXLANBench(ctx, cfg, os.Stdout); err != nil {
			return rowsFailed(ctx, "vxlan", err)
		}
		fmt.Println()
		vx.print(os.Stdout)
	}
	var slirp *slirpSummary
	if cfg.slirp {
		var err error
		if slirp, err = runSlirpBench(ctx, cfg, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "bench: slirp:", err)
			return 1
		}
		fmt.Println()
		slirp.print(os.Stdout)
	}
	// Two DPDK virtio_user frontends through our switch, OVS-DPDK and DPDK's own vhost.
	var vh *vhostSummary
	if cfg.vhost {
		if err := vhostPreflight(); err != nil {
			fmt.Fprintln(os.Stderr, "bench: vhost-user rows skipped:", err)
		} else if vh, err = runVhostBench(ctx, cfg, os.Stdout); err != nil {
			return rowsFailed(ctx, "vhost-user", err)
		} else {
			fmt.Println()
			vh.print(os.Stdout)
		}
	}
	targets := srows.targets(slirp)
	if vx != nil {
		targets = append(targets, vx.targets()...)
	}
	if vh != nil {
		targets = append(targets, vh.targets()...)
	}
	fmt.Println()
	printTargets(os.Stdout, targets)
	if cfg.out != "" {
		md := markdown(cfg, env, cmdline, rows, res) + srows.markdown()
		for _, l := range cableLines {
			md += "\n" + l + "\n"
		}
		if tapLine != "" {
			md += "\n" + tapLine + "\n"
		}
		if vx != nil {
			md += vx.markdown()
		}
		if slirp != nil {
			md += slirp.markdown()
		}
		if vh != nil {
			md += vh.markdown()
		}
		md += targetsMarkdown(targets)
		if err := os.WriteFile(cfg.out, []byte(md), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		fmt.Println("\nwrote", cfg.out)
	}
	return 0
}

// rowsSummary is what a family of rows that runs alone (-only) gives: its table, for the
// terminal and as markdown, and its lines of the targets table.
type rowsSummary interface {
	print(w io.Writer)
	markdown() string
	targets() []target
}

// rowsOnly is `bench -only NAME` for a family of rows with targets (slirp, vxlan,
// vhost-user): run them, print their table and targets, and (with -out) write them alone.
func rowsOnly(ctx context.Context, cfg *config, name, env, cmdline string, run func() (rowsSummary, error)) int {
	s, err := run()
	if err != nil {
		return rowsFailed(ctx, name, err)
	}
	fmt.Println()
	s.print(os.Stdout)
	ts := s.targets()
	fmt.Println()
	printTargets(os.Stdout, ts)
	return writeOnly(cfg, "Benchmark: "+name+" rows only", s.markdown()+targetsMarkdown(ts), env, cmdline)
}

// rowsFailed reports why the rows named what could not run and gives the exit status: 130
// if the run was interrupted, else 1.
func rowsFailed(ctx context.Context, what string, err error) int {
	fmt.Fprintf(os.Stderr, "bench: %s: %v\n", what, err)
	if ctx.Err() != nil {
		return 130
	}
	return 1
}

// writeOnly writes the -out file of an -only run (when -out is set): the title, the rows'
// markdown, the environment and the command that repeats the run. It gives the exit status.
func writeOnly(cfg *config, title, md, env, cmdline string) int {
	if cfg.out == "" {
		return 0
	}
	md = "# " + title + "\n" + md + fmt.Sprintf("\n%s\n\nReproduce with:\n\n```\nmake && %s\n```\n", env, cmdline)
	if err := os.WriteFile(cfg.out, []byte(md), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	fmt.Println("\nwrote", cfg.out)
	return 0
}

// tapRow runs and prints the iperf3 row over TAPs: a namespace on the switch's -t TAP,
// one on vde_plug2tap's.
func tapRow(ctx context.Context, cfg *config) (string, error) {
	sums, err := runTapBench(ctx,
		tapPair{"ours", cfg.ours, filepath.Join(filepath.Dir(cfg.ours), "vde_plug2tap")},
		tapPair{"debian", cfg.debian, "/usr/bin/vde_plug2tap"}, cfg.rounds, 5*time.Second, os.Stdout)
	if err != nil {
		return "", err
	}
	line := sums.String()
	fmt.Println()
	fmt.Println(line)
	tso, err := runTSOBench(ctx, cfg.ours, cfg.rounds, 5*time.Second, os.Stdout)
	if err != nil {
		return "", err
	}
	fmt.Println()
	fmt.Println(tso.String())
	return line + "\n\n" + tso.String(), nil
}

func parseFlags(args []string) (*config, error) {
	fl := flag.NewFlagSet("bench", flag.ContinueOnError)
	cfg := &config{}
	fl.StringVar(&cfg.ours, "ours", "bin/vde_switch", "our `vde_switch` (built by make)")
	fl.StringVar(&cfg.debian, "debian", "/usr/bin/vde_switch", "Debian's C `vde_switch`")
	oursArgs := fl.String("ours-args", "", "extra `options` for our switch, space-separated (e.g. --flowcontrol)")
	fl.IntVar(&cfg.rounds, "rounds", 5, "rounds; each starts a fresh switch of each implementation")
	fl.DurationVar(&cfg.duration, "duration", 2*time.Second, "measuring time per frame size")
	fl.DurationVar(&cfg.warmup, "warmup", 250*time.Millisecond, "traffic before each measurement starts")
	sizes := fl.String("sizes", "64,1500,9000", "frame sizes in bytes, Ethernet header included")
	bo := fl.String("backoff", string(backoffPoll), "what the sender does when the socket is full: poll (wait ≤1ms for POLLOUT), yield (Gosched) or sleep (20µs)")
	fl.BoolVar(&cfg.cable, "cable", true, "also measure a dpipe'd vde_plug cable between two switches of each implementation, and each implementation's wirefilter -v A:B between two of our switches")
	fl.BoolVar(&cfg.vxlan, "vxlan", true, "also measure a vxlan:// cable (vde_plug) between two switches of each implementation over a veth underlay, frames/s and iperf3 TCP; needs root and iperf3")
	fl.BoolVar(&cfg.tap, "tap", true, "also run iperf3 over TAPs (-t and vde_plug2tap) of each switch; needs root and iperf3")
	fl.BoolVar(&cfg.vhost, "vhostuser", true, "also measure two DPDK testpmd virtio_user frontends through our switch's --vhost-user, OVS-DPDK and a testpmd net_vhost bridge, and our idle switch with ten vhost-user ports; needs root, 2 CPUs and dpdk-testpmd (skipped without)")
	fl.BoolVar(&cfg.slirp, "slirp", true, "also run the slirp rows: TCP from a guest namespace to host loopback through our slirpvde, Debian's, slirp4netns and pasta; needs root and iperf3")
	fl.BoolVar(&cfg.daemons, "daemons", false, "slirp rows: start every switch and router in a session of its own, as -d daemons are, so that the kernel's autogroups schedule it as a group of its own")
	routers := fl.String("slirp-routers", strings.Join(slirpRouters, ","), "slirp rows: the `routers` measured, comma-separated, from "+strings.Join(slirpRouters, ", "))
	fl.DurationVar(&cfg.slirpDur, "slirp-duration", 5*time.Second, "measuring time per slirp case (after 1s of warm-up)")
	fl.StringVar(&cfg.only, "only", "", "run only these rows: `slirp`, vxlan (the vxlan cable rows and their targets), vhostuser (the vhost-user rows and their targets), switch (unicast, ceiling, 4→4, broadcast, CPU, latency, memory), latency (the round trips alone, printed, not written), unicast (the A→B table alone, printed, not written), tap (iperf3 over TAPs alone, printed, not written) or wirefilter (wirefilter -v A:B with no impairment alone, printed, not written)")
	fl.IntVar(&cfg.rtts, "rtts", 20000, "timed round trips of the latency row (after 1000 untimed)")
	fl.IntVar(&cfg.rssPorts, "rss-ports", 256, "ports attached for the memory row")
	fl.StringVar(&cfg.out, "out", "", "also write the results as markdown to `FILE` (e.g. BENCHMARKS.md)")
	fl.Usage = func() {
		fmt.Fprintln(fl.Output(), "usage: go run ./bench [flags]   (make bench)")
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		return nil, err
	}
	if fl.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fl.Args())
	}
	var err error
	cfg.oursArgs = strings.Fields(*oursArgs)
	if cfg.rounds < 1 {
		return nil, fmt.Errorf("-rounds %d: need at least 1", cfg.rounds)
	}
	switch cfg.only {
	case "", "slirp":
	case "vxlan":
		cfg.cable, cfg.tap, cfg.slirp, cfg.vxlan, cfg.vhost = false, false, false, true, false
	case "vhostuser":
		cfg.cable, cfg.tap, cfg.slirp, cfg.vxlan, cfg.vhost = false, false, false, false, true
	case "switch", "latency", "unicast", "tap", "wirefilter":
		cfg.cable, cfg.tap, cfg.slirp, cfg.vxlan, cfg.vhost = false, false, false, false, false
	default:
		return nil, fmt.Errorf("-only %q: the choices are slirp, vxlan, vhostuser, switch, latency, unicast, tap and wirefilter", cfg.only)
	}
	if (cfg.only == "latency" || cfg.only == "unicast" || cfg.only == "tap" || cfg.only == "wirefilter") && cfg.out != "" {
		return nil, fmt.Errorf("-only %s prints its figures and writes no -out file", cfg.only)
	}
	if cfg.rtts < 1 || cfg.rssPorts < 1 {
		return nil, errors.New("-rtts and -rss-ports must be positive")
	}
	if cfg.slirpRouters, err = parseSlirpRouters(*routers); err != nil {
		return nil, err
	}
	if cfg.slirpDur < time.Second {
		return nil, errors.New("-slirp-duration must be at least 1s")
	}
	if cfg.duration <= 0 || cfg.warmup < 0 {
		return nil, errors.New("-duration must be positive and -warmup not negative")
	}
	for _, f := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 14 || n > 9234 {
			return nil, fmt.Errorf("-sizes: %q is not a frame size in 14..9234", f)
		}
		cfg.sizes = append(cfg.sizes, n)
	}
	if cfg.backoff, err = parseBackoff(*bo); err != nil {
		return nil, err
	}
	return cfg, nil
}

func checkBinary(im impl) error {
	st, err := os.Stat(im.path)
	switch {
	case im.name == "ours" && errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("our switch %s does not exist: build it first with `make` (or pass -ours PATH)", im.path)
	case err != nil:
		return fmt.Errorf("%s switch: %w", im.name, err)
	case st.IsDir() || st.Mode().Perm()&0o111 == 0:
		return fmt.Errorf("%s switch %s is not an executable file", im.name, im.path)
	}
	return nil
}

// runOne starts a fresh switch, measures every frame size on it and stops it.
func runOne(ctx context.Context, cfg *config, im impl, round int) (rs []result, err error) {
	sw, err := startSwitch(ctx, im.path, im.args...)
	if err != nil {
		return nil, err
	}
	defer func() {
		if serr := sw.stop(); serr != nil && err == nil {
			err = serr
		}
	}()
	p, err := openPair(ctx, sw)
	if err != nil {
		return nil, err
	}
	defer p.close()
	for _, size := range cfg.sizes {
		r := p.measure(ctx, size, cfg.duration, cfg.warmup, cfg.backoff)
		if r.err != nil && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		fmt.Printf("round %d/%d  %-6s %5d B  %s\n", round, cfg.rounds, im.name, size, describe(r))
		rs = append(rs, r)
	}
	return rs, nil
}

func describe(r result) string {
	var b strings.Builder
	switch {
	case r.truncated:
		fmt.Fprintf(&b, "truncates (frames arrive as %d B)", r.badSize)
	default:
		fmt.Fprintf(&b, "%9s frames/s at B, %6.2f Gbit/s  (%s/s accepted at A", thousands(r.fps), r.bitRate/1e9, thousands(r.sentFPS))
		if r.sentFPS > 0 {
			fmt.Fprintf(&b, ", %.1f%% delivered", 100*r.fps/r.sentFPS)
		}
		b.WriteString(")")
		if c := r.cpu.String(); c != "" {
			fmt.Fprintf(&b, "  [%s, %.0f ns/frame]", c, r.cpuPerFrame())
		}
		if r.bad > 0 {
			fmt.Fprintf(&b, "  %d frames of a wrong size (last %d B)", r.bad, r.badSize)
		}
	}
	if r.err != nil {
		fmt.Fprintf(&b, "  error: %v", r.err)
	}
	return b.String()
}

// reproduce is the command line that repeats this run, every setting spelled out.
func reproduce(cfg *config) string {
	sizes := make([]string, len(cfg.sizes))
	for i, s := range cfg.sizes {
		sizes[i] = strconv.Itoa(s)
	}
	args := []string{"go", "run", "./bench",
		"-ours", cfg.ours, "-debian", cfg.debian,
		"-rounds", strconv.Itoa(cfg.rounds), "-duration", cfg.duration.String(),
		"-warmup", cfg.warmup.String()}
	if cfg.only != "vxlan" && cfg.only != "vhostuser" { // these rows have sizes of their own
		args = append(args, "-sizes", strings.Join(sizes, ","))
	}
	args = append(args, "-backoff", string(cfg.backoff))
	if len(cfg.oursArgs) > 0 {
		args = append(args, "-ours-args", strings.Join(cfg.oursArgs, " "))
	}
	if cfg.only != "" {
		args = append(args, "-only", cfg.only)
	}
	if cfg.only != "slirp" && cfg.only != "tap" && cfg.only != "vxlan" && cfg.only != "vhostuser" {
		args = append(args, "-rtts", strconv.Itoa(cfg.rtts), "-rss-ports", strconv.Itoa(cfg.rssPorts))
	}
	switch {
	case cfg.only == "switch" || cfg.only == "tap" || cfg.only == "vxlan" || cfg.only == "vhostuser":
	case cfg.slirp || cfg.only == "slirp":
		args = append(args, "-slirp-duration", cfg.slirpDur.String())
		if len(cfg.slirpRouters) != len(slirpRouters) {
			args = append(args, "-slirp-routers", strings.Join(cfg.slirpRouters, ","))
		}
		if cfg.daemons {
			args = append(args, "-daemons")
		}
	default:
		args = append(args, "-slirp=false")
	}
	if cfg.only == "" && !cfg.cable {
		args = append(args, "-cable=false")
	}
	if cfg.only == "" && !cfg.tap {
		args = append(args, "-tap=false")
	}
	if cfg.only == "" && !cfg.vxlan {
		args = append(args, "-vxlan=false")
	}
	if cfg.only == "" && !cfg.vhost {
		args = append(args, "-vhostuser=false")
	}
	if cfg.out != "" {
		args = append(args, "-out", cfg.out)
	}
	for i, a := range args {
		args[i] = shellQuote(a)
	}
	return strings.Join(args, " ")
}

func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./,:=+@%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// environment is the one line that says where the numbers come from.
func environment(cfg *config) string {
	var uts syscall.Utsname
	kernel := "?"
	if syscall.Uname(&uts) == nil {
		kernel = cstr(uts.Sysname[:]) + " " + cstr(uts.Release[:]) + " " + cstr(uts.Machine[:])
	}
	cpu := "?"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	qlen := "?"
	if b, err := os.ReadFile("/proc/sys/net/unix/max_dgram_qlen"); err == nil {
		qlen = strings.TrimSpace(string(b))
	}
	ours := cfg.ours
	if r, err := filepath.EvalSymlinks(cfg.ours); err == nil && r != cfg.ours {
		ours += " -> " + r
	}
	return fmt.Sprintf("environment: nproc=%d (%s), %s, kernel %s, net.unix.max_dgram_qlen=%s, ours=%s, debian=%s",
		numCPU(), cpu, versions(), kernel, qlen, ours, cfg.debian)
}

func cstr[T int8 | uint8](b []T) string {
	s := make([]byte, 0, len(b))
	for _, c := range b {
		if c == 0 {
			break
		}
		s = append(s, byte(c))
	}
	return string(s)
}
