/* bench/startup: median wall time of running a command N times, stdin from a file,
 * stdout to /dev/null. A C harness because hyperfine 1.15 (Debian 12) has no --input
 * and a Python harness adds a millisecond of its own.
 *   cc -O2 -o startup bench/startup.c && ./startup RUNS INPUT CMD [ARGS...]        */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: startup RUNS INPUT CMD [ARGS...]\n"); return 2; }
    int runs = atoi(argv[1]);
    double *t = calloc(runs, sizeof *t);
    for (int i = -runs / 10; i < runs; i++) {       /* the first tenth warms the page cache */
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        pid_t pid = fork();
        if (pid == 0) {
            int in = open(argv[2], O_RDONLY), out = open("/dev/null", O_WRONLY);
            dup2(in, 0); dup2(out, 1);
            execv(argv[3], argv + 3);
            _exit(127);
        }
        int status;
        waitpid(pid, &status, 0);
        clock_gettime(CLOCK_MONOTONIC, &b);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) { fprintf(stderr, "%s failed\n", argv[3]); return 1; }
        if (i >= 0) t[i] = (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6;
    }
    qsort(t, runs, sizeof *t, cmp);
    printf("%s: median %.3f ms, p10 %.3f, p90 %.3f (%d runs)\n", argv[3], t[runs / 2], t[runs / 10], t[runs * 9 / 10], runs);
    return 0;
}
