# quoterd build. `make` builds everything into build/; `make test` runs
# every test; `make run` serves the bundled sample quotes; SANITIZE=1
# builds into build-san/ with AddressSanitizer and UBSan; `make install`
# (PREFIX, DESTDIR) installs, `make deb` builds the Debian package.

# The included makefiles define targets of their own: without this the
# first of them, not the programs, would be what a plain `make` builds.
.DEFAULT_GOAL := all

SANITIZE ?= 0
ifeq ($(SANITIZE),1)
BUILD ?= build-san
SANFLAGS = -fsanitize=address,undefined -fno-sanitize-recover=all \
	-fno-omit-frame-pointer
else
BUILD ?= build
SANFLAGS =
endif

CC ?= cc
# V=1 shows each command in full.
ifeq ($(V),1)
Q =
else
Q = @
endif
PKGS = grpc libprotobuf-c lmdb libxxhash libcrypto libmicrohttpd libutf8proc \
	zlib
# Expanded on first use, so pkg-config runs only once `make deps` has run,
# and then only once: `pkg-config grpc` takes most of a second, and
# plain recursive variables ran it again for every file compiled.
lazy = $(eval $(1) := $$(shell pkg-config $(2)))$($(1))
PKG_CFLAGS = $(call lazy,PKG_CFLAGS,--cflags $(PKGS))
PKG_LIBS = $(call lazy,PKG_LIBS,--libs $(PKGS))
IMPORT_LIBS = $(call lazy,IMPORT_LIBS,--libs libprotobuf-c lmdb libxxhash libutf8proc)
CMOCKA_LIBS = $(call lazy,CMOCKA_LIBS,--libs cmocka)

CFLAGS ?= -O2 -g
# Every program's --version; debian/changelog's upstream version matches.
VERSION = 0.1.0
ALL_CFLAGS = -std=gnu11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
	-Wmissing-prototypes -D_GNU_SOURCE -DQUOTERD_VERSION='"$(VERSION)"' $(CPPFLAGS) $(CFLAGS) $(SANFLAGS) \
	-Isrc/common -Isrc/store -Isrc/worker -Isrc/metrics -I$(BUILD)/gen \
	$(PKG_CFLAGS) -MMD -MP
ALL_LDFLAGS = $(LDFLAGS) $(SANFLAGS)

GRPC_PROTO_DIR = /usr/share/grpc-proto
obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
genobj = $(patsubst $(BUILD)/gen/%.c,$(BUILD)/obj/gen/%.o,$(1))

# Generated at build time, never committed.
GEN = $(BUILD)/gen/quote_service.pb-c.c
HEALTH_GEN = $(BUILD)/gen/grpc/health/v1/health.pb-c.c
GEN_H = $(GEN:.c=.h) $(HEALTH_GEN:.c=.h)
GEN_OBJ = $(call genobj,$(GEN))
HEALTH_OBJ = $(call genobj,$(HEALTH_GEN))

COMMON = src/common/log.c src/common/utf8.c src/common/rng.c src/common/config.c \
	src/common/handoff.c src/common/metrics.c src/common/tls.c \
	src/common/scoreboard.c src/common/words.c src/common/channel.c
STORE = src/store/store.c src/store/filter.c src/store/verify.c \
	src/store/verify_pages.c src/store/checksum.c src/store/postings.c
MASTER = src/master/main.c src/master/master.c src/master/proc.c \
	src/master/swap.c src/master/certs.c src/master/accept.c \
	src/master/daemon.c src/master/check.c src/master/reload.c \
	src/master/listen.c src/master/notify.c
WORKER = src/worker/worker.c src/worker/arena.c src/worker/call.c src/worker/conn.c \
	src/worker/db.c src/worker/page.c src/worker/server.c \
	src/worker/service.c src/worker/stream.c
METRICS = src/metrics/httpd.c src/metrics/exposition.c

