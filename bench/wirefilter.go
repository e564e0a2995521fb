package main

// The wirefilter row: two of our switches joined by `wirefilter -v A:B` with no
// impairment, ours against Debian's, frames A→B across it. Both wirefilters join the same
// kind of switch, so the row measures the filters, not the switches.

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// wirefilterImpl is the wirefilter of one implementation and the switch both use.
type wirefilterImpl struct {
	name, sw, wf string
}

func wirefilterImpls(cfg *config) [2]wirefilterImpl {
	return [2]wirefilterImpl{
		{"ours", cfg.ours, filepath.Join(filepath.Dir(cfg.ours), "wirefilter")},
		{"debian", cfg.ours, "/usr/bin/wirefilter"},
	}
}

// wirefilterSummary holds frames/s and bit/s per round of each implementation.
type wirefilterSummary struct{ cableSummary }

func (s wirefilterSummary) String() string {
	mo, md := median(s.oursFPS), median(s.debianFPS)
	return fmt.Sprintf("wirefilter -v A:B (no impairment) between two of our switches, %d B frames: ours median %s frames/s (%.0f Mbit/s), debian median %s frames/s (%.0f Mbit/s), ours/debian %s (%d rounds)",
		s.size, thousands(mo), median(s.oursBits)/1e6, thousands(md), median(s.debianBits)/1e6, medianRatio(mo, md), len(s.oursFPS))
}

func runWirefilterBench(ctx context.Context, cfg *config, size int, w io.Writer) (wirefilterSummary, error) {
	impls := wirefilterImpls(cfg)
	sum, err := linkRounds(ctx, cfg, [2]string{impls[0].name, impls[1].name}, size, w, "wirefilter", func(i int) (result, error) {
		return linkOnce(ctx, cfg, impls[i].sw, size, func(a, b *switchProc) *exec.Cmd {
			return exec.Command(impls[i].wf, "-v", a.ctlDir+":"+b.ctlDir)
		})
	})
	return wirefilterSummary{sum}, err
}

// linkRounds measures a link row: per round, once(i) for each implementation i (names
// "ours" and "debian") in the round's order.
func linkRounds(ctx context.Context, cfg *config, names [2]string, size int, w io.Writer, label string, once func(i int) (result, error)) (cableSummary, error) {
	sum := cableSummary{size: size}
	for round := 1; round <= cfg.rounds; round++ {
		for _, i := range inRoundOrder([]int{0, 1}, round) {
			r, err := once(i)
			if err != nil {
				return sum, fmt.Errorf("round %d, %s: %w", round, names[i], err)
			}
			fmt.Fprintf(w, "round %d/%d  %-6s %s  %s frames/s, %.0f Mbit/s\n", round, cfg.rounds, names[i], label, thousands(r.fps), r.bitRate/1e6)
			if names[i] == "ours" {
				sum.oursFPS, sum.oursBits = append(sum.oursFPS, r.fps), append(sum.oursBits, r.bitRate)
			} else {
				sum.debianFPS, sum.debianBits = append(sum.debianFPS, r.fps), append(sum.debianBits, r.bitRate)
			}
		}
	}
	return sum, nil
}

// linkOnce starts two switches of sw, the command that joins them (in a process group
// of its own, with a stdin pipe kept open: wirefilter -v reads its console there), and
// measures frames A→B across it.
func linkOnce(ctx context.Context, cfg *config, sw string, size int, link func(a, b *switchProc) *exec.Cmd) (result, error) {
	swA, err := startSwitch(ctx, sw)
	if err != nil {
		return result{}, err
	}
	defer swA.stop()
	swB, err := startSwitch(ctx, sw)
	if err != nil {
		return result{}, err
	}
	defer swB.stop()
	cmd := link(swA, swB)
	// Its own group, so that stopping it reaches every child; Pdeathsig if we die first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		return result{}, err
	}
	defer stdinW.Close()
	cmd.Stdin = stdinR
	err = cmd.Start()
	stdinR.Close()
	if err != nil {
		return result{}, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	reap.addProc(cmd.Process)
	defer func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		reap.delProc(cmd.Process)
	}()
	p, err := openCablePair(ctx, swA, swB)
	if err != nil {
		return result{}, err
	}
	defer p.close()
	r := p.measure(ctx, size, cfg.duration, cfg.warmup, cfg.backoff)
	return r, r.err
}

// wirefilterOnly runs the wirefilter row alone (-only wirefilter) and prints it.
func wirefilterOnly(ctx context.Context, cfg *config) int {
	var lines []string
	for _, size := range []int{64, 1500} {
		sum, err := runWirefilterBench(ctx, cfg, size, os.Stdout)
		if err != nil {
			return rowsFailed(ctx, "wirefilter", err)
		}
		lines = append(lines, sum.String())
	}
	fmt.Println()
	for _, l := range lines {
		fmt.Println(l)
	}
	return 0
}
