/*
 * nouring.c - a seccomp BPF filter that makes io_uring_setup,
 * io_uring_enter and io_uring_register fail with EPERM: how the tests see
 * the event loop fall back to epoll when the kernel refuses io_uring
 * (tests/unit/test_loop_fallback.c, and tests/tools/no_uring.c for the
 * daemon), without the global kernel.io_uring_disabled. Plain libc and the
 * kernel's headers (no libseccomp).
 *
 * The filter checks the architecture first (seccomp_data.arch): a syscall
 * number means something else under another ABI (i386 on x86_64, say), so
 * only the native ABI's numbers are matched and everything else is
 * allowed. x32 syscalls carry AUDIT_ARCH_X86_64 too, with
 * __X32_SYSCALL_BIT set in the number: that bit is masked off before the
 * comparison, so they are refused as well.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include "nouring.h"

/* The same numbers on every architecture since Linux 5.1 (the generic
 * table); headers older than that do not name them. */
#ifndef __NR_io_uring_setup
#define __NR_io_uring_setup 425
#endif
#ifndef __NR_io_uring_enter
#define __NR_io_uring_enter 426
#endif
#ifndef __NR_io_uring_register
#define __NR_io_uring_register 427
#endif

#if defined(__x86_64__) && !defined(__ILP32__)
#define NOURING_ARCH AUDIT_ARCH_X86_64
#define NOURING_NR_MASK (~(uint32_t)0x40000000u) /* __X32_SYSCALL_BIT */
#elif defined(__aarch64__) && !defined(__ILP32__)
#define NOURING_ARCH AUDIT_ARCH_AARCH64
#define NOURING_NR_MASK (~(uint32_t)0)
#endif

int nouring_install(void)
{
#ifdef NOURING_ARCH
    static struct sock_filter filter[] = {
        /* Another ABI's numbers mean other syscalls: allow. */
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NOURING_ARCH, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_STMT(BPF_ALU | BPF_AND | BPF_K, NOURING_NR_MASK),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 3, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_enter, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_register, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
    };
    struct sock_fprog prog = {
        .len = (unsigned short)(sizeof(filter) / sizeof(filter[0])),
        .filter = filter,
    };

    /* Without CAP_SYS_ADMIN the kernel takes a filter only from a thread
     * that can gain no privileges (setuid programs it execs). */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return -errno;
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) == 0)
        return 0;
    if (errno != ENOSYS)
        return -errno;
    /* seccomp(2) is Linux 3.17; prctl has done the same since 3.5. */
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) != 0)
        return -errno;
    return 0;
#else
    return -ENOTSUP;
#endif
}
