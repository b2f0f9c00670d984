# payguard - build, test, run.
#
#   make          build every stage and the payguard command into bin/
#                 (only builds: the packages must be there)
#   make run      install what is missing, build, start the group on its
#                 embedded defaults and show it working (scripts/demo.sh)
#   make test     install what is missing, build, run every test
#                 (unit tests, the same under ASan+UBSan, fuzzers briefly,
#                 end-to-end, a short chaos run)
#   make tidy     the house style as a check (scripts/tidy.sh; in make test)
#   make deb      the Debian package: build/deb/payguard_<version>_<arch>.deb
#                 (scripts/deb.sh, dpkg-deb; tests/e2e/e2e_deb.sh installs it)
#   make chaos    the long chaos run (tests/e2e/chaos.sh)
#   make bench    install what is missing (nginx, fio and jq too), build,
#                 run the benchmarks (scripts/bench.sh; BENCH_N sizes them),
#                 write bench/results.md and bench/results.json; not part
#                 of make test
#   make bench-baseline  CPU per case against an older build, alternately
#                 (scripts/bench-baseline.sh, bench/results-baseline.md)
#   make bench-scale  cases/s by instance count (scripts/bench-scale.sh,
#                 bench/results-scale.md)
#   make soak     a long steady run: memory, restart time, disk per case
#                 over time (scripts/soak.sh, bench/results-soak.md)
#   make clean

SHELL   := /bin/bash
CC      ?= cc
PKGS    := libczmq libzmq msgpack libcrypto libcurl libmicrohttpd jansson sqlite3 libzstd
WARN    := -std=c11 -Wall -Wextra -Wswitch-enum -Werror
CPPFLAGS_ALL = -D_GNU_SOURCE -Icommon $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
CFLAGS  ?= -O2 -g
LDLIBS_ALL = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread
SAN     := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

