/* bench/handoff.c: what one hand-off between processes costs, the unit a lock-step pipeline
 * pays per stage and request (bench/handoff.sh runs it pinned and unpinned).
 *   handoff ring N [PAGES]  a byte passed round a ring of N processes over pipes; each
 *                           process touches PAGES pages of its own per hop (cache, TLB)
 *   handoff tcp             1,200 bytes out and 300 back over a loopback TCP connection
 *   handoff unix            the same over a Unix stream socket pair
 * Prints microseconds per hop (ring) or per round trip (tcp). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static int ring(int n, int pages) {
    enum { rounds = 20000 };
    int p[64][2];
    if (n < 2 || n > 64) { fprintf(stderr, "handoff: ring size 2..64\n"); return 2; }
    for (int i = 0; i < n; i++) if (pipe(p[i]) != 0) { perror("pipe"); return 1; }
    char *mem = pages ? calloc(pages, 4096) : NULL;
    for (int k = 1; k < n; k++) {
        if (fork() == 0) {
            char c;
            for (int i = 0; i < rounds; i++) {
                if (read(p[k - 1][0], &c, 1) != 1) _exit(1);
                for (int j = 0; j < pages; j++) mem[j * 4096]++;
                if (write(p[k][1], &c, 1) != 1) _exit(1);
            }
            _exit(0);
        }
    }
    char c = 'x';
    double t = now();
    for (int i = 0; i < rounds; i++) {
        if (write(p[0][1], &c, 1) != 1 || read(p[n - 1][0], &c, 1) != 1) { perror("ring"); return 1; }
    }
    double dt = now() - t;
    while (wait(NULL) > 0) {}
    printf("ring of %d, %d pages touched per hop: %.2f us per hop\n", n, pages, dt / rounds / n * 1e6);
    return 0;
}

static int pingpong(int unix_socket) {
    enum { rounds = 50000 };
    char buf[2048];
    memset(buf, 'x', sizeof buf);
    int cs, ss;
    if (unix_socket) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) { perror("socketpair"); return 1; }
        cs = sv[0], ss = sv[1];
    } else {
        struct sockaddr_in a = {.sin_family = AF_INET};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        int one = 1, ls = socket(AF_INET, SOCK_STREAM, 0);
        if (bind(ls, (struct sockaddr *)&a, sizeof a) != 0 || listen(ls, 1) != 0 ||
            getsockname(ls, (struct sockaddr *)&a, &len) != 0) { perror("listen"); return 1; }
        cs = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(cs, (struct sockaddr *)&a, sizeof a) != 0) { perror("connect"); return 1; }
        ss = accept(ls, NULL, NULL);
        setsockopt(cs, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        setsockopt(ss, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    if (fork() == 0) {
        for (int i = 0; i < rounds; i++) {
            if (read(ss, buf, sizeof buf) <= 0 || write(ss, buf, 300) != 300) _exit(1);
        }
        _exit(0);
    }
    double t = now();
    for (int i = 0; i < rounds; i++) {
        if (write(cs, buf, 1200) != 1200 || read(cs, buf, sizeof buf) <= 0) { perror("tcp"); return 1; }
    }
    double dt = now() - t;
    wait(NULL);
    printf("%s, 1200 bytes out and 300 back: %.2f us per round trip\n", unix_socket ? "Unix socket" : "loopback TCP",
           dt / rounds * 1e6);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 3 && strcmp(argv[1], "ring") == 0) return ring(atoi(argv[2]), argc > 3 ? atoi(argv[3]) : 0);
    if (argc == 2 && strcmp(argv[1], "tcp") == 0) return pingpong(0);
    if (argc == 2 && strcmp(argv[1], "unix") == 0) return pingpong(1);
    fprintf(stderr, "usage: handoff ring N [PAGES] | handoff tcp | handoff unix\n");
    return 2;
}
