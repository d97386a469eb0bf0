/*
 * The C SDK's implementation of the Trellis conformance plugin: the same
 * behaviours as sdk/go/conformance, which the host's conformance suite runs
 * against every SDK. It subscribes to "conf.>" and acts on the last token:
 *
 *   conf.echo     reply with the payload
 *   conf.headers  reply with the value of header X-In as payload, and headers
 *                 X-Out (the same value) and X-Subject (the subject)
 *   conf.publish  publish the payload to published.conf with header
 *                 X-From: conformance, reply "ok"
 *   conf.request  request upstream.conf with the payload (500 ms timeout) and
 *                 reply "upstream:" + the response; on timeout or no responders
 *                 fail with 504 "upstream: timeout" / "upstream: no responders"
 *   conf.log      log "level N: <payload>" at levels 1..5, reply "ok"
 *   conf.error    fail with 422 "rejected: <payload>"
 *   conf.config   reply with the config value named by the payload, or fail
 *                 with 404 "no config key <payload>"
 *   conf.trap     trap
 *
 * Build (in this directory):
 *     clang --target=wasm32-wasi -O2 -mexec-model=reactor -s -I.. -o conformance-c.wasm conformance.c
 */
#include "trellis.h"

/* Returns a malloc'd a+b (b of length blen) and its length; NULL when out of memory. */
static char *concat(const char *a, const void *b, size_t blen, size_t *len) {
    size_t alen = strlen(a);
    char *s = malloc(alen + blen + 1);
    if (!s) return NULL;
    memcpy(s, a, alen);
    memcpy(s + alen, b, blen);
    s[alen + blen] = '\0';
    *len = alen + blen;
    return s;
}

/* Fails with code and the description prefix+detail. */
static int32_t fail2(int32_t code, const char *prefix, const void *detail, size_t detail_len) {
    size_t n;
    char *text = concat(prefix, detail, detail_len, &n);
    if (text) trellis_host_error(text, (uint32_t)n);
    free(text);
    return code;
}

/* Replies with data when the message expects a reply, as the Go SDK does with
 * a handler's result. */
static int32_t answer(const trellis_msg *msg, const void *data, size_t len) {
    if (msg->reply_len == 0) return 0;
    int32_t r = trellis_reply(NULL, 0, data, len);
    if (TRELLIS_FAILED(r) && r != -TRELLIS_ALREADY_REPLIED)
        return fail2(500, "reply: trellis: ", trellis_status_name(r), strlen(trellis_status_name(r)));
    return 0;
}

static int32_t do_headers(const trellis_msg *msg, const char *subject, size_t subject_len) {
    size_t in_len = 0;
    char *in = trellis_header_alloc("X-In", &in_len);
    if (!in) in = calloc(1, 1); /* an absent header reads as "" */
    if (!in) return trellis_fail(500, "out of memory");
    /* "X-Out: <in>\r\nX-Subject: <subject>\r\n" */
    size_t hl = 7 + in_len + 2 + 11 + subject_len + 2;
    char *h = malloc(hl);
    if (!h) {
        free(in);
        return trellis_fail(500, "out of memory");
    }
    char *p = h;
    memcpy(p, "X-Out: ", 7), p += 7;
    memcpy(p, in, in_len), p += in_len;
    memcpy(p, "\r\nX-Subject: ", 13), p += 13;
    memcpy(p, subject, subject_len), p += subject_len;
    memcpy(p, "\r\n", 2);
    int32_t r = msg->reply_len ? trellis_reply(h, hl, in, in_len) : 0;
    free(h);
    free(in);
    if (TRELLIS_FAILED(r))
        return fail2(500, "reply: trellis: ", trellis_status_name(r), strlen(trellis_status_name(r)));
    return 0;
}

static int32_t handle(const trellis_msg *msg) {
    size_t subject_len, data_len;
    char *subject = trellis_read_alloc(TRELLIS_FIELD_SUBJECT, &subject_len);
    char *data = trellis_read_alloc(TRELLIS_FIELD_DATA, &data_len);
    if (!subject || !data) {
        free(subject);
        free(data);
        return trellis_fail(500, "out of memory");
    }
    const char *dot = strrchr(subject, '.');
    const char *what = dot ? dot + 1 : subject;
    int32_t status;

    if (strcmp(what, "echo") == 0) {
        status = answer(msg, data, data_len);
    } else if (strcmp(what, "headers") == 0) {
        status = do_headers(msg, subject, subject_len);
    } else if (strcmp(what, "publish") == 0) {
        static const char h[] = "X-From: conformance\r\n";
        int32_t r = trellis_publish("published.conf", h, sizeof h - 1, data, data_len);
        status = TRELLIS_FAILED(r)
                     ? fail2(500, "publish: trellis: ", trellis_status_name(r), strlen(trellis_status_name(r)))
                     : answer(msg, "ok", 2);
    } else if (strcmp(what, "request") == 0) {
        int32_t r = trellis_request("upstream.conf", NULL, 0, data, data_len, 500);
        if (r == -TRELLIS_TIMEOUT) {
            status = trellis_fail(504, "upstream: timeout");
        } else if (r == -TRELLIS_NO_RESPONDERS) {
            status = trellis_fail(504, "upstream: no responders");
        } else if (TRELLIS_FAILED(r)) {
            status = fail2(500, "upstream: trellis: ", trellis_status_name(r), strlen(trellis_status_name(r)));
        } else {
            size_t n = 9 + (size_t)r;
            char *out = malloc(n);
            if (!out) {
                status = trellis_fail(500, "out of memory");
            } else {
                memcpy(out, "upstream:", 9);
                trellis_read(TRELLIS_FIELD_RESULT_DATA, 0, out + 9, (size_t)r);
                status = answer(msg, out, n);
                free(out);
            }
        }
    } else if (strcmp(what, "log") == 0) {
        for (int level = TRELLIS_LOG_TRACE; level <= TRELLIS_LOG_ERROR; level++) {
            char prefix[] = "level N: ";
            prefix[6] = (char)('0' + level);
            size_t n;
            char *line = concat(prefix, data, data_len, &n);
            if (line) trellis_logn((trellis_level)level, line, n);
            free(line);
        }
        status = answer(msg, "ok", 2);
    } else if (strcmp(what, "error") == 0) {
        status = fail2(422, "rejected: ", data, data_len);
    } else if (strcmp(what, "config") == 0) {
        int32_t n = trellis_host_config(data, (uint32_t)data_len, NULL, 0);
        if (n < 0) {
            status = fail2(404, "no config key ", data, data_len);
        } else {
            char *v = malloc((size_t)n + 1);
            if (!v) {
                status = trellis_fail(500, "out of memory");
            } else {
                trellis_host_config(data, (uint32_t)data_len, v, (uint32_t)n);
                status = answer(msg, v, (size_t)n);
                free(v);
            }
        }
    } else if (strcmp(what, "trap") == 0) {
        __builtin_trap();
    } else {
        status = fail2(404, "unknown behaviour ", subject, subject_len);
    }
    free(subject);
    free(data);
    return status;
}

static int32_t init(void) {
    return trellis_status_of(trellis_subscribe("conf.>", NULL));
}

TRELLIS_PLUGIN(init, handle)
