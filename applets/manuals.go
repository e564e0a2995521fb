package applets

import (
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/vde-go/vde/switchcore"
	"github.com/vde-go/vde/switchcore/impair"
)

// The prose of the manual pages; the OPTIONS sections come from the parsers' tables.

// frontEndFlags are the options of `vde` itself (main.go), for vde(1).
var frontEndFlags = []cli.Flag{
	&cli.BoolFlag{Name: "list", Usage: "print the applets' names, one a line"},
	&cli.BoolFlag{Name: "version", Usage: "print the version"},
	&cli.BoolFlag{Name: "help", Aliases: []string{"h"}, Usage: "print the usage summary"},
	&cli.StringFlag{Name: "man", Usage: "print the manual page of `NAME` (a program, an alias, vde or vde_plug_url) as roff"},
	&cli.StringFlag{Name: "completion", Usage: "print the completion script for `SHELL` (bash or zsh)"},
}

// tunctlFlags document vde_tunctl's getopt(3) options (tunctlOptString), which its
// parser reads from the string; doc_test.go checks that every letter is here.
var tunctlFlags = []cli.Flag{
	&cli.BoolFlag{Name: "b", Usage: "brief output: print only the device's name"},
	&cli.StringFlag{Name: "d", Usage: "delete: make the persistent device `DEVICE` transient again (it goes when nothing holds it)"},
	&cli.StringFlag{Name: "f", Usage: "the TUN/TAP clone device `FILE` (default /dev/net/tun)"},
	&cli.StringFlag{Name: "t", Usage: "the name `DEVICE` of the device to create (default: the kernel picks tapN or tunN)"},
	&cli.StringFlag{Name: "u", Usage: "the `OWNER` (a user name or a uid) who may use the device without privileges"},
	&cli.StringFlag{Name: "g", Usage: "the `GROUP` (a name or a gid) whose members may use the device"},
	&cli.BoolFlag{Name: "n", Usage: "create a TUN device (IP packets) instead of a TAP (needless when the name starts with tun)"},
	&cli.BoolFlag{Name: "i", Usage: "prints the usage, as in C (the letter is in its option string with no action)"},
}

// vdeqFlags document vdeq's own options, which it reads right after QEMU's program
// name, in this order, before QEMU's options.
var vdeqFlags = []cli.Flag{
	&cli.BoolFlag{Name: "help", Aliases: []string{"h"}, Usage: "print the usage summary and exit (also -help), instead of a program"},
	&oneDashFlag{cli.StringFlag{Name: "sock", Aliases: []string{"vdesock", "unix"}, Usage: "old syntax: the switches `SOCK1[,SOCK2...]`, one for each VDE card in order"}},
	&cli.BoolFlag{Name: "vhost-user", Usage: "each card becomes a virtio-net NIC on its switch's vhost-user socket (the switch runs with **--vhost-user**), with a shared memory backend added for the guest's RAM; also with VDEQ_VHOST_USER=1"},
	&cli.StringFlag{Name: "mod", Usage: "octal permission `MODE` of the data sockets"},
}

// oneDashFlag is a long option written with one dash only (vdeq's -sock).
type oneDashFlag struct{ cli.StringFlag }

func (oneDashFlag) oneDash() bool { return true }

const (
	// modeNote: the C tool's usage text (ours too) says --mode, its parser takes --mod.
	modeNote = "The usage text says **--mode**, as the C tool's does, but the long option is **--mod** " +
		"(or a prefix of it), as in C: **--mode** is refused as unrecognized."
	sockFiles = "The control directory of a switch holds its **ctl** socket, where clients ask for a port, " +
		"and one data socket per client."
)

