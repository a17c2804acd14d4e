/* The fixed list of read-only requests and their replies. */
#ifndef VIRT_PROXY_REQUESTS_H
#define VIRT_PROXY_REQUESTS_H

#include <stddef.h>
#include <stdint.h>

#include "xen-backend.h"

struct proxy_ctx {
    struct xen_backend xb;
    const char *sysfs_root;
    const char *proc_net_dev;
    uint8_t *scratch; /* VP_PREFIX_LEN + VP_MAX_REPLY_BODY bytes */
};

/* Outcome of looking at the start of an input buffer. */
#define FRAME_NEED_MORE 0
#define FRAME_READY 1
#define FRAME_BAD_LENGTH 2

/* On FRAME_READY, *frame_len is prefix + body. */
int frame_check(const uint8_t *buf, size_t have, size_t *frame_len);

/*
 * Handles one complete request frame (prefix included) and builds the reply
 * frame in ctx->scratch; returns its length. *close_after is set when the
 * connection must be closed once the reply is sent.
 */
size_t handle_frame(struct proxy_ctx *ctx, const uint8_t *frame, size_t len, int *close_after);

/* Builds the greeting frame (VP_HELLO) into out; returns its length. */
size_t hello_frame(uint8_t *out, size_t cap);

/* Builds an error reply frame into out (cap bytes); returns its length. */
size_t error_frame(uint8_t *out, size_t cap, uint8_t type, uint32_t serial, int status, const char *msg);

#endif
