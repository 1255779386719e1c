#!/usr/bin/env bash
# Builds the .deb, checks its contents and maintainer scripts, installs it on
# this machine, starts the INSTALLED binary as the edgeslab user in front of a
# small origin and shows it serves (a miss, then a hit, then a clean SIGTERM),
# and finally purges it and checks the purge removed what postrm promises.
#
# Meant for CI or a throwaway machine: it needs root (it installs and purges
# the package, and creates the edgeslab user through postinst). It does not
# need systemd: the unit is shipped but never started here.
#
#   packaging/test-deb.sh                  # build, check, install, serve, purge
#   KEEP_INSTALLED=1 packaging/test-deb.sh # leave the package installed
#   CARGO_DEB=/path/to/cargo-deb packaging/test-deb.sh
#
# The package is built with the hwloc feature ([package.metadata.deb]), so the
# build needs libhwloc-dev libudev-dev pkg-config (.ci/run installs them first).
# It packs target/release/edgeslab: run no other release build in the same
# target directory meanwhile (the checks of the packaged binary catch one).
# Without CARGO_DEB and without cargo-deb on PATH it runs
# `cargo install cargo-deb --locked --debug`: about 40 s on two cores, where
# an optimised build of the tool takes 3 min, and packing is no slower.
#
# Prints each check as `ok ...` or `FAIL ...`; exits non-zero if any failed.
set -euo pipefail
cd "$(dirname "$0")/.."

failures=0
ok() { printf 'ok   %s\n' "$*"; }
fail() { printf 'FAIL %s\n' "$*"; failures=$((failures + 1)); }
# check DESCRIPTION COMMAND...: ok or FAIL by the command's exit status.
check() {
    local what=$1; shift
    if "$@"; then ok "$what"; else fail "$what"; fi
}
# A failure after which nothing further can be checked.
die() { printf 'FAIL %s\n' "$*"; exit 1; }
step() { printf '\n--- %s\n' "$*"; }
now() { date +%s; }

[ "$(id -u)" -eq 0 ] || die "run as root: the script installs and purges the package"
for tool in dpkg-deb apt-get curl setpriv getent; do
    command -v "$tool" >/dev/null 2>&1 || die "missing tool: $tool"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/edgeslab-test-deb.XXXXXX")
