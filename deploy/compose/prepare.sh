#!/usr/bin/env bash
# Makes everything docker-compose.yml mounts that is not in the repository, on the host:
#
#   deploy/compose/prepare.sh [OUT_DIR]     # default OUT_DIR: deploy/compose/generated
#   deploy/compose/prepare.sh --list-outputs
#
# Into OUT_DIR (every file is replaced on each run):
#   ca.crt, ca.key          a local CA (openssl), valid 365 days; the client and Envoy trust it
#   tls/mirror.{crt,key}    example.cn and *.example.cn, for Envoy
#   tls/origin.{crt,key}    example.com and *.example.com, for Envoy and the nginx origin
#   geo.txt                 tests/data/geo-sample.txt plus the compose "china" network as CN
#   GeoLite2-Country.mmdb   geo.txt as a MaxMind country database (tests/src/bin/ferry-mmdb.rs)
#   ferry_filter.wasm       the filter (cargo build --release --target wasm32-wasip1 -p ferry-filter)
#
# --list-outputs prints those paths, relative to OUT_DIR, one a line (tests/tests/e2e/deploy/compose.rs
# checks that every file the compose file mounts from generated/ is one of them).
#
# Needs openssl and cargo (rustup with the wasm32-wasip1 target: `./run setup` adds it).
# FERRY_WASM=/path/to/ferry_filter.wasm and FERRY_MMDB=/path/to/ferry-mmdb use files already
# built instead of running cargo.
#
# The keys are demo keys for a throwaway CA and are written world-readable: the Envoy image
# runs Envoy as the unprivileged user `envoy`, which must read them through the bind mount.
# Never do that with real keys. ca.key (not mounted) stays private to you.
set -euo pipefail

OUTPUTS=(
    ca.crt
    ca.key
    tls/mirror.crt
    tls/mirror.key
    tls/origin.crt
    tls/origin.key
    geo.txt
    GeoLite2-Country.mmdb
    ferry_filter.wasm
)
# The compose file's "china" network (docker-compose.yml, networks.china): every visitor there
# is from China, for the geo redirect.
CHINA_SUBNET=10.86.0.0/24
DAYS=365

die() {
    printf 'prepare.sh: %s\n' "$*" >&2
    exit 1
}
say() { printf '==> %s\n' "$*" >&2; }
# Exit status 64 (EX_USAGE), as the project's other tools.
usage_error() {
    printf 'prepare.sh: %s (usage: prepare.sh [OUT_DIR] | --list-outputs | --help)\n' "$1" >&2
    exit 64
}

case "${1:-}" in
    --list-outputs)
        printf '%s\n' "${OUTPUTS[@]}"
        exit 0
        ;;
    -h | --help)
        # The header comment, without the "#".
        awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
        exit 0
        ;;
    -*) usage_error "unknown option $1" ;;
