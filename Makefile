# sensd: build, install and test.
#
#   make                      release build (Swift runtime linked statically)
#   make install DESTDIR=DIR PREFIX=/usr
#   make deb                  a Debian package of exactly what `make install PREFIX=/usr` installs
#   make check                every test tier: unit, integration (private bus), end-to-end (real logind);
#                             the client library's documentation and example build on the way
#   make distro-build         what Swift 6.0 builds, built and tested with Debian 13's own swiftlang 6.0.3, offline
#   make docs                 the SENSClient library's DocC documentation
#   make soak                 the end-to-end fault scenarios SOAK_RUNS times (20), a fresh container each
#   make demo                 sensd in a throwaway container with a real logind, printing live events
#
# `check` and `demo` install what they need from Debian's archive first (root required).

PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
SBINDIR    ?= $(PREFIX)/sbin
UNITDIR    ?= $(PREFIX)/lib/systemd/system
DOCDIR     ?= $(PREFIX)/share/doc/sensd
MANDIR     ?= $(PREFIX)/share/man
CATALOGDIR ?= $(PREFIX)/lib/systemd/catalog
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR ?= $(PREFIX)/share/zsh/vendor-completions
FISHCOMPDIR ?= $(PREFIX)/share/fish/vendor_completions.d
SYSCONFDIR ?= /etc
HOOKSDIR   ?= $(PREFIX)/lib/sensd/hooks.d
LIBEXECDIR ?= $(PREFIX)/libexec/sensd
PAMCONFIGDIR ?= $(PREFIX)/share/pam-configs
DESTDIR    ?=
VERSION    := $(shell sed -n 's/.*static let version = "\(.*\)"/\1/p' Sources/SENSCore/Release.swift)
# The date in the man pages: the last commit's, so that a build is reproducible.
MANDATE    := $(shell git log -1 --format=%cs 2>/dev/null || date -u +%F)

SWIFT      ?= swift
PYTHON     ?= /usr/bin/python3
RELEASE_FLAGS = -c release --static-swift-stdlib
RELEASE_DIR   = $(shell $(SWIFT) build $(RELEASE_FLAGS) --show-bin-path 2>/dev/null)
E2E_STAGE  ?= $(CURDIR)/.build-e2e/stage

.PHONY: all build man install uninstall deb deps test-deps check unit-and-integration distro-build examples docs client-surface api-check formats-check e2e soak bench bench-programs bench-smoke demo clean

all: build

build:
	$(SWIFT) build $(RELEASE_FLAGS) --product sensd
	$(SWIFT) build $(RELEASE_FLAGS) --product sensctl
	$(SWIFT) build $(RELEASE_FLAGS) --product sensd-hooks
	$(SWIFT) build $(RELEASE_FLAGS) --product sensd-exporter
	$(SWIFT) build $(RELEASE_FLAGS) --product sensd-pam-report

# sensd(8) and sensctl(1) from the programs' own --help, by swift-argument-parser's generate-manual tool
# (built with the same flags, so that the programs are not rebuilt without the static runtime, as its
# package plugin would); the protocol as sensd-protocol(7) from docs/protocol.md.
man: build
	$(SWIFT) build $(RELEASE_FLAGS) --product generate-manual
	mkdir -p .build/man
	$(RELEASE_DIR)/generate-manual $(RELEASE_DIR)/sensd --section 8 --date $(MANDATE) --output-directory .build/man
	$(RELEASE_DIR)/generate-manual $(RELEASE_DIR)/sensctl --section 1 --date $(MANDATE) --output-directory .build/man
	$(RELEASE_DIR)/generate-manual $(RELEASE_DIR)/sensd-hooks --section 8 --date $(MANDATE) --output-directory .build/man
	$(RELEASE_DIR)/generate-manual $(RELEASE_DIR)/sensd-exporter --section 8 --date $(MANDATE) --output-directory .build/man
	$(PYTHON) scripts/md2man.py docs/hooks.md sensd.hook 5 $(MANDATE) "rule files for sensd-hooks: what to run on which session events" > .build/man/sensd.hook.5
	$(PYTHON) scripts/md2man.py docs/protocol.md sensd-protocol 7 $(MANDATE) "the sensd subscriber protocol: lines, events, requests, resuming, durability" > .build/man/sensd-protocol.7

