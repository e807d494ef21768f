/* bench/ccat: the start-up reference for bench/startup.c. A static C program that copies
 * standard input to standard output with read(2)/write(2), as the smallest possible
 * filter would: what exec + one record in and out costs on this machine.
 *   cc -O2 -static -o /tmp/ccat bench/ccat.c                                            */
#include <unistd.h>

int main(void) {
    char buf[65536];
    ssize_t n;
    while ((n = read(0, buf, sizeof buf)) > 0) {
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(1, buf + off, n - off);
            if (w <= 0) return 1;
            off += w;
        }
    }
    return n < 0;
}
