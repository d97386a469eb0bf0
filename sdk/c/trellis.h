/*
 * trellis.h: the Trellis plugin SDK for C (plugin ABI v1).
 *
 * A thin, header-only layer over abi/ABI.md. Every host function is declared
 * as a raw import (trellis_host_*) with exactly the ABI's types, and wrapped
 * in a static inline function that takes NUL-terminated C strings and size_t
 * lengths. Nothing here is compiled unless it is used: an unused wrapper adds
 * no code and an unused host function adds no import.
 *
 * Build a plugin (a WASI reactor, never a command):
 *
 *     clang --target=wasm32-wasi -O2 -mexec-model=reactor -I sdk/c -o plugin.wasm plugin.c
 *
 * Return convention. Every wrapper that calls the host returns what the host
 * returned: a value >= 0 on success (0, or a length where the ABI says so) and
 * the negated status on failure (-TRELLIS_DENIED). TRELLIS_FAILED(r) tests
 * for failure and trellis_status_of(r) turns a result into a positive status.
 *
 * Beyond handling messages: trellis_response_header, the key-value store
 * (trellis_kv_*) and policies (trellis_set_*, trellis_reject, TRELLIS_POLICY)
 * have sections of their own below; README.md shows each in use.
 *
 * Memory. The host never keeps a pointer and never allocates in the plugin:
 * every buffer passed to a wrapper only has to live for the duration of the
 * call. The *_alloc helpers return malloc'd memory the caller frees.
 *
 * A complete plugin:
 *
 *     #include "trellis.h"
 *
 *     static int32_t init(void) {
 *         return trellis_status_of(trellis_subscribe("echo", NULL));
 *     }
 *
 *     static int32_t handle(const trellis_msg *msg) {
 *         if (msg->reply_len == 0) return 0;      // nobody is waiting
 *         size_t n;
 *         char *data = trellis_read_alloc(TRELLIS_FIELD_DATA, &n);
 *         if (!data) return trellis_fail(500, "out of memory");
 *         int32_t r = trellis_reply(NULL, 0, data, n);
 *         free(data);
 *         return TRELLIS_FAILED(r) ? trellis_fail(500, "reply failed") : 0;
 *     }
 *
 *     TRELLIS_PLUGIN(init, handle)
 */
#ifndef TRELLIS_H
#define TRELLIS_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The ABI version this header implements (the marker export is trellis_abi_v1). */
#define TRELLIS_ABI_VERSION 1

/* Header names with a meaning to the host (ABI.md, "Headers"). */
#define TRELLIS_HEADER_ERROR_CODE "Nats-Service-Error-Code" /* an error reply's status */
#define TRELLIS_HEADER_ERROR "Nats-Service-Error"           /* an error reply's text */
#define TRELLIS_HEADER_HTTP_STATUS "Trellis-Http-Status"    /* in a reply: the HTTP status to answer with */
#define TRELLIS_HEADER_PARAM_PREFIX "Trellis-Param-"        /* + name: an HTTP route's path parameter */

/* Status codes, ABI.md section 6. Host functions return their negation. */
typedef enum trellis_status {
    TRELLIS_OK = 0,                /* success */
    TRELLIS_NOT_FOUND = 1,         /* no such header or config key */
    TRELLIS_INVALID_ARGUMENT = 2,  /* a bad field or level, or malformed headers */
    TRELLIS_INVALID_SUBJECT = 3,   /* empty subject, whitespace, or a wildcard where none is allowed */
    TRELLIS_DENIED = 4,            /* the operator has not granted this subject */
    TRELLIS_NO_REPLY = 5,          /* the message has no reply subject */
    TRELLIS_ALREADY_REPLIED = 6,   /* reply was already called for this message */
    TRELLIS_TIMEOUT = 7,           /* the request timed out, or the call deadline passed */
    TRELLIS_NO_RESPONDERS = 8,     /* nobody is subscribed to the request subject */
    TRELLIS_BUS = 9,               /* the bus failed or refused the message */
    TRELLIS_WRONG_PHASE = 10,      /* not allowed now (subscribe outside trellis_init, set_* outside a policy) */
    TRELLIS_TOO_LARGE = 11,        /* a value exceeds a host limit */
    TRELLIS_CONFLICT = 12          /* kv_cas found another value than the one expected */
} trellis_status;

