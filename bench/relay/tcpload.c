/* The relay benchmark's TCP client: byte-exact check, short-connection rate, round-trip latency
 * and idle connections, against an echo server (bench/relay/echo.c) directly or through a proxy.
 *
 *   tcpload check   IP:PORT BYTES                one connection: BYTES of pseudo-random data
 *                                                sent, then FIN; everything must come back
 *                                                byte-exact, then EOF. Exit 1 otherwise.
 *   tcpload rate    IP:PORT SECONDS CONCURRENCY  keep CONCURRENCY connections in flight, each:
 *                                                connect, send 16 bytes, read the 16 back,
 *                                                close; count completed connections
 *   tcpload rtt     IP:PORT COUNT                one connection, COUNT 64-byte round trips, one
 *                                                at a time (after 1,000 unmeasured ones)
 *   tcpload connrtt IP:PORT COUNT                COUNT times, one at a time: connect, one
 *                                                64-byte round trip, close
 *   tcpload idle    IP:PORT N                    open N connections (one 16-byte round trip
 *                                                each), print "ready ...", hold them; on
 *                                                SIGTERM/SIGINT count how many are still open
 *                                                (none closed or reset by the proxy), print
 *                                                "end ..." and exit
 *   tcpload slow    IP:PORT N                    the one-byte slow-client attack: open N
 *                                                connections, each sends "P" (the first byte of
 *                                                a PROXY v1 signature) and nothing more; print
 *                                                "ready ...", hold them; on SIGTERM/SIGINT
 *                                                count those still waiting (nothing came back),
 *                                                answered (bytes came back: the proxy passed
 *                                                the byte on), closed and reset, print
 *                                                "end ..." and exit
 *
 * Output is one line of key=value pairs (latencies in microseconds) for bench/relay/run.sh.
 * rate and idle connect from 127.0.0.2-127.0.0.9 in turn (IP_BIND_ADDRESS_NO_PORT), so
 * ephemeral ports run out eight times later; slow from 127.0.0.2-127.0.0.33, so 5,000 clients
 * are 157 per address, under a per-address limit of 256. The proxy's own connections to its
 * upstream come from 127.0.0.1. All sockets set TCP_NODELAY. Built by bench/relay/run.sh with gcc -O2.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

#define SOURCES 8
#define SHORT_MSG 16
#define RTT_MSG 64

static struct sockaddr_in target;
static unsigned next_source, sources = SOURCES;

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void die(const char *what) {
    fprintf(stderr, "tcpload: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* A TCP socket, connect started (non-blocking) or done (blocking). rotate: next source address. */