serve_pid=""
origin_pid=""
installed_by_us=0
cleanup() {
    local rc=$?
    for pid in $serve_pid $origin_pid; do
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
    # Left installed on request, or after a failure before the purge: the
    # test's cache file goes in any case (the purge would remove it).
    if [ "$installed_by_us" -eq 1 ]; then
        rm -f /var/cache/edgeslab/test-deb.slab*
    fi
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_all=$(now)

# --- cargo-deb -------------------------------------------------------------
step "cargo-deb"
t0=$(now)
if [ -n "${CARGO_DEB:-}" ]; then
    cargo_deb=("$CARGO_DEB")
elif command -v cargo-deb >/dev/null 2>&1; then
    cargo_deb=(cargo deb)
else
    echo "cargo-deb not found: cargo install cargo-deb --locked --debug"
    cargo install cargo-deb --locked --debug
    cargo_deb=(cargo deb)
fi
"${cargo_deb[@]}" --version
t_install=$(( $(now) - t0 ))
echo "cargo-deb ready in ${t_install} s"

# --- build -------------------------------------------------------------------
step "build the package (release, --features hwloc)"
missing=""
command -v pkg-config >/dev/null 2>&1 || missing="pkg-config"
if [ -z "$missing" ]; then
    pkg-config --exists hwloc || missing="$missing libhwloc-dev"
    pkg-config --exists libudev || missing="$missing libudev-dev"
fi
if [ -n "$missing" ]; then
    die "the package is built with the hwloc feature and needs libhwloc-dev libudev-dev pkg-config;" \
        "missing:$missing (apt-get install -y libhwloc-dev libudev-dev pkg-config)"
fi
t0=$(now)
"${cargo_deb[@]}" | tee "$work/cargo-deb.out"
t_build=$(( $(now) - t0 ))
echo "built in ${t_build} s"
deb=$(tail -n 1 "$work/cargo-deb.out")
if [ ! -f "$deb" ]; then
    deb=$(ls -t "${CARGO_TARGET_DIR:-target}"/debian/edgeslab_*.deb 2>/dev/null | head -n 1 || true)
fi
[ -n "$deb" ] && [ -f "$deb" ] || die "cargo deb produced no target/debian/edgeslab_*.deb"
deb=$(realpath "$deb")
ok "package built: $deb ($(du -h "$deb" | cut -f1))"

# --- dpkg-deb -I -------------------------------------------------------------
step "dpkg-deb -I"
dpkg-deb -I "$deb" | tee "$work/info"
field() { dpkg-deb -f "$deb" "$1"; }
cargo_version=$(sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n 1)
check "Package is edgeslab" [ "$(field Package)" = edgeslab ]
version=$(field Version)
check "Version $version is the crate's $cargo_version" \
    bash -c '[[ "$1" == "$2" || "$1" == "$2"-* ]]' _ "$version" "$cargo_version"
check "Maintainer is set ($(field Maintainer))" [ -n "$(field Maintainer)" ]
depends=$(field Depends)
check "Depends includes libc6 ($depends)" grep -Eq '(^|, )libc6( |,|$)' <<<"$depends"
check "Depends includes adduser" grep -Eq '(^|, )adduser( |,|$)' <<<"$depends"
check "Depends includes the hwloc library" grep -Eq '(^|, )libhwloc[0-9]+' <<<"$depends"
for member in postinst postrm conffiles; do
    check "control member $member present" grep -Eq "^ +[0-9]+ bytes, +[0-9]+ lines +\*? *$member( |$)" "$work/info"
done
conffiles=$(dpkg-deb -I "$deb" conffiles 2>/dev/null || true)
check "conffiles lists /etc/edgeslab/edgeslab.toml" grep -qx /etc/edgeslab/edgeslab.toml <<<"$conffiles"

# --- dpkg-deb -c -------------------------------------------------------------
step "dpkg-deb -c"
dpkg-deb -c "$deb" | tee "$work/contents"
# "mode owner size date time ./path [-> target]" -> "/path mode"
awk '{ p = $6; sub(/^\./, "", p); sub(/\/$/, "", p); print p, $1 }' "$work/contents" >"$work/paths"
has() { grep -q "^$1 " "$work/paths"; }
has_mode() { grep -qx "$1 $2" "$work/paths"; }
check "/usr/bin/edgeslab, executable" has_mode /usr/bin/edgeslab -rwxr-xr-x
if has /lib/systemd/system/edgeslab.service; then
    ok "unit /lib/systemd/system/edgeslab.service"
elif has /usr/lib/systemd/system/edgeslab.service; then
    ok "unit /usr/lib/systemd/system/edgeslab.service"
else
    fail "unit edgeslab.service under /lib/systemd/system or /usr/lib/systemd/system"
fi
check "/etc/edgeslab/edgeslab.toml" has /etc/edgeslab/edgeslab.toml
check "/usr/share/edgeslab/sysctl/edge.conf" has /usr/share/edgeslab/sysctl/edge.conf
check "/usr/share/edgeslab/sysctl/regional.conf" has /usr/share/edgeslab/sysctl/regional.conf
check "/usr/share/edgeslab/irq-affinity.sh, executable" has_mode /usr/share/edgeslab/irq-affinity.sh -rwxr-xr-x
check "/usr/share/doc/edgeslab/README.md" has /usr/share/doc/edgeslab/README.md
check "/usr/share/doc/edgeslab/copyright" has /usr/share/doc/edgeslab/copyright
# The binary cargo-deb packs is whatever target/release/edgeslab holds when
# it packs: another release build in the same target directory at that
# moment (cargo bench, cargo build --release) would slip in one without hwloc
# or with the test-only fault code. These two catch it.
dpkg-deb -x "$deb" "$work/root"
bin="$work/root/usr/bin/edgeslab"
check "the packaged binary has no failpoints code" bash -c '! grep -a -q read-eio "$1"' _ "$bin"
if command -v readelf >/dev/null 2>&1; then
    check "the packaged binary links libhwloc (the hwloc feature)" \
        bash -c 'readelf -d "$1" | grep -q "NEEDED.*libhwloc"' _ "$bin"
else
    check "the packaged binary links libhwloc (the hwloc feature)" grep -a -q 'libhwloc\.so' "$bin"
fi

# --- maintainer scripts ------------------------------------------------------
step "maintainer scripts (dpkg-deb -e)"
dpkg-deb -e "$deb" "$work/control"
for script in preinst postinst prerm postrm; do
    f="$work/control/$script"
    [ -f "$f" ] || continue
    shell=$(head -n 1 "$f" | sed -n 's|^#! *\([^ ]*\).*|\1|p')
    case "$shell" in
        */bash) check "$script: bash -n" bash -n "$f" ;;
        */sh) check "$script: sh -n" sh -n "$f" ;;
        *) fail "$script: unexpected interpreter '$shell'" ;;
    esac
    check "$script is executable" [ -x "$f" ]
    check "$script: no #DEBHELPER# left unexpanded" bash -c '! grep -q "#DEBHELPER#" "$1"' _ "$f"