/* Message fields for trellis_read, ABI.md section 4. */
typedef enum trellis_field {
    TRELLIS_FIELD_SUBJECT = 0,        /* the subject the message arrived on */
    TRELLIS_FIELD_REPLY = 1,          /* its reply subject, empty if none */
    TRELLIS_FIELD_HEADERS = 2,        /* its headers, "Name: value\r\n" per value */
    TRELLIS_FIELD_DATA = 3,           /* its payload */
    TRELLIS_FIELD_RESULT_HEADERS = 4, /* headers of the last successful request's response;
                                         in a response phase, the response's headers */
    TRELLIS_FIELD_RESULT_DATA = 5,    /* payload of that response; in a response phase, the response's */
    TRELLIS_FIELD_METHOD = 6,         /* HTTP method of a request from the HTTP ingress; empty for NATS */
    TRELLIS_FIELD_PATH = 7,           /* its URL path (/orders/42) */
    TRELLIS_FIELD_QUERY = 8,          /* its raw query string, without '?' */
    TRELLIS_FIELD_REMOTE_ADDR = 9     /* the client's address, host:port */
} trellis_field;

/* Log levels for trellis_log, ABI.md section 5 (the values are go-hclog's). */
typedef enum trellis_level {
    TRELLIS_LOG_TRACE = 1,
    TRELLIS_LOG_DEBUG = 2,
    TRELLIS_LOG_INFO = 3,
    TRELLIS_LOG_WARN = 4,
    TRELLIS_LOG_ERROR = 5
} trellis_level;

/* The byte lengths of the fields of the message being handled, as the host
 * passed them to trellis_handle (or, for a policy, to trellis_policy). Size
 * buffers with them before reading. */
typedef struct trellis_msg {
    uint32_t subject_len;
    uint32_t reply_len;   /* 0 when the message expects no reply */
    uint32_t headers_len; /* 0 when the message has no headers */
    uint32_t data_len;
} trellis_msg;

/* The response a policy sees in its response phase (ABI.md section 5a), as
 * the host passed it to trellis_policy_response. Read its headers and data
 * with TRELLIS_FIELD_RESULT_HEADERS and TRELLIS_FIELD_RESULT_DATA; the
 * request it answers is still there: trellis_header reads the request's
 * headers, as the policies before left them. */
typedef struct trellis_response {
    int32_t status;       /* 0 for a success, else the error status */
    uint32_t headers_len; /* 0 when the response has no headers */
    uint32_t data_len;
} trellis_response;

/* ------------------------------------------------------------------------
 * Raw host functions, ABI.md section 5: module "trellis", every value an i32
 * except the delta of kv_incr (an i64). Lengths are unsigned; results are
 * >= 0 or -status.
 * ------------------------------------------------------------------------ */

#define TRELLIS_IMPORT_(name) __attribute__((import_module("trellis"), import_name(name)))

TRELLIS_IMPORT_("read")
int32_t trellis_host_read(int32_t field, uint32_t offset, void *buf, uint32_t buf_len);
TRELLIS_IMPORT_("header")
int32_t trellis_host_header(const void *name, uint32_t name_len, void *buf, uint32_t buf_len);
TRELLIS_IMPORT_("reply")
int32_t trellis_host_reply(const void *headers, uint32_t headers_len, const void *data, uint32_t data_len);
TRELLIS_IMPORT_("publish")
int32_t trellis_host_publish(const void *subject, uint32_t subject_len, const void *headers,
                             uint32_t headers_len, const void *data, uint32_t data_len);
TRELLIS_IMPORT_("request")
int32_t trellis_host_request(const void *subject, uint32_t subject_len, const void *headers,
                             uint32_t headers_len, const void *data, uint32_t data_len,
                             uint32_t timeout_ms);
TRELLIS_IMPORT_("log")
int32_t trellis_host_log(int32_t level, const void *msg, uint32_t msg_len);
TRELLIS_IMPORT_("config")
int32_t trellis_host_config(const void *key, uint32_t key_len, void *buf, uint32_t buf_len);
TRELLIS_IMPORT_("subscribe")
int32_t trellis_host_subscribe(const void *subject, uint32_t subject_len, const void *queue,
                               uint32_t queue_len);