# $(call c_array,NAME,WHO): the recipe that writes $@ as the C array NAME
# (and NAME_len) of $<'s bytes. No xxd: od is in coreutils. The extern
# lines declare what they define, for -Wmissing-variable-declarations.
c_array = { echo '/* Generated from $(notdir $<) by $(2). */'; \
	echo '\#include <stddef.h>'; \
	echo 'extern const unsigned char $(1)[];'; \
	echo 'extern const size_t $(1)_len;'; \
	echo 'const unsigned char $(1)[] = {'; \
	od -An -v -tx1 $< | sed 's/ *\([0-9a-f][0-9a-f]\)/0x\1,/g'; \
	echo '};'; \
	echo 'const size_t $(1)_len = sizeof($(1));'; } >$@.tmp && \
	mv $@.tmp $@

include src/worker/reflection.mk

IMPORT_OBJS = $(call obj,tools/quotes-import.c tools/import_parse.c \
	tools/import_index.c src/common/utf8.c src/common/words.c \
	src/store/checksum.c src/store/postings.c) $(GEN_OBJ)
# sort: the reflection objects share some of these.
QUOTERD_OBJS = $(sort $(call obj,$(MASTER) $(WORKER) $(METRICS) $(STORE) $(COMMON)) \
	$(GEN_OBJ) $(HEALTH_OBJ) $(REFLECTION_OBJS))
QUOTE_OBJS = $(call obj,src/client/quote.c) $(GEN_OBJ)

PROGS = $(BUILD)/quotes-import $(BUILD)/quoterd $(BUILD)/quote
UNIT_TESTS = $(BUILD)/tests/test_store $(BUILD)/tests/test_verify \
	$(BUILD)/tests/test_utf8 \
	$(BUILD)/tests/test_rng $(BUILD)/tests/test_quotes_import \
	$(BUILD)/tests/test_config $(BUILD)/tests/test_reflection \
	$(BUILD)/tests/test_metrics $(BUILD)/tests/test_wire \
	$(BUILD)/tests/test_log $(BUILD)/tests/test_words \
	$(BUILD)/tests/test_postings $(BUILD)/tests/test_channel

UNIT_TESTS += $(BUILD)/tests/test_import_index

.PHONY: all deps test unit-test integration-test fuzz-replay fuzz run bench \
	clean format format-check install uninstall deb cluster
all: $(PROGS)

deps:
	@sh scripts/deps.sh

$(GEN): proto/quote_service.proto
	@mkdir -p $(@D)
	protoc-c --c_out=$(@D) -Iproto $<
$(HEALTH_GEN): $(GRPC_PROTO_DIR)/grpc/health/v1/health.proto
	@mkdir -p $(BUILD)/gen
	protoc-c --c_out=$(BUILD)/gen -I$(GRPC_PROTO_DIR) grpc/health/v1/health.proto
$(GEN:.c=.h): $(GEN)
$(HEALTH_GEN:.c=.h): $(HEALTH_GEN)

$(GEN_OBJ) $(HEALTH_OBJ): $(BUILD)/obj/gen/%.o: $(BUILD)/gen/%.c $(GEN_H)
	@mkdir -p $(@D)
	@echo "  CC      $@"
	$(Q)$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/obj/%.o: %.c $(GEN_H)
	@mkdir -p $(@D)
	@echo "  CC      $@"
	$(Q)$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/quotes-import: $(IMPORT_OBJS)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(IMPORT_LIBS)
$(BUILD)/quoterd: $(QUOTERD_OBJS)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)
$(BUILD)/quote: $(QUOTE_OBJS)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

# bench/floor.c: gRPC core alone, the floor under quoterd's cost a call.
$(BUILD)/floor: $(call obj,bench/floor.c)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/tests/test_store: $(call obj,tests/test_store.c tests/testutil.c $(STORE) $(COMMON)) $(GEN_OBJ)
$(BUILD)/tests/test_verify: $(call obj,tests/test_verify.c tests/testutil.c $(STORE) $(COMMON)) $(GEN_OBJ)
$(BUILD)/tests/test_utf8: $(call obj,tests/test_utf8.c src/common/utf8.c)
$(BUILD)/tests/test_rng: $(call obj,tests/test_rng.c src/common/rng.c)
$(BUILD)/tests/test_channel: $(call obj,tests/test_channel.c src/common/channel.c)
$(BUILD)/tests/test_words: $(call obj,tests/test_words.c src/common/words.c)
$(BUILD)/tests/test_postings: $(call obj,tests/test_postings.c src/store/postings.c \
	src/common/rng.c)