done
pi="$work/control/postinst"
pr="$work/control/postrm"
check "postinst creates the system user edgeslab (adduser --system)" \
    grep -Eq 'adduser --system .*edgeslab' "$pi"
check "postinst makes /var/cache/edgeslab and /var/lib/edgeslab" \
    grep -q 'for d in /var/cache/edgeslab /var/lib/edgeslab' "$pi"
check "postinst gives them to edgeslab:edgeslab" grep -q 'chown edgeslab:edgeslab' "$pi"
check "postrm removes the cache and state on purge" \
    grep -q 'rm -rf /var/cache/edgeslab /var/lib/edgeslab' "$pr"
check "postrm removes the user on purge" grep -Eq 'deluser .*edgeslab' "$pr"
# Without systemd as PID 1 (containers, chroots) every systemctl call must be
# guarded; the install below proves it, this shows which ones there are.
echo "systemd calls in the maintainer scripts:"
grep -n -E 'systemctl|deb-systemd' "$work"/control/{postinst,postrm,prerm,preinst} 2>/dev/null | sed 's/^/    /' || true

if [ "$failures" -ne 0 ]; then
    die "$failures package check(s) failed; not installing"
fi

# --- install -----------------------------------------------------------------
step "install"
export DEBIAN_FRONTEND=noninteractive
apt_install=(apt-get install -y)
if dpkg-query -W -f='${Status}' edgeslab 2>/dev/null | grep -q 'install ok installed'; then
    echo "edgeslab is already installed: reinstalling (postinst runs again)"
    apt_install+=(--reinstall)
fi
installed_by_us=1
"${apt_install[@]}" "$deb" || die "apt-get install $deb"
ok "apt-get install $(basename "$deb")"
check "dpkg says installed" bash -c "dpkg-query -W -f='\${Status}' edgeslab | grep -q 'install ok installed'"
check "system user edgeslab exists ($(getent passwd edgeslab || true))" getent passwd edgeslab
uid=$(id -u edgeslab 2>/dev/null || echo none)
check "edgeslab is a system user (uid $uid < 1000)" bash -c '[ "$1" != none ] && [ "$1" -lt 1000 ]' _ "$uid"
check "group edgeslab exists" getent group edgeslab
for d in /var/cache/edgeslab /var/lib/edgeslab; do
    owner=$(stat -c '%U:%G %a' "$d" 2>/dev/null || echo missing)
    check "$d owned by edgeslab:edgeslab, mode 750 ($owner)" [ "$owner" = "edgeslab:edgeslab 750" ]
done
check "/etc/edgeslab/edgeslab.toml present" [ -f /etc/edgeslab/edgeslab.toml ]
check "/etc/edgeslab/edgeslab.toml is the shipped default" cmp -s /etc/edgeslab/edgeslab.toml packaging/edgeslab.toml
check "/usr/bin/edgeslab is the packaged binary" cmp -s /usr/bin/edgeslab "$bin"
/usr/bin/edgeslab --version

step "edgeslab --help covers every command"
/usr/bin/edgeslab --help | tee "$work/help"
# The commands the issue names, and whatever src/main.rs has since added.
expected="serve demo invalidate check-config tune irq"
if [ -f src/main.rs ]; then
    from_source=$(sed -n '/^enum Command {/,/^}/p' src/main.rs |
        grep -E '^    [A-Z][A-Za-z]*( \{|\(|,)' |
        sed -E 's/^ +([A-Za-z]+).*/\1/; s/([a-z0-9])([A-Z])/\1-\2/g' | tr 'A-Z' 'a-z')
    expected=$(printf '%s\n' $expected $from_source | awk '!seen[$0]++' | tr '\n' ' ')
fi
for cmd in $expected; do
    check "--help lists '$cmd'" grep -Eq "^  $cmd( |$)" "$work/help"
    check "'edgeslab $cmd --help' works" bash -c '/usr/bin/edgeslab "$1" --help >/dev/null' _ "$cmd"
done