TRELLIS_IMPORT_("error")
int32_t trellis_host_error(const void *msg, uint32_t msg_len);
TRELLIS_IMPORT_("set_header")
int32_t trellis_host_set_header(const void *name, uint32_t name_len, const void *value, uint32_t value_len);
TRELLIS_IMPORT_("set_data")
int32_t trellis_host_set_data(const void *data, uint32_t data_len);
TRELLIS_IMPORT_("set_subject")
int32_t trellis_host_set_subject(const void *subject, uint32_t subject_len);
TRELLIS_IMPORT_("response_header")
int32_t trellis_host_response_header(const void *name, uint32_t name_len, const void *value,
                                     uint32_t value_len);
TRELLIS_IMPORT_("kv_get")
int32_t trellis_host_kv_get(const void *key, uint32_t key_len, void *buf, uint32_t buf_len);
TRELLIS_IMPORT_("kv_set")
int32_t trellis_host_kv_set(const void *key, uint32_t key_len, const void *value, uint32_t value_len,
                            uint32_t ttl_ms);
TRELLIS_IMPORT_("kv_incr")
int32_t trellis_host_kv_incr(const void *key, uint32_t key_len, int64_t delta, uint32_t ttl_ms,
                             int64_t *out);
TRELLIS_IMPORT_("kv_cas")
int32_t trellis_host_kv_cas(const void *key, uint32_t key_len, const void *expected,
                            uint32_t expected_len, const void *value, uint32_t value_len,
                            uint32_t ttl_ms);
TRELLIS_IMPORT_("kv_delete")
int32_t trellis_host_kv_delete(const void *key, uint32_t key_len);

#undef TRELLIS_IMPORT_

/* ------------------------------------------------------------------------
 * Results and status codes
 * ------------------------------------------------------------------------ */

/* True when a host result r is a failure (negative). */
#define TRELLIS_FAILED(r) ((r) < 0)

/* The status of a host result: 0 for success, else the positive code.
 * Handy as the result of an init function: return trellis_status_of(r). */
static inline int32_t trellis_status_of(int32_t result) {
    return result < 0 ? -result : 0;
}

/* The ABI.md name of a status code; accepts the code or its negation. */
static inline const char *trellis_status_name(int32_t status) {
    static const char *const names[] = {
        "ok", "not found", "invalid argument", "invalid subject", "permission denied",
        "no reply subject", "already replied", "timeout", "no responders", "bus error",
        "not allowed in this phase", "too large", "conflict",
    };
    if (status < 0) status = -status;
    if ((size_t)status < sizeof names / sizeof names[0]) return names[status];
    return "unknown status";
}

/* strlen that accepts NULL as the empty string. */
static inline uint32_t trellis_strlen_(const char *s) {
    return s ? (uint32_t)strlen(s) : 0;
}

/* ------------------------------------------------------------------------
 * Reading the message
 * ------------------------------------------------------------------------ */

/* Copies bytes [offset, offset+cap) of field into buf and returns the field's
 * total length, or -TRELLIS_INVALID_ARGUMENT for an unknown field. cap 0
 * only asks the length. Copies fewer bytes when the field is shorter. */
static inline int32_t trellis_read(trellis_field field, size_t offset, void *buf, size_t cap) {
    return trellis_host_read((int32_t)field, (uint32_t)offset, buf, (uint32_t)cap);
}

/* The total length of field, or -status. */
static inline int32_t trellis_field_len(trellis_field field) {
    return trellis_host_read((int32_t)field, 0, NULL, 0);
}

/* Reads all of field into a new malloc'd buffer with a NUL byte after the
 * content (so text fields can be used as C strings), stores the length in
 * *len (if len is not NULL) and returns the buffer, which the caller frees.
 * Returns NULL when memory runs out or the field does not exist. Costs one
 * allocation of the field's length plus one and one copy. */