static int open_conn(int nonblocking, int rotate) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (rotate) {
        struct sockaddr_in src = {.sin_family = AF_INET};
        src.sin_addr.s_addr = htonl(0x7f000002u + next_source++ % sources);
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0) { close(fd); return -1; }
    }
    if (connect(fd, (struct sockaddr *)&target, sizeof target) < 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double pct(double *v, size_t n, double p) {
    if (n == 0) return 0;
    size_t i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

static void print_latencies(double *v, size_t n) {
    qsort(v, n, sizeof *v, cmp_double);
    printf(" p50_us=%.1f p90_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f", pct(v, n, 50),
           pct(v, n, 90), pct(v, n, 99), pct(v, n, 99.9), n ? v[n - 1] : 0.0);
}

/* Blocking helpers for check, rtt and connrtt. */
static int send_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0) { if (errno == EINTR) continue; return -1; }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static int recv_all(int fd, char *p, size_t n) {
    while (n) {
        ssize_t k = recv(fd, p, n, 0);
        if (k == 0) { errno = ECONNRESET; return -1; }
        if (k < 0) { if (errno == EINTR) continue; return -1; }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* ---- check ------------------------------------------------------------------------------ */
static uint64_t xs = 0x9e3779b97f4a7c15ull;
static unsigned char next_byte(uint64_t *s) {
    *s ^= *s << 13; *s ^= *s >> 7; *s ^= *s << 17;
    return (unsigned char)(*s >> 24);
}

static int do_check(long long total) {
    int fd = open_conn(1, 0);
    if (fd < 0) die("connect");
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    if (poll(&p, 1, 5000) != 1) { fprintf(stderr, "tcpload: connect timed out\n"); return 1; }
    uint64_t tx = xs, rx = xs;
    long long sent = 0, got = 0;
    unsigned char out[65536], in[65536];
    size_t out_len = 0, out_off = 0;
    int shut = 0;
    double deadline = now_us() + 60e6;
    for (;;) {
        p.events = POLLIN | (shut ? 0 : POLLOUT);
        int r = poll(&p, 1, 1000);
        if (r < 0 && errno != EINTR) die("poll");
        if (now_us() > deadline) {
            printf("check ok=0 bytes=%lld received=%lld error=timeout\n", total, got);
            return 1;
        }
        if (!shut && (p.revents & POLLOUT)) {
            if (out_off == out_len) {
                out_len = sizeof out;
                if ((long long)out_len > total - sent) out_len = (size_t)(total - sent);
                for (size_t i = 0; i < out_len; i++) out[i] = next_byte(&tx);
                out_off = 0;
            }
            ssize_t k = send(fd, out + out_off, out_len - out_off, MSG_NOSIGNAL);
            if (k < 0 && errno != EAGAIN) {
                printf("check ok=0 bytes=%lld received=%lld error=send:%s\n", total, got, strerror(errno));
                return 1;
            }
            if (k > 0) { out_off += (size_t)k; sent += k; }
            if (sent == total && out_off == out_len) { shutdown(fd, SHUT_WR); shut = 1; }
        }
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t k = recv(fd, in, sizeof in, MSG_DONTWAIT);
            if (k < 0 && errno != EAGAIN) {
                printf("check ok=0 bytes=%lld received=%lld error=recv:%s\n", total, got, strerror(errno));
                return 1;
            }
            if (k == 0) break;
            for (ssize_t i = 0; i < k; i++) {
                if (in[i] != next_byte(&rx)) {
                    printf("check ok=0 bytes=%lld received=%lld error=mismatch_at_%lld\n", total, got, got + i);
                    return 1;
                }
            }
            if (k > 0) got += k;
        }
    }
    int ok = got == total;
    printf("check ok=%d bytes=%lld received=%lld%s\n", ok, total, got, ok ? "" : " error=short");
    return ok ? 0 : 1;
}

/* ---- rate ------------------------------------------------------------------------------- */
enum { CONNECTING, READING };
struct slot { int fd, state, got; double start; };

static int do_rate(double seconds, int concurrency) {
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct slot *slots = calloc((size_t)concurrency, sizeof *slots);
    size_t lat_cap = 1 << 20, lat_n = 0;
    double *lat = malloc(lat_cap * sizeof *lat);
    long long done = 0, connect_errors = 0, resets = 0, short_reads = 0;
    char msg[SHORT_MSG], in[SHORT_MSG];
    memset(msg, 'x', sizeof msg);
    double start = now_us(), end = start + seconds * 1e6;

#define START(s) do {                                                                  \
        (s)->fd = open_conn(1, 1);                                                     \
        if ((s)->fd < 0) { connect_errors++; (s)->fd = -1; break; }                    \
        (s)->state = CONNECTING; (s)->got = 0; (s)->start = now_us();                  \
        struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = (s)};                 \
        epoll_ctl(ep, EPOLL_CTL_ADD, (s)->fd, &ev);                                    \
    } while (0)

    for (int i = 0; i < concurrency; i++) START(&slots[i]);
    struct epoll_event events[512];
    for (;;) {
        double t = now_us();
        if (t >= end) break;
        /* Slots whose connect failed synchronously are retried here. */
        for (int i = 0; i < concurrency; i++) if (slots[i].fd < 0) START(&slots[i]);
        int n = epoll_wait(ep, events, 512, (int)((end - t) / 1000) + 1);
        for (int i = 0; i < n; i++) {
            struct slot *s = events[i].data.ptr;
            int failed = 0;
            if (s->state == CONNECTING) {
                int err = 0;
                socklen_t len = sizeof err;
                getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
                if (err) { connect_errors++; failed = 1; }
                else if (send(s->fd, msg, sizeof msg, MSG_NOSIGNAL) != (ssize_t)sizeof msg) { resets++; failed = 1; }
                else {
                    s->state = READING;
                    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = s};
                    epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &ev);
                }
            } else {
                ssize_t k = recv(s->fd, in, sizeof in - (size_t)s->got, 0);
                if (k < 0 && errno == EAGAIN) continue;
                if (k < 0) { resets++; failed = 1; }
                else if (k == 0) { short_reads++; failed = 1; }
                else if ((s->got += (int)k) == SHORT_MSG) {
                    done++;
                    if (lat_n < lat_cap) lat[lat_n++] = now_us() - s->start;
                    close(s->fd);
                    START(s);
                    continue;
                }
            }
            if (failed) { close(s->fd); START(s); }
        }
    }
    double elapsed = (now_us() - start) / 1e6;
    printf("rate connections=%lld seconds=%.3f per_second=%.0f errors=%lld connect_errors=%lld "
           "resets=%lld short=%lld", done, elapsed, done / elapsed,
           connect_errors + resets + short_reads, connect_errors, resets, short_reads);
    print_latencies(lat, lat_n);
    printf("\n");
    return 0;
}