# As the service's ExecStartPre runs it: as the edgeslab user.
as_edgeslab() {
    setpriv --reuid=edgeslab --regid=edgeslab --init-groups -- "$@"
}
step "check-config on the installed default (as the edgeslab user)"
if (cd / && as_edgeslab /usr/bin/edgeslab check-config /etc/edgeslab/edgeslab.toml) >"$work/check" 2>&1; then
    sed 's/^/    /' "$work/check"
    ok "edgeslab check-config /etc/edgeslab/edgeslab.toml: exit 0"
else
    rc=$?
    sed 's/^/    /' "$work/check"
    fail "edgeslab check-config /etc/edgeslab/edgeslab.toml: exit $rc"
fi

# --- serve -------------------------------------------------------------------
step "serve with the installed binary, as the edgeslab user"
# Free loopback TCP ports, not in /proc/net/tcp{,6} and not handed out already.
taken=" $(for f in /proc/net/tcp /proc/net/tcp6; do [ -r "$f" ] && tail -n +2 "$f"; done |
    while read -r _ addr _; do echo $((16#${addr##*:})); done | tr '\n' ' ') "
free_port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 30000))
        case "$taken" in *" $p "*) continue ;; esac
        taken="$taken$p "
        echo "$p"
        return
    done
}
listen_port=$(free_port)
admin_port=$(free_port)

# The origin: python3's http.server over a directory of our own, or, without
# python3, the demo origin built into the installed binary.
if command -v python3 >/dev/null 2>&1 && python3 -c 'import http.server' 2>/dev/null; then
    origin_port=$(free_port)
    mkdir -p "$work/www"
    head -c 300000 /dev/urandom >"$work/www/object.bin"
    # Old enough for a heuristic freshness lifetime (10% of its age, RFC 9111
    # 4.2.2): http.server sends Last-Modified and no Cache-Control.
    touch -d '2 days ago' "$work/www/object.bin"
    python3 -m http.server --bind 127.0.0.1 --directory "$work/www" "$origin_port" \
        >"$work/origin.log" 2>&1 &
    origin_pid=$!
    origin="127.0.0.1:$origin_port"
    path=/object.bin
    for _ in $(seq 1 100); do
        curl -s -o /dev/null "http://$origin/" && break
        sleep 0.1
    done
    echo "origin: python3 -m http.server on $origin"
else
    echo "no python3: using the demo origin of the installed binary"
    (cd / && exec /usr/bin/edgeslab demo --listen "127.0.0.1:$(free_port)" --admin "127.0.0.1:$(free_port)") \
        >"$work/origin.log" 2>&1 &
    origin_pid=$!
    origin=""
    for _ in $(seq 1 600); do
        origin=$(grep -o 'origin    http://[0-9.:]*' "$work/origin.log" | sed 's|.*http://||' || true)
        [ -n "$origin" ] && break
        sleep 0.1
    done
    path=/hello
fi
[ -n "$origin" ] && curl -s -o "$work/direct" "http://$origin$path" ||
    { cat "$work/origin.log"; die "the origin did not start"; }
ok "origin serves $path ($(wc -c <"$work/direct") bytes)"

# The unit grants LimitMEMLOCK=infinity and LimitNOFILE=1048576; here the
# most this machine's hard limits allow (in a container often 8 MiB locked:
# glommio then logs that it skips registering buffers, and serves). Then drop
# to the user; exec keeps $! the server's own pid, so SIGTERM and its exit
# status are the server's.
: >"$work/serve.out"
: >"$work/serve.err"
echo "limits for the server: memlock $(ulimit -H -l), nofile $(ulimit -H -n) (hard limits here)"
(
    cd /
    ulimit -l "$(ulimit -H -l)" 2>/dev/null || true
    ulimit -n "$(ulimit -H -n)" 2>/dev/null || true
    exec setpriv --reuid=edgeslab --regid=edgeslab --init-groups -- \
        /usr/bin/edgeslab serve --config /etc/edgeslab/edgeslab.toml \
        --listen "127.0.0.1:$listen_port" --admin "127.0.0.1:$admin_port" \
        --origin "http://$origin" --cache /var/cache/edgeslab/test-deb.slab:128MiB \
        --cores 0 --name deb-test
) >>"$work/serve.out" 2>>"$work/serve.err" &
serve_pid=$!
echo "started: setpriv -u edgeslab /usr/bin/edgeslab serve --config /etc/edgeslab/edgeslab.toml" \
    "--listen 127.0.0.1:$listen_port --admin 127.0.0.1:$admin_port --origin http://$origin" \
    "--cache /var/cache/edgeslab/test-deb.slab:128MiB --cores 0 --name deb-test (pid $serve_pid)"