static inline char *trellis_read_alloc(trellis_field field, size_t *len) {
    int32_t n = trellis_field_len(field);
    if (n < 0) return NULL;
    char *buf = (char *)malloc((size_t)n + 1);
    if (!buf) return NULL;
    trellis_host_read((int32_t)field, 0, buf, (uint32_t)n);
    buf[n] = '\0';
    if (len) *len = (size_t)n;
    return buf;
}

/* The first value of header name (exact match first, then case-insensitive),
 * copied into buf up to cap bytes. Returns the value's total length, or
 * -TRELLIS_NOT_FOUND. */
static inline int32_t trellis_header(const char *name, void *buf, size_t cap) {
    return trellis_host_header(name, trellis_strlen_(name), buf, (uint32_t)cap);
}

/* Like trellis_header, into a new malloc'd NUL-terminated buffer the caller
 * frees. Returns NULL when the header is absent or memory runs out. */
static inline char *trellis_header_alloc(const char *name, size_t *len) {
    uint32_t name_len = trellis_strlen_(name);
    int32_t n = trellis_host_header(name, name_len, NULL, 0);
    if (n < 0) return NULL;
    char *buf = (char *)malloc((size_t)n + 1);
    if (!buf) return NULL;
    trellis_host_header(name, name_len, buf, (uint32_t)n);
    buf[n] = '\0';
    if (len) *len = (size_t)n;
    return buf;
}

/* ------------------------------------------------------------------------
 * Answering and sending
 *
 * Headers are passed encoded as in ABI.md section 4: "Name: value\r\n" per
 * value (the last "\r\n" may be left out); NULL/0 means no headers.
 * ------------------------------------------------------------------------ */

/* Replies to the message being handled. Returns 0, or -TRELLIS_NO_REPLY,
 * -TRELLIS_ALREADY_REPLIED, -TRELLIS_INVALID_ARGUMENT, -TRELLIS_BUS. */
static inline int32_t trellis_reply(const void *headers, size_t headers_len, const void *data,
                                    size_t data_len) {
    return trellis_host_reply(headers, (uint32_t)headers_len, data, (uint32_t)data_len);
}

/* Replies with a NUL-terminated string and no headers. */
static inline int32_t trellis_reply_str(const char *text) {
    return trellis_host_reply(NULL, 0, text, trellis_strlen_(text));
}

/* Publishes a message on subject, which the operator must have granted.
 * Returns 0, or -TRELLIS_INVALID_SUBJECT, -TRELLIS_DENIED,
 * -TRELLIS_INVALID_ARGUMENT, -TRELLIS_BUS. */
static inline int32_t trellis_publish(const char *subject, const void *headers, size_t headers_len,
                                      const void *data, size_t data_len) {
    return trellis_host_publish(subject, trellis_strlen_(subject), headers, (uint32_t)headers_len,
                                data, (uint32_t)data_len);
}

/* Sends a request and waits for the first response, at most timeout_ms
 * milliseconds (0: until the current call's deadline). Returns the response's
 * data length, after which TRELLIS_FIELD_RESULT_DATA and
 * TRELLIS_FIELD_RESULT_HEADERS hold it; or -TRELLIS_INVALID_SUBJECT,
 * -TRELLIS_DENIED, -TRELLIS_INVALID_ARGUMENT, -TRELLIS_TIMEOUT,
 * -TRELLIS_NO_RESPONDERS, -TRELLIS_BUS. A response carrying
 * Nats-Service-Error-Code is still a success. */
static inline int32_t trellis_request(const char *subject, const void *headers, size_t headers_len,
                                      const void *data, size_t data_len, uint32_t timeout_ms) {
    /* The ABI passes timeout_ms as an i32: keep it non-negative. */
    if (timeout_ms > INT32_MAX) timeout_ms = INT32_MAX;
    return trellis_host_request(subject, trellis_strlen_(subject), headers, (uint32_t)headers_len,
                                data, (uint32_t)data_len, timeout_ms);
}

/* ------------------------------------------------------------------------
 * Logging: to the plugin's host logger. Messages are cut at 64 KiB.
 * ------------------------------------------------------------------------ */

/* Logs len bytes of msg at level. Returns 0 or -TRELLIS_INVALID_ARGUMENT. */
static inline int32_t trellis_logn(trellis_level level, const void *msg, size_t len) {
    return trellis_host_log((int32_t)level, msg, (uint32_t)len);
}