/* ---- rtt, connrtt ----------------------------------------------------------------------- */
static int do_rtt(long count, int reconnect) {
    char msg[RTT_MSG], in[RTT_MSG];
    memset(msg, 'r', sizeof msg);
    double *lat = malloc((size_t)count * sizeof *lat);
    long warm = reconnect ? 100 : 1000;
    int fd = reconnect ? -1 : open_conn(0, 0);
    if (!reconnect && fd < 0) die("connect");
    for (long i = -warm; i < count; i++) {
        double t = now_us();
        if (reconnect && (fd = open_conn(0, 0)) < 0) die("connect");
        if (send_all(fd, msg, sizeof msg) < 0 || recv_all(fd, in, sizeof in) < 0) die("round trip");
        if (reconnect) close(fd);
        if (i >= 0) lat[i] = now_us() - t;
    }
    if (!reconnect) close(fd);
    printf("%s count=%ld", reconnect ? "connrtt" : "rtt", count);
    print_latencies(lat, (size_t)count);
    printf("\n");
    return 0;
}

/* ---- idle ------------------------------------------------------------------------------- */
static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

static int do_idle(int n) {
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < (rlim_t)n + 64) {
        fprintf(stderr, "tcpload: ulimit -n is %lu, %d connections need more\n",
                (unsigned long)rl.rlim_cur, n);
        return 1;
    }
    int *fds = malloc((size_t)n * sizeof *fds);
    int established = 0, failed = 0, in_flight = 0, next = 0;
    char msg[SHORT_MSG], in[SHORT_MSG];
    memset(msg, 'i', sizeof msg);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event events[256];
    double t0 = now_us(), deadline = t0 + 120e6;
    /* Up to 256 handshakes in flight: like clients arriving, not a SYN flood. */
    while (established + failed < n && now_us() < deadline) {
        while (in_flight < 256 && next < n) {
            int fd = open_conn(1, 1);
            if (fd < 0) { failed++; next++; continue; }
            fds[next] = fd;
            struct epoll_event ev = {.events = EPOLLOUT, .data.u64 = (uint64_t)next};
            epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
            next++;
            in_flight++;
        }
        int k = epoll_wait(ep, events, 256, 1000);
        for (int i = 0; i < k; i++) {
            int idx = (int)events[i].data.u64, fd = fds[idx];
            if (events[i].events & EPOLLOUT) {
                int err = 0;
                socklen_t len = sizeof err;
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
                if (err || send(fd, msg, sizeof msg, MSG_NOSIGNAL) != (ssize_t)sizeof msg) {
                    close(fd); fds[idx] = -1; failed++; in_flight--; continue;
                }
                struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)idx};
                epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
            } else {
                /* 16 bytes on loopback arrive in one segment: one read is enough. */
                ssize_t r = recv(fd, in, sizeof in, 0);
                epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
                in_flight--;
                if (r == SHORT_MSG) established++;
                else { close(fd); fds[idx] = -1; failed++; }
            }
        }
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    printf("ready established=%d failed=%d seconds=%.1f\n", established, failed, (now_us() - t0) / 1e6);
    fflush(stdout);
    while (!stop) pause();
    /* Still open: no byte, FIN, reset or error waiting on the socket. */
    int alive = 0, closed = 0;
    for (int i = 0; i < next; i++) {
        if (fds[i] < 0) continue;
        struct pollfd p = {.fd = fds[i], .events = POLLIN | POLLRDHUP};
        if (poll(&p, 1, 0) == 0) alive++;
        else closed++;
    }
    printf("end alive=%d closed=%d\n", alive, closed);
    fflush(stdout);
    return 0;
}

