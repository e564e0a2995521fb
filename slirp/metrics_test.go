package slirp

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestCollector(t *testing.T) {
	r, err := New(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	r.count.tcpOpened.Add(3)
	r.count.loopbackRefused.Add(2)
	c := NewCollector(r)
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
	want := `
# HELP vde_slirp_flows_opened_total NATed flows opened, by kind.
# TYPE vde_slirp_flows_opened_total counter
vde_slirp_flows_opened_total{kind="tcp"} 3
vde_slirp_flows_opened_total{kind="udp"} 0
# HELP vde_slirp_refused_total What the router's bounds refused, by bound.
# TYPE vde_slirp_refused_total counter
vde_slirp_refused_total{bound="dns_flows"} 0
vde_slirp_refused_total{bound="dns_rate"} 0
vde_slirp_refused_total{bound="flows"} 0
vde_slirp_refused_total{bound="forward_peers"} 0
vde_slirp_refused_total{bound="host_loopback"} 2
vde_slirp_refused_total{bound="tftp"} 0
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "vde_slirp_flows_opened_total", "vde_slirp_refused_total"); err != nil {
		t.Error(err)
	}
}
