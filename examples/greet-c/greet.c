/*
 * greet: answers every request on subject "greet" with "Hello, <payload>!".
 *
 * Build (in this directory):
 *     clang --target=wasm32-wasi -O2 -mexec-model=reactor -s -I../../sdk/c -o greet-c.wasm greet.c
 */
#include "trellis.h"

static const char prefix[] = "Hello, ";
static const char suffix[] = "!";

static int32_t init(void) {
    return trellis_status_of(trellis_subscribe("greet", NULL));
}

static int32_t handle(const trellis_msg *msg) {
    if (msg->reply_len == 0) return 0; /* a plain publish: nobody to answer */

    /* Read the name straight into its place in the answer: one copy. */
    size_t pre = sizeof prefix - 1, suf = sizeof suffix - 1, n = msg->data_len;
    char *out = malloc(pre + n + suf);
    if (!out) return trellis_fail(500, "out of memory");
    memcpy(out, prefix, pre);
    trellis_read(TRELLIS_FIELD_DATA, 0, out + pre, n);
    memcpy(out + pre + n, suffix, suf);

    int32_t r = trellis_reply(NULL, 0, out, pre + n + suf);
    free(out);
    if (TRELLIS_FAILED(r)) return trellis_fail(500, trellis_status_name(r));
    return 0;
}

TRELLIS_PLUGIN(init, handle)
