package main

// The switch rows beyond the two-port unicast table (`-only switch` runs them with it):
//
//   - the bare-socketpair ceiling of the same load generator, beside the unicast rows and
//     the 4→4 row, each switch figure also as a fraction of it (ceiling.go);
//   - 4 sender ports to 4 receiver ports at once, distinct MAC pairs (flow.go);
//   - broadcast fan-out: one sender of broadcast frames, 16 receivers;
//   - the switch's CPU time per forwarded frame, from its own /proc/PID/stat (cpu.go), for
//     the unicast, 4→4 and broadcast rows;
//   - round-trip latency p50/p99 of one 64 B frame ping-ponged between two ports (latency.go);
//   - VmRSS of a switch idle and with 256 ports attached (memory.go).
//
// Every row runs ours and Debian's alternately, each on a fresh switch, in every round.

import (
	"context"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
)

// multiSizes are the frame sizes of the 4→4 and broadcast rows.
var multiSizes = []int{64, 1500}

const (
	fourPairs = 4  // senders (and receivers) of the 4→4 row
	fanout    = 16 // receivers of the broadcast row
)

// metric is one row: one figure per round for each implementation (NaN: failed, or not
// applicable as for a truncating switch).
type metric struct {
	label string
	unit  string // frames/s, ns/frame, µs or MiB: says how to print
	vals  map[string][]float64
	why   map[string]string // implementation -> why it has no figure, when known
}

func (m *metric) add(implName string, v float64) {
	m.vals[implName] = append(m.vals[implName], v)
}

// ceilingRow is the socketpair ceiling of one switch row (the metric of the same key).
type ceilingRow struct {
	key   string // metric it bounds
	label string
	pairs int
	size  int
	vals  []float64 // frames/s per round
}

// suite holds the switch rows of a run.
type suite struct {
	cfg     *config
	order   []string // metrics printed in the suite table, in order
	m       map[string]*metric
	ceiling []*ceilingRow
	relay   []*relayRow
}

func newSuite(cfg *config) *suite {
	s := &suite{cfg: cfg, m: map[string]*metric{}}
	def := func(show bool, key, unit, format string, a ...any) {
		s.m[key] = &metric{label: fmt.Sprintf(format, a...), unit: unit, vals: map[string][]float64{}, why: map[string]string{}}
		if show {
			s.order = append(s.order, key)
		}
	}
	for _, size := range cfg.sizes {
		def(false, fmt.Sprintf("uni/%d", size), "frames/s", "A→B %d B", size)
		s.ceiling = append(s.ceiling, &ceilingRow{key: fmt.Sprintf("uni/%d", size), label: fmt.Sprintf("1 pair (A→B), %d B", size), pairs: 1, size: size})
		s.relay = append(s.relay, &relayRow{size: size})
	}
	for _, size := range multiSizes {
		s.ceiling = append(s.ceiling, &ceilingRow{key: fmt.Sprintf("4x4/%d", size), label: fmt.Sprintf("%d pairs (4→4), %d B", fourPairs, size), pairs: fourPairs, size: size})
	}
	for _, size := range cfg.sizes {
		def(true, fmt.Sprintf("cpu/uni/%d", size), "ns/frame", "switch CPU per forwarded frame, A→B %d B (ns)", size)
	}
	for _, size := range cfg.sizes {
		def(true, fmt.Sprintf("kern/uni/%d", size), "%", "share of that CPU spent in the kernel, A→B %d B (%%)", size)
	}
	for _, size := range multiSizes {
		def(true, fmt.Sprintf("4x4/%d", size), "frames/s", "%d→%d ports %d B, frames/s received in total", fourPairs, fourPairs, size)
	}
	for _, size := range multiSizes {
		def(true, fmt.Sprintf("cpu/4x4/%d", size), "ns/frame", "switch CPU per forwarded frame, %d→%d %d B (ns)", fourPairs, fourPairs, size)
	}
	for _, size := range multiSizes {
		def(true, fmt.Sprintf("kern/4x4/%d", size), "%", "share of that CPU spent in the kernel, %d→%d %d B (%%)", fourPairs, fourPairs, size)
	}
	for _, size := range multiSizes {
		def(true, fmt.Sprintf("bc/rx/%d", size), "frames/s", "broadcast 1→%d %d B, frames/s per receiver (mean)", fanout, size)
		def(true, fmt.Sprintf("bc/total/%d", size), "frames/s", "broadcast 1→%d %d B, frames/s delivered in total", fanout, size)
	}
	for _, size := range multiSizes {
		def(true, fmt.Sprintf("cpu/bc/%d", size), "ns/frame", "switch CPU per delivered copy, broadcast 1→%d %d B (ns)", fanout, size)
	}
	def(true, "lat/p50", "µs", "round trip A→B→A, %d B, p50 (µs)", latencyFrame)
	def(true, "lat/p99", "µs", "round trip A→B→A, %d B, p99 (µs)", latencyFrame)
	def(true, "rss/idle", "MiB", "switch VmRSS, idle (MiB)")
	def(true, "rss/full", "MiB", "switch VmRSS, %d ports attached (MiB)", cfg.rssPorts)
	return s
}

