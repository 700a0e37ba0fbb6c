# ppfwd / libproxyproto - the front door.
#
#   make            build the library, ppfwd and the tests into build/
#   make run        install what is missing, build, show the demo
#   make test       install what is missing, build, run every test (ASan + UBSan)
#   make bench      PROXY header parse/build benchmark, side by side with Go peers
#   make fuzz       run the libFuzzer targets for FUZZ_SECONDS each (default 300)
#   make install    PREFIX=/usr/local DESTDIR=
#   make static     a fully static ppfwd (musl) into build/static/ppfwd
#   make image      the container image FROM scratch (Containerfile) with podman
#   make deb        Debian packages ppfwd, libproxyproto0, libproxyproto-dev
#                   into build/deb/ (dpkg-buildpackage in a copy of the tree)
#
# Everything is built out of tree in build/: build/ for the optimised
# objects, build/asan/ for the sanitizer build the tests run against, and
# build/fuzz/ for the clang fuzz targets.

CC ?= cc
CLANG ?= clang
AR ?= ar
PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
FUZZ_SECONDS ?= 300
FUZZ_TEST_SECONDS ?= 30

VERSION := 0.1.0
SOMAJOR := 0

B := build
WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	-Wpointer-arith -Wcast-qual -Wwrite-strings -Wformat=2 -Wvla
# The loop's io_uring backend (src/loop/loop_uring.c) when liburing is there
# (liburing-dev: scripts/deps.sh build); without it (the musl static build)
# the loop is epoll only.
URING_LIBS := $(shell pkg-config --libs liburing 2>/dev/null)
URING_DEF := $(if $(URING_LIBS),-DHAVE_URING)
CSTD := -std=c11 -D_DEFAULT_SOURCE
OPT ?= -O2 -g
CFLAGS_ALL := $(CSTD) $(WARN) $(OPT) $(URING_DEF) -Iinclude -Isrc $(CPPFLAGS) $(CFLAGS)
SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
CFLAGS_ASAN := $(CSTD) $(WARN) -O1 -g $(SAN) $(URING_DEF) -Iinclude -Isrc $(CFLAGS)

