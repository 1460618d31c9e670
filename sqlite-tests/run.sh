#!/usr/bin/env bash
# SQLite 3.40.1's own TCL test suite, run on stock SQLite and on bop, compared
# with the expectations file. See sqlite-tests/README.md.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
CACHE=${BOP_SQLITE_TESTS_CACHE:-$HERE/cache}
SQLITE_VERSION=3.40.1
SRC=$CACHE/src/sqlite3-$SQLITE_VERSION
BUILD=$CACHE/build
TF=$BUILD/testfixture
LIBDIR=$REPO/target/release
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
APT_SOURCES=/etc/apt/sources.list.d/bop-sqlite-tests-src.sources

usage() {
  cat <<EOF
usage: sqlite-tests/run.sh MODE [options]
modes (one):
  --ci               the CI subset (sqlite-tests/ci-files.txt)
  --long             every test file (SQLite's "full" set)
  FILE...            these test files (e.g. wal.test, wal2.test)
  --setup            only fetch the sources and build testfixture
options:
  --jobs N           test files run in parallel (default 2)
  --timeout S        seconds per file and VFS (default: 600; CI: 300)
  --out DIR          where logs and results go (default: \$CACHE/runs/<name>)
  --expect FILE      expectations file (default: sqlite-tests/expectations.txt)
  --write-expect F   also write an expectations file from this run's bop
                     failures (reasons kept from --expect where listed)
  --no-cargo         do not run 'cargo build --release -p bop-ffi' first
environment:
  BOP_SQLITE_TESTS_CACHE  cache directory (default sqlite-tests/cache)
  BOP_IO, BOP_CACHE_MB    passed to bop as usual
EOF
}

log() { printf '[sqlite-tests] %s\n' "$*" >&2; }
die() { printf '[sqlite-tests] error: %s\n' "$*" >&2; exit 2; }

# --- 1. the source of SQLite 3.40.1 from Debian's sqlite3 source package ----
apt_install() {
  local need=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
  done
  [ ${#need[@]} -eq 0 ] && return 0
  log "installing: ${need[*]}"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2
}

ensure_deb_src() {
  if apt-cache showsrc sqlite3 2>/dev/null | grep -q '^Version:'; then
    return 0
  fi
  local entries
  entries=$("$PY" "$HERE/lib/deb_src.py")
  [ -n "$entries" ] || die "no Debian archive in the apt sources to derive a deb-src entry from"
  log "adding deb-src entries to $APT_SOURCES (derived from the system's apt sources)"
  printf '# Added by bop sqlite-tests/run.sh: the source entries of the Debian\n# archives this system already uses, for apt-get source sqlite3.\n%s\n' \
    "$entries" >"$APT_SOURCES"
  apt-get update -qq >&2
  apt-cache showsrc sqlite3 2>/dev/null | grep -q '^Version:' \
    || die "apt-get source cannot find sqlite3 even with $APT_SOURCES"
}

ensure_source() {
  [ -f "$SRC/.bop-unpacked" ] && return 0
  command -v apt-get >/dev/null || die "needs apt-get (Debian) to fetch the sqlite3 source package"
  apt_install dpkg-dev build-essential tcl8.6-dev
  ensure_deb_src
  mkdir -p "$CACHE/src"
  rm -rf "$SRC"
  log "apt-get source sqlite3 into $CACHE/src"
  (cd "$CACHE/src" && apt-get source -qq sqlite3 >&2)
  [ -f "$SRC/VERSION" ] || die "apt-get source did not give $SRC"
  [ "$(cat "$SRC/VERSION")" = "$SQLITE_VERSION" ] \
    || die "Debian's sqlite3 source is $(cat "$SRC/VERSION"), these expectations are for $SQLITE_VERSION"
  touch "$SRC/.bop-unpacked"
}

# --- 2. testfixture with bop's init hook -----------------------------------
ensure_libbop() {
  if [ "$NO_CARGO" = 0 ]; then
    log "cargo build --release -p bop-ffi"
    (cd "$REPO" && cargo build --release -q -p bop-ffi >&2)
  fi
  [ -f "$LIBDIR/libbop.so" ] || die "$LIBDIR/libbop.so is missing (cargo build --release)"
}

ensure_testfixture() {
  apt_install build-essential tcl8.6-dev
  # A build configured for another source tree (the cache was moved, or the
  # repository lives elsewhere now) is rebuilt from scratch.
  if [ -f "$BUILD/Makefile" ] && ! grep -qF "$SRC" "$BUILD/Makefile"; then
    log "the build in $BUILD is for another source tree: rebuilding"
    rm -rf "$BUILD"
  fi
  mkdir -p "$BUILD"
  if [ ! -f "$BUILD/Makefile" ]; then
    log "configure (in $BUILD)"
    (cd "$BUILD" && "$SRC/configure" --with-tcl=/usr/lib/tcl8.6 >configure.log 2>&1) \
      || die "configure failed: $BUILD/configure.log"
  fi
  local hook=$HERE/lib/bop_init.c
  # testfixture finds libbop.so through its rpath: relink when it names
  # another directory.
  if [ -x "$TF" ] && [ "$TF" -nt "$hook" ] && [ "$TF" -nt "$REPO/include/bop.h" ] \
    && grep -qaF "$LIBDIR" "$TF"; then
    return 0
  fi
  log "building testfixture (a few minutes)"
  (cd "$BUILD" && make -s sqlite3.h >>build.log 2>&1) || die "make sqlite3.h failed: $BUILD/build.log"
  gcc -O2 -c -I"$BUILD" -I"$REPO/include" -o "$BUILD/bop_init.o" "$hook"
  rm -f "$BUILD/libbopinit.a" "$TF"
  ar rcs "$BUILD/libbopinit.a" "$BUILD/bop_init.o"
  # libbop.so is found through the rpath at run time, so a rebuilt libbop.so
  # is tested without relinking testfixture.
  (cd "$BUILD" && make -j"${BUILD_JOBS:-2}" testfixture \
      OPTS="-DSQLITE_EXTRA_INIT=bop_testfixture_init" \
      LIBS="-L$BUILD -lbopinit -L$LIBDIR -lbop -Wl,-rpath,$LIBDIR" \
      >>build.log 2>&1) || die "building testfixture failed: $BUILD/build.log"
  [ -x "$TF" ] || die "no testfixture after the build: $BUILD/build.log"
}

# --- 3. one test file, one process, one VFS ---------------------------------
# run_one OUT TIMEOUT VFS FILE: runs FILE in a fresh directory and writes
# OUT/VFS/FILE.log (testfixture's output) and OUT/VFS/FILE.rc
# ("<exit code> <seconds>"; 124 is the timeout).
run_one() {
  local out=$1 timeout=$2 vfs=$3 file=$4
  local name=${file##*/} work rc start end
  work=$(mktemp -d "${TMPDIR:-/tmp}/bop-sqlite-tests.XXXXXX")
  mkdir -p "$out/$vfs"
  start=$EPOCHREALTIME
  set +e
  (cd "$work" && BOP_TESTFIXTURE=$vfs timeout -k 10 "$timeout" \
      "$TF" "$SRC/$file" --maxerror=1000000 </dev/null >"$out/$vfs/$name.log" 2>&1)
  rc=$?
  set -e
  end=$EPOCHREALTIME
  chmod -R u+rwx "$work" 2>/dev/null || true
  rm -rf "$work"
  printf '%s %s\n' "$rc" "$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')" \
    >"$out/$vfs/$name.rc"
}

# The test files of a mode, as paths relative to $SRC.
list_files() {
  case $1 in
    ci)
      grep -v '^\s*\(#\|$\)' "$HERE/ci-files.txt" | awk '{print "test/" $1}'
      ;;
    long)
      # SQLite's "full" set (test/permutations.test: $alltests): every
      # test/*.test but the files that run other files, and the extensions'
      # files.
      (cd "$SRC" && ls test/*.test ext/rtree/*.test ext/fts5/test/*.test \
          ext/expert/*.test ext/lsm1/test/*.test ext/recover/*.test \
          2>/dev/null) |
        grep -vE '/(all|async|quick|veryquick|memleak|permutations|soak|fts3|mallocAll|rtree|full|extraquick|session|rbu)\.test$'
      ;;
  esac
}

main() {
  local mode="" jobs=2 timeout="" out="" expect=$HERE/expectations.txt write_expect=""
  local files=()
  NO_CARGO=0
  while [ $# -gt 0 ]; do
    case $1 in
      --ci) mode=ci ;;
      --long) mode=long ;;
      --setup) mode=setup ;;
      --jobs) jobs=$2; shift ;;
      --timeout) timeout=$2; shift ;;
      --out) out=$2; shift ;;
      --expect) expect=$2; shift ;;
      --write-expect) write_expect=$2; shift ;;
      --no-cargo) NO_CARGO=1 ;;
      --run-one) shift; run_one "$@"; return ;;
      -h|--help) usage; return 0 ;;
      -*) usage >&2; die "unknown option $1" ;;
      *) files+=("$1") ;;
    esac
    shift
  done
  if [ -z "$mode" ]; then
    [ ${#files[@]} -gt 0 ] || { usage >&2; exit 2; }
    mode=files
  fi
  ensure_source
  ensure_libbop
  ensure_testfixture
  [ "$mode" = setup ] && { log "testfixture ready: $TF"; return 0; }

  local list
  if [ "$mode" = files ]; then
    local f
    list=$(for f in "${files[@]}"; do
      if [ -f "$SRC/$f" ]; then echo "$f"; else echo "test/${f##*/}"; fi
    done)
  else
    list=$(list_files "$mode")
  fi
  local f
  for f in $list; do [ -f "$SRC/$f" ] || die "no such test file: $SRC/$f"; done
  [ -n "$timeout" ] || { [ "$mode" = ci ] && timeout=300 || timeout=600; }
  [ -n "$out" ] || out=$CACHE/runs/$mode-$(date +%Y%m%d-%H%M%S)
  rm -rf "$out"
  mkdir -p "$out"
  out=$(cd "$out" && pwd)  # run_one works in a scratch directory
  printf '%s\n' $list >"$out/files.txt"
  log "$(wc -l <"$out/files.txt") test files, stock and bop, $jobs at a time, timeout ${timeout}s; logs in $out"

  local t0=$SECONDS
  # Longest first is not known in advance; the list order is kept. Each
  # file runs on stock, then on bop, in the same slot.
  for f in $list; do printf '%s\n' "$f"; done |
    xargs -P "$jobs" -I{} bash -c '"$0" --run-one "$1" "$2" stock "$3" && "$0" --run-one "$1" "$2" bop "$3"' \
      "$HERE/run.sh" "$out" "$timeout" {}
  log "ran in $((SECONDS - t0)) s"

  local args=(--out "$out" --expect "$expect" --mode "$mode" --report "$out/report.txt")
  [ -n "$write_expect" ] && args+=(--write-expect "$write_expect")
  "$PY" "$HERE/lib/compare.py" "${args[@]}"
}

main "$@"
