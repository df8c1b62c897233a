/* What bench/relay/echo.c and bench/relay/tcpload.c share; both include it, and
 * bench/relay/run.sh recompiles them when it changes. Standard C and Linux only.
 */
#ifndef FERRY_BENCH_RELAY_COMMON_H
#define FERRY_BENCH_RELAY_COMMON_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

/* "IP:PORT" (IPv4) into *sa; 0, or -1 if text is not one. */
static inline int parse_addr(const char *text, struct sockaddr_in *sa) {
    char host[64];
    const char *colon = strrchr(text, ':');
    if (!colon || (size_t)(colon - text) >= sizeof host) return -1;
    memcpy(host, text, colon - text);
    host[colon - text] = 0;
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((unsigned short)atoi(colon + 1));
    return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -1;
}

#endif
