package main

// The TSO row: iperf3 TCP between two namespaces whose TAPs are both -t ports of our
// switch, so the kernel's TSO packets (64 KiB) cross the switch whole (wire.Offload),
// against the bound of the same two namespaces joined by a veth pair (the kernel alone,
// also passing TSO packets whole). Rounds alternate the two.

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"
)

// tsoSummary is the TSO row: receive rates per round through the switch and over veth.
type tsoSummary struct {
	sw, veth []float64
}

func (s tsoSummary) String() string {
	ms, mv := median(s.sw), median(s.veth)
	return fmt.Sprintf("iperf3 TCP between two -t TAPs of our switch (TSO packets whole): median %.0f Mbit/s (%d rounds); the same namespaces on a veth pair (the kernel's bound): %.0f Mbit/s; switch/veth %s",
		ms/1e6, len(s.sw), mv/1e6, medianRatio(ms, mv))
}

func runTSOBench(ctx context.Context, ours string, rounds int, dur time.Duration, w io.Writer) (tsoSummary, error) {
	var s tsoSummary
	for round := 1; round <= rounds; round++ {
		kinds := []string{"switch", "veth"}
		if round%2 == 0 {
			kinds = []string{"veth", "switch"}
		}
		for _, kind := range kinds {
			r, err := tsoRound(ctx, ours, kind, round, dur)
			if err != nil {
				return s, fmt.Errorf("tso round %d, %s: %w", round, kind, err)
			}
			fmt.Fprintf(w, "round %d/%d  %-6s tso  %8.0f Mbit/s  (%d retransmits)\n", round, rounds, kind, r.bitsPerSec/1e6, r.retransmits)
			if kind == "switch" {
				s.sw = append(s.sw, r.bitsPerSec)
			} else {
				s.veth = append(s.veth, r.bitsPerSec)
			}
		}
	}
	return s, nil
}

// tsoRound joins namespaces A and B by two TAPs of one switch (born in A, one moved to B)
// or by a veth pair, and runs iperf3 from B to A.
func tsoRound(ctx context.Context, ours, kind string, round int, dur time.Duration) (res tapResult, err error) {
	nsA, nsB, delNS, err := netnsPair(ctx, "vdetso", round)
	if err != nil {
		return res, err
	}
	defer delNS()
	ifA, ifB := fmt.Sprintf("vta%x", os.Getpid()&0xfffff), fmt.Sprintf("vtb%x", os.Getpid()&0xfffff)
	if kind == "veth" {
		if err := ipCmd(ctx, "-n", nsA, "link", "add", ifA, "type", "veth", "peer", "name", ifB, "netns", nsB); err != nil {
			return res, err
		}
	} else {
		sw, err := startSwitchCmd(ctx, ours, []string{"ip", "netns", "exec", nsA}, false, "-t", ifA, "-t", ifB)
		if err != nil {
			return res, err
		}
		defer func() {
			if serr := sw.stop(); serr != nil && err == nil {
				err = serr
			}
		}()
		if err := waitLink(ctx, nsA, ifB, 10*time.Second); err != nil {
			return res, err
		}
		if err := ipCmd(ctx, "-n", nsA, "link", "set", ifB, "netns", nsB); err != nil {
			return res, err
		}
	}
	if err := upHosts(ctx, nsDev{nsA, ifA, "10.76.0.1/24"}, nsDev{nsB, ifB, "10.76.0.2/24"}); err != nil {
		return res, err
	}
	if err := waitPing(ctx, nsB, "10.76.0.1", 20*time.Second); err != nil {
		return res, err
	}
	return iperfTCP(ctx, nsA, nsB, "10.76.0.1", dur)
}
