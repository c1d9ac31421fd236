# ngx_tavus_module: build, run and test entry points.
#
#   make build   the dynamic module, build/ngx_http_tavus_module.so
#   make run     nginx with the module in front of a mock Tavus API
#   make test    unit tests and the black-box suite (t/*.t, prove)
#   make deb     the Debian package libnginx-mod-http-tavus
#   make test-deb
#                that package built, linted, installed, used and purged on
#                this machine (root: it changes the machine)
#   make test-matrix
#                the suite on nginx 1.22 (here), 1.26 and 1.30 (chroots of
#                Debian 13 and unstable), loaded and built in, and the
#                package test on each (scripts/test-matrix.sh)
#   make bench   the module against proxy_pass, njs, Lua and return
#   make test-valgrind, make test-asan
#                the suite with nginx under valgrind, or with the module
#                built with AddressSanitizer and UBSan
#   make fuzz    the libFuzzer harnesses, FUZZ_SECONDS (60) each
#   make soak    load with reloads: statuses, errors, worker RSS
#
# Dependencies are installed with apt-get by scripts/deps.sh (root).

SHELL =		/bin/bash
NGX_SRC ?=	/usr/share/nginx/src
BUILD ?=	build
MODULE =	$(BUILD)/ngx_http_tavus_module.so
NGX_BUILD =	$(BUILD)/nginx
# the flags Debian's nginx was compiled with (nginx -V)
MODULE_CFLAGS ?= -g -O2 -fstack-protector-strong -Wformat \
		-Werror=format-security -fPIC -Wdate-time -D_FORTIFY_SOURCE=2
SOURCES =	config $(wildcard ngx_tavus_module/*.[ch])


# Build facts, defined here only.  The unit tests, the sanitizer runs
# (scripts/test-asan.sh), the fuzzers (fuzz/run.sh) and
# t/41-fuzz-regressions.t compile the pure parts outside nginx's build;
# they read these with `make -s print-NGX_INCS` (BUILD=... for another
# build's objs/) and `make -s print-PURE`.
#
#   PURE      the module's sources that need no event code and allocate
#             nothing: linked alone by build/unit, the fuzzers and t/41
#   NGX_INCS  the include paths they compile with: the module's
#             headers, the configured objs/ (ngx_auto_config.h) and
#             nginx's source tree
PURE =		ngx_tavus_module/ngx_http_tavus_validate.c \
		ngx_tavus_module/ngx_http_tavus_outcome.c \
		ngx_tavus_module/ngx_http_tavus_translate.c \
		ngx_tavus_module/ngx_http_tavus_json.c \
		ngx_tavus_module/ngx_http_tavus_text.c
NGX_INCS =	-I $(CURDIR)/ngx_tavus_module -I $(abspath $(NGX_BUILD))/objs \
		$(addprefix -I $(NGX_SRC)/src/,core event event/modules \
		event/quic os/unix http http/modules http/v2 http/v3)
UNIT_FLAGS ?=	-g -O1 -Wall -Wextra -Werror -Wno-unused-parameter

.PHONY: deps build run test unit deb test-deb test-matrix bench \
	fuzz-upstream fuzz-upstream-long chaos-reload bench-inflight \
	test-valgrind test-asan fuzz soak clean

# make -s print-VAR: the value of VAR (see the build facts above)
print-%:
	@echo '$($*)'

deps:
	@sh scripts/deps.sh

build: deps $(MODULE)

$(NGX_BUILD)/objs/Makefile: config
	rm -rf $(NGX_BUILD)
	mkdir -p $(BUILD)
	cp -r $(NGX_SRC) $(NGX_BUILD)
	cd $(NGX_BUILD) && . ./conf_flags && ./configure "$${NGX_CONF_FLAGS[@]}" \
		--with-cc-opt="$(MODULE_CFLAGS)" \
		--add-dynamic-module=$(CURDIR) >configure.log 2>&1 \
		|| { tail -30 configure.log; exit 1; }

$(MODULE): $(NGX_BUILD)/objs/Makefile $(SOURCES)
	$(MAKE) -s -C $(NGX_BUILD) -f objs/Makefile modules
	@# a new file, not one overwritten in place: a running nginx has it mapped
	cp $(NGX_BUILD)/objs/ngx_http_tavus_module.so $@.tmp
	mv -f $@.tmp $@

run: build
	@bash scripts/run.sh

$(BUILD)/unit: t/unit/unit.c $(PURE) ngx_tavus_module/*.h \
		$(NGX_BUILD)/objs/Makefile
	$(CC) $(UNIT_FLAGS) $(NGX_INCS) -o $@ t/unit/unit.c $(PURE) -lcjson

unit: build $(BUILD)/unit
	$(BUILD)/unit

# the unit tests run inside the suite too, through t/00-unit.t
test: build $(BUILD)/unit
	prove -r t/

# the Debian package: build/deb/libnginx-mod-http-tavus_<version>_<arch>.deb
deb: deps
	@bash scripts/build-deb.sh $(BUILD)/deb

# not in make test: it installs and purges a package (packaging/t/deb.t)
test-deb: deps
	@sh scripts/deps.sh lintian
	prove packaging/t/

test-matrix: deps
	bash scripts/test-matrix.sh

# the sanitizer runs' own packages
CHECK_DEPS =	clang libclang-rt-14-dev valgrind llvm

test-valgrind: build $(BUILD)/unit
	@sh scripts/deps.sh $(CHECK_DEPS)
	bash scripts/test-valgrind.sh

test-asan: build $(BUILD)/unit
	@sh scripts/deps.sh $(CHECK_DEPS)
	bash scripts/test-asan.sh

fuzz: deps
	@sh scripts/deps.sh $(CHECK_DEPS)
	bash fuzz/run.sh

soak: build
	perl scripts/soak.pl

# the system fuzzer of the upstream answer path: 20,000 exchanges of seed
# 1 through nginx with the module built with ASan and UBSan; -long: a new
# seed for FUZZ_UPSTREAM_SECONDS (1,800)
fuzz-upstream: build
	@sh scripts/deps.sh $(CHECK_DEPS)
	bash scripts/chaos/fuzz-upstream.sh

fuzz-upstream-long: build
	@sh scripts/deps.sh $(CHECK_DEPS)
	bash scripts/chaos/fuzz-upstream.sh long

# a reload every second under load, for a minute
chaos-reload: build
	CHAOS_RELOAD_SECONDS=60 prove -v t/46-reload-load.t

# 10,000 deletes in flight, the module against the proxy_pass recipe
bench-inflight: build
	perl scripts/chaos/inflight.pl

# bench/README.md: BENCH_* knobs, what is measured and how
bench: build
	@bash bench/run.sh

# a chroot's /proc left mounted by a killed test-matrix is unmounted first
clean:
	@awk -v b="$(abspath $(BUILD))/" 'index($$2, b) == 1 { print $$2 }' \
		/proc/mounts | sort -r | while read -r m; do umount "$$m"; done
	rm -rf --one-file-system $(BUILD)