$(BUILD)/tests/test_import_index: $(call obj,tests/test_import_index.c \
	tests/testutil.c tools/import_index.c $(STORE) $(COMMON)) $(GEN_OBJ)
$(BUILD)/tests/test_quotes_import: $(call obj,tests/test_quotes_import.c tests/testutil.c $(STORE) $(COMMON)) $(GEN_OBJ)
$(BUILD)/tests/test_config: $(call obj,tests/test_config.c src/common/config.c src/common/log.c \
	src/common/tls.c src/common/utf8.c)
$(BUILD)/tests/test_metrics: $(call obj,tests/test_metrics.c src/common/metrics.c src/metrics/exposition.c)
$(BUILD)/tests/test_wire: $(call obj,tests/test_wire.c src/worker/wire.c src/common/utf8.c) \
	$(GEN_OBJ) $(REFLECTION_GEN_OBJS)
$(call obj,tests/test_wire.c): $(REFLECTION_GEN_H)
$(BUILD)/tests/test_log: $(call obj,tests/test_log.c src/common/log.c src/common/utf8.c)
$(BUILD)/tests/%:
	@mkdir -p $(@D)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS) $(CMOCKA_LIBS)

# bench/verify.c: how long store_verify() takes on given files.
$(BUILD)/verify-time: $(call obj,bench/verify.c $(STORE) src/common/utf8.c \
	src/common/rng.c src/common/words.c) $(GEN_OBJ)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

# Tests find the programs and data through these.
TEST_ENV = QUOTERD_BUILD=$(abspath $(BUILD)) QUOTERD_SRC=$(CURDIR) \
	QUOTERD_SANITIZE=$(SANITIZE)

test: deps
	@$(MAKE) --no-print-directory format-check unit-test fuzz-replay \
		integration-test

unit-test: $(PROGS) $(UNIT_TESTS)
	@set -e; for t in $(UNIT_TESTS); do \
		echo "== $$t"; $(TEST_ENV) $$t; done

integration-test: $(PROGS)
	$(TEST_ENV) /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/integration

run: deps
	@$(MAKE) --no-print-directory all
	$(BUILD)/quotes-import -o $(BUILD)/quotes.mdb etc/quotes.txt
	exec $(BUILD)/quoterd -c etc/quoterd.conf --db $(BUILD)/quotes.mdb \
		--listen 127.0.0.1:5050 --pidfile $(BUILD)/quoterd.pid

# Several hosts behind nginx on this machine, in the foreground until
# Ctrl-C: `make cluster CLUSTER_ARGS="-n 5"` (see scripts/cluster --help).
CLUSTER_ARGS ?= -n 3
cluster: deps
	@$(MAKE) --no-print-directory all
	QUOTERD_BUILD=$(abspath $(BUILD)) exec scripts/cluster $(CLUSTER_ARGS)

# Fuzz targets (libFuzzer, clang): tests/fuzz/fuzz_NAME.c, built from the
# sources listed in FUZZ_SRC_NAME, with a seed corpus in
# tests/fuzz/corpus/NAME/. `make fuzz` runs each for FUZZ_TIME seconds
# (new inputs go to $(BUILD)/fuzz/corpus/NAME/, crashes to $(BUILD)/fuzz/);
# `make fuzz-replay`, part of `make test`, runs every committed input once.
FUZZ_CC ?= clang
FUZZ_BUILD = $(BUILD)/fuzz
FUZZ_TIME ?= 60
FUZZ_CFLAGS = -std=gnu11 -g -O1 -D_GNU_SOURCE -DQUOTERD_FUZZ \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	-Isrc/common -Isrc/store -Isrc/worker -Itools -I$(BUILD)/gen $(PKG_CFLAGS)
FUZZ_SRC_utf8 = src/common/utf8.c
FUZZ_SRC_store = $(STORE) src/common/utf8.c src/common/rng.c \
	src/common/words.c $(GEN)
FUZZ_SRC_import = tools/import_parse.c src/common/utf8.c
# fuzz_request drives every method's handler over a small database of
# its own, imported from tests/fuzz/request-db/ and embedded as a C array.
FUZZ_SRC_request = src/worker/wire.c src/worker/reflection.c \
	src/worker/service.c src/worker/page.c src/worker/db.c \
	src/worker/arena.c $(STORE) src/common/utf8.c src/common/words.c \
	src/common/rng.c $(GEN) $(HEALTH_GEN) $(REFLECTION_GEN_C) \
	$(FUZZ_BUILD)/request_db.c
