#!/bin/sh
# The compose demo's visitor (docker-compose.yml, service `client`, image curlimages/curl): a
# browser in China, at 10.86.0.100, whose DNS sends example.cn and example.com to the relay.
# prepare.sh lists 10.86.0.0/24 as CN in the demo country database, so Envoy's geoip filter
# places this visitor in China, from the address in the relay's PROXY header.
#
# Each step prints what it got and checks it. The script exits 1 at the first wrong answer and
# 0 after "client: all checks passed", so
#   docker compose -f deploy/compose/docker-compose.yml up --build --exit-code-from client
# is a pass/fail run of the whole chain. RELAY and CA may be set to run it elsewhere.
# BusyBox ash (the image's /bin/sh) has pipefail, which POSIX sh lacks.
# shellcheck disable=SC3040
set -euo pipefail

RELAY=${RELAY:-10.86.0.10}
CA=${CA:-/ferry/ca.crt}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

say() { printf '\n== %s\n' "$*"; }
fail() {
    printf 'client: FAILED: %s\n' "$*" >&2
    exit 1
}

# fetch NAME URL [curl options...]: response headers to $WORK/NAME.h, body to $WORK/NAME.b,
# status to $WORK/NAME.status; prints the status line. Retries while the chain starts up
# (connection refused or reset, 503 from Envoy before the origin's name resolves).
fetch() {
    name=$1
    url=$2
    shift 2
    curl --silent --show-error --cacert "$CA" \
        --resolve "example.cn:443:$RELAY" --resolve "example.com:443:$RELAY" \
        --resolve "example.cn:80:$RELAY" \
        --retry 60 --retry-delay 1 --retry-all-errors --connect-timeout 5 --max-time 20 \
        --dump-header "$WORK/$name.h" --output "$WORK/$name.b" \
        --write-out '%{http_version}|%{http_code}|%{content_type}\n' \
        "$@" "$url" >"$WORK/$name.w" || fail "curl $url failed"
    IFS='|' read -r version code type <"$WORK/$name.w" || true
    echo "GET $url -> HTTP/$version $code (${type:-no content type})"
    echo "$code" >"$WORK/$name.status"
}

status() { cat "$WORK/$1.status"; }
# header NAME FIELD: the first value of a response header.
header() { grep -i "^$2:" "$WORK/$1.h" | head -n 1 | cut -d: -f2- | tr -d '\r' | sed 's/^ *//' || true; }
# count NAME REGEX: how many times the (extended) regex matches in the body.
count() { grep -oE "$2" "$WORK/$1.b" | wc -l | tr -d ' ' || true; }
# names NAME: every host-like name around "example.c..." in the body, counted.
names() { grep -oE '[a-z0-9.@-]*example\.c[a-z]*' "$WORK/$1.b" | sort | uniq -c || true; }
# origin_names NAME: how many names in the body are example.com or one of its subdomains.
origin_names() {
    grep -oE '[a-z0-9.-]*example\.com[a-z0-9-]*' "$WORK/$1.b" | grep -cE '^([a-z0-9-]+\.)*example\.com$' || true
}
LOOKALIKES='example\.community|myexample\.com'

say "1. https://example.cn/ through the relay: the mirror, rewritten by Ferry"
fetch mirror https://example.cn/
[ "$(status mirror)" = 200 ] || fail "expected 200 for https://example.cn/"
names mirror
[ "$(origin_names mirror)" = 0 ] || fail "the mirror page still names example.com hosts"
[ "$(count mirror 'www\.example\.cn')" -gt 0 ] || fail "no www.example.cn in the mirror page"
[ "$(count mirror 'integrity=')" = 0 ] || fail "the same-site script kept its integrity attribute"
echo "example.com names left: 0; integrity attributes: 0 (dropped from the same-site script)"

say "2. https://example.com/about.html from China: the geo redirect to the mirror"
fetch redirect 'https://example.com/about.html?from=compose'
[ "$(status redirect)" = 301 ] || fail "expected 301 for https://example.com/ from China"
echo "location: $(header redirect location)"
echo "cache-control: $(header redirect cache-control)"
[ "$(header redirect location)" = "https://example.cn/about.html?from=compose" ] ||
    fail "expected location https://example.cn/about.html?from=compose"

say "3. https://example.com/ from China with the opt-out cookie: the origin's page, untouched"
fetch optout https://example.com/ --cookie ferry_stay=1
[ "$(status optout)" = 200 ] || fail "expected 200 with the ferry_stay cookie"
names optout
[ "$(count optout 'example\.cn')" = 0 ] || fail "the origin's page was rewritten"
[ "$(count optout 'integrity=')" = 1 ] || fail "the origin's page lost its integrity attribute"
[ "$(count optout "$LOOKALIKES")" = "$(count mirror "$LOOKALIKES")" ] ||
    fail "the mirror changed example.community or myexample.com"
echo "example.community and myexample.com: the same on the mirror (not rewritten)"

say "4. http://example.cn/ through the relay's port 80: Envoy redirects to HTTPS"
fetch plain http://example.cn/
echo "location: $(header plain location)"
[ "$(status plain)" = 301 ] || fail "expected 301 for http://example.cn/"
[ "$(header plain location)" = "https://example.cn/" ] || fail "expected location https://example.cn/"

say "5. the relay's metrics (http://$RELAY:9090/metrics)"
curl --silent --show-error --max-time 5 "http://$RELAY:9090/metrics" >"$WORK/metrics" ||
    fail "cannot read the relay's metrics"
grep -E '^ferry_relay_(connections_total|forward_path_total|upstream_up)' "$WORK/metrics" ||
    fail "the relay's metrics lack the connection counters"

printf '\nclient: all checks passed\n'
