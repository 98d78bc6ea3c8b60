# sesgate build.
#
#   make                 build/sesgate (optimized, warnings are errors)
#   make SAN=1           build-san/sesgate with AddressSanitizer and UBSan
#                        (SAN=address or SAN=undefined for one of them)
#   make WERROR=0        warnings stay warnings (they are errors by default)
#   make unit            build and run the unit tests (always under ASan and UBSan)
#   make fuzz            build the libFuzzer targets (clang) into build-fuzz/
#   make check           the whole test suite (tests/run): format, unit, fuzz, integration
#   make deb             build/sesgate_VERSION_ARCH.deb, the Debian package (scripts/mkdeb)
#   make format          clang-format -i every C file; make format-check only reports
#
# Core modules do no I/O and read no clock; they are what the unit tests and
# fuzzers link. Shell modules own sockets, timers, processes and the clock.

CC      ?= cc
CLANG   ?= clang
PKGS    := libevent libevent_openssl libcurl hiredis jansson inih openssl expat

WERROR  ?= 1
WARN    := -Wall -Wextra -Wformat=2 -Wshadow -Wmissing-prototypes -Wstrict-prototypes \
           -Wwrite-strings -Wno-unused-parameter $(if $(filter 1,$(WERROR)),-Werror)
CSTD    := -std=c17 -D_GNU_SOURCE
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lhttp_parser -lm

CORE    := buf util form sigv4 reqcheck route sesreq seserr sesans rfc5322 addr config backoff fanout bulk copybody ratelimit sesmail sesbulk reply qview wbatch sns sesevent suplist smtp redisurl
SHELLM  := clock inflight log metrics httpd upstream resign redis redistls redisproc rscript queue worker supsync limiter front admin ops suppress main sandbox events relay feedback
VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)

# the sandbox's SNS publisher: its signing core and its shell
CORE    += snspub
SHELLM  += sandbox_sns
# the AWS credential chain: its decisions (core) and its provider (shell)
CORE    += awscreds
SHELLM  += creds
# the SMTP listener (SES's SMTP interface)
SHELLM  += smtpd
# Redis Sentinel: where the master is
SHELLM  += sentinel

ifeq ($(SAN),1)
BUILD   := build-san
OPT     := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
else ifeq ($(SAN),address)
BUILD   := build-asan
OPT     := -O1 -g -fno-omit-frame-pointer -fsanitize=address
else ifeq ($(SAN),undefined)
BUILD   := build-ubsan
OPT     := -O1 -g -fsanitize=undefined -fno-sanitize-recover=undefined
else
BUILD   := build
OPT     := -O2 -g
endif

CFLAGS_ALL = $(CSTD) $(WARN) $(OPT) $(PKG_CFLAGS) -DSESGATE_VERSION='"$(VERSION)"' -Isrc -I$(BUILD) -MMD -MP $(CFLAGS)

CORE_OBJ  := $(CORE:%=$(BUILD)/%.o)
SHELL_OBJ := $(SHELLM:%=$(BUILD)/%.o)

.PHONY: all unit fuzz check format format-check clean deb bench
# Objects built on the way to test binaries are kept, not rebuilt each time.
.SECONDARY:
all: $(BUILD)/sesgate

$(BUILD)/sesgate: $(CORE_OBJ) $(SHELL_OBJ)
	$(CC) $(OPT) -o $@ $^ $(PKG_LIBS) $(LDFLAGS)

$(BUILD)/%.o: src/%.c | $(BUILD)
	$(CC) $(CFLAGS_ALL) -c -o $@ $<

$(BUILD):
	mkdir -p $@

