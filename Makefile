# vde: one multicall binary; the C tools' names are symbolic links to it.

GO      ?= go
PREFIX  ?= /usr/local
DESTDIR ?=
VERSION ?= 2.3.2-go
BINDIR  := $(DESTDIR)$(PREFIX)/bin

# The names the binary answers to (see `bin/vde --list`); each becomes a link to vde.
LINKS := vde_switch vde_plug vde_plug2tap slirpvde dpipe vdeq vdeqemu unixterm

LDFLAGS := -X github.com/vde-go/vde/applets.Version=$(VERSION)

.PHONY: all build test bench run install uninstall clean

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

bench: build
	$(GO) test -run '^$$' -bench . -benchmem ./switchcore/...
	$(GO) run ./bench -ours bin/vde_switch -debian /usr/bin/vde_switch -rounds 5 -out BENCHMARKS.md

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

# Only links that point at our vde go, so that nothing else of that name is removed.
uninstall:
	@for l in $(LINKS); do \
		if [ "$$(readlink $(BINDIR)/$$l)" = vde ]; then echo "rm $(BINDIR)/$$l"; rm -f $(BINDIR)/$$l; fi; \
	done
	rm -f $(BINDIR)/vde

clean:
	rm -rf bin
