package itest

// vde_switch --metrics: the counters a scraper reads grow with the traffic, and
// Prometheus's own checker (promtool, Debian's prometheus package) accepts the output.

import (
	"context"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vde-go/vde/switchcore/wire"
)

// scrapeUnix GETs /metrics over the unix socket path.
func scrapeUnix(t *testing.T, path string) string {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", path)
	}}}
	resp, err := client.Get("http://vde-switch/metrics")
	if err != nil {
		t.Fatalf("scrape %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("scrape %s: %s %v\n%s", path, resp.Status, err, b)
	}
	return string(b)
}

// metricValue is the value of the sample name{labels} in a text exposition, -1 if absent.
func metricValue(t *testing.T, text, sample string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(sample) + ` (\S+)$`).FindStringSubmatch(text)
	if m == nil {
		return -1
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatalf("%s: %q", sample, m[1])
	}
	return v
}

func TestSwitchMetrics(t *testing.T) {
	requireTools(t, "promtool")
	sock := filepath.Join(testDir(t), "metrics.sock")
	sw := startSwitch(t, implOurs, "--metrics", sock)
	a := dialPeer(t, sw, 1, wire.DialOptions{})
	b := dialPeer(t, sw, 2, wire.DialOptions{})
	exchange(t, a, b, "warm")
	before := scrapeUnix(t, sock)

	const n = 200
	for i := 0; i < n; i++ {
		a.send(t, ethFrame(b.MAC, a.MAC, "metrics"))
		b.recv(t, "metrics")
	}
	a.send(t, []byte{1, 2, 3}) // too short: a bad frame
	var after string
	waitFor(t, 5*time.Second, "the bad frame counted", func() (bool, string) {
		after = scrapeUnix(t, sock)
		return metricValue(t, after, `vde_switch_port_bad_frames_total{port="1"}`) >= 1, after
	})
	for _, c := range []struct {
		sample string
		grow   float64
	}{
		{`vde_switch_port_in_frames_total{port="1"}`, n},
		{`vde_switch_port_out_frames_total{port="2"}`, n},
		{`vde_switch_port_in_bytes_total{port="1"}`, n * 21},
	} {
		v0, v1 := metricValue(t, before, c.sample), metricValue(t, after, c.sample)
		if v0 < 0 || v1-v0 < c.grow {
			t.Errorf("%s: %v -> %v, want it to grow by %v", c.sample, v0, v1, c.grow)
		}
	}
	if v := metricValue(t, after, `vde_switch_port_endpoints{port="2"}`); v != 1 {
		t.Errorf("endpoints of port 2: %v", v)
	}
	if v := metricValue(t, after, "vde_switch_mac_table_entries"); v < 2 {
		t.Errorf("MAC table entries: %v, want at least the two peers", v)
	}
	if v := metricValue(t, after, "vde_switch_uptime_seconds"); v <= 0 {
		t.Errorf("uptime: %v", v)
	}

	// promtool exits 0 on a clean exposition, 3 on lint warnings, 1 on a parse error.
	cmd := exec.Command("promtool", "check", "metrics")
	cmd.Stdin = strings.NewReader(after)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// slirpvde --metrics: a guest's TCP, UDP, ping and DNS query to the outside, and its DHCP
// lease, each show in the router's counters; promtool accepts the exposition.
func TestSlirpMetrics(t *testing.T) {
	requireTools(t, "promtool")
	slirpOursOnly(t, "--metrics is ours")
	w := newSlirpWorld(t, impl)
	startStreamEcho(t, w.O, "tcp4", w.OAddr+":"+loTCPPort)
	startUDPEcho(t, w.O, w.OAddr+":"+loUDPPort)
	w.startDnsmasq(t, "127.0.0.1", "metrics.example", "10.9.8.7")
	sock := filepath.Join(w.Dir, "slirp-metrics.sock")
	w.startSlirp(t, "--metrics", sock)
	g := w.addGuest(t)
	tcpEcho(t, g.NS, w.OAddr+":"+loTCPPort, tcpSmall)
	mustUDPEcho(t, g.NS, w.OAddr+":"+loUDPPort)
	pingOK(t, g.NS, w.OAddr)
	if out := nslookup(g.NS, "metrics.example", slirpDNS); !strings.Contains(out, "10.9.8.7") {
		t.Fatalf("nslookup through the proxy: %s", out)
	}
	text := scrapeUnix(t, sock)
	for _, sample := range []string{
		`vde_slirp_flows_opened_total{kind="tcp"}`,
		`vde_slirp_flows_opened_total{kind="udp"}`,
		`vde_slirp_pings_total`,
		`vde_slirp_dns_queries_total`,
		`vde_slirp_dhcp_leases`,
	} {
		if v := metricValue(t, text, sample); v < 1 {
			t.Errorf("%s = %v, want at least 1", sample, v)
		}
	}
	if v := metricValue(t, text, `vde_slirp_refused_total{bound="flows"}`); v != 0 {
		t.Errorf("refused flows: %v", v)
	}
	cmd := exec.Command("promtool", "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
	w.checkAlive(t)
}
