# vde: one multicall binary; the C tools' names are symbolic links to it.

GO      ?= go
PREFIX  ?= /usr/local
DESTDIR ?=
VERSION ?= 2.3.2-go
BINDIR  := $(DESTDIR)$(PREFIX)/bin
MANDIR  := $(DESTDIR)$(PREFIX)/share/man
# Pages of section 7 (section 1 has one page for vde and for each of LINKS), and the
# pages of section 1 for applets that have no link (vde capture).
MAN7    := vde_plug_url
MAN1    := vde-capture
# Where bash-completion (2.x, on demand, by command name) and zsh (fpath) look.
BASHCOMPDIR := $(DESTDIR)$(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR  := $(DESTDIR)$(PREFIX)/share/zsh/site-functions
# systemd units (vde-switch@NAME, slirpvde@NAME): systemd reads /usr/local/lib/systemd/system
# and /usr/lib/systemd/system.
UNITDIR     := $(DESTDIR)$(PREFIX)/lib/systemd/system
UNITS       := vde-switch@.service slirpvde@.service

# The names the binary answers to (see `bin/vde --list`); each becomes a link to vde.
LINKS := vde_switch vde_plug vde_plug2tap slirpvde dpipe vdeq vdeqemu unixterm vdeterm vdecmd unixcmd vde_tunctl vde_pcapplug wirefilter vde_wirefilter

LDFLAGS := -X github.com/vde-go/vde/applets.Version=$(VERSION)

# Fuzzing: every fuzz target (every `func FuzzX(` of a *_test.go; a new one joins by
# itself) runs for FUZZQUICK in `make test` and for FUZZTIME in `make fuzz`, FUZZJOBS
# targets at once with one worker each. New failing inputs land in the package's
# testdata/fuzz/FuzzX/, where they stay as seeds.
FUZZTIME  ?= 5m
FUZZQUICK ?= 8s
FUZZJOBS  ?= 2

# Wireshark's extcap folder for `make install-extcap`: Wireshark 4.0 (Debian 12) looks only
# in its system one; newer versions also in ~/.config/wireshark/extcap (pass that as
# EXTCAPDIR for a user's own). EXTCAP_VDE is the vde binary the extcap runs.
EXTCAPDIR  ?= $(DESTDIR)$(firstword $(wildcard /usr/lib/*/wireshark/extcap /usr/lib64/wireshark/extcap) /usr/lib/wireshark/extcap)
EXTCAP_VDE ?= $(PREFIX)/bin/vde

.PHONY: all build test fuzz bench soak run install install-extcap uninstall uninstall-extcap clean

all: build

# Always ask go: its build cache knows better than make whether bin/vde is stale.
build:
	@mkdir -p bin
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/vde .
	@for l in $(LINKS); do ln -sfn vde bin/$$l; done

test: build
	$(GO) vet ./...
	@unformatted=$$(gofmt -l .); \
	if [ -n "$$unformatted" ]; then \
		echo "gofmt -l: these files are not gofmt'd:"; echo "$$unformatted"; exit 1; \
	fi
	$(GO) test -count=1 -timeout 40m ./...
	$(call fuzz-all,$(FUZZQUICK))

fuzz:
	$(call fuzz-all,$(FUZZTIME))

# fuzz-all TIME: go fuzzes one target of one package per run, so each "./pkg FuzzX" is a
# `go test -fuzz` of its own; its output is shown only when it fails, followed by the
# target and the failing input's file. Any failure fails the whole run (after the rest).
# Go 1.26's fuzz coordinator can report a bare "context deadline exceeded" when -fuzztime
# ends while a worker is busy (go.dev/issue/75804, fixed in Go 1.27): no input failed and
# none is written. Such a run is retried once, and a second one is reported, not failed;
# a written input, a failing seed, a panic or a hung worker always fails.
# -fuzzminimizetime 2s: go minimizes each new interesting input for up to 60 s by default,
# and reports no progress meanwhile; FuzzVLANForward's inputs (frame batches) spent most
# of a 2-minute run there, at "0 execs/sec" (20 s: 0-1 new inputs; with 1 s: 15).
define fuzz-all
	@echo "fuzzing every target for $(1), $(FUZZJOBS) at a time"; t0=$$(date +%s); \
	grep -r --include='*_test.go' -o '^func Fuzz[A-Za-z0-9_]*' . | \
	sed 's|^\(.*\)/[^/:]*:func \(.*\)|\1 \2|' | sort | \
	xargs -P $(FUZZJOBS) -L 1 sh -c '\
		log=$$(mktemp) start=$$(date +%s); \
		for try in 1 2; do \
			if $(GO) test -run "^\$$" -fuzz "^$$3\$$" -fuzztime "$$1" -fuzzminimizetime 2s -parallel 1 "$$2" >"$$log" 2>&1; then \
				echo "fuzz ok   $$2 $$3 ($$(($$(date +%s) - start)) s)"; rm -f "$$log"; exit 0; \
			fi; \
			grep -q "context deadline exceeded" "$$log" || break; \
			grep -q -e "Failing input written" -e "failure while testing seed corpus" -e "panic:" -e "hung or terminated" "$$log" && break; \
			if [ $$try = 2 ]; then \
				echo "fuzz ok   $$2 $$3: context deadline exceeded twice, no input failed (go.dev/issue/75804)"; rm -f "$$log"; exit 0; \
			fi; \
			echo "fuzz again $$2 $$3: context deadline exceeded, no input failed (go.dev/issue/75804)"; \
		done; \
		cat "$$log"; \
		in=$$(sed -n -e "s|.*Failing input written to \(.*\)|$$2/\1|p" \
			-e "s|.*failure while testing seed corpus entry: $$3/\(seed#.*\)|\1 (an f.Add seed)|p" \
			-e "s|.*failure while testing seed corpus entry: $$3/\(.*\)|$$2/testdata/fuzz/$$3/\1|p" "$$log" | head -n 1); \
		rm -f "$$log"; \
		echo "FAIL fuzz $$2 $$3: failing input $${in:-not saved (see the output above)}"; \
		exit 1' fuzz $(1) || { echo "make: some fuzz targets failed (FAIL lines above)"; exit 1; }; \
	echo "fuzzing done in $$(($$(date +%s) - t0)) s"
endef

bench: build
	$(GO) test -run '^$$' -bench . -benchmem ./switchcore/...
	$(GO) run ./bench -ours bin/vde_switch -debian /usr/bin/vde_switch -rounds 5 -out BENCHMARKS.md
	$(GO) run ./bench -ours bin/vde_switch -ours-args --noflowcontrol -debian /usr/bin/vde_switch -rounds 5 -only switch -out BENCHMARKS-noflowcontrol.md
	$(GO) run ./bench -ours bin/vde_switch -debian /usr/bin/vde_switch -rounds 3 -only slirp -daemons -out BENCHMARKS-daemons.md

# The reliability tests (faults, floods, hostile clients) at soak scale; writes RELIABILITY.md.
soak: build
	$(GO) run ./bench/soak -out RELIABILITY.md

# The default LAN: a switch on /tmp/vde.ctl (vdeplug's default switch, so `vde_plug` and
# `qemu -netdev vde,id=n0` need no path) with a slirp router on it: DHCP from 10.0.2.15,
# gateway and host loopback at 10.0.2.2, DNS at 10.0.2.3. ^C stops both.
run: build
	@trap 'trap - EXIT; kill $$(cat /tmp/vde.pid 2>/dev/null) 2>/dev/null; exit 0' EXIT INT TERM; \
	bin/vde_switch -d -s /tmp/vde.ctl -M /tmp/vde.mgmt -p /tmp/vde.pid && \
	echo "switch: /tmp/vde.ctl, console /tmp/vde.mgmt; ^C stops the LAN" && \
	bin/slirpvde -s /tmp/vde.ctl -dhcp

install: build
	install -d $(BINDIR)
	install -m 0755 bin/vde $(BINDIR)/vde
	@for l in $(LINKS); do echo "ln -sfn vde $(BINDIR)/$$l"; ln -sfn vde $(BINDIR)/$$l; done
	@# Manual pages, rendered from the option tables the parsers use (a name without
	@# a page fails here); an alias's page sources its program's (.so).
	@set -e; install -d $(MANDIR)/man1 $(MANDIR)/man7; \
	for p in vde:1 $(LINKS:=:1) $(MAN1:=:1) $(MAN7:=:7); do \
		n=$${p%:*} s=$${p#*:}; echo "bin/vde --man $$n >$(MANDIR)/man$$s/$$n.$$s"; \
		bin/vde --man $$n >$(MANDIR)/man$$s/$$n.$$s.new; chmod 0644 $(MANDIR)/man$$s/$$n.$$s.new; \
		mv -f $(MANDIR)/man$$s/$$n.$$s.new $(MANDIR)/man$$s/$$n.$$s; \
	done
	@# Shell completions from the same tables: one bash file, linked under every name.
	@set -e; install -d $(BASHCOMPDIR) $(ZSHCOMPDIR); \
	echo "bin/vde --completion bash >$(BASHCOMPDIR)/vde"; bin/vde --completion bash >$(BASHCOMPDIR)/vde; \
	echo "bin/vde --completion zsh >$(ZSHCOMPDIR)/_vde"; bin/vde --completion zsh >$(ZSHCOMPDIR)/_vde; \
	chmod 0644 $(BASHCOMPDIR)/vde $(ZSHCOMPDIR)/_vde; \
	for l in $(LINKS); do ln -sfn vde $(BASHCOMPDIR)/$$l; done
	@set -e; install -d $(UNITDIR); for u in $(UNITS); do \
		echo "install contrib/systemd/$$u $(UNITDIR)/$$u"; \
		sed 's|@BINDIR@|$(PREFIX)/bin|g' contrib/systemd/$$u >$(UNITDIR)/$$u.new; \
		chmod 0644 $(UNITDIR)/$$u.new; mv -f $(UNITDIR)/$$u.new $(UNITDIR)/$$u; \
	done; \
	if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
	@# The ifupdown hooks (vde2-switch, vde2-slirp, vde2-plug in /etc/network/interfaces).
	@# On the real system a hook of Debian's vde2 package goes aside first (dpkg-divert
	@# --rename to vde2.distrib, which run-parts skips), so exactly one hook runs.
	@set -e; for d in if-pre-up.d if-post-down.d; do \
		f=$(DESTDIR)/etc/network/$$d/vde2; \
		if [ -z "$(DESTDIR)" ] && command -v dpkg-divert >/dev/null && \
		   [ "$$(dpkg-divert --listpackage $$f)" != vde-go ] && dpkg-query -S $$f >/dev/null 2>&1; then \
			echo "dpkg-divert --package vde-go --rename --divert $$f.distrib --add $$f"; \
			dpkg-divert --package vde-go --rename --divert $$f.distrib --add $$f; \
		fi; \
		echo "install ifupdown/$$d-vde2 $$f"; \
		install -d $(DESTDIR)/etc/network/$$d; \
		sed 's|^exec vde |exec $(PREFIX)/bin/vde |' ifupdown/$$d-vde2 >$$f.vde-go-new; \
		chmod 0755 $$f.vde-go-new; mv -f $$f.vde-go-new $$f; \
	done
	@# The system group and user the hooks run things as (Debian's vde2 package makes
	@# them too); a mark records that we made them, for uninstall.
	@set -e; if [ -z "$(DESTDIR)" ]; then \
		made=; \
		if ! getent group vde2-net >/dev/null; then \
			echo "groupadd --system vde2-net"; groupadd --system vde2-net; made=1; \
		fi; \
		if ! getent passwd vde2-net >/dev/null; then \
			echo "useradd --system --gid vde2-net --home-dir /var/run/vde2 --no-create-home --shell /usr/sbin/nologin vde2-net"; \
			useradd --system --gid vde2-net --home-dir /var/run/vde2 --no-create-home --shell /usr/sbin/nologin vde2-net; made=1; \
		fi; \
		if [ -n "$$made" ]; then install -d $(PREFIX)/lib/vde; touch $(PREFIX)/lib/vde/vde2-net.made; fi; \
	fi

# `vde capture` as a Wireshark extcap: a VDE switch's ports join Wireshark's interface list
# (the switches whose management sockets are in /run/vde2, /var/run/vde2 or /tmp, named
# *.mgmt, or named by VDE_CAPTURE_MGMT). Not part of install: Wireshark's folder is
# outside PREFIX.
install-extcap:
	install -d $(EXTCAPDIR)
	printf '#!/bin/sh\n# Installed by vde-go'"'"'s make install-extcap: Wireshark'"'"'s extcap for VDE switches.\nexec %s capture "$$@"\n' '$(EXTCAP_VDE)' >$(EXTCAPDIR)/vde-capture.new
	chmod 0755 $(EXTCAPDIR)/vde-capture.new
	mv -f $(EXTCAPDIR)/vde-capture.new $(EXTCAPDIR)/vde-capture

uninstall-extcap:
	@f=$(EXTCAPDIR)/vde-capture; \
	if [ -f $$f ] && grep -q "Installed by vde-go's make install-extcap" $$f; then echo "rm $$f"; rm -f $$f; fi

# Only links that point at our vde go, so that nothing else of that name is removed; only
# hooks that run vde ifup-hook; Debian's hooks come back; vde2-net goes if install made it.
uninstall: uninstall-extcap
	@for l in $(LINKS); do \
		if [ "$$(readlink $(BINDIR)/$$l)" = vde ]; then echo "rm $(BINDIR)/$$l"; rm -f $(BINDIR)/$$l; fi; \
	done
	rm -f $(BINDIR)/vde
	@for p in vde:1 $(LINKS:=:1) $(MAN1:=:1) $(MAN7:=:7); do \
		f=$(MANDIR)/man$${p#*:}/$${p%:*}.$${p#*:}; \
		if [ -f $$f ] && grep -q '^.." Generated by .vde --man' $$f; then echo "rm $$f"; rm -f $$f; fi; \
	done
	@for l in $(LINKS); do [ "$$(readlink $(BASHCOMPDIR)/$$l)" != vde ] || rm -f $(BASHCOMPDIR)/$$l; done
	@for f in $(BASHCOMPDIR)/vde $(ZSHCOMPDIR)/_vde; do \
		if [ -f $$f ] && grep -q 'Generated by .vde --completion' $$f; then echo "rm $$f"; rm -f $$f; fi; \
	done
	@for u in $(UNITS); do \
		f=$(UNITDIR)/$$u; \
		if [ -f $$f ] && grep -q "Installed by vde-go's make install" $$f; then echo "rm $$f"; rm -f $$f; fi; \
	done
	@for d in if-pre-up.d if-post-down.d; do \
		f=$(DESTDIR)/etc/network/$$d/vde2; \
		if [ -f $$f ] && grep -q 'vde ifup-hook$$' $$f; then echo "rm $$f"; rm -f $$f; fi; \
		if [ -z "$(DESTDIR)" ] && command -v dpkg-divert >/dev/null && \
		   [ "$$(dpkg-divert --listpackage $$f)" = vde-go ]; then \
			echo "dpkg-divert --package vde-go --rename --remove $$f"; \
			dpkg-divert --package vde-go --rename --remove $$f; \
		fi; \
	done
	@if [ -z "$(DESTDIR)" ] && [ -f $(PREFIX)/lib/vde/vde2-net.made ]; then \
		if getent passwd vde2-net >/dev/null; then echo "userdel vde2-net"; userdel vde2-net || true; fi; \
		if getent group vde2-net >/dev/null; then echo "groupdel vde2-net"; groupdel vde2-net || true; fi; \
		rm -f $(PREFIX)/lib/vde/vde2-net.made; rmdir $(PREFIX)/lib/vde 2>/dev/null || true; \
	fi

clean:
	rm -rf bin