install: build man
	@if ldd $(RELEASE_DIR)/sensd $(RELEASE_DIR)/sensctl $(RELEASE_DIR)/sensd-hooks $(RELEASE_DIR)/sensd-exporter $(RELEASE_DIR)/sensd-pam-report | grep -q libswiftCore; then \
		echo "install: the programs are linked to a shared Swift runtime; refusing to install them" >&2; exit 1; fi
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(DOCDIR) $(DESTDIR)$(CATALOGDIR) $(DESTDIR)$(SYSUSERSDIR) \
		$(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man7 $(DESTDIR)$(MANDIR)/man8 \
		$(DESTDIR)$(SYSCONFDIR)/sensd/hooks.d $(DESTDIR)$(HOOKSDIR) $(DESTDIR)$(DOCDIR)/examples \
		$(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(FISHCOMPDIR) $(DESTDIR)$(LIBEXECDIR) $(DESTDIR)$(PAMCONFIGDIR)
	install -m 0755 -s $(RELEASE_DIR)/sensd $(DESTDIR)$(SBINDIR)/sensd
	install -m 0755 -s $(RELEASE_DIR)/sensd-pam-report $(DESTDIR)$(LIBEXECDIR)/sensd-pam-report
	sed -e 's|/usr/libexec/sensd|$(LIBEXECDIR)|g' packaging/pam-configs/sensd-failed-logons > $(DESTDIR)$(PAMCONFIGDIR)/sensd-failed-logons
	chmod 0644 $(DESTDIR)$(PAMCONFIGDIR)/sensd-failed-logons
	install -m 0755 -s $(RELEASE_DIR)/sensctl $(DESTDIR)$(BINDIR)/sensctl
	install -m 0755 -s $(RELEASE_DIR)/sensd-hooks $(DESTDIR)$(SBINDIR)/sensd-hooks
	install -m 0755 -s $(RELEASE_DIR)/sensd-exporter $(DESTDIR)$(BINDIR)/sensd-exporter
	for unit in sensd.service sensd.socket sensd-failures.socket sensd-hooks.service sensd-exporter.service sensd-exporter.socket sensd-exporter-textfile.service; do \
		sed -e 's|/usr/sbin/sensd|$(SBINDIR)/sensd|g' -e 's|/usr/bin/sensd-exporter|$(BINDIR)/sensd-exporter|g' \
			-e 's|/usr/share/doc/sensd|$(DOCDIR)|g' packaging/$$unit > $(DESTDIR)$(UNITDIR)/$$unit && \
		chmod 0644 $(DESTDIR)$(UNITDIR)/$$unit; done
	install -m 0644 packaging/sensd.catalog $(DESTDIR)$(CATALOGDIR)/sensd.catalog
	install -m 0644 packaging/sensd.sysusers $(DESTDIR)$(SYSUSERSDIR)/sensd.conf
	install -m 0644 README.md docs/protocol.md docs/upgrades.md docs/systemd-versions.md docs/hooks.md docs/monitoring.md docs/siem.md $(DESTDIR)$(DOCDIR)/
	install -m 0644 docs/examples/*.hook $(DESTDIR)$(DOCDIR)/examples/
	install -m 0644 .build/man/sensd.8 $(DESTDIR)$(MANDIR)/man8/sensd.8
	install -m 0644 .build/man/sensctl.1 $(DESTDIR)$(MANDIR)/man1/sensctl.1
	install -m 0644 .build/man/sensd-protocol.7 $(DESTDIR)$(MANDIR)/man7/sensd-protocol.7
	install -m 0644 .build/man/sensd-hooks.8 $(DESTDIR)$(MANDIR)/man8/sensd-hooks.8
	install -m 0644 .build/man/sensd.hook.5 $(DESTDIR)$(MANDIR)/man5/sensd.hook.5
	install -m 0644 .build/man/sensd-exporter.8 $(DESTDIR)$(MANDIR)/man8/sensd-exporter.8
	$(RELEASE_DIR)/sensctl --generate-completion-script bash > $(DESTDIR)$(BASHCOMPDIR)/sensctl
	$(RELEASE_DIR)/sensctl --generate-completion-script zsh > $(DESTDIR)$(ZSHCOMPDIR)/_sensctl
	$(RELEASE_DIR)/sensctl --generate-completion-script fish > $(DESTDIR)$(FISHCOMPDIR)/sensctl.fish
	$(RELEASE_DIR)/sensd-exporter --generate-completion-script bash > $(DESTDIR)$(BASHCOMPDIR)/sensd-exporter
	$(RELEASE_DIR)/sensd-exporter --generate-completion-script zsh > $(DESTDIR)$(ZSHCOMPDIR)/_sensd-exporter
	$(RELEASE_DIR)/sensd-exporter --generate-completion-script fish > $(DESTDIR)$(FISHCOMPDIR)/sensd-exporter.fish

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/sensd $(DESTDIR)$(BINDIR)/sensctl $(DESTDIR)$(UNITDIR)/sensd.service $(DESTDIR)$(UNITDIR)/sensd.socket
	rm -f $(DESTDIR)$(UNITDIR)/sensd-failures.socket $(DESTDIR)$(LIBEXECDIR)/sensd-pam-report $(DESTDIR)$(PAMCONFIGDIR)/sensd-failed-logons
	-rmdir $(DESTDIR)$(LIBEXECDIR)
	rm -f $(DESTDIR)$(SBINDIR)/sensd-hooks $(DESTDIR)$(UNITDIR)/sensd-hooks.service $(DESTDIR)$(MANDIR)/man8/sensd-hooks.8 $(DESTDIR)$(MANDIR)/man5/sensd.hook.5
	rm -f $(DESTDIR)$(BINDIR)/sensd-exporter $(DESTDIR)$(UNITDIR)/sensd-exporter.service $(DESTDIR)$(UNITDIR)/sensd-exporter.socket \
		$(DESTDIR)$(UNITDIR)/sensd-exporter-textfile.service $(DESTDIR)$(MANDIR)/man8/sensd-exporter.8 \
		$(DESTDIR)$(BASHCOMPDIR)/sensd-exporter $(DESTDIR)$(ZSHCOMPDIR)/_sensd-exporter $(DESTDIR)$(FISHCOMPDIR)/sensd-exporter.fish
	-rmdir $(DESTDIR)$(HOOKSDIR) $(DESTDIR)$(SYSCONFDIR)/sensd/hooks.d
	rm -f $(DESTDIR)$(CATALOGDIR)/sensd.catalog $(DESTDIR)$(SYSUSERSDIR)/sensd.conf $(DESTDIR)$(MANDIR)/man8/sensd.8 $(DESTDIR)$(MANDIR)/man1/sensctl.1 $(DESTDIR)$(MANDIR)/man7/sensd-protocol.7
	rm -f $(DESTDIR)$(BASHCOMPDIR)/sensctl $(DESTDIR)$(ZSHCOMPDIR)/_sensctl $(DESTDIR)$(FISHCOMPDIR)/sensctl.fish
	rm -rf $(DESTDIR)$(DOCDIR)

# A Debian package of `make install PREFIX=/usr`, with maintainer scripts that enable and start the
# service, stop it on removal and clean up its state on purge.
DEB_ROOT = $(CURDIR)/.build-deb/root
deb:
	rm -rf $(DEB_ROOT)
	$(MAKE) --no-print-directory install DESTDIR=$(DEB_ROOT) PREFIX=/usr
	gzip -9n $(DEB_ROOT)/usr/share/man/man*/*
	install -d $(DEB_ROOT)/DEBIAN
	sed -e 's/@VERSION@/$(VERSION)/' -e "s/@ARCH@/$$(dpkg --print-architecture)/" \
		-e "s/@SIZE@/$$(du -sk --exclude=DEBIAN $(DEB_ROOT) | cut -f1)/" packaging/debian/control.in > $(DEB_ROOT)/DEBIAN/control
	install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm $(DEB_ROOT)/DEBIAN/
	dpkg-deb --root-owner-group --build $(DEB_ROOT) sensd_$(VERSION)_$$(dpkg --print-architecture).deb

# Build dependencies only.
deps:
	scripts/install-deps.sh build

# Everything the test tiers and the demo use.
test-deps:
	scripts/install-deps.sh build test

check: test-deps
	scripts/install-deps.sh bench
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory unit-and-integration && \
	$(MAKE) --no-print-directory distro-build && \
	$(MAKE) --no-print-directory docs && \
	$(MAKE) --no-print-directory client-surface && \
	$(MAKE) --no-print-directory api-check && \
	$(MAKE) --no-print-directory formats-check && \
	$(MAKE) --no-print-directory bench-smoke && \
	$(MAKE) --no-print-directory e2e && \
	echo "make check: every tier passed in $$(( $$(date +%s) - start )) s"

unit-and-integration:
	$(SWIFT) build --build-tests
	$(SWIFT) test

# What builds with Swift 6.0 (Package.swift; sensd where a swift-log before 1.11 is at hand) built and tested with Debian 13's
# own swiftlang 6.0.3 in a Debian 13 container with no network, as a distribution's offline build would.
distro-build: test-deps
	scripts/distro-build.sh

# The SENSClient example, a package outside sensd's that depends on it by path, as a program elsewhere
# would; built as it would be shipped (static runtime), and run by the end-to-end tier.
EXAMPLE_DIR = $(CURDIR)/Examples/SeatRelease
EXAMPLE_BIN = $(EXAMPLE_DIR)/.build/release/seat-release
examples:
	$(SWIFT) build --package-path $(EXAMPLE_DIR) $(RELEASE_FLAGS)

# The SENSClient library's DocC documentation, .build/docs/SENSClient.doccarchive (`docc preview` or any
# static web server shows it). A link to a symbol that does not exist fails the build.
DOCC ?= docc
# The symbol graphs are kept with the build that emits them: an up-to-date module emits none, and a
# second `make docs` in a working tree found them deleted.
SYMBOLS = $(CURDIR)/.build-docs/symbol-graphs
docs:
	rm -rf $(SYMBOLS)/SENSClient .build/docs && mkdir -p $(SYMBOLS)/all $(SYMBOLS)/SENSClient .build/docs
	$(SWIFT) build --scratch-path .build-docs --target SENSClient \
		-Xswiftc -emit-symbol-graph -Xswiftc -emit-symbol-graph-dir -Xswiftc $(SYMBOLS)/all
	cp $(SYMBOLS)/all/SENSClient.symbols.json $(SYMBOLS)/SENSClient/
	$(DOCC) convert Sources/SENSClient/SENSClient.docc --additional-symbol-graph-dir $(SYMBOLS)/SENSClient \
		--fallback-display-name SENSClient --fallback-bundle-identifier org.sensd.SENSClient \
		--warnings-as-errors --output-path .build/docs/SENSClient.doccarchive

# SENSClient from a package outside sensd's: its API builds, sensd's own parts cannot be named.
client-surface:
	SWIFT=$(SWIFT) scripts/check-client-surface.sh

# SENSClient's public API against the commit that set it: a change that would break a program compiled
# against it fails here (swift-api-digester), until the baseline is moved in a commit that says why. Adding
# is always allowed (docs/protocol.md, "The client library"). The baseline is the 1.0 surface: 590e2bc, where
# EventKind and LogonType became structs (before: 4e8e8ea).
SENSCLIENT_API_BASELINE ?= 590e2bcf2d15cdf5e3dc2aaf3934fd2e1e1c3f6c
api-check:
	SWIFT=$(SWIFT) scripts/api-check.sh $(SENSCLIENT_API_BASELINE)

# sensctl's ECS and OCSF output (tests/formats) against the schemas: OCSF's own, as the ocsf-json-schema
# package publishes it, with jsonschema; both from PyPI, into a virtual environment in .build.
FORMATS_VENV = $(CURDIR)/.build/formats-venv
formats-check:
	$(SWIFT) build --product sensctl
	test -x $(FORMATS_VENV)/bin/python || $(PYTHON) -m venv --system-site-packages $(FORMATS_VENV)
	$(FORMATS_VENV)/bin/python -m pip install --quiet --disable-pip-version-check ocsf-json-schema==1.2.0 'jsonschema>=4.18'
	SENSCTL=$$($(SWIFT) build --show-bin-path)/sensctl $(FORMATS_VENV)/bin/python -m pytest -q -p no:cacheprovider tests/formats

# The benchmark (BENCHMARKS.md): every configuration side by side, results in bench/results/latest.*.
# Not part of `check`; its smoke run (tiny sizes, fails on any lost or wrong event) is.
bench-programs:
	$(SWIFT) build $(RELEASE_FLAGS) --product sensd
	$(SWIFT) build $(RELEASE_FLAGS) --product logind-standin
	$(SWIFT) build $(RELEASE_FLAGS) --product sensd-bench

bench:
	scripts/install-deps.sh build test bench
	$(MAKE) --no-print-directory bench-programs
	$(MAKE) --no-print-directory deb
	$(PYTHON) bench/run.py --real-logind-stage $(DEB_ROOT)

bench-smoke: bench-programs
	$(PYTHON) bench/run.py --smoke --out $(CURDIR)/.build/bench-smoke

# The installed daemon under systemd, against a real logind, with real PAM logins, on each Debian release
# in E2E_SUITES: 12 (systemd 252), 13 (systemd 257) and testing (forky; systemd 262 in the archive snapshot).
# The package's own tree is the stage: the tier tests exactly what `make deb` ships, once laid over the
# container's root (as `make install` would) and once installed with apt.
E2E_SUITES ?= bookworm trixie forky
e2e: bench-programs examples
	$(MAKE) --no-print-directory deb
	@for suite in $(E2E_SUITES); do \
		echo "e2e: Debian $$suite"; \
		SENSD_E2E_SUITE=$$suite $(PYTHON) -m pytest -v -p no:cacheprovider tests/e2e --stage $(DEB_ROOT) \
			--deb $(CURDIR)/sensd_$(VERSION)_$$(dpkg --print-architecture).deb --bench $(RELEASE_DIR)/sensd-bench \
			--example $(EXAMPLE_BIN) || exit 1; \
	done

# The fault scenarios (kill -9 mid-burst, sessions that begin and end while sensd is down, logind restart with
# closing sessions, a stopped subscriber) run again and again, each run on a freshly booted container:
# reorderings and races that one run in `check` rarely meets. A busy loop per core at normal priority runs
# beside them (SOAK_LOAD=no for a quiet machine): a real host is rarely idle when things go wrong. Any
# duplicate, missing or user-less Logoff fails the run; the tally is printed at the end.
SOAK_RUNS ?= 20
SOAK_LOAD ?= yes
soak: test-deps bench-programs examples
	$(MAKE) --no-print-directory deb
	@passed=0; failed=0; start=$$(date +%s); burners=""; \
	if [ "$(SOAK_LOAD)" = yes ]; then \
		for core in $$(seq 1 $$(nproc)); do sh -c 'while :; do :; done' & burners="$$burners $$!"; done; \
		echo "soak: $$(nproc) busy loops beside the container (pids$$burners)"; \
	fi; \
	trap 'kill $$burners 2>/dev/null' EXIT INT TERM; \
	for i in $$(seq 1 $(SOAK_RUNS)); do \
		echo "soak: run $$i of $(SOAK_RUNS)"; \
		if $(PYTHON) -m pytest -q -p no:cacheprovider tests/e2e/test_durability.py \
			-k "kill_dash_nine or logind_restart or stopped_subscriber or while_sensd_is_down" \
			--stage $(DEB_ROOT) --deb $(CURDIR)/sensd_$(VERSION)_$$(dpkg --print-architecture).deb \
			--bench $(RELEASE_DIR)/sensd-bench --example $(EXAMPLE_BIN) > .build/soak-$$i.log 2>&1; \
		then passed=$$((passed + 1)); else failed=$$((failed + 1)); echo "soak: run $$i failed, see .build/soak-$$i.log"; fi; \
	done; \
	echo "soak: $$passed passed, $$failed failed in $$(( $$(date +%s) - start )) s$$([ -n "$$burners" ] && echo ', under load')"; \
	test $$failed -eq 0

demo: test-deps
	rm -rf $(E2E_STAGE)
	$(MAKE) --no-print-directory install DESTDIR=$(E2E_STAGE) PREFIX=/usr
	$(PYTHON) tests/e2e/demo.py --stage $(E2E_STAGE)

clean:
	rm -rf .build .build-e2e .build-deb .build-surface sensd_*.deb
