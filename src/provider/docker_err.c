/*
 * docker_err.c - what the provider's users need with or without it built
 * in (docker_strerror, docker_api_socket_path): libc only, so the static
 * build (make static, src/compat/docker_none.c) has them too.
 */
#include <string.h>

#include "provider/docker_api.h"
#include "provider/docker_json.h"

const char *docker_strerror(int err)
{
    static const char *const msg[] = {
        [DOCKER_ENOMEM] = "out of memory",
        [DOCKER_ETOOBIG] = "answer too large",
        [DOCKER_EJSON] = "answer is not valid JSON",
        [DOCKER_ESHAPE] = "answer is JSON but not of the documented shape",
        [DOCKER_ECONNECT] = "cannot connect to the API socket",
        [DOCKER_EHTTP] = "the API answered with an error status",
        [DOCKER_EIO] = "the transfer broke off",
        [DOCKER_ESTOPPED] = "stopping",
        [DOCKER_ESOCKET] = "bad socket (expected unix:///PATH or /PATH)",
        [DOCKER_ENOTBUILT] = "this ppfwd was built without the container provider "
                             "(make static: no libcurl and json-c for musl)",
    };

    if (err < 0)
        err = -err;
    if (err <= 0 || (size_t)err >= sizeof(msg) / sizeof(msg[0]) || msg[err] == NULL)
        return "unknown error";
    return msg[err];
}

int docker_api_socket_path(const char *spec, char *path, size_t cap)
{
    if (strncmp(spec, "unix://", 7) == 0)
        spec += 7;
    if (spec[0] != '/' || strlen(spec) >= cap || strlen(spec) >= 108)
        return -DOCKER_ESOCKET;
    strcpy(path, spec);
    return 0;
}
