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
 *   conf.kv       payload "key=value": kv_set(key, value, no TTL), then reply
 *                 with kv_get(key); "incr:key": kv_incr(key, 1) twice, reply
 *                 with the second result in decimal; "cas:key": kv_cas(key,
 *                 absent, "first"), then kv_cas(key, absent, "second"), which
 *                 must fail with CONFLICT: reply "conflict", else fail with 500
 *   conf.respheader  response_header("X-Resp", "yes"), reply "ok"
 *
 * The same module is a policy (trellis_policy), acting on the message's
 * header X-Policy:
 *
 *   absent, "allow"  continue
 *   "reject"         reject with 403 "rejected by conformance policy"
 *   "answer"         reply "answered by conformance policy"
 *   "header"         set header X-In: from-policy, continue
 *   "route"          send the message to conf.echo, continue
 *   "data"           replace the payload with "replaced", continue
 *   "http"           for an HTTP request, replace the payload with
 *                    "<method> <path>?<query> from <remote address>" and
 *                    continue; a NATS message goes on unchanged
 *   anything else    reject with 400 "unknown policy action <value>"
 *
 * and its response phase (trellis_policy_response) appends " [response]" to
 * a successful response's payload when the request has X-Response: append.
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

/* Fails with 500 "<what>: trellis: <status name>" for a failed host call. */
static int32_t fail_call(const char *what, int32_t r) {
    size_t n;
    char *prefix = concat(what, ": trellis: ", 11, &n);
    if (!prefix) return trellis_fail(500, "out of memory");
    int32_t status = fail2(500, prefix, trellis_status_name(r), strlen(trellis_status_name(r)));
    free(prefix);
    return status;
}

/* Writes v in decimal into buf, which holds at least 20 bytes, and returns
 * the length. (snprintf would link vsnprintf for one number.) */
static size_t format_i64(int64_t v, char *buf) {
    char digits[20];
    size_t n = 0, len = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        digits[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) buf[len++] = '-';
    while (n) buf[len++] = digits[--n];
    return len;
}