/* Logs a NUL-terminated string at level. */
static inline int32_t trellis_log(trellis_level level, const char *msg) {
    return trellis_host_log((int32_t)level, msg, trellis_strlen_(msg));
}

static inline int32_t trellis_log_trace(const char *msg) { return trellis_log(TRELLIS_LOG_TRACE, msg); }
static inline int32_t trellis_log_debug(const char *msg) { return trellis_log(TRELLIS_LOG_DEBUG, msg); }
static inline int32_t trellis_log_info(const char *msg) { return trellis_log(TRELLIS_LOG_INFO, msg); }
static inline int32_t trellis_log_warn(const char *msg) { return trellis_log(TRELLIS_LOG_WARN, msg); }
static inline int32_t trellis_log_error(const char *msg) { return trellis_log(TRELLIS_LOG_ERROR, msg); }

/* Logs a printf-style message at level. Using it links vsnprintf (tens of
 * KB); messages up to 255 bytes need no allocation. */
static inline int32_t trellis_logf(trellis_level level, const char *format, ...)
    __attribute__((format(printf, 2, 3)));
static inline int32_t trellis_logf(trellis_level level, const char *format, ...) {
    char small[256];
    va_list ap;
    va_start(ap, format);
    int n = vsnprintf(small, sizeof small, format, ap);
    va_end(ap);
    if (n < 0) return -TRELLIS_INVALID_ARGUMENT;
    if ((size_t)n < sizeof small) return trellis_logn(level, small, (size_t)n);
    char *big = (char *)malloc((size_t)n + 1);
    if (!big) return trellis_logn(level, small, sizeof small - 1);
    va_start(ap, format);
    vsnprintf(big, (size_t)n + 1, format, ap);
    va_end(ap);
    int32_t r = trellis_logn(level, big, (size_t)n);
    free(big);
    return r;
}

/* ------------------------------------------------------------------------
 * Configuration and subscriptions
 * ------------------------------------------------------------------------ */

/* Copies up to cap bytes of the operator's config value key into buf and
 * returns its total length, or -TRELLIS_NOT_FOUND. */
static inline int32_t trellis_config(const char *key, void *buf, size_t cap) {
    return trellis_host_config(key, trellis_strlen_(key), buf, (uint32_t)cap);
}

/* The config value key in a new malloc'd NUL-terminated buffer the caller
 * frees; NULL when the key is not set or memory runs out. */
static inline char *trellis_config_alloc(const char *key, size_t *len) {
    uint32_t key_len = trellis_strlen_(key);
    int32_t n = trellis_host_config(key, key_len, NULL, 0);
    if (n < 0) return NULL;
    char *buf = (char *)malloc((size_t)n + 1);
    if (!buf) return NULL;
    trellis_host_config(key, key_len, buf, (uint32_t)n);
    buf[n] = '\0';
    if (len) *len = (size_t)n;
    return buf;
}

/* Declares that the plugin handles subject (wildcards allowed). queue NULL
 * or "" means the default queue group, the plugin's name. Only allowed in
 * the init function. Returns 0, or -TRELLIS_INVALID_SUBJECT,
 * -TRELLIS_WRONG_PHASE. */
static inline int32_t trellis_subscribe(const char *subject, const char *queue) {
    return trellis_host_subscribe(subject, trellis_strlen_(subject), queue, trellis_strlen_(queue));
}

/* ------------------------------------------------------------------------
 * Failing a message
 * ------------------------------------------------------------------------ */

/* Sets the description (the Nats-Service-Error header) of the failure the
 * handler is about to return. The last call wins. */
static inline int32_t trellis_error(const char *msg) {
    return trellis_host_error(msg, trellis_strlen_(msg));
}

/* Sets the failure description and returns code, for
 * `return trellis_fail(400, "payload is not JSON");` in a handler. */
static inline int32_t trellis_fail(int32_t code, const char *msg) {
    trellis_error(msg);
    return code;
}

/* ------------------------------------------------------------------------
 * Response headers
 * ------------------------------------------------------------------------ */

