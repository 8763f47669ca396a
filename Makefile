# Makefile - a thin layer over meson + ninja; meson.build is the real build.
#
#   make              configure build/ if needed and build it
#   make start        install missing packages, build, and start dm
#                     (dm cluster init the first time, dm cluster start after)
#   make test         install missing Debian packages, build build/ and the
#                     ASan+UBSan build-asan/ (both -Dwerror=true), run every test
#                     (with the fuzz smoke: each fuzz target a few seconds, t0002)
#   make asan         build build-asan/ and run the unit tests there only
#   make unit | e2e   build build/ and run only those tests
#   make install      meson install of build/ into $(PREFIX) (and $(DESTDIR)): dm, dmd,
#                     dm(1), dmd(8), the bash completion and dm.service (docs/install.md)
#   make deb          the Debian package dm_VERSION_ARCH.deb, built in build-deb/ (prefix /usr)
#   make fuzz         build the libFuzzer targets with clang, run each $(FUZZ_SECONDS) s
#                     (docs/internals/fuzzing.md)
#   make format       clang-format -i every .c/.h under src/ and tests/
#   make check-format  fail when a file is not formatted
#   make clean        remove the build directories and e2e trash
#
# Directories are variables, so that several people can share one tree:
#   make test BUILD=build-me ASAN_BUILD=build-me-asan

PREFIX       ?= /usr/local
BUILD        ?= build
ASAN_BUILD   ?= build-asan
FUZZ_BUILD   ?= build-fuzz
WERROR       ?= true
FUZZ_SECONDS ?= 60
MESON        ?= meson
NINJA        ?= ninja
CLANG_FORMAT ?= clang-format
export MESON

SETUP      = scripts/setup-build.sh
RUN_TESTS  = tests/run.sh --build $(BUILD) --asan-build $(ASAN_BUILD)
ASAN_OPTS  = -Db_sanitize=address,undefined -Db_lundef=false
FORMAT_SRC = $(shell find src tests -name '*.[ch]' -not -path '*/trash-*' 2>/dev/null)

.PHONY: all build asan-build start test asan unit e2e deps install deb clean format check-format fuzz

all: build

build:
	@$(SETUP) $(BUILD) -Dprefix=$(PREFIX) -Dwerror=$(WERROR)
	$(NINJA) -C $(BUILD)

asan-build:
	@$(SETUP) $(ASAN_BUILD) $(ASAN_OPTS) -Dwerror=$(WERROR)
	$(NINJA) -C $(ASAN_BUILD)

deps:
	@scripts/deps.sh

# Always -Dwerror=true here, whatever WERROR says: CI runs this.
start: deps build
	@scripts/start.sh $(BUILD)

test: deps
	@$(SETUP) $(BUILD) -Dprefix=$(PREFIX) -Dwerror=true
	$(NINJA) -C $(BUILD)
	@$(SETUP) $(ASAN_BUILD) $(ASAN_OPTS) -Dwerror=true
	$(NINJA) -C $(ASAN_BUILD)
	$(RUN_TESTS)

asan: asan-build
	$(RUN_TESTS) --asan

unit: build
	$(RUN_TESTS) --unit

e2e: build
	$(RUN_TESTS) --e2e

install: build
	$(MESON) install -C $(BUILD) --no-rebuild $(if $(DESTDIR),--destdir "$(DESTDIR)")

deb: deps
	@scripts/make-deb.sh .

fuzz:
	@command -v clang >/dev/null || { echo "make fuzz needs clang (scripts/deps.sh)"; exit 1; }
	@CC=clang $(SETUP) $(FUZZ_BUILD) -Dfuzz=true -Dtests=disabled -Db_sanitize=address,undefined \
		-Db_lundef=false -Dc_args=-fsanitize=fuzzer-no-link
	$(NINJA) -C $(FUZZ_BUILD)
	@set -e; found=0; \
	for t in $(FUZZ_BUILD)/tests/fuzz/fuzz_*; do \
		[ -f "$$t" ] && [ -x "$$t" ] || continue; \
		found=1; name=$$(basename $$t); \
		corpus=$(FUZZ_BUILD)/corpus/$$name; mkdir -p $$corpus; \
		seeds=; [ -d tests/fuzz/corpus/$$name ] && seeds=tests/fuzz/corpus/$$name; \
		echo "== $$name for $(FUZZ_SECONDS) s (corpus $$corpus $$seeds)"; \
		$$t -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
			-artifact_prefix=$(FUZZ_BUILD)/ $$corpus $$seeds; \
	done; \
	[ $$found = 1 ] || echo "no fuzz targets built yet (tests/fuzz/fuzz_*.c)"

format:
	$(CLANG_FORMAT) -i $(FORMAT_SRC)

check-format:
	$(CLANG_FORMAT) --dry-run --Werror $(FORMAT_SRC)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD) build-deb tests/e2e/trash-*