FUZZ_REQUEST_DB = tests/fuzz/request-db/wisdom.txt tests/fuzz/request-db/wit.txt
$(FUZZ_BUILD)/request.mdb: $(FUZZ_REQUEST_DB) $(BUILD)/quotes-import
	@mkdir -p $(@D)
	$(Q)$(BUILD)/quotes-import -q -o $@ --tag wisdom \
		tests/fuzz/request-db/wisdom.txt --tag wit \
		tests/fuzz/request-db/wit.txt
$(FUZZ_BUILD)/request_db.c: $(FUZZ_BUILD)/request.mdb
	@echo "  GEN     $@"
	$(Q)$(call c_array,fuzz_request_db,the Makefile)
FUZZ_TARGETS = $(sort $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c)))
FUZZ_BINS = $(addprefix $(FUZZ_BUILD)/fuzz_,$(FUZZ_TARGETS))

.SECONDEXPANSION:
$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c $$(FUZZ_SRC_$$*) $(GEN_H)
	@mkdir -p $(@D)
	@echo "  FUZZ    $@"
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_SRC_$*) $(PKG_LIBS) $(FUZZ_LIBS_$*)

fuzz-replay: $(FUZZ_BINS)
	@set -e; for t in $(FUZZ_TARGETS); do \
		echo "== fuzz_$$t: replaying tests/fuzz/corpus/$$t"; \
		$(FUZZ_BUILD)/fuzz_$$t -runs=0 tests/fuzz/corpus/$$t \
			2>$(FUZZ_BUILD)/replay-$$t.log || \
			{ cat $(FUZZ_BUILD)/replay-$$t.log; exit 1; }; \
		tail -1 $(FUZZ_BUILD)/replay-$$t.log; done

# Each run's progress goes to $(FUZZ_BUILD)/fuzz_NAME.log: shown whole if
# the target fails, else only its last line.
fuzz: $(FUZZ_BINS)
	@set -e; for t in $(FUZZ_TARGETS); do \
		mkdir -p $(FUZZ_BUILD)/corpus/$$t; \
		echo "== fuzz_$$t: $(FUZZ_TIME) s"; \
		$(FUZZ_BUILD)/fuzz_$$t -max_total_time=$(FUZZ_TIME) \
			-artifact_prefix=$(FUZZ_BUILD)/fuzz_$$t- \
			$(FUZZ_BUILD)/corpus/$$t tests/fuzz/corpus/$$t \
			>$(FUZZ_BUILD)/fuzz_$$t.log 2>&1 || \
			{ cat $(FUZZ_BUILD)/fuzz_$$t.log; exit 1; }; \
		tail -1 $(FUZZ_BUILD)/fuzz_$$t.log; done

# Benchmarks are measurements, not tests: run by hand. Results go to
# $(BUILD)/bench/; `make bench UPDATE=1` replaces the committed ones in
# bench/ instead.
ifeq ($(UPDATE),1)
BENCH_OUT = bench
else
BENCH_OUT = $(BUILD)/bench
endif
bench:
	@sh scripts/deps.sh bench
	@$(MAKE) --no-print-directory all $(BUILD)/floor
	@mkdir -p $(BENCH_OUT)
	QUOTERD_BUILD=$(abspath $(BUILD)) /usr/bin/python3 bench/run.py \
		--out $(BENCH_OUT)/RESULTS.md $(BENCH_ARGS)

# Installation, by GNU and Debian conventions: `make install PREFIX=/usr
# DESTDIR=/tmp/root` stages a tree for a package. An existing
# quoterd.conf is never overwritten, and uninstall keeps one that was
# changed. Uninstall removes the directories only quoterd uses
# (SYSCONFDIR/quoterd, STATEDIR) once empty, whoever emptied them, and
# keeps them with anything in them; shared ones (bin, man1, the unit
# directory) stay, since it cannot know whether it made them.
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
SBINDIR ?= $(PREFIX)/sbin
MANDIR ?= $(PREFIX)/share/man
# /usr's configuration lives in /etc, any other prefix's under it.
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
UNITDIR ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
# The compiled-in database path and the unit's StateDirectory= name it.
STATEDIR ?= /var/lib/quoterd
INSTALL ?= install
CONF = $(DESTDIR)$(SYSCONFDIR)/quoterd/quoterd.conf
MAN1 = man/quote.1 man/quotes-import.1
MAN5 = man/quoterd.conf.5
MAN8 = man/quoterd.8