/* Adds header name: value to the response the caller gets, whoever produces
 * it: the handler's reply, a policy's own reply, or a rejection (a policy's
 * Retry-After, say). Allowed in handlers and policies. Returns 0, or
 * -TRELLIS_INVALID_ARGUMENT (empty name, ':' in it, CR or LF in either). */
static inline int32_t trellis_response_header(const char *name, const char *value) {
    return trellis_host_response_header(name, trellis_strlen_(name), value, trellis_strlen_(value));
}

/* ------------------------------------------------------------------------
 * Key-value store (ABI.md section 5, kv_*)
 *
 * Each plugin has its own namespace in NATS JetStream KV on the host's bus:
 * every instance and every host sharing the bus sees the same values. Keys
 * are NUL-terminated, 1 to 256 bytes of A-Z a-z 0-9 - _ = . /; a bad key is
 * -TRELLIS_INVALID_ARGUMENT. A bus without JetStream gives -TRELLIS_BUS.
 * ttl_ms 0 means the value never expires. Each call is a round trip to the
 * bus.
 * ------------------------------------------------------------------------ */

/* The ABI's ttl_ms is kept below 2^31, as the other SDKs keep it. */
static inline uint32_t trellis_ttl_(uint32_t ttl_ms) {
    return ttl_ms > INT32_MAX ? (uint32_t)INT32_MAX : ttl_ms;
}

/* Copies up to cap bytes of the value of key into buf and returns the
 * value's total length, or -TRELLIS_NOT_FOUND, -TRELLIS_INVALID_ARGUMENT,
 * -TRELLIS_BUS. cap 0 only asks the length. */
static inline int32_t trellis_kv_get(const char *key, void *buf, size_t cap) {
    return trellis_host_kv_get(key, trellis_strlen_(key), buf, (uint32_t)cap);
}

/* The value of key in a new malloc'd buffer with a NUL byte after the
 * content, which the caller frees; its length goes to *len (if not NULL).
 * Returns NULL when the key is missing, the call fails or memory runs out;
 * then *result (if not NULL) says why: -TRELLIS_NOT_FOUND, -TRELLIS_BUS...,
 * or -TRELLIS_TOO_LARGE for no memory. On success *result is 0. If another
 * instance changes the value between the length and the copy, it reads
 * again, so the value is never torn. */
static inline char *trellis_kv_get_alloc(const char *key, size_t *len, int32_t *result) {
    uint32_t key_len = trellis_strlen_(key);
    int32_t n = trellis_host_kv_get(key, key_len, NULL, 0);
    for (;;) {
        if (n < 0) {
            if (result) *result = n;
            return NULL;
        }
        char *buf = (char *)malloc((size_t)n + 1);
        if (!buf) {
            if (result) *result = -TRELLIS_TOO_LARGE;
            return NULL;
        }
        int32_t m = trellis_host_kv_get(key, key_len, buf, (uint32_t)n);
        if (m >= 0 && m <= n) {
            buf[m] = '\0';
            if (len) *len = (size_t)m;
            if (result) *result = 0;
            return buf;
        }
        free(buf);
        n = m; /* it grew, or failed: try again with the new length */
    }
}

/* Stores len bytes of value under key; it expires after ttl_ms (0: never).
 * Returns 0, or -TRELLIS_INVALID_ARGUMENT, -TRELLIS_TOO_LARGE (over 1 MiB),
 * -TRELLIS_BUS. */
static inline int32_t trellis_kv_set(const char *key, const void *value, size_t len, uint32_t ttl_ms) {
    return trellis_host_kv_set(key, trellis_strlen_(key), value, (uint32_t)len, trellis_ttl_(ttl_ms));
}

/* Atomically adds delta to the decimal integer stored under key (a missing
 * key counts as 0), across all instances and hosts, and stores the new value
 * in *out. A key this call creates expires after ttl_ms (0: never). Returns
 * 0, or -TRELLIS_INVALID_ARGUMENT (bad key, or a value that is not an
 * integer), -TRELLIS_TIMEOUT (too much contention), -TRELLIS_BUS. */
static inline int32_t trellis_kv_incr(const char *key, int64_t delta, uint32_t ttl_ms, int64_t *out) {
    int64_t v = 0;
    int32_t r = trellis_host_kv_incr(key, trellis_strlen_(key), delta, trellis_ttl_(ttl_ms), &v);
    if (r >= 0 && out) *out = v;
    return r;
}

