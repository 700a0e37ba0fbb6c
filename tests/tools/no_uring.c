/*
 * no_uring - runs a program with io_uring refused by the kernel.
 *
 *     no_uring PROGRAM [ARG...]
 *
 * Installs the seccomp filter of tests/common/nouring.c (io_uring_setup,
 * io_uring_enter and io_uring_register fail with EPERM, as under
 * kernel.io_uring_disabled=2 or a container runtime's seccomp profile),
 * then execs PROGRAM, which inherits the filter with every thread and
 * child it starts. The sysctl is global, the filter is for this process
 * tree only: tests/integration/test_uring_refused.py runs ppfwd under it
 * while other tests run beside it.
 *
 * Exits 2 on a usage error, 3 when the filter cannot be installed (the
 * message says why: no seccomp filters in this kernel, an architecture the
 * filter does not know), 127 when PROGRAM cannot be executed.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "nouring.h"

int main(int argc, char **argv)
{
    int rc;

    if (argc < 2) {
        fprintf(stderr, "usage: no_uring PROGRAM [ARG...]\n");
        return 2;
    }
    rc = nouring_install();
    if (rc < 0) {
        fprintf(stderr, "no_uring: cannot install the seccomp filter: %s\n", strerror(-rc));
        return 3;
    }
    execvp(argv[1], argv + 1);
    fprintf(stderr, "no_uring: %s: %s\n", argv[1], strerror(errno));
    return 127;
}