// ceilingRound measures the ceiling rows of `pairs` socketpairs for one round.
func (s *suite) ceilingRound(ctx context.Context, round, pairs int) error {
	for _, c := range s.ceiling {
		if c.pairs != pairs {
			continue
		}
		r := measureCeiling(ctx, s.cfg, c.pairs, c.size)
		if r.err != nil && ctx.Err() != nil {
			return ctx.Err()
		}
		fmt.Printf("round %d/%d  %-6s %s  %s\n", round, s.cfg.rounds, "socketpair", c.label, describeFlow(r))
		v := r.fps
		if r.err != nil {
			v = math.NaN()
		}
		c.vals = append(c.vals, v)
	}
	return nil
}

// addUnicast takes the unicast figures of the A→B table: frames/s (for the ceiling
// fractions) and the switch's CPU per frame.
func (s *suite) addUnicast(res measurements) {
	for _, name := range []string{"ours", "debian"} {
		for _, size := range s.cfg.sizes {
			fps, cpu := s.m[fmt.Sprintf("uni/%d", size)], s.m[fmt.Sprintf("cpu/uni/%d", size)]
			kern := s.m[fmt.Sprintf("kern/uni/%d", size)]
			for _, r := range res[name][size] {
				switch {
				case r.truncated:
					fps.add(name, math.NaN())
					cpu.add(name, math.NaN())
					kern.add(name, math.NaN())
					cpu.why[name] = "truncates"
					kern.why[name] = "truncates"
				case r.err != nil:
					fps.add(name, math.NaN())
					cpu.add(name, math.NaN())
					kern.add(name, math.NaN())
				default:
					fps.add(name, r.fps)
					cpu.add(name, r.cpuPerFrame())
					kern.add(name, r.cpu.kernelPercent())
				}
			}
		}
	}
}