esac
[[ $# -le 1 ]] || usage_error "too many arguments"

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=${1:-$HERE/generated}

command -v openssl >/dev/null || die "openssl not found: install it (Debian/Ubuntu: apt-get install openssl)"
mkdir -p "$OUT/tls" || die "cannot create $OUT/tls"
OUT=$(cd "$OUT" && pwd)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# --- a local CA and two server certificates --------------------------------------------------
# Config files rather than -addext, so that OpenSSL 1.1 and LibreSSL (macOS) work too.
say "local CA and certificates (openssl) in $OUT"
cat >"$TMP/ca.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = Ferry compose demo CA
[ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF
openssl req -x509 -new -nodes -newkey rsa:2048 -sha256 -days "$DAYS" \
    -config "$TMP/ca.cnf" -extensions ca -keyout "$TMP/ca.key" -out "$TMP/ca.crt" 2>"$TMP/log" ||
    die "openssl could not make the CA: $(cat "$TMP/log")"

# issue NAME DOMAIN: tls/NAME.crt and tls/NAME.key for DOMAIN and *.DOMAIN, signed by the CA.
issue() {
    local name=$1 domain=$2
    cat >"$TMP/$name.cnf" <<EOF
[req]
distinguished_name = dn
prompt = no
[dn]
CN = $domain
[leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:$domain, DNS:*.$domain
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
    openssl req -new -nodes -newkey rsa:2048 -sha256 -config "$TMP/$name.cnf" \
        -keyout "$TMP/$name.key" -out "$TMP/$name.csr" 2>"$TMP/log" ||
        die "openssl could not make the $name key: $(cat "$TMP/log")"
    openssl x509 -req -in "$TMP/$name.csr" -CA "$TMP/ca.crt" -CAkey "$TMP/ca.key" \
        -set_serial "0x$(openssl rand -hex 16)" -days "$DAYS" -sha256 \
        -extfile "$TMP/$name.cnf" -extensions leaf -out "$TMP/$name.crt" 2>"$TMP/log" ||
        die "openssl could not sign the $name certificate: $(cat "$TMP/log")"
    openssl verify -CAfile "$TMP/ca.crt" "$TMP/$name.crt" >/dev/null 2>"$TMP/log" ||
        die "the $name certificate does not verify: $(cat "$TMP/log")"
}
issue mirror example.cn
issue origin example.com

# --- the country database --------------------------------------------------------------------
say "country database: tests/data/geo-sample.txt + $CHINA_SUBNET CN"
{
    cat "$ROOT/tests/data/geo-sample.txt"
    printf '\n# docker-compose.yml: the "china" network, where the demo client lives.\n'
    printf '%s CN\n' "$CHINA_SUBNET"
} >"$TMP/geo.txt" || die "cannot read $ROOT/tests/data/geo-sample.txt"
if [[ -n "${FERRY_MMDB:-}" ]]; then
    [[ -x "$FERRY_MMDB" ]] || die "FERRY_MMDB=$FERRY_MMDB is not an executable file"
    "$FERRY_MMDB" "$TMP/geo.txt" "$TMP/GeoLite2-Country.mmdb" || die "ferry-mmdb failed"
else
    command -v cargo >/dev/null || die "cargo not found: install Rust with rustup (https://rustup.rs)"
    # The debug build: the same artifacts as `cargo test` (no release build of the harness).
    (cd "$ROOT" && cargo run --quiet -p ferry-tests --bin ferry-mmdb -- \
        "$TMP/geo.txt" "$TMP/GeoLite2-Country.mmdb") || die "cargo run --bin ferry-mmdb failed"
fi

# --- the filter ------------------------------------------------------------------------------
if [[ -n "${FERRY_WASM:-}" ]]; then
    WASM=$FERRY_WASM
    say "filter: $WASM (FERRY_WASM)"
else
    command -v cargo >/dev/null || die "cargo not found: install Rust with rustup (https://rustup.rs)"
    say "filter: cargo build --release --target wasm32-wasip1 -p ferry-filter"
    (cd "$ROOT" && cargo build --quiet --release --target wasm32-wasip1 -p ferry-filter) ||
        die "the filter did not build (is the target installed? rustup target add wasm32-wasip1)"
    WASM=${CARGO_TARGET_DIR:-$ROOT/target}/wasm32-wasip1/release/ferry_filter.wasm
fi
[[ -f "$WASM" ]] || die "$WASM does not exist"
[[ "$(head -c 4 "$WASM" | od -An -c | tr -d ' ')" == '\0asm' ]] || die "$WASM is not a WebAssembly module"
cp "$WASM" "$TMP/ferry_filter.wasm"

# --- into place ------------------------------------------------------------------------------
for output in "${OUTPUTS[@]}"; do
    made=$TMP/$(basename "$output")
    [[ -f "$made" ]] || die "internal error: $output was not made"
    # World-readable, for the containers' unprivileged users (see the header); not the CA key.
    if [[ $output == ca.key ]]; then mode=0600; else mode=0644; fi
    chmod "$mode" "$made"
    mv -f "$made" "$OUT/$output"
done
chmod 0755 "$OUT" "$OUT/tls"
say "done: $OUT"