install: all
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR) \
		$(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 \
		$(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(SYSCONFDIR)/quoterd \
		$(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(STATEDIR)
	$(INSTALL) -m 755 $(BUILD)/quoterd $(DESTDIR)$(SBINDIR)/quoterd
	$(INSTALL) -m 755 $(BUILD)/quotes-import $(BUILD)/quote $(DESTDIR)$(BINDIR)/
	$(INSTALL) -m 644 $(MAN1) $(DESTDIR)$(MANDIR)/man1/
	$(INSTALL) -m 644 $(MAN5) $(DESTDIR)$(MANDIR)/man5/
	$(INSTALL) -m 644 $(MAN8) $(DESTDIR)$(MANDIR)/man8/
	@if [ -e $(CONF) ]; then echo "keeping the existing $(CONF)"; \
	else echo "$(INSTALL) -m 644 etc/quoterd.conf $(CONF)"; \
		$(INSTALL) -m 644 etc/quoterd.conf $(CONF); fi
	sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
		etc/quoterd.service.in >$(DESTDIR)$(UNITDIR)/quoterd.service
	chmod 644 $(DESTDIR)$(UNITDIR)/quoterd.service
	$(INSTALL) -m 644 etc/quoterd.sysusers $(DESTDIR)$(SYSUSERSDIR)/quoterd.conf

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/quoterd $(DESTDIR)$(BINDIR)/quotes-import \
		$(DESTDIR)$(BINDIR)/quote $(DESTDIR)$(UNITDIR)/quoterd.service \
		$(DESTDIR)$(SYSUSERSDIR)/quoterd.conf \
		$(addprefix $(DESTDIR)$(MANDIR)/man1/,$(notdir $(MAN1))) \
		$(addprefix $(DESTDIR)$(MANDIR)/man5/,$(notdir $(MAN5))) \
		$(addprefix $(DESTDIR)$(MANDIR)/man8/,$(notdir $(MAN8)))
	@if cmp -s etc/quoterd.conf $(CONF); then echo "rm -f $(CONF)"; \
		rm -f $(CONF); \
	elif [ -e $(CONF) ]; then echo "keeping the changed $(CONF)"; fi
	@for d in $(DESTDIR)$(SYSCONFDIR)/quoterd $(DESTDIR)$(STATEDIR); do \
		[ ! -d "$$d" ] || rmdir --ignore-fail-on-non-empty "$$d"; \
		[ ! -e "$$d" ] || echo "keeping $$d: it is not empty"; done

# The Debian package, built from a copy of the tracked files under
# $(DEB_DIR) (dpkg-buildpackage writes beside the source tree, so this
# keeps its output inside build/): $(DEB_DIR)/quoterd_*.deb.
DEB_DIR ?= $(BUILD)/deb
deb:
	rm -rf $(DEB_DIR)/src
	mkdir -p $(DEB_DIR)/src/quoterd
	git ls-files -z | xargs -0 sh -c 'for f; do [ ! -e "$$f" ] || \
		printf "%s\0" "$$f"; done' sh | \
		xargs -0 cp -P --parents -t $(DEB_DIR)/src/quoterd
	cd $(DEB_DIR)/src/quoterd && dpkg-buildpackage -us -uc -b -jauto
	mv $(DEB_DIR)/src/*.deb $(DEB_DIR)/
	rm -rf $(DEB_DIR)/src
	@ls $(DEB_DIR)/*.deb

# One formatter owns the C sources (.clang-format); generated files are
# not tracked, so not formatted.
FORMAT_FILES = $$(git ls-files '*.c' '*.h')
format:
	clang-format -i $(FORMAT_FILES)
format-check:
	clang-format --dry-run -Werror $(FORMAT_FILES)

clean:
	rm -rf build build-san

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