ready=""
for _ in $(seq 1 300); do
    ready=$(grep -m 1 '^ready ' "$work/serve.out" || true)
    [ -n "$ready" ] && break
    kill -0 "$serve_pid" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$ready" ]; then
    tail -n 40 "$work/serve.err"
    die "the installed edgeslab did not print its ready line"
fi
ok "serving: $ready"
check "the server runs as edgeslab ($(ps -o user= -p "$serve_pid" || true))" \
    [ "$(ps -o user= -p "$serve_pid" | tr -d ' ')" = edgeslab ]
check "the cache file belongs to edgeslab" \
    [ "$(stat -c %U /var/cache/edgeslab/test-deb.slab 2>/dev/null)" = edgeslab ]

edge="http://127.0.0.1:$listen_port$path"
status=$(curl -s -o "$work/first" -D "$work/first.head" -w '%{http_code}' "$edge" || true)
first_cs=$(tr -d '\r' <"$work/first.head" | grep -i '^cache-status:' || true)
check "first request: 200 (got $status; $first_cs)" [ "$status" = 200 ]
check "first request: the origin's bytes" cmp -s "$work/first" "$work/direct"
status=$(curl -s -o "$work/second" -D "$work/second.head" -w '%{http_code}' "$edge" || true)
second_cs=$(tr -d '\r' <"$work/second.head" | grep -i '^cache-status:' || true)
check "second request: 200 (got $status)" [ "$status" = 200 ]
check "second request: the origin's bytes" cmp -s "$work/second" "$work/direct"
check "second request: a hit ($second_cs)" grep -Eiq '^cache-status:.*; *hit' <<<"$second_cs"
curl -s "http://127.0.0.1:$admin_port/metrics" >"$work/metrics" || true
hits=$(awk '/^edgeslab_cache_hits_total/ { n += $NF } END { print n + 0 }' "$work/metrics")
check "admin /metrics counts the hit (edgeslab_cache_hits_total $hits)" [ "$hits" -ge 1 ]

kill -TERM "$serve_pid"
t0=$(now)
for _ in $(seq 1 200); do
    kill -0 "$serve_pid" 2>/dev/null || break
    sleep 0.1
done
if kill -0 "$serve_pid" 2>/dev/null; then
    fail "SIGTERM: still running after 20 s"
else
    rc=0
    wait "$serve_pid" || rc=$?
    check "SIGTERM: exit $rc within $(( $(now) - t0 )) s" [ "$rc" -eq 0 ]
fi
serve_pid=""
echo "last log lines:"
tail -n 5 "$work/serve.err" | sed 's/^/    /'
kill -TERM "$origin_pid" 2>/dev/null || true
wait "$origin_pid" 2>/dev/null || true
origin_pid=""

# --- purge -------------------------------------------------------------------
if [ "${KEEP_INSTALLED:-0}" = 1 ]; then
    step "purge skipped (KEEP_INSTALLED=1): edgeslab stays installed"
else
    step "purge"
    if apt-get purge -y edgeslab; then
        ok "apt-get purge -y edgeslab"
        installed_by_us=0
    else
        fail "apt-get purge -y edgeslab"
    fi
    check "package gone" bash -c '! dpkg-query -W -f="\${Status}" edgeslab 2>/dev/null | grep -q installed'
    check "/usr/bin/edgeslab removed" [ ! -e /usr/bin/edgeslab ]
    check "/var/cache/edgeslab removed" [ ! -e /var/cache/edgeslab ]
    check "/var/lib/edgeslab removed" [ ! -e /var/lib/edgeslab ]
    check "/etc/edgeslab/edgeslab.toml removed (conffile purged)" [ ! -e /etc/edgeslab/edgeslab.toml ]
    check "user edgeslab removed" bash -c '! getent passwd edgeslab >/dev/null'
    check "group edgeslab removed" bash -c '! getent group edgeslab >/dev/null'
fi

t_all=$(( $(now) - start_all ))
printf '\ntimings: cargo-deb %s s, build %s s, the rest %s s, total %s s\n' \
    "$t_install" "$t_build" "$((t_all - t_install - t_build))" "$t_all"
if [ "$failures" -ne 0 ]; then
    echo "$failures check(s) failed"
    exit 1
fi
echo "all checks passed"
