/*
 * greet: answers every request on subject "greet" with "Hello, <payload>!".
 * The operator may change the greeting word with the config key "greeting".
 * It joins queue group "greet", as the greet examples in the other languages
 * do, so each request is answered by one of them.
 *
 * Build (in this directory):
 *     clang --target=wasm32-wasi -O2 -mexec-model=reactor -s -I../../sdk/c -o greet-c.wasm greet.c
 */
#include "trellis.h"

/* The word used when the operator sets no "greeting". */
static const char default_greeting[] = "Hello";

static int32_t init(void) {
    return trellis_status_of(trellis_subscribe("greet", "greet"));
}

static int32_t handle(const trellis_msg *msg) {
    if (msg->reply_len == 0) return 0; /* a plain publish: nobody to answer */

    size_t word_len;
    char *word = trellis_config_alloc("greeting", &word_len);
    const char *greeting = word ? word : default_greeting;
    if (!word) word_len = sizeof default_greeting - 1;

    /* "<greeting>, <payload>!": the payload is read straight into its place. */
    size_t n = msg->data_len, total = word_len + 2 + n + 1;
    char *out = malloc(total);
    if (!out) {
        free(word);
        return trellis_fail(500, "out of memory");
    }
    memcpy(out, greeting, word_len);
    memcpy(out + word_len, ", ", 2);
    trellis_read(TRELLIS_FIELD_DATA, 0, out + word_len + 2, n);
    out[total - 1] = '!';
    free(word);

    int32_t r = trellis_reply(NULL, 0, out, total);
    free(out);
    if (TRELLIS_FAILED(r)) return trellis_fail(500, trellis_status_name(r));
    return 0;
}

TRELLIS_PLUGIN(init, handle)