func init() {
	manuals = []*manual{
		{
			name: "vde", section: 1,
			summary: "Virtual Distributed Ethernet: the multicall binary of the VDE tools",
			synopsis: []string{
				"**vde** __APPLET__ [__ARGS__...]",
				"**vde** **--list** | **--version** | **--help**",
				"**vde** **--man** __NAME__ | **--completion** **bash**|**zsh**",
			},
			description: []block{
				para("VDE builds Ethernet LANs out of ordinary processes: a switch (**vde_switch**) listens in a control directory, " +
					"and plugs attach to its ports over Unix sockets: virtual machines (QEMU's **-netdev vde**), TAP interfaces, " +
					"a user-mode NAT router (**slirpvde**), cables to other switches over any byte stream (**vde_plug**, **dpipe**, ssh), " +
					"VXLAN and more (see **vde_plug_url**(7))."),
				para("**vde** is one binary that acts as each tool according to the name it is run under: " +
					"**make install** links every program name to it. The same program runs as **vde** __APPLET__, " +
					"so **vde switch -d** is **vde_switch -d**. The applets and the names that select them:"),
				item("**switch**", "**vde_switch**, vde-switch, vdeswitch: the switch (**vde_switch**(1))."),
				item("**plug**", "**vde_plug**, vde-plug, vdeplug: a plug, a cable, a node (**vde_plug**(1))."),
				item("**plug2tap**", "**vde_plug2tap**, vde-plug2tap, vdeplug2tap: a switch port on a TAP interface (**vde_plug2tap**(1))."),
				item("**pcapplug**", "**vde_pcapplug**, vde-pcapplug, vdepcapplug: a switch port on an existing interface (**vde_pcapplug**(1))."),
				item("**tunctl**", "**vde_tunctl**, vde-tunctl, vdetunctl: persistent TAP and TUN devices (**vde_tunctl**(1))."),
				item("**wirefilter**", "**wirefilter**, vde_wirefilter: a cable with loss, delay and limits (**wirefilter**(1))."),
				item("**slirpvde**", "**slirpvde**, slirp: a NAT router for the LAN (**slirpvde**(1))."),
				item("**dpipe**", "**dpipe**: a bidirectional pipe of commands (**dpipe**(1))."),
				item("**vdeq**", "**vdeq**, vdeoq, and any name vde__PROGRAM__ (**vdeqemu**, vdekvm): QEMU on VDE switches (**vdeq**(1))."),
				item("**unixterm**", "**unixterm**: a relay to a management socket (**unixterm**(1))."),
				item("**vdeterm**", "**vdeterm**: an interactive management console (**vdeterm**(1))."),
				item("**vdecmd**", "**vdecmd**, unixcmd: one management command (**vdecmd**(1))."),
				item("**capture**", "**vde capture**: a running switch's frames as pcapng, for tshark and Wireshark (**vde-capture**(1))."),
				item("**ifup-hook**", "**vde ifup-hook**: what ifupdown's hooks /etc/network/if-pre-up.d/vde2 and "+
					"/etc/network/if-post-down.d/vde2 run for the **vde2-switch**, **vde2-slirp** and **vde2-plug** options of "+
					"interfaces(5): it reads IFACE, MODE, PHASE and IF_VDE2_* from the environment and starts or stops the tools, "+
					"with their sockets and pid files in /var/run/vde2."),
			},
			flags: frontEndFlags,
			sections: []section{
				{"Environment", []block{
					item("**GOMAXPROCS**", "how many processors an applet runs Go code on; vde_switch and slirpvde **-d** choose half of them (at least one) unless it is set."),
					item("**VDE_CPUPROFILE**=__FILE__", "write a CPU profile of the run to __FILE__ (go tool pprof reads it)."),
					item("**VDE_MEMPROFILE**=__FILE__", "write a heap profile to __FILE__ at the end of the run."),
				}},
				{"Exit status", []block{
					para("That of the applet; 2 for an unknown applet or bad arguments to **vde** itself."),
				}},
			},
			seeAlso: []string{"vde_switch(1)", "vde_plug(1)", "vde_plug_url(7)", "slirpvde(1)", "dpipe(1)", "wirefilter(1)", "vdeterm(1)"},
		},
		{
			applet: "switch", name: "vde_switch", section: 1,
			summary:  "the VDE switch: a virtual Ethernet switch in a control directory",
			synopsis: []string{"**vde_switch** [__OPTIONS__]"},
			description: []block{
				para("**vde_switch** is a learning Ethernet switch in user space. Clients (QEMU's **-netdev vde**, **vde_plug**, " +
					"**slirpvde**, **vde_plug2tap**, libvdeplug programs) connect to the **ctl** socket of its control directory " +
					"and get a port; **-t** adds ports on TAP interfaces. " + sockFiles),
				para("The switch forwards unicast frames to the port that learned the destination address and floods the rest within " +
					"the frame's VLAN; with **-x** it is a hub. Ports can be untagged members of one VLAN and tagged members of others; " +
					"**-F** runs the fast spanning tree protocol, so that switches cabled in a loop keep one path."),
				para("The console accepts management commands (**help** lists them: **port/print**, **vlan/create**, **hash/print**, " +
					"**fstp/print**, **shutdown**, ...). In the foreground it reads them on standard input, unless **--nostdin**; " +
					"**-M** opens it on a Unix socket for **unixterm**(1), **vdeterm**(1) and **vdecmd**(1). At start the switch runs " +
					"the commands of **-f** __FILE__, else of ~/.vde2/vde_switch.rc or /etc/vde2/vde_switch.rc."),
				para("A full port drops frames as the C switch does unless one sender alone fills it: that sender is slowed to the receiver's pace " +
					"(**--flowcontrol** slows every sender, **--noflowcontrol** never slows one). The switch connects only to data sockets " +
					"owned by the client that asked."),
				para("Root is needed only for **-t**."),
			},
			flags: switchFlags, longOnly: true,
			sections: []section{
				{"Examples", []block{
					example("vde_switch -d -s /tmp/lan.ctl -M /tmp/lan.mgmt\n" +
						"vde_plug2tap -d -s /tmp/lan.ctl tap0\n" +
						"qemu-system-x86_64 -netdev vde,id=n0,sock=/tmp/lan.ctl -device virtio-net,netdev=n0 ...\n" +
						"vdeterm /tmp/lan.mgmt"),
					para("The systemd unit **vde-switch@**__NAME__**.service** runs a switch on /run/vde2/__NAME__.ctl with its console on " +
						"/run/vde2/__NAME__.mgmt, for the group vde2-net."),
				}},
				{"Management commands", switchCommandBlocks()},
				{"Files", []block{
					item("/tmp/vde.ctl, /var/run/vde.ctl", "the default control directory (the second for root)."),
					item("~/.vde2/vde_switch.rc, /etc/vde2/vde_switch.rc", "console commands run at start, without **-f**."),
				}},
				{"Signals", []block{
					para("**SIGINT**, **SIGTERM**: clean up and exit. **SIGHUP**: reopen the iplog file (after logrotate), as Debian's switch does."),
					para("**SIGUSR2**, or the console's **upgrade** [__PATH__] (root and the switch's own user only): upgrade in place. The switch checks that " +
						"__PATH__ (by default the binary it runs from) says in its **--version** that it reads this switch's state, hands its state and every descriptor over and executes it in the " +
						"same process (the pid stays), with its original options; clients of its data sockets stay connected and frames wait in the sockets " +
						"meanwhile. If anything fails before the exec, the old switch goes on serving and logs why; if the new binary cannot take the state, " +
						"the old binary is executed again with it. Open management sessions get **9999 END OF SESSION** once only the exec is left to do " +
						"(an upgrade refused or failed before it leaves them working). TAP ports and vhost-user ports " +
						"(the socket, each frontend's connection, guest memory and rings) are handed over, so QEMU and DPDK frontends do not reconnect; " +
						"with FSTP on, the spanning tree crosses too (no port probes again); " +
						"loaded plugins cross with their settings, and pdump's capture file and iplog's log file go on being written where they were " +
						"(their descriptors pass). A **SIGUSR2** that comes while an upgrade is under way is ignored, and console commands given during the hand-over get **1016 Device or resource busy**."),
				}},
				{"Exit status", []block{para("0 after **shutdown** or a signal; 1 for a bad option (after the usage) or a failed start.")}},
			},
			seeAlso: []string{"vde(1)", "vde_plug(1)", "vde_plug_url(7)", "vdeterm(1)", "unixterm(1)", "vdecmd(1)", "vde_plug2tap(1)", "slirpvde(1)", "qemu(1)"},
		},
		{
			applet: "plug", name: "vde_plug", section: 1,
			summary: "a plug for VDE networks: a port as a stream, a cable between two networks, a node",
			synopsis: []string{
				"**vde_plug** [__OPTIONS__] [__URL__]",
				"**vde_plug** [__OPTIONS__] __URL__ __URL__",
				"**vde_plug** [__OPTIONS__] [__URL__] **=** __COMMAND__ [__ARGS__...]",
			},
			description: []block{
				para("With one __URL__ (or none: the default switch, from ~/.vde2/default.switch, else /var/run/vde.ctl or /tmp/vde.ctl), " +
					"**vde_plug** joins the network and turns it into a stream on standard input and output: each frame is sent " +
					"with a two-byte length before it. Two such plugs joined by **dpipe**(1), ssh or socat make a cable between two switches."),
				para("With two URLs the plug is the cable itself, frames going both ways. With **=** __COMMAND__ the stream goes to and from the command's " +
					"standard input and output."),
				para("A __URL__ is __SCHEME__**://**__ADDRESS__ (**vde://**, **tap://**, **slirp://**, **vxlan://**, **switch://**, ...; " +
					"**vde_plug_url**(7) lists them); a bare path is **vde://**__PATH__."),
			},
			flags: plugFlags, longOnly: true,
			sections: []section{
				{"Examples", []block{
					example("dpipe vde_plug /tmp/a.ctl = ssh host vde_plug /tmp/b.ctl\n" +
						"vde_plug vde:///tmp/lan.ctl tap://tap0\n" +
						"vde_plug vde:///tmp/lan.ctl slirp://\n" +
						"vde_plug vde:///tmp/lan.ctl vxlan://192.0.2.7/vni=42\n" +
						"vde_plug 'switch:///tmp/lab[mode=0660/grp=vde2-net]' tap://tap1"),
				}},
				{"Exit status", []block{para("0 when either side ends; 255 for a bad command line (vdeplug4's status), 1 for a plug that cannot be opened.")}},
			},
			seeAlso: []string{"vde_plug_url(7)", "vde_switch(1)", "dpipe(1)", "wirefilter(1)", "vde(1)"},
		},
		{
			applet: "plug2tap", name: "vde_plug2tap", section: 1,
			summary:  "connect a VDE switch port to a TAP interface",
			synopsis: []string{"**vde_plug2tap** [__OPTIONS__] __TAP__"},
			description: []block{
				para("**vde_plug2tap** opens the TAP interface __TAP__ (created when it does not exist; root or CAP_NET_ADMIN is needed " +
					"unless **vde_tunctl**(1) made it for the user) and a port of the switch, and moves frames between them until either ends. " +
					"The interface's link and addresses are left to **ip**(8)."),
			},
			flags: plug2tapFlags, longOnly: true,
			sections: []section{
				{"Notes", []block{para(modeNote)}},
				{"Examples", []block{example("vde_plug2tap -d -s /tmp/lan.ctl tap0\nip addr add 10.0.2.1/24 dev tap0 && ip link set tap0 up")}},
				{"Exit status", []block{para("0 when either side ends; 255 for a bad command line, 1 when the switch or the TAP cannot be opened.")}},
			},
			seeAlso: []string{"vde_switch(1)", "vde_tunctl(1)", "vde_pcapplug(1)", "vde_plug(1)", "ip(8)"},
		},
		{
			applet: "pcapplug", name: "vde_pcapplug", section: 1,
			summary:  "connect a VDE switch port to an existing network interface",
			synopsis: []string{"**vde_pcapplug** [__OPTIONS__] __INTERFACE__"},
			description: []block{
				para("**vde_pcapplug** joins a switch port and an Ethernet interface that exists and is up (a NIC, a veth, a bridge): " +
					"frames that reach the interface go to the switch, and the switch's frames leave through the interface. " +
					"It attaches with packet sockets (the C tool uses libpcap) and keeps the interface promiscuous while attached; " +
					"it needs CAP_NET_RAW. Runs of TCP segments of one flow leave as one GSO packet."),
			},
			flags: plug2tapFlags, longOnly: true,
			sections: []section{
				{"Notes", []block{para(modeNote)}},
				{"Examples", []block{example("vde_pcapplug -d -s /tmp/lan.ctl veth1")}},
				{"Exit status", []block{para("0 when either side ends; 255 for a bad command line, 1 when the switch or the interface cannot be opened.")}},
			},
			seeAlso: []string{"vde_plug2tap(1)", "vde_switch(1)", "packet(7)"},
		},
		{
			applet: "tunctl", name: "vde_tunctl", section: 1,
			summary: "create and delete persistent TAP and TUN devices",
			synopsis: []string{
				"**vde_tunctl** [**-b**] [**-u** __OWNER__] [**-g** __GROUP__] [**-n**] [**-t** __DEVICE__] [**-f** __FILE__]",
				"**vde_tunctl** **-d** __DEVICE__ [**-f** __FILE__]",
			},
			description: []block{
				para("**vde_tunctl** makes a TAP (or, with **-n**, a TUN) device persistent, so that it outlives the process that made it, " +
					"and may give it an owner and a group: that user, or the members of that group, can then attach to it " +
					"(**vde_switch -t**, **vde_plug2tap**, **tap://**) without privileges. It prints what it did " +
					"(\"Set 'tap0' persistent and owned by uid 1000\"). **-d** makes the device transient again."),
				para("Options are read as getopt(3) reads them; a bad one prints the usage."),
			},
			flags: tunctlFlags,
			sections: []section{
				{"Examples", []block{example("vde_tunctl -u alice -t tap0\nvde_tunctl -d tap0")}},
				{"Exit status", []block{para("0 on success; 1 for a bad command line or a device that cannot be made.")}},
			},
			seeAlso: []string{"vde_plug2tap(1)", "vde_switch(1)", "ip-tuntap(8)"},
		},
		{
			applet: "wirefilter", name: "wirefilter", section: 1, aliases: []string{"vde_wirefilter"},
			summary: "a VDE cable that loses, delays, duplicates and limits frames",
			synopsis: []string{
				"**wirefilter** [__OPTIONS__]",
				"**wirefilter** [__OPTIONS__] **-v** __URL1__**:**__URL2__",
			},
			description: []block{
				para("**wirefilter** sits in the middle of a cable and impairs it, to try protocols and programs on a bad network. " +
					"Without **-v** it is the middle command of a **dpipe**(1) chain, reading and writing frames in the two-byte-length stream " +
					"on standard input and output on one side and on descriptors ALTERNATE_STDIN and ALTERNATE_STDOUT on the other. " +
					"With **-v** it opens both plugs itself."),
				para("The values of **-l**, **-d**, **-D**, **-b**, **-s**, **-n**, **-c**, **-m** and **-L** can be changed while it runs, " +
					"from the console (**-M**, or standard input with **-v**); **help** lists the commands, **showinfo** the state."),
			},
			flags: wirefilterFlags, longOnly: true,
			sections: []section{
				{"Values", []block{
					para("A value is a number, for both directions, or **LR**__N__ and **RL**__N__ for one direction (left to right is " +
						"the first plug's frames toward the second). __N__**+**__V__ varies it at random by up to __V__ either way, " +
						"evenly or, with a final **N**, normally distributed (**U**, the default, says evenly). Sizes and rates take the suffixes " +
						"**K**, **M** and **G** (powers of 1024). The loss model can also be a Markov chain, defined on the console " +
						"(**markov-numnodes**, **setedge**, ...)."),
				}},
				{"Management commands", []block{
					para("The console (**-M**, or standard input with **-v**) takes one command a line; each answer ends with " +
						"**1000 Success** or an error number plus 1000. A value takes the syntax of its option (VALUES). **help** lists:"),
					example(strings.Join(impair.HelpLines(), "\n")),
				}},
				{"Examples", []block{example("dpipe vde_plug /tmp/a.ctl = wirefilter -l 10 -d 100+50 = vde_plug /tmp/b.ctl\n" +
					"wirefilter -v /tmp/a.ctl:/tmp/b.ctl -b 128K -M /tmp/wf.mgmt --daemon")}},
				{"Exit status", []block{para("0 when a side ends or on **shutdown**; 1 for a bad command line or a plug that cannot be opened.")}},
			},
			seeAlso: []string{"dpipe(1)", "vde_plug(1)", "vde_switch(1)", "unixterm(1)", "vdeterm(1)"},
		},
		{
			applet: "slirpvde", name: "slirpvde", section: 1,
			summary: "a user-mode NAT router for a VDE network",
			synopsis: []string{
				"**slirpvde** [__OPTIONS__] **-s** __SOCK__",
				"**slirpvde** [__OPTIONS__] **-s -**",
			},
			description: []block{
				para("**slirpvde** joins a switch as a router that takes the guests of the LAN to the host's network: their TCP " +
					"connections, UDP flows and pings leave from the host's own sockets, with the host's address (NAT), and need no privileges. " +
					"In the default network 10.0.2.0/24 the router is 10.0.2.2, which also reaches the host's own loopback, " +
					"and 10.0.2.3 is a DNS proxy to the host's first nameserver. **-D** hands out addresses from 10.0.2.15 by DHCP."),
				para("Host ports can be forwarded to guests (**-L**, **-U**), guests can reach a Unix socket (**-x**) or an X server (**-X**), " +
					"and **-t** serves files by TFTP for network boot. With **-6** the router also routes IPv6, announcing fd00::/64. " +
					"**-s -** speaks the two-byte-length stream on standard input and output, so that " +
					"**dpipe vde_plug = ssh host slirpvde -D -s -** puts a remote host's router on a local switch. " +
					"The same router runs inside **vde_plug** as **slirp://** (**vde_plug_url**(7))."),
			},
			flags: slirpvdeFlags, longOnly: true,
			sections: []section{
				{"Examples", []block{example("slirpvde -d -D -s /tmp/lan.ctl\n" +
					"slirpvde -D -s /tmp/lan.ctl -L 127.0.0.1:2222:10.0.2.15:22 -t /srv/tftp --bootfile pxelinux.0"),
					para("The systemd unit **slirpvde@**__NAME__**.service** runs one with DHCP, as the user vde2-net, on the switch of " +
						"**vde-switch@**__NAME__**.service** (systemctl enable --now vde-switch@lan slirpvde@lan)."),
				}},
				{"Exit status", []block{para("0 when the switch goes away or on a signal; 255 for a bad command line, 1 when the switch cannot be reached.")}},
			},
			seeAlso: []string{"vde_switch(1)", "vde_plug(1)", "vde_plug_url(7)", "dpipe(1)"},
		},
		{
			applet: "dpipe", name: "dpipe", section: 1,
			summary: "a bidirectional pipe: each command's output is the other's input",
			synopsis: []string{
				"**dpipe** [__OPTIONS__] __COMMAND1__ [__ARGS__] **=** __COMMAND2__ [__ARGS__] [**=** __COMMAND3__ [__ARGS__]...]",
			},
			description: []block{
				para("**dpipe** runs commands joined in both directions, as **|** joins them in one: the standard output of the first is " +
					"the standard input of the second and the other way round. A command in the middle of a chain talks to its left " +
					"neighbour on standard input and output and to its right one on the descriptors named by the environment variables " +
					"ALTERNATE_STDIN and ALTERNATE_STDOUT (**wirefilter**(1) does). **=}** and **{=** around a middle command " +
					"make it a filter of one direction only (left to right, right to left)."),
				para("dpipe waits for the commands; when one ends, it ends the others."),
			},
			flags: dpipeFlags, longOnly: true,
			sections: []section{
				{"Examples", []block{example("dpipe vde_plug /tmp/a.ctl = ssh host vde_plug /tmp/b.ctl\n" +
					"dpipe vde_plug /tmp/a.ctl = wirefilter -l 5 = vde_plug /tmp/b.ctl")}},
				{"Exit status", []block{para("That of the first command to end badly, else 0; 1 for a bad command line.")}},
			},
			seeAlso: []string{"vde_plug(1)", "wirefilter(1)", "ssh(1)"},
		},
		{
			applet: "vdeq", name: "vdeq", section: 1, aliases: []string{"vdeqemu"},
			summary: "start QEMU with its network cards on VDE switches",
			synopsis: []string{
				"**vdeq** __QEMU__ [**--mod** __MODE__] [__QEMU-OPTIONS__...] **-net vde**[**,vlan=**__N__][**,sock=**__SOCK__][**,port=**__P__] ...",
				"**vdeq** __QEMU__ **-sock** __SOCK1__[**,**__SOCK2__...] [**--mod** __MODE__] [__QEMU-OPTIONS__...]",
				"**vdeq** __QEMU__ **--vhost-user** [__QEMU-OPTIONS__...] **-net vde**[**,vlan=**__N__][**,sock=**__SOCK__] ...",
				"**vde**__QEMU__ [__QEMU-OPTIONS__...]",
			},
			description: []block{
				para("**vdeq** runs the emulator __QEMU__ with VDE network cards written the old way: each **-net nic**[**,vlan=**__N__][**,macaddr=**__M__][**,model=**__X__] " +
					"is paired with the **-net vde** of the same vlan. vdeq connects to each switch itself and hands QEMU the connected " +
					"socket (**-netdev dgram** with a descriptor, or **-netdev vde** where QEMU has no dgram backend), rewriting the pair as " +
					"**-netdev** ... **-device** __X__**,netdev=**...**,mac=**__M__. The old syntax **-sock** names the switches in order."),
				para("With **--vhost-user** (or VDEQ_VHOST_USER=1 in the environment) each card becomes **-chardev socket** + **-netdev vhost-user** + " +
					"**-device virtio-net-pci** on the vhost-user socket of its switch (the link **vhost-user** in the switch's control directory, made by " +
					"**vde_switch --vhost-user**): frames then move through shared memory, not datagrams. Unless the command line picks a memory backend, " +
					"vdeq adds a shared memfd backend of the **-m** size. Without KVM it adds **vectors=0** to the NIC: QEMU 7.2 under TCG crashes when " +
					"a guest starts a vhost-user virtio-net device with MSI-X vectors."),
				para("Run as vde__PROGRAM__ (a link such as **vdeqemu** or vdekvm), it runs __PROGRAM__; **qemu** means " +
					"qemu-system-$(uname -m) when there is no qemu on PATH."),
			},
			flags: vdeqFlags,
			sections: []section{
				{"Examples", []block{example("vdeq qemu-system-x86_64 -m 512 -net nic,vlan=1,model=virtio -net vde,vlan=1,sock=/tmp/lan.ctl disk.img")}},
				{"Exit status", []block{para("QEMU's; 255 for an unknown **-net vde** parameter or a switch that cannot be reached.")}},
			},
			seeAlso: []string{"qemu(1)", "vde_switch(1)", "vde(1)"},
		},
		{
			applet: "unixterm", name: "unixterm", section: 1,
			summary:  "a relay to the management socket of a VDE switch",
			synopsis: []string{"**unixterm** __SOCKET__"},
			description: []block{
				para("**unixterm** connects to __SOCKET__, the console of a switch (**vde_switch -M**) or of **wirefilter -M**, and " +
					"relays standard input to it, a line for each prompt, and all the switch says to standard output: its banner, " +
					"its **vde$** prompt and its answers, framed as the protocol frames them (a **1000 Success** line ends each one). " +
					"On a terminal the terminal's own line editing applies; **vdeterm**(1) is the console with history and completion."),
			},
			flags: mgmtTermFlags,
			sections: []section{
				{"Examples", []block{example("unixterm /tmp/lan.mgmt\necho port/print | unixterm /tmp/lan.mgmt")}},
				{"Exit status", []block{para("0 when the session ends; 255 when the socket cannot be reached or for a bad command line.")}},
			},
			seeAlso: []string{"vdeterm(1)", "vdecmd(1)", "vde_switch(1)", "wirefilter(1)"},
		},
		{
			applet: "vdeterm", name: "vdeterm", section: 1,
			summary:  "an interactive console for a VDE switch's management socket",
			synopsis: []string{"**vdeterm** __SOCKET__"},
			description: []block{
				para("**vdeterm** connects to __SOCKET__, the console of a switch (**vde_switch -M**) or of **wirefilter -M**. On a terminal " +
					"it shows a **vde[**__SOCKET__**]:** prompt and the answers without the protocol's framing, with line editing, history " +
					"(Up, Down) and Tab completion of the commands **help** lists. Anywhere else it is the relay **unixterm**(1) is."),
			},
			flags: mgmtTermFlags,
			sections: []section{
				{"Exit status", []block{para("0 when the session ends; 255 when the socket cannot be reached or for a bad command line.")}},
			},
			seeAlso: []string{"unixterm(1)", "vdecmd(1)", "vde_switch(1)"},
		},
		{
			applet: "vdecmd", name: "vdecmd", section: 1, aliases: []string{"unixcmd"},
			summary:  "run one management command on a VDE switch",
			synopsis: []string{"**vdecmd** [**-s** __SOCKET__] [**-v**] __COMMAND__ [__ARGS__...]"},
			description: []block{
				para("**vdecmd** (also **unixcmd**) sends __COMMAND__ to the management socket of a switch and prints the lines of " +
					"its answer on standard output, without the protocol's framing, for scripts. " +
					"The exit status is the switch's error number: its reply code less 1000."),
			},
			flags: vdecmdFlags, longOnly: true,
			sections: []section{
				{"Examples", []block{example("vdecmd -s /tmp/lan.mgmt port/print\nvdecmd -s /tmp/lan.mgmt vlan/create 10")}},
				{"Exit status", []block{para("0 for **1000 Success**, 22 for **1022 Invalid argument** and so on; 255 for a bad command line or a switch that cannot be asked.")}},
			},
			seeAlso: []string{"vdeterm(1)", "unixterm(1)", "vde_switch(1)"},
		},
		{
			applet: "capture", name: "vde-capture", section: 1,
			summary: "capture a running VDE switch's frames as pcapng, for tshark and Wireshark",
			synopsis: []string{
				"**vde capture** [**-w** __FILE__] [**-c** __COUNT__] [**--ring** __N__] __MGMT_SOCKET__ [__PORT__...]",
				"**vde capture** **--extcap-interfaces** | **--extcap-interface** __IFACE__ (**--extcap-dlts** | **--extcap-config** | **--capture** **--fifo** __FIFO__)",
			},
			description: []block{
				para("**vde capture** asks the switch whose management socket (**vde_switch -M**) is __MGMT_SOCKET__ for every frame it " +
					"receives from and sends to the __PORT__s (all ports if none), and writes them as pcapng to __FILE__ or standard output " +
					"until SIGINT or SIGTERM, or __COUNT__ frames. Each port is an interface of its own (**port3**), each frame is marked " +
					"inbound or outbound, timestamps are in nanoseconds. The switch keeps running and pays nothing while nobody captures; " +
					"several captures may run at once."),
				para("The switch copies the frames into a ring of __N__ frames for each capture; a reader that is behind (a slow pipe, a " +
					"stopped Wireshark) loses frames rather than slowing the switch, and the capture counts them: in the drop count of the " +
					"port's next packet (Wireshark's frame.drop_count) and in the interface statistics at the end."),
				para("The stream rides on the management connection: **vde capture** runs the console command **capture/pcapng**, after " +
					"whose success line the session carries pcapng. It works wherever the socket can be reached (ssh forwards Unix sockets)."),
				para("With the **--extcap-** options it is Wireshark's extcap program: **make install-extcap** puts a script running " +
					"**vde capture** in Wireshark's extcap folder, and Wireshark's interface list then shows each switch whose management " +
					"socket is in /run/vde2, /var/run/vde2 or /tmp and named *.mgmt (or named in **VDE_CAPTURE_MGMT**), whole and port by port."),
			},
			flags: captureFlags,
			sections: []section{
				{"Environment", []block{
					item("**VDE_CAPTURE_MGMT**=__SOCKETS__", "more management sockets (colon-separated) for **--extcap-interfaces** to list."),
				}},
				{"Examples", []block{example("vde capture -w ping.pcapng -c 100 /tmp/lan.mgmt 1 2\n" +
					"vde capture /tmp/lan.mgmt 3 | wireshark -k -i -\n" +
					"vde capture /tmp/lan.mgmt | tshark -r - icmp\n" +
					"make install-extcap   # then pick vde:/run/vde2/lan.mgmt:3 in Wireshark")}},
				{"Exit status", []block{para("0 when the capture ends (COUNT frames, a signal, or the reader went away); " +
					"1 when the switch cannot be asked or refuses, or the file cannot be written; 2 for a bad command line.")}},
			},
			seeAlso: []string{"vde_switch(1)", "tshark(1)", "wireshark(1)", "vdecmd(1)"},
		},
		urlManual,
	}
}

// switchCommandBlocks documents the switch console's commands from its command table
// (switchcore.Commands), with the help texts the console's help prints.
func switchCommandBlocks() []block {
	blocks := []block{para("The console (standard input, or the **-M** socket) takes one command a line; " +
		"**help** lists them with their syntax. Each answer ends with a line " +
		"**1000 Success** or an error number plus 1000 (**1022 Invalid argument**). Loaded plugins " +
		"(**plugin/add**) add their own commands.")}
	for _, c := range switchcore.Commands() {
		if c.Menu {
			blocks = append(blocks, subsection(c.Help))
			continue
		}
		term := "**" + c.Path + "**"
		if c.Syntax != "" {
			term += " __" + c.Syntax + "__"
		}
		blocks = append(blocks, item(term, c.Help))
	}
	return blocks
}
