// Package metrics serves a switch's counters in the Prometheus and OpenMetrics text
// formats (github.com/prometheus/client_golang): per port frames and bytes in and out,
// drops, bad frames, queued frames and endpoints; the MAC table; uptime. The figures are
// read when a scraper asks, from the atomics the switch keeps anyway, so serving them
// costs the frame path nothing.
package metrics

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vde-go/vde/switchcore"
)

// Source is what the collector reads: a *switchcore.Switch.
type Source interface {
	Stats() switchcore.Stats
}

// Collector is a prometheus.Collector of a switch's counters.
type Collector struct {
	src Source
	now func() time.Time
}

// NewCollector collects src's counters.
func NewCollector(src Source) *Collector { return &Collector{src: src, now: time.Now} }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("vde_switch_"+name, help, labels, nil)
}

var (
	descInFrames   = desc("port_in_frames_total", "Frames the port's endpoints sent to the switch.", "port")
	descInBytes    = desc("port_in_bytes_total", "Bytes the port's endpoints sent to the switch.", "port")
	descOutFrames  = desc("port_out_frames_total", "Frames the switch forwarded to the port.", "port")
	descOutBytes   = desc("port_out_bytes_total", "Bytes the switch forwarded to the port.", "port")
	descDrops      = desc("port_dropped_frames_total", "Frames the port's full or gone receivers did not take.", "port")
	descBad        = desc("port_bad_frames_total", "Frames the port sent that were not forwarded: too short or long, or on a VLAN the port is not on.", "port")
	descQueued     = desc("port_queued_frames", "Frames waiting in the port's queues for a slow receiver.", "port")
	descEndpoints  = desc("port_endpoints", "Endpoints attached to the port.", "port")
	descMACs       = desc("mac_table_entries", "Entries of the MAC address table.")
	descMACLimit   = desc("mac_table_limit_entries", "The most entries the MAC address table holds (hash/setmax).")
	descNotLearned = desc("mac_not_learned_frames_total", "Frames whose new source address the full MAC table did not learn.")
	descLoopBlocks = desc("loopguard_blocks_total", "Ports the loop guard blocked because addresses flapped between ports at storm rates.")
	descLoopBlock  = desc("port_loopguard_blocked", "1 while the loop guard blocks the port, else 0.", "port")
	descFaults     = desc("port_endpoint_faults_total", "Frames dropped because of what the port's endpoint got wrong or could not take, by reason (vhost-user frontends: bad_descriptor, rx_no_buffer, rx_too_long, tx_too_long, tx_offload_dropped).", "port", "reason")
	descUptime     = desc("uptime_seconds", "Seconds since the switch started.")
	descStart      = desc("start_time_seconds", "When the switch started, in seconds since the Unix epoch.")
)

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descInFrames, descInBytes, descOutFrames, descOutBytes, descDrops, descBad,
		descQueued, descEndpoints, descLoopBlock, descFaults, descMACs, descMACLimit, descNotLearned, descLoopBlocks, descUptime, descStart} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	st := c.src.Stats()
	for _, p := range st.Ports {
		port := strconv.Itoa(p.Port)
		counter := func(d *prometheus.Desc, v uint64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), port)
		}
		counter(descInFrames, p.InFrames)
		counter(descInBytes, p.InBytes)
		counter(descOutFrames, p.OutFrames)
		counter(descOutBytes, p.OutBytes)
		counter(descDrops, p.Drops)
		counter(descBad, p.Bad)
		ch <- prometheus.MustNewConstMetric(descQueued, prometheus.GaugeValue, float64(p.Queued), port)
		ch <- prometheus.MustNewConstMetric(descEndpoints, prometheus.GaugeValue, float64(p.Endpoints), port)
		blocked := 0.0
		if p.LoopBlocked {
			blocked = 1
		}
		ch <- prometheus.MustNewConstMetric(descLoopBlock, prometheus.GaugeValue, blocked, port)
		for reason, n := range p.Faults {
			ch <- prometheus.MustNewConstMetric(descFaults, prometheus.CounterValue, float64(n), port, reason)
		}
	}
	ch <- prometheus.MustNewConstMetric(descMACs, prometheus.GaugeValue, float64(st.MACs))
	ch <- prometheus.MustNewConstMetric(descMACLimit, prometheus.GaugeValue, float64(st.MACLimit))
	ch <- prometheus.MustNewConstMetric(descNotLearned, prometheus.CounterValue, float64(st.NotLearned))
	ch <- prometheus.MustNewConstMetric(descLoopBlocks, prometheus.CounterValue, float64(st.LoopBlocks))
	ch <- prometheus.MustNewConstMetric(descUptime, prometheus.GaugeValue, c.now().Sub(st.Start).Seconds())
	ch <- prometheus.MustNewConstMetric(descStart, prometheus.GaugeValue, float64(st.Start.UnixNano())/1e9)
}

// NewRegistry is a registry with these collectors, the process's (CPU, memory,
// descriptors) and the Go runtime's.
func NewRegistry(cs ...prometheus.Collector) (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	cs = append(cs, collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewGoCollector())
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return reg, nil
}

// Server serves a registry over HTTP at /metrics (and /), in the Prometheus text format
// or OpenMetrics when the scraper asks for it.
type Server struct {
	ln   net.Listener
	srv  *http.Server
	path string // a unix socket to remove at Close
}

// Listen makes a server for reg on addr: a unix socket when addr holds a '/' (a stale one
// is replaced), else a TCP host:port. logf gets the server's errors.
func Listen(addr string, reg *prometheus.Registry, logf func(string, ...any)) (*Server, error) {
	s := &Server{}
	var err error
	if strings.Contains(addr, "/") {
		if fi, e := os.Lstat(addr); e == nil && fi.Mode()&os.ModeSocket != 0 {
			if c, e := net.Dial("unix", addr); e == nil {
				c.Close()
				return nil, fmt.Errorf("metrics: %s: in use by another process", addr)
			}
			os.Remove(addr)
		}
		s.ln, err = net.Listen("unix", addr)
		s.path = addr
	} else {
		s.ln, err = net.Listen("tcp", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("metrics: listen on %s: %w", addr, err)
	}
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		EnableOpenMetrics: true,
		ErrorLog:          logger(logf),
		ErrorHandling:     promhttp.ContinueOnError,
	})
	mux := http.NewServeMux()
	mux.Handle("/metrics", h)
	mux.Handle("/{$}", h)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logf("metrics: %s: %v", addr, err)
		}
	}()
	return s, nil
}

// Addr is the address the server listens on (the port chosen for "127.0.0.1:0").
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops the server and removes its unix socket.
func (s *Server) Close() error {
	err := s.srv.Close()
	if s.path != "" {
		os.Remove(s.path)
	}
	return err
}

type logger func(string, ...any)

func (l logger) Println(v ...any) { l("metrics: %s", fmt.Sprint(v...)) }
