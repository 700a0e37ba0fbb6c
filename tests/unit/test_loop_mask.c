/*
 * test_loop_mask.c - the loop is the one owner of an fd's interest
 * (src/loop/loop.c): loop_mask() reports what loop_set/loop_add/loop_del
 * registered, and a failed loop_set or loop_add records nothing: the fd
 * keeps its former interest and callback (a caller that mirrored the mask
 * used to record the new one even then).
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/socket.h>

#include "loop/loop.h"
#include "looptest.h"

static int calls;

static void cb(struct loop *l, int fd, void *arg, unsigned events)
{
    (void)l, (void)fd, (void)arg, (void)events;
    calls++;
}

static void test_mask_follows_calls(void **state)
{
    struct loop *l = lt_loop_new(1024);
    int sv[2];

    (void)state;
    assert_non_null(l);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    assert_int_equal(loop_mask(l, sv[0]), 0); /* not registered */
    assert_int_equal(loop_mask(l, -1), 0);
    assert_int_equal(loop_mask(l, 5000), 0); /* out of range */
    assert_int_equal(loop_set(l, sv[0], LOOP_READ, cb, NULL), 0);
    assert_int_equal(loop_mask(l, sv[0]), LOOP_READ);
    assert_int_equal(loop_add(l, sv[0], LOOP_WRITE, cb, NULL), 0);
    assert_int_equal(loop_mask(l, sv[0]), LOOP_READ | LOOP_WRITE);
    assert_int_equal(loop_del(l, sv[0], LOOP_READ), 0);
    assert_int_equal(loop_mask(l, sv[0]), LOOP_WRITE);
    assert_int_equal(loop_set(l, sv[0], 0, cb, NULL), 0);
    assert_int_equal(loop_mask(l, sv[0]), 0);
    loop_remove(l, sv[0]);
    assert_int_equal(loop_mask(l, sv[0]), 0);
    close(sv[0]);
    close(sv[1]);
    loop_free(l);
}

static void test_failed_set_keeps_mask(void **state)
{
    struct loop *l = lt_loop_new(1024);
    int sv[2], fd;

    (void)state;
    assert_non_null(l);
    if (strcmp(loop_backend(l), "epoll") != 0) {
        loop_free(l);
        /* loop.h: io_uring records interest without a syscall */
        skip();
    }
    /* epoll refuses a regular file: nothing is registered */
    fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(loop_set(l, fd, LOOP_READ, cb, NULL), -EPERM);
    assert_int_equal(loop_mask(l, fd), 0);
    assert_int_equal(loop_add(l, fd, LOOP_READ, cb, NULL), -EPERM);
    assert_int_equal(loop_mask(l, fd), 0);
    assert_int_equal(loop_set_cb(l, fd, cb, NULL), -ENOENT);
    close(fd);
    /* a registered fd whose MOD fails keeps its former interest */
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    assert_int_equal(loop_set(l, sv[0], LOOP_READ, cb, NULL), 0);
    fd = dup(sv[0]);
    close(sv[0]); /* behind the loop's back: epoll still holds the file via fd */
    assert_int_equal(loop_set(l, sv[0], LOOP_WRITE, cb, NULL), -EBADF);
    assert_int_equal(loop_mask(l, sv[0]), LOOP_READ);
    assert_int_equal(loop_add(l, sv[0], LOOP_WRITE, cb, NULL), -EBADF);
    assert_int_equal(loop_mask(l, sv[0]), LOOP_READ);
    /* unchanged: no epoll_ctl at all, so even a closed fd reports success */
    assert_int_equal(loop_set(l, sv[0], LOOP_READ, cb, NULL), 0);
    loop_remove(l, sv[0]);
    close(fd);
    close(sv[1]);
    loop_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mask_follows_calls),
        cmocka_unit_test(test_failed_set_keeps_mask),
    };

    return LT_RUN_BOTH(tests);
}
