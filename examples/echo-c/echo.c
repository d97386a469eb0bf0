/*
 * echo: answers every request on subject "echo" with its payload, unchanged.
 * It joins queue group "echo", as the echo examples in the other languages
 * do, so each request is answered by one of them.
 *
 * Build (in this directory):
 *     clang --target=wasm32-wasi -O2 -mexec-model=reactor -s -I../../sdk/c -o echo-c.wasm echo.c
 */
#include "trellis.h"

static int32_t init(void) {
    return trellis_status_of(trellis_subscribe("echo", "echo"));
}

static int32_t handle(const trellis_msg *msg) {
    if (msg->reply_len == 0) return 0; /* a plain publish: nobody to answer */

    /* malloc grows memory as needed, so payloads of any size the host
     * allows fit; 1 MiB is no special case. */
    size_t len;
    char *data = trellis_read_alloc(TRELLIS_FIELD_DATA, &len);
    if (!data) return trellis_fail(500, "out of memory");

    int32_t r = trellis_reply(NULL, 0, data, len);
    free(data);
    if (TRELLIS_FAILED(r)) return trellis_fail(500, trellis_status_name(r));
    return 0;
}

TRELLIS_PLUGIN(init, handle)