// run measures every switch row, cfg.rounds rounds, each implementation on fresh switches
// (inRoundOrder).
// A failed measurement is reported and left out; only an interrupt ends it early.
func (s *suite) run(ctx context.Context, impls []impl) error {
	cfg := s.cfg
	nan := math.NaN()
	pick := func(r flowResult, v float64) float64 {
		if r.err != nil {
			return nan
		}
		return v
	}
	for round := 1; round <= cfg.rounds; round++ {
		tag := func(im impl) string { return fmt.Sprintf("round %d/%d  %-6s", round, cfg.rounds, im.name) }

		// 4 senders to 4 receivers, then the ceiling of 4 socketpairs.
		for _, im := range inRoundOrder(impls, round) {
			rs, err := fourByFour(ctx, cfg, im)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			for i, size := range multiSizes {
				r := flowResult{err: err}
				if err == nil {
					r = rs[i]
				}
				fmt.Printf("%s 4→4   %5d B  %s\n", tag(im), size, describeFlow(r))
				s.m[fmt.Sprintf("4x4/%d", size)].add(im.name, pick(r, r.fps))
				s.m[fmt.Sprintf("cpu/4x4/%d", size)].add(im.name, pick(r, r.cpu.perFrameNS(r.frames)))
				s.m[fmt.Sprintf("kern/4x4/%d", size)].add(im.name, pick(r, r.cpu.kernelPercent()))
			}
		}
		if err := s.ceilingRound(ctx, round, fourPairs); err != nil {
			return err
		}

		// Broadcast fan-out.
		for _, im := range inRoundOrder(impls, round) {
			rs, err := broadcastFanout(ctx, cfg, im)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			for i, size := range multiSizes {
				r := flowResult{err: err}
				if err == nil {
					r = rs[i]
				}
				fmt.Printf("%s bcast %5d B  %s\n", tag(im), size, describeFlow(r))
				s.m[fmt.Sprintf("bc/rx/%d", size)].add(im.name, pick(r, r.fps/fanout))
				s.m[fmt.Sprintf("bc/total/%d", size)].add(im.name, pick(r, r.fps))
				s.m[fmt.Sprintf("cpu/bc/%d", size)].add(im.name, pick(r, r.cpu.perFrameNS(r.frames)))
			}
		}

		// Round-trip latency.
		for _, im := range inRoundOrder(impls, round) {
			r := latencyOnce(ctx, im, cfg.rtts)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			fmt.Printf("%s ping-pong %d B  %s\n", tag(im), latencyFrame, r)
			p50, p99 := nan, nan
			if r.err == nil {
				p50, p99 = usec(r.pct(50)), usec(r.pct(99))
			}
			s.m["lat/p50"].add(im.name, p50)
			s.m["lat/p99"].add(im.name, p99)
		}

		// Memory with many ports.
		for _, im := range inRoundOrder(impls, round) {
			r := rssOnce(ctx, im, cfg.rssPorts)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			fmt.Printf("%s memory  %s\n", tag(im), r)
			idle, full := nan, nan
			if r.err == nil {
				idle, full = float64(r.idle)/1024, float64(r.full)/1024
			}
			s.m["rss/idle"].add(im.name, idle)
			s.m["rss/full"].add(im.name, full)
		}
	}
	return nil
}

// fourByFour starts a fresh switch, attaches 8 ports and measures ports 0..3 sending to
// ports 4..7 (port i to port 4+i) at once, for each of multiSizes.
func fourByFour(ctx context.Context, cfg *config, im impl) ([]flowResult, error) {
	sw, err := startSwitch(ctx, im.path, im.args...)
	if err != nil {
		return nil, err
	}
	defer sw.stop()
	ps, err := dialPorts(ctx, sw, 2*fourPairs)
	if err != nil {
		return nil, err
	}
	defer ps.close()
	var out []flowResult
	for _, size := range multiSizes {
		var flows []flowSpec
		for i := range fourPairs {
			flows = append(flows, flowSpec{ps.conns[i].Datagram, makeFrame(portMAC(fourPairs+i), portMAC(i), size)})
		}
		r := measureFlow(ctx, cfg, sw, flows, ps.rx[fourPairs:], size)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		out = append(out, r)
	}
	return out, nil
}

// broadcastFanout starts a fresh switch, attaches 1+fanout ports and measures port 0
// sending broadcast frames to all the others, for each of multiSizes.
func broadcastFanout(ctx context.Context, cfg *config, im impl) ([]flowResult, error) {
	sw, err := startSwitch(ctx, im.path, im.args...)
	if err != nil {
		return nil, err
	}
	defer sw.stop()
	ps, err := dialPorts(ctx, sw, 1+fanout)
	if err != nil {
		return nil, err
	}
	defer ps.close()
	var out []flowResult
	for _, size := range multiSizes {
		flows := []flowSpec{{ps.conns[0].Datagram, makeFrame(broadcastMAC, portMAC(0), size)}}
		r := measureFlow(ctx, cfg, sw, flows, ps.rx[1:], size)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		r.copies = fanout
		out = append(out, r)
	}
	return out, nil
}

// Reporting.

// fstats is min/median/max of the figures that exist.
type fstats struct {
	n, missing       int
	min, median, max float64
}

func fstatsOf(v []float64) fstats {
	var ok []float64
	for _, x := range v {
		if !math.IsNaN(x) {
			ok = append(ok, x)
		}
	}
	s := fstats{n: len(ok), missing: len(v) - len(ok), min: math.NaN(), median: math.NaN(), max: math.NaN()}
	if s.n > 0 {
		s.min, s.max, s.median = slices.Min(ok), slices.Max(ok), median(ok)
	}
	return s
}

func formatUnit(unit string, x float64) string {
	switch unit {
	case "frames/s":
		return thousands(x)
	case "ns/frame", "Mbit/s":
		return fmt.Sprintf("%.0f", x)
	default:
		return fmt.Sprintf("%.1f", x)
	}
}

