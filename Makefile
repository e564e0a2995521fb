# vde: one multicall binary; the C tools' names are symbolic links to it.

GO      ?= go
PREFIX  ?= /usr/local
DESTDIR ?=
VERSION ?= 2.3.2-go
BINDIR  := $(DESTDIR)$(PREFIX)/bin

# The names the binary answers to (see `bin/vde --list`); each becomes a link to vde.
LINKS := vde_switch vde_plug vde_plug2tap slirpvde dpipe vdeq unixterm

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

# A switch in the foreground with its console on this terminal; "shutdown" or ^D ends it.
run: build
	bin/vde_switch -s /tmp/vde.ctl -M /tmp/vde.mgmt

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