LIB_SRC := $(sort $(wildcard src/lib/*.c))
# The daemon, one folder per layer: loop (the event loop), util (small shared
# helpers: addresses, CIDR, JSON, logging), config (the key table, YAML and
# URLs, the command line), engine (routes, TCP, UDP, balancing, health,
# metrics, the server), cmd (main and the commands check, decode, encode,
# whoami). Sources include each other as "layer/file.h" from src/.
DAEMON_DIRS := loop util config provider engine cmd
DAEMON_SRC := $(sort $(foreach d,$(DAEMON_DIRS),$(wildcard src/$(d)/*.c)))
TEST_SRC := $(sort $(wildcard tests/unit/test_*.c))
# C integration tests: they start the ppfwd binary ($$PPFWD).
ITEST_SRC := $(sort $(wildcard tests/integration/test_*.c))
TEST_COMMON := $(sort $(wildcard tests/common/*.c))
FUZZ_SRC := $(sort $(wildcard fuzz/fuzz_*.c))
BENCH_SRC := $(sort $(wildcard bench/bench_*.c))

LIB_OBJ := $(LIB_SRC:%.c=$(B)/obj/%.o)
LIB_OBJ_ASAN := $(LIB_SRC:%.c=$(B)/asan/obj/%.o)
DAEMON_OBJ := $(DAEMON_SRC:%.c=$(B)/obj/%.o)
DAEMON_OBJ_ASAN := $(DAEMON_SRC:%.c=$(B)/asan/obj/%.o)
# Everything of the daemon but main(), for the unit tests of its modules.
DAEMON_LIB_OBJ_ASAN := $(filter-out %/main.o,$(DAEMON_OBJ_ASAN))
DAEMON_LIBS := -lyaml -lcurl -ljson-c -pthread $(URING_LIBS)
COMMON_OBJ_ASAN := $(TEST_COMMON:%.c=$(B)/asan/obj/%.o)
TEST_BIN := $(TEST_SRC:tests/unit/%.c=$(B)/asan/tests/%)
ITEST_BIN := $(ITEST_SRC:tests/integration/%.c=$(B)/asan/itests/%)
FUZZ_BIN := $(FUZZ_SRC:fuzz/%.c=$(B)/fuzz/%)
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(B)/bench/%)

STATIC := $(B)/libproxyproto.a
SHARED := $(B)/libproxyproto.so.$(VERSION)
STATIC_ASAN := $(B)/asan/libproxyproto.a
DAEMON_ASAN := $(B)/asan/libppfwd.a

.PHONY: all lib ppfwd tests deps-build deps-run deps-test deps-fuzz deps-bench run test \
	bench fuzz deb deps-deb static deps-static image \
	deps-image install uninstall clean format
.DELETE_ON_ERROR:
.SECONDARY: $(COMMON_OBJ_ASAN)

# The test binaries need cmocka: a plain `make` installs it when missing, so
# the front door works on a fresh machine (a no-op when it is installed).
all: deps-build
	$(MAKE) lib $(B)/ppfwd tests $(B)/proxyproto.pc

lib: $(STATIC) $(SHARED)

# ---- library ----------------------------------------------------------------

$(B)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) -fPIC -fvisibility=hidden -fno-semantic-interposition -MMD -MP -c $< -o $@

$(B)/asan/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ASAN) -MMD -MP -c $< -o $@

$(STATIC): $(LIB_OBJ)
	@mkdir -p $(@D)
	rm -f $@ && $(AR) rcs $@ $^

$(SHARED): $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,libproxyproto.so.$(SOMAJOR) -o $@ $^ $(LDFLAGS)
	ln -sf libproxyproto.so.$(VERSION) $(B)/libproxyproto.so.$(SOMAJOR)
	ln -sf libproxyproto.so.$(SOMAJOR) $(B)/libproxyproto.so

$(STATIC_ASAN): $(LIB_OBJ_ASAN)
	@mkdir -p $(@D)
	rm -f $@ && $(AR) rcs $@ $^

$(B)/proxyproto.pc: proxyproto.pc.in Makefile
	@mkdir -p $(@D)
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' -e 's|@VERSION@|$(VERSION)|g' $< > $@

# ---- daemon -----------------------------------------------------------------

$(B)/ppfwd: $(DAEMON_OBJ) $(STATIC)
	$(CC) $(CFLAGS_ALL) -o $@ $(DAEMON_OBJ) $(STATIC) $(DAEMON_LIBS) $(LDFLAGS)

$(B)/asan/ppfwd: $(DAEMON_OBJ_ASAN) $(STATIC_ASAN)
	$(CC) $(CFLAGS_ASAN) -o $@ $(DAEMON_OBJ_ASAN) $(STATIC_ASAN) $(DAEMON_LIBS) $(LDFLAGS)

$(DAEMON_ASAN): $(DAEMON_LIB_OBJ_ASAN)
	@mkdir -p $(@D)
	rm -f $@ && $(AR) rcs $@ $^

# ---- tests (cmocka, ASan + UBSan) -------------------------------------------

tests: $(TEST_BIN) $(ITEST_BIN) $(B)/asan/ppfwd $(B)/hex2bin $(B)/no_uring

$(B)/asan/tests/%: tests/unit/%.c $(COMMON_OBJ_ASAN) $(DAEMON_ASAN) $(STATIC_ASAN)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ASAN) -Isrc/lib -Isrc -Itests/common -MMD -MP -o $@ $< \
	    $(COMMON_OBJ_ASAN) $(DAEMON_ASAN) $(STATIC_ASAN) -lcmocka $(DAEMON_LIBS) $(LDFLAGS)

$(B)/asan/itests/%: tests/integration/%.c $(COMMON_OBJ_ASAN) $(DAEMON_ASAN) $(STATIC_ASAN)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ASAN) -Isrc -Itests/common -MMD -MP -o $@ $< \
	    $(COMMON_OBJ_ASAN) $(DAEMON_ASAN) $(STATIC_ASAN) -lcmocka $(DAEMON_LIBS) $(LDFLAGS)

$(B)/hex2bin: tests/tools/hex2bin.c tests/common/vectors.c tests/common/vectors.h \
		include/proxyproto.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) -Itests/common -o $@ $(filter %.c,$^)

# Runs a program with io_uring refused by a seccomp filter (EPERM), for
# tests/integration/test_uring_refused.py: the loop's fallback to epoll.
$(B)/no_uring: tests/tools/no_uring.c tests/common/nouring.c tests/common/nouring.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) -Itests/common -o $@ $(filter %.c,$^)

# ---- fuzz (clang libFuzzer) -------------------------------------------------

$(B)/fuzz/%: fuzz/%.c $(wildcard fuzz/*.h) $(LIB_SRC) $(wildcard src/lib/*.h) include/proxyproto.h
	@mkdir -p $(@D)
	$(CLANG) $(CSTD) -O1 -g -fsanitize=fuzzer,address,undefined -Iinclude -Isrc/lib \
	    -o $@ $< $(LIB_SRC)

$(B)/fuzz/corpus.stamp: $(B)/hex2bin $(wildcard tests/vectors/*/*.hex)
	rm -rf $(B)/fuzz/corpus && mkdir -p $(B)/fuzz/corpus
	for f in tests/vectors/*/*.hex; do \
	    n=$$(basename $$(dirname $$f))-$$(basename $$f .hex); \
	    $(B)/hex2bin < $$f > $(B)/fuzz/corpus/$$n || exit 1; \
	done
	touch $@

# ---- bench ------------------------------------------------------------------

$(B)/bench/%: bench/%.c $(STATIC)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(STATIC) $(LDFLAGS)

# The echo backends also have an io_uring loop (-u, compared with their epoll
# one by bench/uring.sh), and the floor relay an io_uring accept/connect/close
# path (-r, bench/floor.sh's relay-ring), when liburing is there (liburing-dev:
# scripts/deps.sh bench); without it they are built without -u and -r, which
# then say so.
URING_BENCH := $(B)/bench/bench_tcp_echo $(B)/bench/bench_udp_echo $(B)/bench/bench_tcp_relay
$(URING_BENCH): $(B)/bench/%: bench/%.c bench/bench_uring.h $(STATIC)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) $(if $(URING_LIBS),-DHAVE_URING) -o $@ $< $(STATIC) $(URING_LIBS) $(LDFLAGS)

# ---- front-door targets -----------------------------------------------------

deps-build:
	@scripts/deps.sh build
deps-run:
	@scripts/deps.sh run
deps-test:
	@scripts/deps.sh test
deps-fuzz:
	@scripts/deps.sh fuzz
deps-bench:
	@scripts/deps.sh bench
deps-deb:
	@scripts/deps.sh deb
deps-static:
	@scripts/deps.sh static
deps-image:
	@scripts/deps.sh image

run: deps-run
	$(MAKE) lib $(B)/ppfwd
	@scripts/demo.sh $(B)/ppfwd

test: deps-test
	$(MAKE) lib $(B)/ppfwd tests $(B)/proxyproto.pc $(FUZZ_BIN) $(B)/fuzz/corpus.stamp
	@FUZZ_TEST_SECONDS=$(FUZZ_TEST_SECONDS) scripts/run-tests.sh $(B)

fuzz: deps-fuzz $(FUZZ_BIN) $(B)/fuzz/corpus.stamp
	@for f in $(FUZZ_BIN); do \
	    echo "== $$f for $(FUZZ_SECONDS)s"; \
	    mkdir -p $(B)/fuzz/work-$$(basename $$f); \
	    $$f -max_total_time=$(FUZZ_SECONDS) -dict=fuzz/pp.dict -print_final_stats=1 \
	        $(B)/fuzz/work-$$(basename $$f) $(B)/fuzz/corpus || exit 1; \
	done

bench: deps-bench
	$(MAKE) $(BENCH_BIN) $(B)/ppfwd
	@bench/run.sh $(B)

# A fully static ppfwd, for FROM-scratch images: musl (Debian's musl-tools),
# whose resolver reads /etc/hosts and /etc/resolv.conf itself (no NSS
# modules to load, unlike a static glibc), and libyaml built with musl-gcc
# from Debian's source package (scripts/static-deps.sh). The daemon's
# sources are compiled as they are, with src/compat/musl.h force-included;
# -Wno-sign-compare because musl's struct msghdr has POSIX's int msg_iovlen
# where glibc has size_t.
STATIC_DIR := $(B)/static
MUSL_CC ?= musl-gcc
CFLAGS_MUSL := $(CSTD) $(WARN) -Wno-sign-compare -O2 -Iinclude -Isrc \
	-I$(STATIC_DIR)/libyaml/include -DYAML_DECLARE_STATIC -include src/compat/musl.h \
	-idirafter $(STATIC_DIR)/kernel-include
# The container provider needs libcurl and json-c, which Debian ships for
# glibc only: the static build has src/compat/docker_none.c in their place
# (--docker says it is not built in).
STATIC_DAEMON_SRC := $(filter-out src/provider/docker.c src/provider/docker_api.c \
	src/provider/docker_json.c,$(DAEMON_SRC)) src/compat/docker_none.c
STATIC_OBJ := $(patsubst %.c,$(STATIC_DIR)/obj/%.o,$(LIB_SRC) $(STATIC_DAEMON_SRC) \
	src/compat/arc4random.c)

static: deps-static
	$(MAKE) $(STATIC_DIR)/ppfwd

$(STATIC_DIR)/libyaml/lib/libyaml.a:
	scripts/static-deps.sh $(STATIC_DIR)

$(STATIC_DIR)/obj/%.o: %.c src/compat/musl.h | $(STATIC_DIR)/libyaml/lib/libyaml.a
	@mkdir -p $(@D)
	$(MUSL_CC) $(CFLAGS_MUSL) -MMD -MP -c $< -o $@

$(STATIC_DIR)/ppfwd: $(STATIC_OBJ) $(STATIC_DIR)/libyaml/lib/libyaml.a
	$(MUSL_CC) -static -s -o $@ $(STATIC_OBJ) $(STATIC_DIR)/libyaml/lib/libyaml.a -pthread

# The container image (Containerfile): IMAGE_BIN=source compiles ppfwd in a
# Debian 12 build stage, host takes build/static/ppfwd, auto (default) is
# source when the base image can be had and host otherwise.
IMAGE ?= localhost/ppfwd:$(VERSION)
IMAGE_BIN ?= auto
image: deps-image static
	scripts/image.sh $(IMAGE) $(IMAGE_BIN)

# Debian packages. dpkg-buildpackage runs in a copy of the tree under
# build/deb/, because the package's clean step is `make clean` (which would
# remove this build/) and it writes its output to the parent directory; the
# .deb, .buildinfo and .changes files end up in build/deb/, then lintian
# checks them (errors fail the target; warnings are printed).
DEB_DIR := $(B)/deb
deb: deps-deb
	rm -rf $(DEB_DIR) && mkdir -p $(DEB_DIR)/src/ppfwd-$(VERSION)
	tar -c --exclude=./build --exclude=./.git . | tar -x -C $(DEB_DIR)/src/ppfwd-$(VERSION)
	cd $(DEB_DIR)/src/ppfwd-$(VERSION) && dpkg-buildpackage -b -us -uc -jauto
	mv $(DEB_DIR)/src/*.deb $(DEB_DIR)/src/*.buildinfo $(DEB_DIR)/src/*.changes $(DEB_DIR)/
	rm -rf $(DEB_DIR)/src
	lintian --fail-on error $(DEB_DIR)/*.changes

# Operations files: examples, the systemd unit (its ExecStart follows BINDIR).
install uninstall: DOCDIR ?= $(PREFIX)/share/doc/ppfwd
install uninstall: SYSTEMDDIR ?= $(PREFIX)/lib/systemd/system

install: lib $(B)/ppfwd $(B)/proxyproto.pc
	install -d $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(BINDIR) \
	    $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3 $(DESTDIR)$(MANDIR)/man5 \
	    $(DESTDIR)$(DOCDIR)/examples $(DESTDIR)$(SYSTEMDDIR)
	install -m 644 include/proxyproto.h $(DESTDIR)$(INCLUDEDIR)/
	install -m 644 $(STATIC) $(DESTDIR)$(LIBDIR)/
	install -m 755 $(SHARED) $(DESTDIR)$(LIBDIR)/
	ln -sf libproxyproto.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libproxyproto.so.$(SOMAJOR)
	ln -sf libproxyproto.so.$(SOMAJOR) $(DESTDIR)$(LIBDIR)/libproxyproto.so
	install -m 644 $(B)/proxyproto.pc $(DESTDIR)$(LIBDIR)/pkgconfig/
	install -m 755 $(B)/ppfwd $(DESTDIR)$(BINDIR)/
	install -m 644 docs/ppfwd.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 644 docs/proxyproto.3 $(DESTDIR)$(MANDIR)/man3/
	install -m 644 docs/ppfwd.yaml.5 $(DESTDIR)$(MANDIR)/man5/
	install -m 644 examples/*.yaml examples/*.yml $(DESTDIR)$(DOCDIR)/examples/
	sed 's|/usr/local/bin/ppfwd|$(BINDIR)/ppfwd|g' dist/ppfwd.service \
	    > $(DESTDIR)$(SYSTEMDDIR)/ppfwd.service
	chmod 644 $(DESTDIR)$(SYSTEMDDIR)/ppfwd.service

uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/proxyproto.h $(DESTDIR)$(LIBDIR)/libproxyproto.* \
	    $(DESTDIR)$(LIBDIR)/pkgconfig/proxyproto.pc $(DESTDIR)$(BINDIR)/ppfwd \
	    $(DESTDIR)$(MANDIR)/man1/ppfwd.1 $(DESTDIR)$(MANDIR)/man3/proxyproto.3 \
	    $(DESTDIR)$(MANDIR)/man5/ppfwd.yaml.5 $(DESTDIR)$(SYSTEMDDIR)/ppfwd.service
	rm -rf $(DESTDIR)$(DOCDIR)/examples
	-rmdir $(DESTDIR)$(DOCDIR) 2>/dev/null

format:
	clang-format -i include/*.h src/*/*.[ch] tests/*/*.[ch] fuzz/*.[ch] bench/*.c

clean:
	rm -rf $(B)

-include $(shell find $(B) -name '*.d' 2>/dev/null)