/* conf.kv; data is NUL-terminated (trellis_read_alloc adds the NUL). */
static int32_t do_kv(const trellis_msg *msg, char *data, size_t data_len) {
    if (data_len > 5 && memcmp(data, "incr:", 5) == 0) {
        const char *key = data + 5;
        int64_t v = 0;
        int32_t r = trellis_kv_incr(key, 1, 0, &v);
        if (!TRELLIS_FAILED(r)) r = trellis_kv_incr(key, 1, 0, &v);
        if (TRELLIS_FAILED(r)) return fail_call("kv incr", r);
        char out[20];
        return answer(msg, out, format_i64(v, out));
    }
    if (data_len > 4 && memcmp(data, "cas:", 4) == 0) {
        const char *key = data + 4;
        int32_t r = trellis_kv_cas(key, NULL, 0, "first", 5, 0);
        if (TRELLIS_FAILED(r)) return fail_call("kv cas", r);
        r = trellis_kv_cas(key, NULL, 0, "second", 6, 0);
        if (r == -TRELLIS_CONFLICT) return answer(msg, "conflict", 8);
        if (TRELLIS_FAILED(r)) return fail_call("kv cas", r);
        return trellis_fail(500, "kv cas: the second compare-and-set did not conflict");
    }
    char *eq = memchr(data, '=', data_len);
    if (!eq) return trellis_fail(400, "kv: the payload is not key=value, incr:key or cas:key");
    *eq = '\0'; /* data is now the key, eq + 1 the value */
    const char *value = eq + 1;
    size_t value_len = data_len - (size_t)(value - data);
    int32_t r = trellis_kv_set(data, value, value_len, 0);
    if (TRELLIS_FAILED(r)) return fail_call("kv set", r);
    size_t got_len;
    char *got = trellis_kv_get_alloc(data, &got_len, &r);
    if (!got) return fail_call("kv get", r);
    int32_t status = answer(msg, got, got_len);
    free(got);
    return status;
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
    } else if (strcmp(what, "kv") == 0) {
        status = do_kv(msg, data, data_len);
    } else if (strcmp(what, "respheader") == 0) {
        int32_t r = trellis_response_header("X-Resp", "yes");
        status = TRELLIS_FAILED(r) ? fail_call("response_header", r) : answer(msg, "ok", 2);
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

/* "http": the HTTP fields, as "<method> <path>?<query> from <remote address>". */
static int32_t describe_http(void) {
    if (!trellis_is_http()) return TRELLIS_CONTINUE;
    static const trellis_field fields[4] = {TRELLIS_FIELD_METHOD, TRELLIS_FIELD_PATH, TRELLIS_FIELD_QUERY,
                                            TRELLIS_FIELD_REMOTE_ADDR};
    static const char *const seps[4] = {" ", "?", " from ", ""};
    size_t len = 0;
    for (int i = 0; i < 4; i++) len += (size_t)trellis_field_len(fields[i]) + strlen(seps[i]);
    char *out = malloc(len), *p = out;
    if (!out) return trellis_reject(500, "out of memory");
    for (int i = 0; i < 4; i++) {
        p += trellis_read(fields[i], 0, p, (size_t)(out + len - p));
        memcpy(p, seps[i], strlen(seps[i]));
        p += strlen(seps[i]);
    }
    int32_t r = trellis_set_data(out, len);
    free(out);
    return TRELLIS_FAILED(r) ? fail_call("set_data", r) : TRELLIS_CONTINUE;
}

static int32_t policy(const trellis_msg *msg) {
    (void)msg;
    size_t n;
    char *action = trellis_header_alloc("X-Policy", &n);
    if (!action) return TRELLIS_CONTINUE; /* absent */
    int32_t decision = TRELLIS_CONTINUE, r = 0;
    if (n == 0 || strcmp(action, "allow") == 0) {
        /* continue */
    } else if (strcmp(action, "reject") == 0) {
        decision = trellis_reject(403, "rejected by conformance policy");
    } else if (strcmp(action, "answer") == 0) {
        static const char text[] = "answered by conformance policy";
        decision = trellis_answer(NULL, 0, text, sizeof text - 1);
    } else if (strcmp(action, "header") == 0) {
        r = trellis_set_header("X-In", "from-policy");
        if (TRELLIS_FAILED(r)) decision = fail_call("set_header", r);
    } else if (strcmp(action, "route") == 0) {
        r = trellis_set_subject("conf.echo");
        if (TRELLIS_FAILED(r)) decision = fail_call("set_subject", r);
    } else if (strcmp(action, "data") == 0) {
        r = trellis_set_data("replaced", 8);
        if (TRELLIS_FAILED(r)) decision = fail_call("set_data", r);
    } else if (strcmp(action, "http") == 0) {
        decision = describe_http();
    } else {
        decision = fail2(400, "unknown policy action ", action, n);
    }
    free(action);
    return decision;
}

static int32_t respond(const trellis_response *resp) {
    static const char suffix[] = " [response]";
    if (resp->status != 0) return TRELLIS_CONTINUE;
    char want[8];
    int32_t n = trellis_header("X-Response", want, sizeof want); /* the request's header */
    if (n != 6 || memcmp(want, "append", 6) != 0) return TRELLIS_CONTINUE;
    size_t len = resp->data_len + sizeof suffix - 1;
    char *out = malloc(len);
    if (!out) return trellis_reject(500, "out of memory");
    trellis_read(TRELLIS_FIELD_RESULT_DATA, 0, out, resp->data_len);
    memcpy(out + resp->data_len, suffix, sizeof suffix - 1);
    int32_t r = trellis_set_data(out, len);
    free(out);
    return TRELLIS_FAILED(r) ? fail_call("set_data", r) : TRELLIS_CONTINUE;
}

TRELLIS_PLUGIN(init, handle)
TRELLIS_POLICY(policy)
TRELLIS_POLICY_RESPONSE(respond)