/* ---- slow ------------------------------------------------------------------------------- */
static int do_slow(int n) {
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < (rlim_t)n + 64) {
        fprintf(stderr, "tcpload: ulimit -n is %lu, %d connections need more\n",
                (unsigned long)rl.rlim_cur, n);
        return 1;
    }
    sources = 32;
    int *fds = malloc((size_t)n * sizeof *fds);
    int opened = 0, failed = 0, in_flight = 0, next = 0;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event events[256];
    double t0 = now_us(), deadline = t0 + 120e6;
    /* Up to 256 handshakes in flight, as in idle. */
    while (opened + failed < n && now_us() < deadline) {
        while (in_flight < 256 && next < n) {
            int fd = open_conn(1, 1);
            if (fd < 0) { fds[next++] = -1; failed++; continue; }
            fds[next] = fd;
            struct epoll_event ev = {.events = EPOLLOUT, .data.u64 = (uint64_t)next};
            epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
            next++;
            in_flight++;
        }
        int k = epoll_wait(ep, events, 256, 1000);
        for (int i = 0; i < k; i++) {
            int idx = (int)events[i].data.u64, fd = fds[idx];
            int err = 0;
            socklen_t len = sizeof err;
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
            epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
            in_flight--;
            if (err || send(fd, "P", 1, MSG_NOSIGNAL) != 1) { close(fd); fds[idx] = -1; failed++; }
            else opened++;
        }
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    printf("ready opened=%d failed=%d seconds=%.1f\n", opened, failed, (now_us() - t0) / 1e6);
    fflush(stdout);
    while (!stop) pause();
    int waiting = 0, answered = 0, closed = 0, reset = 0;
    for (int i = 0; i < next; i++) {
        if (fds[i] < 0) continue;
        char c;
        ssize_t r = recv(fds[i], &c, 1, MSG_DONTWAIT | MSG_PEEK);
        if (r > 0) answered++;
        else if (r == 0) closed++;
        else if (errno == EAGAIN) waiting++;
        else reset++;
    }
    printf("end waiting=%d answered=%d closed=%d reset=%d\n", waiting, answered, closed, reset);
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    if (argc < 4 || parse_addr(argv[2], &target) < 0) goto usage;
    if (!strcmp(argv[1], "check")) return do_check(atoll(argv[3]));
    if (!strcmp(argv[1], "rate") && argc == 5) return do_rate(atof(argv[3]), atoi(argv[4]));
    if (!strcmp(argv[1], "rtt")) return do_rtt(atol(argv[3]), 0);
    if (!strcmp(argv[1], "connrtt")) return do_rtt(atol(argv[3]), 1);
    if (!strcmp(argv[1], "idle")) return do_idle(atoi(argv[3]));
    if (!strcmp(argv[1], "slow")) return do_slow(atoi(argv[3]));
usage:
    fprintf(stderr, "usage: tcpload check|rate|rtt|connrtt|idle|slow IP:PORT ARGS (see the source)\n");
    return 64;
}
