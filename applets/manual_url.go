package applets

// urlManual is vde_plug_url(7): the URL schemes of vde_plug and the other plugs. Every
// scheme registered with wire.RegisterScheme has an item whose term starts with
// "**SCHEME://" (doc_test.go checks it).
var urlManual = &manual{
	name: "vde_plug_url", section: 7,
	summary:  "the URLs of VDE plugs: vde://, tap://, slirp://, vxlan://, switch:// and the others",
	synopsis: []string{"__SCHEME__**://**__ADDRESS__[__OPTIONS__]", "__PATH__"},
	description: []block{
		para("**vde_plug**(1) opens one or two networks named by URLs, and **wirefilter -v** two. A URL is a scheme, " +
			"**://**, and an address with options whose syntax is the scheme's: **vde://** and the nodes take " +
			"__PATH__**[**__KEY__**=**__VALUE__**/**...**]**, the others __ADDRESS__**/**__KEY__**=**__VALUE__**/**.... " +
			"Keys may be shortened to any prefix, tried in the scheme's order. A string without **://** is a path of **vde://**; " +
			"an empty one is the default switch."),
		para("The schemes, which follow vdeplug4's libvdeplug modules (vdeplug4 ships a page for each, such as " +
			"libvdeplug_vxlan(1)) and say where ours differ:"),
		item("**vde://**[__PATH__][**[**__PORT__**]**]", "a port of the switch whose control directory is __PATH__ (default: "+
			"~/.vde2/default.switch, else /var/run/vde.ctl or /tmp/vde.ctl). Options in brackets: **port=**__N__ (a bare number "+
			"means it), **portgroup=**__NAME__, **group=**__GROUP__ and **mode=**__OCTAL__ of the data socket. The plug's "+
			"**--reconnect** dials a switch that went away again."),
		item("**null://**", "a plug that takes every frame and sends none."),
		item("**udp://**[__SRCADDR__**:**]__SRCPORT__**->**__DSTADDR__**:**__DSTPORT__", "a point-to-point cable of one frame per "+
			"UDP datagram, from a local port to the other end's, which names this end the other way round."),
		item("**cmd://**__COMMAND__ [__ARGS__]", "runs the command and exchanges frames with it in the two-byte-length stream on "+
			"its standard input and output (**cmd://'ssh host vde_plug'**). Quotes and backslashes group words."),
		item("**tap://**__NAME__", "the TAP interface __NAME__, created when it does not exist (root, CAP_NET_ADMIN, or a device "+
			"made by **vde_tunctl**(1) for the user); its link is left down."),
		item("**slirp://**[**/**__OPTION__...]", "the user-mode NAT router of **slirpvde**(1) inside the plug, with vdeplug_slirp's "+
			"options: **addr=**__ADDR/LEN__ (default 10.0.2.2/24), **dhcp=**__ADDR__, **vnameserver=**__ADDR__, "+
			"**tcpfwd=**__[BIND:]HPORT:GUEST:GPORT__ and **udpfwd=**..., **unixfwd=**__PORT:PATH__, **tftp_path=**__DIR__, "+
			"**bootfile=**__FILE__, **disable_host_loopback**, **restricted** (no NAT: only forwards and the router's "+
			"services), **mtu=**__N__, **verbose**, **v4**, **v6**, **addr6=**, **vnameserver6=**. DHCP is always on; IPv6 only with "+
			"**v6** or **addr6=**."),
		item("**vxlan://**[__ADDR__[**,**__ADDR__...]][**/**__OPTION__...]", "a VXLAN network (RFC 7348), shared with kernel VTEPs and "+
			"other VXLAN switches. __ADDR__ is a multicast group (default 239.0.0.1, ff05:56de::1 with **v6**) or, ours, a list of "+
			"unicast VTEPs that get flooded frames by head-end replication. Options: **port=** (4789), **vni=** (1), **ttl=**, "+
			"**rcvbuf=**, **hashsize=**, **expiretime=**, **if=**, **v4**, **v6**; ours: **local=**__ADDR__ and **learn** (accept "+
			"frames from VTEPs not listed). VXLAN has no authentication: keep it on a network only the VTEPs reach."),
		item("**vxvde://**[__GROUP__][**/**__OPTION__...]", "vdeplug4's switchless segment: members meet in a multicast group "+
			"(port 14789) and send unicast once they know where an address is. Options **port=**, **vni=**, **grp=**, **ttl=**, "+
			"**rcvbuf=**, **v4**, **v6**, **hashsize=**, **expiretime=**, **if=**, **bind=**."),
		item("**switch://**__PATH__[**[**__OPTIONS__**]**]", "a switch hosted by the plug: it creates the control directory "+
			"__PATH__, which clients join as **vde://**__PATH__; the plug's other side is one more port. 802.1Q frames cross as they are. "+
			"Options: **mode=**, **dirmode=**, **grp=**, **hashsize=**, **expiretime=**, **hashseed=**. An empty path is "+
			"/tmp/vdenode_USER."),
		item("**hub://**__PATH__[**[**__OPTIONS__**]**]", "as **switch://**, in hub mode: every frame goes to every port."),
		item("**multi://**__PATH__[**[**__OPTIONS__**]**]", "a node that sends every frame of the plug to every client, and each "+
			"client's frames to the plug only."),
		item("**bonding://**__PATH__[**[**__OPTIONS__**]**]", "a node that sends the plug's frames to its clients in turn."),
		item("**ptp://**__PATH__", "a point-to-point cable of two datagram sockets: the first plug binds __PATH__, the second "+
			"connects to it. **vde_plug -m** and **-g** set the mode and group of the socket files."),
		item("**seqpacket://**__FD__", "a SOCK_SEQPACKET socket the plug inherited as descriptor __FD__ (one end of a socketpair(2))."),
	},
	sections: []section{
		{"Examples", []block{example("vde_plug vde:///tmp/lan.ctl[5] = ssh host vde_plug\n" +
			"vde_plug /tmp/lan.ctl tap://tap0\n" +
			"vde_plug /tmp/lan.ctl 'slirp:///addr=10.1.0.2/24/tcpfwd=8080:10.1.0.15:80'\n" +
			"vde_plug /tmp/lan.ctl udp://5000->peer.example:5000\n" +
			"vde_plug /tmp/lan.ctl vxlan://192.0.2.7,198.51.100.9/vni=42\n" +
			"vde_plug 'hub:///tmp/hub[mode=0660/grp=vde2-net]' null://")}},
	},
	seeAlso: []string{"vde_plug(1)", "vde_switch(1)", "slirpvde(1)", "wirefilter(1)", "vde(1)"},
}
