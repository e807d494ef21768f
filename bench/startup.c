/* bench/startup: wall time of running a command N times, stdin from a file, stdout to
 * /dev/null: median, p10, p90. A C harness because hyperfine 1.15 (Debian 12) has no
 * --input and a Python harness adds a millisecond of its own.
 *
 *   cc -O2 -o startup bench/startup.c
 *   ./startup RUNS INPUT CMD [ARGS...]
 *   ./startup RUNS INPUT CMD [ARGS...] :: INPUT2 CMD2 [ARGS...] :: ...
 *
 * With several commands (separated by "::") the runs are interleaved round-robin, so
 * that load from other users of a shared machine falls on every command alike and the
 * ratios between them stay meaningful while the absolute figures move.
 * Each command must exit 0; its page faults (minor) are reported from wait4's rusage.  */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct command { char *input; char **argv; double *t; long faults; };

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double run(struct command *c, long *faults) {
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    pid_t pid = fork();
    if (pid == 0) {
        int in = open(c->input, O_RDONLY), out = open("/dev/null", O_WRONLY);
        if (in < 0) { perror(c->input); _exit(127); }
        dup2(in, 0); dup2(out, 1);
        execv(c->argv[0], c->argv);
        _exit(127);
    }
    int status;
    struct rusage ru;
    wait4(pid, &status, 0, &ru);
    clock_gettime(CLOCK_MONOTONIC, &b);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "%s failed (status %d)\n", c->argv[0], status);
        exit(1);
    }
    *faults = ru.ru_minflt + ru.ru_majflt;
    return (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6;
}

int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: startup RUNS INPUT CMD [ARGS...] [:: INPUT CMD [ARGS...]]...\n"); return 2; }
    int runs = atoi(argv[1]);
    if (runs < 10) { fprintf(stderr, "startup: RUNS must be at least 10\n"); return 2; }
    struct command cmds[64];
    int n = 0;
    for (int i = 2; i < argc && n < 64;) {
        cmds[n].input = argv[i];
        cmds[n].argv = argv + i + 1;
        int j = i + 1;
        while (j < argc && strcmp(argv[j], "::") != 0) j++;
        if (j == i + 1) { fprintf(stderr, "startup: no command after %s\n", argv[i]); return 2; }
        argv[j < argc ? j : argc] = NULL;   /* terminates this command's argv */
        cmds[n].t = calloc(runs, sizeof(double));
        n++;
        i = j + 1;
    }
    for (int i = -runs / 10; i < runs; i++)         /* the first tenth warms the page cache */
        for (int k = 0; k < n; k++) {
            long faults;
            double ms = run(&cmds[k], &faults);
            if (i >= 0) { cmds[k].t[i] = ms; cmds[k].faults = faults; }
        }
    for (int k = 0; k < n; k++) {
        qsort(cmds[k].t, runs, sizeof(double), cmp);
        printf("%s: median %.3f ms, p10 %.3f, p90 %.3f, %ld page faults (%d runs)\n", cmds[k].argv[0],
               cmds[k].t[runs / 2], cmds[k].t[runs / 10], cmds[k].t[runs * 9 / 10], cmds[k].faults, runs);
    }
    return 0;
}
