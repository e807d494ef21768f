/* bench/cpuid: what one CPUID instruction costs on this machine. In a VM each one traps to
 * the hypervisor, and glibc's start-up (init_cacheinfo) issues dozens of them in every
 * process, C or Swift, static or dynamic: the floor under every start-up figure here.
 *   cc -O2 -o cpuid bench/cpuid.c && ./cpuid                                            */
#include <cpuid.h>
#include <stdio.h>
#include <time.h>

int main(void) {
    unsigned a, b, c, d, sink = 0;
    struct timespec s, e;
    clock_gettime(CLOCK_MONOTONIC, &s);
    for (int i = 0; i < 1000; i++) { __cpuid_count(4, i & 3, a, b, c, d); sink += a ^ b ^ c ^ d; }
    clock_gettime(CLOCK_MONOTONIC, &e);
    printf("cpuid: %.2f us each (%u)\n", ((e.tv_sec - s.tv_sec) * 1e9 + (e.tv_nsec - s.tv_nsec)) / 1000 / 1000.0, sink & 1);
    return 0;
}