func (m *metric) cell(name string) string {
	st := fstatsOf(m.vals[name])
	if st.n == 0 {
		if w := m.why[name]; w != "" {
			return w
		}
		if st.missing == 0 {
			return "—"
		}
		return "failed"
	}
	s := fmt.Sprintf("%s / %s / %s", formatUnit(m.unit, st.min), formatUnit(m.unit, st.median), formatUnit(m.unit, st.max))
	if st.missing > 0 {
		s += fmt.Sprintf(" (%d failed)", st.missing)
	}
	return s
}

// ratios is the median of the per-round ratios a/b and the ratio of the medians.
func ratios(a, b []float64) (medianOfRatios, ratioOfMedians float64) {
	var r []float64
	for i := range min(len(a), len(b)) {
		if !math.IsNaN(a[i]) && !math.IsNaN(b[i]) && b[i] > 0 {
			r = append(r, a[i]/b[i])
		}
	}
	medianOfRatios, ratioOfMedians = math.NaN(), math.NaN()
	if len(r) > 0 {
		medianOfRatios = median(r)
	}
	sa, sb := fstatsOf(a), fstatsOf(b)
	if sa.n > 0 && sb.n > 0 && sb.median > 0 {
		ratioOfMedians = sa.median / sb.median
	}
	return medianOfRatios, ratioOfMedians
}

const (
	headSuiteOurs   = "ours min / median / max"
	headSuiteDebian = "debian min / median / max"
	headCeil        = "socketpair ceiling frames/s min / median / max"
	headOursCeil    = "ours/ceiling: per-round median | of medians"
	headDebianCeil  = "debian/ceiling: per-round median | of medians"
)

// ceilingCells are the rows of the ceiling table; pairs > 0 keeps only those of that many
// socketpairs.
func (s *suite) ceilingCells(pairs int) [][]string {
	var rows [][]string
	for _, c := range s.ceiling {
		if pairs > 0 && c.pairs != pairs {
			continue
		}
		st := fstatsOf(c.vals)
		cell := "failed"
		if st.n > 0 {
			cell = fmt.Sprintf("%s / %s / %s", thousands(st.min), thousands(st.median), thousands(st.max))
		}
		row := []string{c.label, cell}
		for _, name := range []string{"ours", "debian"} {
			mor, rom := ratios(s.m[c.key].vals[name], c.vals)
			row = append(row, ratio(mor)+" | "+ratio(rom))
		}
		rows = append(rows, row)
	}
	return rows
}

func (s *suite) suiteCells() [][]string {
	var rows [][]string
	for _, k := range s.order {
		m := s.m[k]
		if m.unit == "%" { // a share is read side by side; a ratio of two says nothing more
			rows = append(rows, []string{m.label, m.cell("ours"), m.cell("debian"), "—", "—"})
			continue
		}
		mor, rom := ratios(m.vals["ours"], m.vals["debian"])
		rows = append(rows, []string{m.label, m.cell("ours"), m.cell("debian"), ratio(mor), ratio(rom)})
	}
	return rows
}

func printRows(w io.Writer, head []string, rows [][]string) {
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
}

// printCeiling prints the ceiling table; pairs > 0: only the rows of that many socketpairs
// (after the A→B rounds, the 4→4 ones are not measured yet).
func (s *suite) printCeiling(w io.Writer, pairs int) {
	fmt.Fprintln(w, "bare socketpair, same load generator, no switch (the ceiling); switch frames/s as a fraction of it:")
	printRows(w, []string{"traffic", headCeil, headOursCeil, headDebianCeil}, s.ceilingCells(pairs))
}

func (s *suite) print(w io.Writer) {
	fmt.Fprintf(w, "switch rows, %d rounds (ratios ours/debian: for CPU, latency and memory lower is better):\n", s.cfg.rounds)
	printRows(w, []string{"row", headSuiteOurs, headSuiteDebian, headMoR, headRoM}, s.suiteCells())
	fmt.Fprintln(w)
	s.printCeiling(w, 0)
}

