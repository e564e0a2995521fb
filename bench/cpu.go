package main

// CPU and memory accounting of a measurement window: the switch's own CPU time (from
// /proc/PID/stat, every thread of the process), the benchmark's (getrusage), and how busy
// the whole machine was (/proc/stat). Together they say who used the cores while frames
// flowed: a machine at 100% with the switch well under one core means the load generator
// shares the cores and may be the bottleneck.

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// userHZ is the unit of utime/stime in /proc/PID/stat: USER_HZ, 100 on every Linux ABI Go
// supports (sysconf(_SC_CLK_TCK) is not reachable without cgo).
const userHZ = 100

// cpuSample is one reading of the counters.
type cpuSample struct {
	t           time.Time
	sw          float64 // switch process CPU seconds (user+system); NaN if unknown
	swSys       float64 // the system (kernel) part of sw
	self        float64 // this process's CPU seconds (user+system)
	busy, total uint64  // machine-wide jiffies: not idle, all
}

// sampleCPU reads the counters; sw may be nil (no switch: the socketpair ceiling).
func sampleCPU(sw *switchProc) cpuSample {
	s := cpuSample{t: time.Now(), sw: math.NaN()}
	if sw != nil && sw.cmd != nil {
		if v, sys, err := procCPU(sw.cmd.Process.Pid); err == nil {
			s.sw, s.swSys = v, sys
		}
	}
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &ru) == nil {
		s.self = tvSec(ru.Utime) + tvSec(ru.Stime)
	}
	s.busy, s.total = machineJiffies()
	return s
}

func tvSec(tv unix.Timeval) float64 { return float64(tv.Sec) + float64(tv.Usec)/1e6 }

// procCPU is utime+stime of process pid in seconds, and stime alone.
func procCPU(pid int) (total, sys float64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces: count after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: no ')'", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("/proc/%d/stat: bad utime/stime %q %q", pid, f[11], f[12])
	}
	return float64(ut+st) / userHZ, float64(st) / userHZ, nil
}

// machineJiffies sums the "cpu" line of /proc/stat: busy (everything but idle and iowait)
// and total.
func machineJiffies() (busy, total uint64) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return 0, 0
	}
	fields := strings.Fields(sc.Text())
	if len(fields) < 5 || fields[0] != "cpu" {
		return 0, 0
	}
	for i, v := range fields[1:] {
		if i >= 8 { // guest and guest_nice are already counted in user and nice
			break
		}
		n, _ := strconv.ParseUint(v, 10, 64)
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total
}

// cpuWindow is what the counters say about the time between two samples.
type cpuWindow struct {
	dt    float64 // seconds
	sw    float64 // switch CPU seconds; NaN if unknown
	swSys float64 // the part of sw spent in the kernel
	self  float64 // benchmark CPU seconds
	busyF float64 // fraction of the machine's CPU time that was busy; NaN if unknown
}

func cpuBetween(a, b cpuSample) cpuWindow {
	w := cpuWindow{dt: b.t.Sub(a.t).Seconds(), sw: b.sw - a.sw, swSys: b.swSys - a.swSys, self: b.self - a.self, busyF: math.NaN()}
	if b.total > a.total {
		w.busyF = float64(b.busy-a.busy) / float64(b.total-a.total)
	}
	return w
}

// String is the console note: cores used by the switch and by the benchmark, machine load.
func (w cpuWindow) String() string {
	if w.dt <= 0 {
		return ""
	}
	s := ""
	if !math.IsNaN(w.sw) {
		s = fmt.Sprintf("switch %.2f cores, ", w.sw/w.dt)
	}
	s += fmt.Sprintf("bench %.2f cores", w.self/w.dt)
	if !math.IsNaN(w.busyF) {
		s += fmt.Sprintf(", machine %.0f%% busy", 100*w.busyF)
	}
	return s
}

// perFrameNS is the switch's CPU time per frame in nanoseconds, NaN when unknown.
func (w cpuWindow) perFrameNS(frames int64) float64 {
	if math.IsNaN(w.sw) || frames <= 0 {
		return math.NaN()
	}
	return w.sw * 1e9 / float64(frames)
}

// kernelPercent is the share of the switch's CPU time spent in the kernel, in percent:
// what no change to the switch's own code can take away. NaN when unknown.
func (w cpuWindow) kernelPercent() float64 {
	if math.IsNaN(w.sw) || w.sw <= 0 {
		return math.NaN()
	}
	return 100 * w.swSys / w.sw
}

// rssKiB reads VmRSS of process pid in KiB.
func rssKiB(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) >= 1 {
				return strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
}

// procWindow is one process's CPU seconds in a window, and the kernel's part of them;
// NaN when unknown (the process is gone).
type procWindow struct {
	cpu, sys float64
}

// sampleProcs reads utime+stime and stime of each pid (NaN for one that is gone).
func sampleProcs(pids []int) []procWindow {
	s := make([]procWindow, len(pids))
	for i, pid := range pids {
		s[i] = procWindow{math.NaN(), math.NaN()}
		if v, sys, err := procCPU(pid); err == nil {
			s[i] = procWindow{v, sys}
		}
	}
	return s
}

// procsBetween is what each process used between two sampleProcs of the same pids.
func procsBetween(a, b []procWindow) []procWindow {
	if len(a) != len(b) {
		return nil
	}
	d := make([]procWindow, len(a))
	for i := range a {
		d[i] = procWindow{b[i].cpu - a[i].cpu, b[i].sys - a[i].sys}
	}
	return d
}