STAGES  := ingest validate triage approve execute audit
COMMON_SRC := $(wildcard common/*.c)
PG_SRC     := $(wildcard payguard/*.c)
UNIT_SRC   := $(wildcard tests/unit/test_*.c)
TOOL_SRC   := $(wildcard tests/tools/*.c)
SANDBOX_SRC := $(wildcard sandbox/*.c)
FUZZ_SRC   := $(wildcard tests/fuzz/fuzz_*.c)
# a stage's modules besides main.c are unit-tested too
STAGE_LIB_SRC := $(filter-out %/main.c,$(foreach s,$(STAGES) console,$(wildcard $(s)/*.c)))
# and the pure parts of payguard's catch-up (query, page, state file); the
# command modules need the CLI's main.c and are tested end to end
STAGE_LIB_SRC += payguard/catchup.c

B := build
COMMON_OBJ := $(COMMON_SRC:%.c=$(B)/%.o)
PG_OBJ     := $(PG_SRC:%.c=$(B)/%.o)
UNIT_OBJ   := $(UNIT_SRC:%.c=$(B)/%.o) $(STAGE_LIB_SRC:%.c=$(B)/%.o)
TOOLS      := $(patsubst tests/tools/%.c,bin/%,$(TOOL_SRC))

BS := build-asan
ASAN_COMMON_OBJ := $(COMMON_SRC:%.c=$(BS)/%.o)
ASAN_UNIT_OBJ   := $(UNIT_SRC:%.c=$(BS)/%.o) $(STAGE_LIB_SRC:%.c=$(BS)/%.o)
FUZZ_BINS := $(patsubst tests/fuzz/%.c,bin/%,$(FUZZ_SRC))

.PHONY: all deps test-deps run test tidy deb unit unit-asan e2e e2e-asan e2e-run fuzz fuzz-short chaos bench bench-baseline bench-scale soak clean
.SECONDARY:
all: bin/payguard $(STAGES:%=bin/%) bin/console $(TOOLS) $(if $(SANDBOX_SRC),bin/pg-sandbox) bin/libpgfailsync.so bin/hooks/execute

deps:
	@sh scripts/install-deps.sh

# make test also needs the browser tests' Chromium and playwright-core
test-deps:
	@sh scripts/install-deps.sh test

# make tidy: the house style as a check (scripts/tidy.sh: layers, symbols
# defined once, .md references, clang-format, function length)
tidy: all
	@bash scripts/tidy.sh

# make deb: the programs, systemd units (dist/systemd/), configuration
# (dist/payguard.cfg) and maintainer scripts (dist/deb/) as one .deb, with
# dpkg-deb alone; the last line printed is its path
deb: all
	@bash scripts/deb.sh

# header dependencies come from the compiler (-MMD -MP: a .d file beside
# each object), so touching a header rebuilds exactly what includes it
$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(WARN) $(CFLAGS) -MMD -MP $(CPPFLAGS_ALL) -I$(dir $<) -c $< -o $@

$(BS)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC-SAN  $<"
	@$(CC) $(WARN) -O1 -g -MMD -MP $(SAN) $(CPPFLAGS_ALL) -I$(dir $<) -c $< -o $@

-include $(shell find $(B) $(BS) build-fuzz -name '*.d' 2>/dev/null)

$(B)/libpgcommon.a: $(COMMON_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BS)/libpgcommon.a: $(ASAN_COMMON_OBJ)
	@rm -f $@
	ar rcs $@ $^

# one binary per stage, from its folder's sources and the common library
define stage_rule
bin/$(1): $(patsubst %.c,$(B)/%.o,$(wildcard $(1)/*.c)) $(B)/libpgcommon.a
	@mkdir -p bin
	$$(CC) $$(CFLAGS) -o $$@ $$^ $$(LDLIBS_ALL)
endef
$(foreach s,$(STAGES),$(eval $(call stage_rule,$(s))))

# the ops console (not a stage: no journal; serves console/www, passes the
# API on to approve and audit)
CONSOLE_SRC := $(wildcard console/*.c)
bin/console: $(CONSOLE_SRC:%.c=$(B)/%.o) $(B)/libpgcommon.a
	@mkdir -p bin
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS_ALL)

# the operator command and its master (payguard/); what it shares with the
# stages (policy, rules, runbook planning) is in the common library
bin/payguard: $(PG_OBJ) $(B)/libpgcommon.a
	@mkdir -p bin
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS_ALL)

bin/pg-sandbox: $(SANDBOX_SRC:%.c=$(B)/%.o) $(B)/libpgcommon.a
	@mkdir -p bin
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS_ALL)

bin/%: $(B)/tests/tools/%.o $(B)/libpgcommon.a
	@mkdir -p bin
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS_ALL)

# the test build of execute with its fault hook (PG_TEST_HOOKS: SIGKILL
# before or after a named step; tests/e2e/e2e_execute.sh). The hook is never in
# bin/execute.
$(B)/hooks/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC-HOOK $<"
	@$(CC) $(WARN) $(CFLAGS) -MMD -MP -DPG_TEST_HOOKS $(CPPFLAGS_ALL) -I$(dir $<) -c $< -o $@
bin/hooks/execute: $(patsubst %.c,$(B)/hooks/%.o,$(wildcard execute/*.c)) $(B)/libpgcommon.a
	@mkdir -p bin/hooks
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS_ALL)

# a test build of fdatasync/fsync that fails on demand (tests/e2e/e2e_fsync.sh)
bin/libpgfailsync.so: tests/shim/failsync.c
	@mkdir -p bin
	$(CC) $(WARN) -O2 -fPIC -shared -o $@ $< -ldl

bin/unit-tests: $(UNIT_OBJ) $(B)/libpgcommon.a
	@mkdir -p bin
	$(CC) $(CFLAGS) -o $@ $^ -lcriterion $(LDLIBS_ALL)

bin/unit-tests-asan: $(ASAN_UNIT_OBJ) $(BS)/libpgcommon.a
	@mkdir -p bin
	$(CC) $(SAN) -o $@ $^ -lcriterion $(LDLIBS_ALL)

# UNIT_JOBS tests at once (default 4 on any machine: most of the suite's
# time is tests waiting on sockets, child processes and timers, so four on
# two cores took 29 s where two took 42, and 80 s under the sanitizers where
# two took 95)
UNIT_JOBS ?= 4
unit: bin/unit-tests bin/pg-stage-echo
	PAYGUARD_LOG_LEVEL=error ./bin/unit-tests --jobs $(UNIT_JOBS)

# Criterion counts a test as passed even when a sanitizer reported in it,
# so the sanitizers' own reports fail the run too.
unit-asan: bin/unit-tests-asan bin/pg-stage-echo
	@PAYGUARD_LOG_LEVEL=error ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    LSAN_OPTIONS=suppressions=$(CURDIR)/tests/unit/lsan.supp:print_suppressions=0 \
	    ./bin/unit-tests-asan --jobs $(UNIT_JOBS) 2>&1 | tee build-asan/unit.log; \
	 status=$${PIPESTATUS[0]}; \
	 if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' build-asan/unit.log; then \
	     echo "sanitizer reports above: failing"; exit 1; fi; exit $$status

# every e2e script runs, E2E_JOBS (default 2) at a time (scripts/e2e-run.sh;
# each ends with "N passed, N failed"); the total
# closes the run, which fails if any script did. E2E_LABEL names the run,
# PG_BIN (read by tests/e2e/lib_e2e.sh) the folder of the programs under test.
E2E_LABEL ?= e2e
E2E_RUN = bash scripts/e2e-run.sh $(E2E_LABEL)
e2e: all
	@$(E2E_RUN)

# the same programs built with ASan + UBSan (bin-asan/), for the end-to-end
# suite: the unit tests cannot reach what only whole processes do (HTTP
# handlers, the stage loop under load, restarts)
BA := bin-asan
ASAN_PROGS := $(STAGES:%=$(BA)/%) $(BA)/console $(BA)/payguard $(BA)/pg-sandbox $(BA)/libpgfailsync.so $(BA)/hooks/execute \
	$(patsubst tests/tools/%.c,$(BA)/%,$(TOOL_SRC))
define asan_stage_rule
$(BA)/$(1): $(patsubst %.c,$(BS)/%.o,$(wildcard $(1)/*.c)) $(BS)/libpgcommon.a
	@mkdir -p $(BA)
	$$(CC) $(SAN) -o $$@ $$^ $$(LDLIBS_ALL)
endef
$(foreach s,$(STAGES) console,$(eval $(call asan_stage_rule,$(s))))
$(BA)/payguard: $(PG_SRC:%.c=$(BS)/%.o) $(BS)/libpgcommon.a
	@mkdir -p $(BA)
	$(CC) $(SAN) -o $@ $^ $(LDLIBS_ALL)
$(BA)/pg-sandbox: $(SANDBOX_SRC:%.c=$(BS)/%.o) $(BS)/libpgcommon.a
	@mkdir -p $(BA)
	$(CC) $(SAN) -o $@ $^ $(LDLIBS_ALL)
$(BS)/hooks/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC-SAN  $< (hooks)"
	@$(CC) $(WARN) -O1 -g -MMD -MP -DPG_TEST_HOOKS $(SAN) $(CPPFLAGS_ALL) -I$(dir $<) -c $< -o $@
$(BA)/hooks/execute: $(patsubst %.c,$(BS)/hooks/%.o,$(wildcard execute/*.c)) $(BS)/libpgcommon.a
	@mkdir -p $(BA)/hooks
	$(CC) $(SAN) -o $@ $^ $(LDLIBS_ALL)
$(BA)/libpgfailsync.so: bin/libpgfailsync.so
	@mkdir -p $(BA)
	cp $< $@
$(BA)/%: $(BS)/tests/tools/%.o $(BS)/libpgcommon.a
	@mkdir -p $(BA)
	$(CC) $(SAN) -o $@ $^ $(LDLIBS_ALL)

# make e2e-asan: every e2e script against bin-asan/. A sanitizer report
# (memory error, undefined behaviour, a leak at exit) goes to a file in
# build-asan/e2e-reports/ whatever process made it (the master's children,
# tools), and any such file fails the run, even when the checks passed.
# (verify_asan_link_order=0: e2e_fsync preloads its fsync shim first.)
# The load scripts run smaller here (1,000 webhooks through the backbone,
# 300 chaos deliveries, 1,000 over tcp://, 1,500 past tiny bounds), and events are re-sent after 3 s
# instead of 1 s (E2E_RESEND_MS: a sanitized stage acks slower, and a
# re-send it did not need sends a deferred input to a second worker): the sanitizers look at every
# code path those reach, and the full sizes run in make e2e and make test.
# Scripts named in E2E_PLAIN (e.g. "backbone chaos") run against bin/ at
# their full sizes instead (scripts/e2e-run.sh): make test's one pass.
E2E_SAN_DIR := $(CURDIR)/build-asan/e2e-reports
E2E_PLAIN ?=
e2e-asan: all $(ASAN_PROGS)
	@rm -rf $(E2E_SAN_DIR); mkdir -p $(E2E_SAN_DIR); \
	 export PG_BIN=$(CURDIR)/$(BA) E2E_WEBHOOKS=$${E2E_WEBHOOKS:-1000} CHAOS_N=$${CHAOS_N:-300} \
	   E2E_TRANSPORT_WEBHOOKS=$${E2E_TRANSPORT_WEBHOOKS:-1000} E2E_RESEND_MS=$${E2E_RESEND_MS:-3000} \
	   E2E_BOUNDED_WEBHOOKS=$${E2E_BOUNDED_WEBHOOKS:-1500} \
	   E2E_PLAIN="$(E2E_PLAIN)" \
	   ASAN_OPTIONS=log_path=$(E2E_SAN_DIR)/asan:detect_leaks=1:verify_asan_link_order=0 \
	   UBSAN_OPTIONS=log_path=$(E2E_SAN_DIR)/ubsan:print_stacktrace=1:halt_on_error=1; \
	 status=0; $(MAKE) --no-print-directory e2e-run E2E_LABEL=$(if $(E2E_PLAIN),e2e,sanitized) || status=$$?; \
	 if [ -n "$$(ls -A $(E2E_SAN_DIR))" ]; then for r in $(E2E_SAN_DIR)/*; do echo "== $$r"; head -60 $$r; done; \
	     echo "sanitizer reports above (build-asan/e2e-reports): failing"; exit 1; fi; exit $$status
e2e-run:
	@$(E2E_RUN)

# make test runs every e2e script once: the load scripts (the backbone's
# 10,000 webhooks with SIGKILLs, the chaos run) against bin/ at their full
# sizes, every other one against bin-asan/, where the sanitizers watch every
# handler and path it reaches. Two whole passes (make e2e, make e2e-asan)
# took over ten minutes of a 2-core machine; this one takes under five.
# The builds run JOBS at a time (default: the number of CPUs), the fuzzers
# two at a time.
JOBS ?= $(shell getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)
TEST_E2E_PLAIN := backbone chaos
test: test-deps
	@$(MAKE) --no-print-directory -j$(JOBS) all bin/unit-tests bin/unit-tests-asan $(ASAN_PROGS) $(FUZZ_BINS)
	$(MAKE) --no-print-directory tidy
	$(MAKE) --no-print-directory unit
	$(MAKE) --no-print-directory unit-asan
	$(if $(FUZZ_SRC),$(MAKE) --no-print-directory -j2 --output-sync=target fuzz-short)
	$(MAKE) --no-print-directory e2e-asan E2E_PLAIN="$(TEST_E2E_PLAIN)"

run: deps
	@$(MAKE) --no-print-directory all
	@bash scripts/demo.sh

# make chaos: the long seeded chaos run (CHAOS_N deliveries, default 20,000;
# CHAOS_SEED replays one) on the group scaled out (CHAOS_SCALE; empty: one
# instance each); a 2,000-delivery one is part of make test
CHAOS_SCALE ?= ingest=2 validate=3 approve=2 execute=3
chaos: deps
	@$(MAKE) --no-print-directory all
	@CHAOS_SCALE="$(CHAOS_SCALE)" bash tests/e2e/chaos.sh

# make bench: ingest against nginx and the disk's fdatasync (fio), end to end,
# duplicate storm, replay, audit verify, memory; results in bench/results.md
# (BENCH_N webhooks per ingest run, default 20,000; see scripts/bench.sh)
bench: deps
	@sh scripts/install-deps.sh bench
	@$(MAKE) --no-print-directory all
	@bash scripts/bench.sh

# make bench-baseline: payguard's CPU per case at 0 ms of outside latency,
# this build against BASELINE (default de876f2, blocking outside calls),
# alternately in the same hour (scripts/bench-baseline.sh; PAIRS turns each)
BASELINE ?= de876f2
bench-baseline: deps
	@sh scripts/install-deps.sh bench
	@$(MAKE) --no-print-directory all
	@bash scripts/bench-baseline.sh $(BASELINE)

# make bench-scale: cases/s with 1, 2 and 3 instances of validate and execute
# at 0 and 100 ms of outside latency, ingest with 1 and 2 instances against
# nginx (scripts/bench-scale.sh, bench/results-scale.md)
bench-scale: deps
	@sh scripts/install-deps.sh bench
	@$(MAKE) --no-print-directory all
	@bash scripts/bench-scale.sh

# make soak: SOAK_MINUTES (30) at SOAK_RATE (150) webhooks a second through
# the sandbox: memory, restart-to-ready and disk per case at 10%, 50% and
# 100% of the run, into bench/results-soak.md (scripts/soak.sh)
soak: deps
	@$(MAKE) --no-print-directory all
	@bash scripts/soak.sh

# libFuzzer targets: each tests/fuzz/fuzz_NAME.c links with the common and
# stage modules, built with clang, the same warnings, ASan and UBSan; seeds
# in tests/fuzz/NAME/
FZ := build-fuzz
FUZZ_LIB_SRC := $(COMMON_SRC) $(STAGE_LIB_SRC)
$(FZ)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC-FUZZ $<"
	@clang $(WARN) -g -O1 -MMD -MP -fsanitize=fuzzer-no-link,address,undefined $(CPPFLAGS_ALL) -I$(dir $<) -c $< -o $@
bin/fuzz_%: $(FZ)/tests/fuzz/fuzz_%.o $(FUZZ_LIB_SRC:%.c=$(FZ)/%.o)
	@mkdir -p bin
	clang -fsanitize=fuzzer,address,undefined -o $@ $^ $(LDLIBS_ALL)

FUZZ_SECONDS ?= 300
FUZZ_SHORT_SECONDS ?= 3
# every target: the seeds in tests/fuzz/NAME plus what earlier runs found in
# $(FZ)/corpus/NAME (new finds go there); a crashing input lands in $(FZ)/
FUZZ_RUN = UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 $$f -artifact_prefix=$(FZ)/$$n- \
	$(FZ)/corpus/$$n tests/fuzz/$$n
# make fuzz: a long run of every target (FUZZ_SECONDS each)
fuzz: deps $(FUZZ_BINS)
	@set -e; for f in $(FUZZ_BINS); do n=$${f#bin/fuzz_}; mkdir -p $(FZ)/corpus/$$n; \
	  echo "== $$f ($(FUZZ_SECONDS) s)"; \
	  $(FUZZ_RUN) -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1; done
# the short run inside make test: the seeds plus a few seconds of mutation
# per target (FUZZ_SHORT_SECONDS); a failure shows the end of the log
# (each target is its own make target, so make -j runs several at once)
FUZZ_SHORT := $(FUZZ_BINS:bin/fuzz_%=fuzz-short-%)
.PHONY: $(FUZZ_SHORT)
fuzz-short: $(FUZZ_SHORT)
$(FUZZ_SHORT): fuzz-short-%: bin/fuzz_%
	@f=$<; n=$*; mkdir -p $(FZ)/corpus/$$n; \
	  echo "== $$f ($(FUZZ_SHORT_SECONDS) s)"; \
	  if $(FUZZ_RUN) -max_total_time=$(FUZZ_SHORT_SECONDS) >$(FZ)/$$n.log 2>&1; then grep -a -E "^#[0-9]+[[:space:]]+DONE|^Done " $(FZ)/$$n.log; \
	  else tail -40 $(FZ)/$$n.log; echo "$$f failed: the whole log is $(FZ)/$$n.log"; exit 1; fi

clean:
	rm -rf $(B) $(BS) $(FZ) bin $(BA)