# The Redis scripts (src/lua), one C string constant each for rscript.c (scripts/embed-lua).
LUA_SRC := $(sort $(wildcard src/lua/*.lua))
$(BUILD)/lua_scripts.h: scripts/embed-lua $(LUA_SRC) | $(BUILD)
	scripts/embed-lua $@ $(LUA_SRC)
$(BUILD)/rscript.o: $(BUILD)/lua_scripts.h

# Unit tests: one binary per tests/unit/test_<module>.c, linked with the core
# only, always built with sanitizers.
UBUILD    := build-unit
UOPT      := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BIN  := $(UNIT_SRC:tests/unit/%.c=$(UBUILD)/%)
UCORE_OBJ := $(CORE:%=$(UBUILD)/%.o)
UCFLAGS    = $(CSTD) $(WARN) $(UOPT) $(PKG_CFLAGS) -DSESGATE_VERSION='"$(VERSION)"' -Isrc -Itests/unit -I$(UBUILD) -MMD -MP

$(UBUILD)/%.o: src/%.c | $(UBUILD)
	$(CC) $(UCFLAGS) -c -o $@ $<
$(UBUILD)/test_%: tests/unit/test_%.c $(UCORE_OBJ) tests/unit/check.h | $(UBUILD)
	$(CC) $(UCFLAGS) -o $@ $< $(UCORE_OBJ) $(PKG_LIBS)
# test_feedback drives the SNS endpoint on a real event loop: it links the
# shell modules it needs too.
UFEEDBACK_OBJ := $(addprefix $(UBUILD)/,$(addsuffix .o,feedback events rscript redis redistls sentinel upstream httpd clock log metrics inflight))
$(UBUILD)/lua_scripts.h: scripts/embed-lua $(LUA_SRC) | $(UBUILD)
	scripts/embed-lua $@ $(LUA_SRC)
$(UBUILD)/rscript.o: $(UBUILD)/lua_scripts.h
$(UBUILD)/test_feedback: tests/unit/test_feedback.c $(UCORE_OBJ) $(UFEEDBACK_OBJ) tests/unit/check.h | $(UBUILD)
	$(CC) $(UCFLAGS) -o $@ $< $(UFEEDBACK_OBJ) $(UCORE_OBJ) $(PKG_LIBS)
$(UBUILD):
	mkdir -p $@

# The rate limiter's oracle (src/ratelimit.c line by line), which
# tests/integration/test_limit_script.py runs beside src/lua/limit.lua.
$(UBUILD)/ratelimit_oracle: tests/unit/ratelimit_oracle.c $(UCORE_OBJ) | $(UBUILD)
	$(CC) $(UCFLAGS) -o $@ $< $(UCORE_OBJ) $(PKG_LIBS)

unit: $(UNIT_BIN) $(UBUILD)/ratelimit_oracle
	@set -e; for t in $(UNIT_BIN); do $$t; done

# Fuzzers: tests/fuzz/fuzz_<name>.c, libFuzzer + ASan + UBSan, linked with the core.
FBUILD    := build-fuzz
FOPT      := -O1 -g -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
FUZZ_SRC  := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN  := $(FUZZ_SRC:tests/fuzz/%.c=$(FBUILD)/%)
FCORE_OBJ := $(CORE:%=$(FBUILD)/%.o)
FCFLAGS    = $(CSTD) $(WARN) $(FOPT) $(PKG_CFLAGS) -DSESGATE_VERSION='"$(VERSION)"' -Isrc -MMD -MP

$(FBUILD)/%.o: src/%.c | $(FBUILD)
	$(CLANG) $(FCFLAGS) -c -o $@ $<
$(FBUILD)/fuzz_%: tests/fuzz/fuzz_%.c $(FCORE_OBJ) | $(FBUILD)
	$(CLANG) $(FCFLAGS) -fsanitize=fuzzer -o $@ $< $(FCORE_OBJ) $(PKG_LIBS)
$(FBUILD):
	mkdir -p $@

fuzz: $(FUZZ_BIN)

check:
	./tests/run

# Every benchmark in its short mode against this build (bench/all.sh;
# bench/README.md for the real runs).
bench: $(BUILD)/sesgate
	SESGATE_BIN=$(BUILD)/sesgate bench/all.sh

# The Debian package of the optimized build (scripts/mkdeb says what is in it).
deb: build/sesgate
	@scripts/mkdeb build/sesgate $(VERSION) build

C_FILES = $(wildcard src/*.c src/*.h tests/unit/*.c tests/unit/*.h tests/fuzz/*.c)
format:
	clang-format -i $(C_FILES)
format-check:
	clang-format --dry-run -Werror $(C_FILES)

clean:
	rm -rf build build-san build-asan build-ubsan build-unit build-fuzz

-include $(wildcard build/*.d build-san/*.d build-asan/*.d build-ubsan/*.d build-unit/*.d build-fuzz/*.d)