/* Compare-and-set: stores value under key only if its current value is
 * exactly expected (expected_len 0: only if the key does not exist),
 * atomically across instances and hosts. Returns 0, -TRELLIS_CONFLICT when
 * the value was another one (read it again, recompute, retry), or
 * -TRELLIS_INVALID_ARGUMENT, -TRELLIS_TOO_LARGE, -TRELLIS_BUS. */
static inline int32_t trellis_kv_cas(const char *key, const void *expected, size_t expected_len,
                                     const void *value, size_t value_len, uint32_t ttl_ms) {
    return trellis_host_kv_cas(key, trellis_strlen_(key), expected, (uint32_t)expected_len, value,
                               (uint32_t)value_len, trellis_ttl_(ttl_ms));
}

/* Removes key; removing a missing key is not an error. Returns 0, or
 * -TRELLIS_INVALID_ARGUMENT, -TRELLIS_BUS. */
static inline int32_t trellis_kv_delete(const char *key) {
    return trellis_host_kv_delete(key, trellis_strlen_(key));
}

/* ------------------------------------------------------------------------
 * Policies (ABI.md section 5a)
 *
 * A policy function has the signature of a handler and returns a decision:
 * TRELLIS_CONTINUE (0) lets the message go on, to the next policy and then
 * the handler; a status from 100 to 599 rejects it (trellis_reject). It reads
 * the message as a handler does, and for an HTTP request also
 * TRELLIS_FIELD_METHOD, _PATH, _QUERY and _REMOTE_ADDR (empty for a NATS
 * message). The trellis_set_* functions below work only while it runs.
 * ------------------------------------------------------------------------ */

/* The decision that lets a message go on. */
#define TRELLIS_CONTINUE 0

/* Sets the reason the caller sees and returns status, for
 * `return trellis_reject(403, "no token");` in a policy. A status of 0 or
 * less becomes 403. The reason must not leak secrets. */
static inline int32_t trellis_reject(int32_t status, const char *reason) {
    trellis_error(reason);
    return status > 0 ? status : 403;
}

/* Reports whether the message came through the HTTP ingress (it has a
 * method). Costs one host call. */
static inline int trellis_is_http(void) {
    return trellis_field_len(TRELLIS_FIELD_METHOD) > 0;
}

/* Sets header name of the message that goes on to the handler, replacing its
 * values; an empty or NULL value removes it. Returns 0, or
 * -TRELLIS_WRONG_PHASE (not in a policy), -TRELLIS_INVALID_ARGUMENT (empty
 * name, CR or LF). */
static inline int32_t trellis_set_header(const char *name, const char *value) {
    return trellis_host_set_header(name, trellis_strlen_(name), value, trellis_strlen_(value));
}

/* Replaces the payload: the one the handler gets (in a policy), or the
 * response's (in a response phase). Returns 0 or -TRELLIS_WRONG_PHASE. */
static inline int32_t trellis_set_data(const void *data, size_t len) {
    return trellis_host_set_data(data, (uint32_t)len);
}

/* Sends the message to subject instead of this route's handler, as a request
 * if the caller waits for an answer (the operator must grant subject for
 * requests), else as an event (granted for publishing). Returns 0, or
 * -TRELLIS_WRONG_PHASE, -TRELLIS_INVALID_SUBJECT, -TRELLIS_DENIED. */
static inline int32_t trellis_set_subject(const char *subject) {
    return trellis_host_set_subject(subject, trellis_strlen_(subject));
}

/* Answers the message from the policy itself, so that it goes no further,
 * and returns the decision to return: TRELLIS_CONTINUE once the reply is
 * sent, else 500 with the reason "reply: trellis: <status name>". For
 * `return trellis_answer(NULL, 0, "cached", 6);`. */
