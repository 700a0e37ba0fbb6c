/*
 * nouring.h - a seccomp filter that makes the kernel refuse io_uring to the
 * calling thread and everything it starts or execs afterwards, as
 * kernel.io_uring_disabled or a container's seccomp profile would, without
 * touching the sysctl that other tests share: see nouring.c.
 */
#ifndef PPFWD_TESTS_NOURING_H
#define PPFWD_TESTS_NOURING_H

/* Sets no_new_privs and installs a filter under which io_uring_setup,
 * io_uring_enter and io_uring_register fail with EPERM (native syscalls of
 * x86_64 and aarch64; anything else is allowed). Applies to the calling
 * thread and to the threads and programs it then starts; it cannot be
 * undone. Returns 0, or -errno: -ENOTSUP on another architecture, or why
 * prctl/seccomp refused (-EINVAL: a kernel without seccomp filters). */
int nouring_install(void);

#endif /* PPFWD_TESTS_NOURING_H */