func mdTable(b *strings.Builder, head []string, align string, rows [][]string) {
	h := make([]string, len(head))
	for i, c := range head {
		h[i] = strings.ReplaceAll(c, "|", "\\|")
	}
	b.WriteString("| " + strings.Join(h, " | ") + " |\n")
	b.WriteString(align + "\n")
	for _, r := range rows {
		for i := range r {
			r[i] = strings.ReplaceAll(r[i], "|", "\\|")
		}
		b.WriteString("| " + strings.Join(r, " | ") + " |\n")
	}
}

func (s *suite) markdown() string {
	cfg := s.cfg
	var b strings.Builder
	b.WriteString("\n## Bare socketpair ceiling\n\n")
	fmt.Fprintf(&b, "The same load generator (batched `sendmmsg` sender with the %s backoff, batched `recvmmsg` "+
		"counter) over unix datagram socketpairs with no switch: 1 pair in each round of the A→B table, right "+
		"after the switches, and %d pairs at once in each round of the %d→%d row. The fraction columns are the "+
		"switch's frames/s over the ceiling's: the median of the per-round fractions, then the ratio of the medians.\n\n",
		cfg.backoff, fourPairs, fourPairs, fourPairs)
	mdTable(&b, []string{"traffic", headCeil, headOursCeil, headDebianCeil}, "|---|---:|---:|---:|", s.ceilingCells(0))
	s.relayMarkdown(&b)

	b.WriteString("\n## Switch rows: many ports, CPU per frame, latency, memory\n\n")
	fmt.Fprintf(&b, "Each round runs every row on a fresh switch of each implementation, ours first in odd rounds and Debian's first in even ones. "+
		"*%d→%d*: ports 0–3 send to ports 4–7 (port i to 4+i, distinct MACs, learnt first) at once, batched, for %v "+
		"after %v of warm-up; the figure is what ports 4–7 receive. *Broadcast*: port 0 sends broadcast frames, %d "+
		"other ports receive. *Switch CPU per frame*: the switch process's utime+stime (all threads, "+
		"/proc/PID/stat) over the measuring window divided by the frames received in it (A→B rows: the table "+
		"above); the share spent in the kernel is stime over utime+stime, sampled by the kernel's tick, and bounds "+
		"what the switch's own code can still save. *Round trip*: port A sends one %d B frame, port B echoes it, A waits for it; at least %d untimed for at least %v, then %d timed, "+
		"one in flight, both ends in poll(2) on their own thread. *VmRSS*: a switch started with `-n %d`, "+
		"idle after 200 ms, then with %d ports attached after one broadcast from each port and 16 unicast frames "+
		"from each to its neighbour. %d rounds; ratios are ours/debian (lower is better for CPU, latency and memory).\n\n",
		fourPairs, fourPairs, cfg.duration, cfg.warmup, fanout, latencyFrame, latencyWarmup, latencyWarmupTime, cfg.rtts,
		max(300, cfg.rssPorts+cfg.rssPorts/8), cfg.rssPorts, cfg.rounds)
	mdTable(&b, []string{"row", headSuiteOurs, headSuiteDebian, headMoR, headRoM}, "|---|---:|---:|---:|---:|", s.suiteCells())

	b.WriteString("\nPer round:\n\n| row | implementation |")
	for i := 1; i <= cfg.rounds; i++ {
		fmt.Fprintf(&b, " round %d |", i)
	}
	b.WriteString("\n|---|---|" + strings.Repeat("---:|", cfg.rounds) + "\n")
	perRound := func(label, name, unit string, v []float64) {
		fmt.Fprintf(&b, "| %s | %s |", label, name)
		for _, x := range v {
			if math.IsNaN(x) {
				b.WriteString(" — |")
			} else {
				fmt.Fprintf(&b, " %s |", formatUnit(unit, x))
			}
		}
		b.WriteString("\n")
	}
	for _, c := range s.ceiling {
		perRound("socketpair ceiling, "+c.label+", frames/s", "—", "frames/s", c.vals)
	}
	for _, rr := range s.relay {
		perRound(fmt.Sprintf("batched relay CPU per frame, A→B %d B (ns)", rr.size), "—", "ns/frame", rr.cpu)
	}
	for _, k := range s.order {
		m := s.m[k]
		for _, name := range []string{"ours", "debian"} {
			perRound(m.label, name, m.unit, m.vals[name])
		}
	}
	return b.String()
}