static inline int32_t trellis_answer(const void *headers, size_t headers_len, const void *data,
                                     size_t data_len) {
    int32_t r = trellis_reply(headers, headers_len, data, data_len);
    if (!TRELLIS_FAILED(r)) return TRELLIS_CONTINUE;
    static const char prefix[] = "reply: trellis: ";
    const char *name = trellis_status_name(r);
    size_t n = strlen(name);
    char reason[sizeof prefix + 32];
    if (n > 32) n = 32;
    memcpy(reason, prefix, sizeof prefix - 1);
    memcpy(reason + sizeof prefix - 1, name, n);
    trellis_host_error(reason, (uint32_t)(sizeof prefix - 1 + n));
    return 500;
}

/* ------------------------------------------------------------------------
 * Exports
 *
 * TRELLIS_PLUGIN(init, handle) defines the three exports of a handler
 * (ABI.md section 3) at file scope, once per plugin:
 *
 *   int32_t init(void);                       // or NULL: no initialisation
 *   int32_t handle(const trellis_msg *msg);   // 0 or an HTTP-like failure code
 *
 * init runs once per instance, after _initialize; it subscribes and reads
 * config. A non-zero result refuses the instance (and, for the first
 * instance, the plugin). handle runs once per message.
 *
 * A policy defines trellis_policy, and optionally trellis_policy_response;
 * nothing is exported for a plugin that does not ask for it:
 *
 *   int32_t policy(const trellis_msg *msg);            // TRELLIS_CONTINUE or a status
 *   int32_t respond(const trellis_response *resp);     // TRELLIS_CONTINUE or a status
 *
 *   TRELLIS_POLICY_PLUGIN(init, policy)   // a policy only: marker, init, trellis_policy
 *   TRELLIS_POLICY(policy)                // add trellis_policy to a TRELLIS_PLUGIN
 *   TRELLIS_POLICY_RESPONSE(respond)      // add the response phase to either
 *
 * Export trellis_policy_response only when there is something to do on the
 * way back: the host then holds each response until it has run.
 *
 * To write the exports by hand instead, use TRELLIS_EXPORT("trellis_abi_v1")
 * etc. with the signatures in ABI.md section 3.
 * ------------------------------------------------------------------------ */

#define TRELLIS_EXPORT(name) __attribute__((export_name(name)))

/* The version marker and trellis_init; the building blocks of the macros below. */
#define TRELLIS_MARKER_AND_INIT_(init_fn)                                                       \
    TRELLIS_EXPORT("trellis_abi_v1") void trellis_export_abi_v1_(void) {}                       \
    TRELLIS_EXPORT("trellis_init") int32_t trellis_export_init_(void) {                         \
        int32_t (*trellis_init_fn_)(void) = (init_fn);                                          \
        return trellis_init_fn_ ? trellis_init_fn_() : 0;                                       \
    }

#define TRELLIS_PLUGIN(init_fn, handle_fn)                                                      \
    TRELLIS_MARKER_AND_INIT_(init_fn)                                                           \
    TRELLIS_EXPORT("trellis_handle") int32_t trellis_export_handle_(                            \
        uint32_t subject_len, uint32_t reply_len, uint32_t headers_len, uint32_t data_len) {    \
        trellis_msg trellis_msg_ = {subject_len, reply_len, headers_len, data_len};             \
        return (handle_fn)(&trellis_msg_);                                                      \
    }

#define TRELLIS_POLICY(policy_fn)                                                               \
    TRELLIS_EXPORT("trellis_policy") int32_t trellis_export_policy_(                            \
        uint32_t subject_len, uint32_t reply_len, uint32_t headers_len, uint32_t data_len) {    \
        trellis_msg trellis_msg_ = {subject_len, reply_len, headers_len, data_len};             \
        return (policy_fn)(&trellis_msg_);                                                      \
    }

#define TRELLIS_POLICY_PLUGIN(init_fn, policy_fn)                                               \
    TRELLIS_MARKER_AND_INIT_(init_fn)                                                           \
    TRELLIS_POLICY(policy_fn)

#define TRELLIS_POLICY_RESPONSE(respond_fn)                                                     \
    TRELLIS_EXPORT("trellis_policy_response") int32_t trellis_export_policy_response_(          \
        int32_t status, uint32_t headers_len, uint32_t data_len) {                              \
        trellis_response trellis_response_ = {status, headers_len, data_len};                   \
        return (respond_fn)(&trellis_response_);                                                \
    }

#ifdef __cplusplus
}
#endif

#endif /* TRELLIS_H */
