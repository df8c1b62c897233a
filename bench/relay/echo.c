/* The relay benchmark's upstream for short connections, latency and idle connections: a
 * single-threaded epoll echo server that costs as little CPU per connection as a server can
 * (socat or a Python server would be the limit long before a proxy is).
 *
 *   echo IP:PORT        (prints "listening IP:PORT" on stdout once it accepts)
 *
 * Every byte read is written back. A write that would block keeps the rest in a per-connection
 * buffer and stops reading that connection until the buffer is flushed, so a slow reader costs
 * memory of one read at most (and reading stops, so a FIN is only seen once the echo is out).
 * On the peer's FIN the socket is closed: the FIN travels back through the proxy under test, a
 * half-close check for free. A reset just closes. Nothing is logged per connection.
 *
 * Built by bench/relay/run.sh with gcc -O2; standard C and Linux only.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common.h"

#define READ_SIZE 65536
#define MAX_EVENTS 256

struct conn {
    int fd;
    char *pending; /* bytes read but not yet written back (NULL: none) */
    size_t off, len;
};

static int epfd;
static char buf[READ_SIZE];

static void drop(struct conn *c) {
    close(c->fd); /* also removes it from the epoll set */
    free(c->pending);
    free(c);
}

static void set_events(struct conn *c, unsigned events) {
    struct epoll_event ev = {.events = events, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Writes back what is pending; returns -1 if the connection is gone, 1 if still blocked. */
static int flush(struct conn *c) {
    while (c->off < c->len) {
        ssize_t n = send(c->fd, c->pending + c->off, c->len - c->off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN) return 1;
            if (errno == EINTR) continue;
            return -1;
        }
        c->off += (size_t)n;
    }
    free(c->pending);
    c->pending = NULL;
    c->off = c->len = 0;
    return 0;
}

static void on_event(struct conn *c, unsigned events) {
    if (c->pending) {
        int r = flush(c);
        if (r < 0) { drop(c); return; }
        if (r > 0) return; /* still waiting for EPOLLOUT */
        set_events(c, EPOLLIN | EPOLLRDHUP);
    }
    if (!(events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) return;
    for (;;) {
        ssize_t n = recv(c->fd, buf, sizeof buf, 0);
        if (n == 0) { drop(c); return; } /* FIN, nothing pending */
        if (n < 0) {
            if (errno == EAGAIN) return;
            if (errno == EINTR) continue;
            drop(c); /* reset */
            return;
        }
        ssize_t w = 0;
        while (w < n) {
            ssize_t k = send(c->fd, buf + w, (size_t)(n - w), MSG_NOSIGNAL);
            if (k < 0) {
                if (errno == EINTR) continue;
                if (errno != EAGAIN) { drop(c); return; }
                c->pending = malloc((size_t)(n - w));
                if (!c->pending) { drop(c); return; }
                memcpy(c->pending, buf + w, (size_t)(n - w));
                c->off = 0;
                c->len = (size_t)(n - w);
                set_events(c, EPOLLOUT);
                return;
            }
            w += k;
        }
        if ((size_t)n < sizeof buf) return; /* socket drained (edge-triggered is not used) */
    }
}

int main(int argc, char **argv) {
    struct sockaddr_in sa;
    if (argc != 2 || parse_addr(argv[1], &sa) < 0) {
        fprintf(stderr, "usage: echo IP:PORT\n");
        return 64;
    }
    signal(SIGPIPE, SIG_IGN);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(lfd, 65535) < 0) {
        perror("echo: bind/listen");
        return 1;
    }
    epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev);
    printf("listening %s\n", argv[1]);
    fflush(stdout);

    struct epoll_event events[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(epfd, events, MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            perror("echo: epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            if (c) { on_event(c, events[i].events); continue; }
            for (;;) { /* accept everything queued */
                int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd < 0) {
                    if (errno == EMFILE || errno == ENFILE)
                        fprintf(stderr, "echo: accept: %s (raise ulimit -n)\n", strerror(errno));
                    break;
                }
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                struct conn *nc = calloc(1, sizeof *nc);
                if (!nc) { close(fd); continue; }
                nc->fd = fd;
                struct epoll_event cev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = nc};
                epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &cev);
            }
        }
    }
}
