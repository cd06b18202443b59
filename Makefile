# sensd: build, install and test.
#
#   make                      release build (Swift runtime linked statically)
#   make install DESTDIR=DIR PREFIX=/usr
#   make check                every test tier: unit, integration (private bus), end-to-end (real logind)
#   make demo                 sensd in a throwaway container with a real logind, printing live events
#
# `check` and `demo` install what they need from Debian's archive first (root required).

PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
SBINDIR    ?= $(PREFIX)/sbin
UNITDIR    ?= $(PREFIX)/lib/systemd/system
DOCDIR     ?= $(PREFIX)/share/doc/sensd
DESTDIR    ?=

SWIFT      ?= swift
PYTHON     ?= /usr/bin/python3
RELEASE_FLAGS = -c release --static-swift-stdlib
RELEASE_DIR   = $(shell $(SWIFT) build $(RELEASE_FLAGS) --show-bin-path 2>/dev/null)
E2E_STAGE  ?= $(CURDIR)/.build-e2e/stage

.PHONY: all build install uninstall deps test-deps check unit-and-integration e2e demo clean

all: build

build:
	$(SWIFT) build $(RELEASE_FLAGS) --product sensd
	$(SWIFT) build $(RELEASE_FLAGS) --product sensctl

install: build
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(DOCDIR)
	install -m 0755 -s $(RELEASE_DIR)/sensd $(DESTDIR)$(SBINDIR)/sensd
	install -m 0755 -s $(RELEASE_DIR)/sensctl $(DESTDIR)$(BINDIR)/sensctl
	sed -e 's|/usr/sbin/sensd|$(SBINDIR)/sensd|g' -e 's|/usr/share/doc/sensd|$(DOCDIR)|g' packaging/sensd.service > $(DESTDIR)$(UNITDIR)/sensd.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/sensd.service
	install -m 0644 README.md docs/protocol.md $(DESTDIR)$(DOCDIR)/

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/sensd $(DESTDIR)$(BINDIR)/sensctl $(DESTDIR)$(UNITDIR)/sensd.service
	rm -rf $(DESTDIR)$(DOCDIR)

# Build dependencies only.
deps:
	scripts/install-deps.sh build

# Everything the test tiers and the demo use.
test-deps:
	scripts/install-deps.sh build test

check: test-deps
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory unit-and-integration && \
	$(MAKE) --no-print-directory e2e && \
	echo "make check: every tier passed in $$(( $$(date +%s) - start )) s"

unit-and-integration:
	$(SWIFT) build --build-tests
	$(SWIFT) test

# The installed daemon under systemd, against a real logind, with real PAM logins.
e2e:
	rm -rf $(E2E_STAGE)
	$(MAKE) --no-print-directory install DESTDIR=$(E2E_STAGE) PREFIX=/usr
	$(PYTHON) -m pytest -v -p no:cacheprovider tests/e2e --stage $(E2E_STAGE)

demo: test-deps
	rm -rf $(E2E_STAGE)
	$(MAKE) --no-print-directory install DESTDIR=$(E2E_STAGE) PREFIX=/usr
	$(PYTHON) tests/e2e/demo.py --stage $(E2E_STAGE)

clean:
	rm -rf .build .build-e2e
