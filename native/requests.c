#include "requests.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device-stats.h"
#include "vp-protocol.h"
#include "wire.h"

#define XC_PAGE_SIZE 4096u
#define PROXY_VERSION "virt-proxy 0.1.0"

int frame_check(const uint8_t *buf, size_t have, size_t *frame_len)
{
    if (have < VP_PREFIX_LEN)
        return FRAME_NEED_MORE;
    uint32_t body = be32_get(buf);
    if (body < VP_HEADER_LEN || body > VP_MAX_REQUEST_BODY)
        return FRAME_BAD_LENGTH;
    if (have < VP_PREFIX_LEN + (size_t)body)
        return FRAME_NEED_MORE;
    *frame_len = VP_PREFIX_LEN + (size_t)body;
    return FRAME_READY;
}

static void begin_reply(struct wbuf *w, uint8_t type, uint32_t serial, int status)
{
    wb_u32(w, 0); /* length, patched in finish_reply */
    wb_u8(w, VP_PROTO_VERSION);
    wb_u8(w, type);
    wb_u16(w, (uint16_t)status);
    wb_u32(w, serial);
}

static size_t finish_reply(struct wbuf *w)
{
    wb_put_u32_at(w, 0, (uint32_t)(w->len - VP_PREFIX_LEN));
    return w->len;
}

size_t error_frame(uint8_t *out, size_t cap, uint8_t type, uint32_t serial, int status, const char *msg)
{
    struct wbuf w = {out, 0, cap, 0};
    begin_reply(&w, type, serial, status);
    wb_str(&w, msg, VP_MAX_ERROR_MSG);
    if (w.overflow)
        return 0;
    return finish_reply(&w);
}

size_t hello_frame(uint8_t *out, size_t cap)
{
    struct wbuf w = {out, 0, cap, 0};
    begin_reply(&w, VP_HELLO, 0, VP_OK);
    wb_u16(&w, VP_PROTO_VERSION);
    wb_str(&w, PROXY_VERSION, 32);
    if (w.overflow)
        return 0;
    return finish_reply(&w);
}

struct xen_ver {
    unsigned major, minor;
    char extra[VP_XEN_EXTRAVERSION_LEN + 1];
};

/* Reads the Xen version; on failure writes the error frame and returns its length through *failed. */
static int read_version(struct proxy_ctx *ctx, struct wbuf *w, uint8_t type, uint32_t serial, struct xen_ver *v,
                        size_t *failed)
{
    char err[VP_MAX_ERROR_MSG];
    int st = xb_version(&ctx->xb, &v->major, &v->minor, v->extra, err, sizeof(err));
    if (st == VP_OK)
        return 1;
    *failed = error_frame(w->p, w->cap, type, serial, st, err);
    return 0;
}

static void wb_version(struct wbuf *w, const struct xen_ver *v)
{
    wb_u32(w, v->major);
    wb_u32(w, v->minor);
    wb_str(w, v->extra, VP_XEN_EXTRAVERSION_LEN);
}

static size_t reply_version(struct proxy_ctx *ctx, struct wbuf *w, uint8_t type, uint32_t serial)
{
    struct xen_ver v;
    size_t failed;
    if (!read_version(ctx, w, type, serial, &v, &failed))
        return failed;
    begin_reply(w, type, serial, VP_OK);
    wb_u16(w, VP_PROTO_VERSION);
    wb_version(w, &v);
    wb_str(w, PROXY_VERSION, 32);
    return finish_reply(w);
}

static size_t reply_host_info(struct proxy_ctx *ctx, struct wbuf *w, uint8_t type, uint32_t serial)
{
    struct xen_ver v;
    size_t failed;
    if (!read_version(ctx, w, type, serial, &v, &failed))
        return failed;
    vp_xc_physinfo_t pi;
    memset(&pi, 0, sizeof(pi));
    if (ctx->xb.physinfo(ctx->xb.xch, &pi) != 0) {
        xb_reset(&ctx->xb);
        return error_frame(w->p, w->cap, type, serial, VP_E_XEN_FAILED, "xc_physinfo failed");
    }
    begin_reply(w, type, serial, VP_OK);
    wb_u32(w, pi.nr_cpus);
    wb_u32(w, pi.cpu_khz);
    wb_u32(w, pi.nr_nodes);
    wb_u32(w, pi.cores_per_socket);
    wb_u32(w, pi.threads_per_core);
    wb_u32(w, XC_PAGE_SIZE);
    wb_u64(w, pi.total_pages);
    wb_u64(w, pi.free_pages);
    wb_version(w, &v);
    return finish_reply(w);
}

/*
 * The vCPU block of a domain record: u16 count, then per vCPU (ids 0 ..
 * max_vcpu_id, at most VP_MAX_VCPUS_PER_DOMAIN) u16 id, u8 flags, u32 cpu,
 * u64 cpu_time_ns, from xc_vcpu_getinfo (XEN_DOMCTL_getvcpuinfo). A vCPU the
 * hypervisor does not answer for (the domain went away, ESRCH) is left out.
 */
static void wb_vcpus(struct proxy_ctx *ctx, struct wbuf *w, const vp_xc_domaininfo_t *d)
{
    size_t at = w->len;
    uint16_t count = 0;
    wb_u16(w, 0);
    if (d->max_vcpu_id == UINT32_MAX) /* XEN_INVALID_MAX_VCPU_ID: no vCPUs yet */
        return;
    uint32_t last = d->max_vcpu_id < VP_MAX_VCPUS_PER_DOMAIN ? d->max_vcpu_id : VP_MAX_VCPUS_PER_DOMAIN - 1;
    for (uint32_t v = 0; v <= last; v++) {
        vp_xc_vcpuinfo_t vi;
        memset(&vi, 0, sizeof(vi));
        if (ctx->xb.vcpu_getinfo(ctx->xb.xch, d->domain, v, &vi) != 0)
            continue;
        uint8_t flags = (uint8_t)((vi.online ? VP_VCPU_ONLINE : 0u) | (vi.blocked ? VP_VCPU_BLOCKED : 0u) |
                                  (vi.running ? VP_VCPU_RUNNING : 0u));
        wb_u16(w, (uint16_t)v);
        wb_u8(w, flags);
        wb_u32(w, vi.cpu);
        wb_u64(w, vi.cpu_time);
        count++;
    }
    if (!w->overflow)
        wb_put_u16_at(w, at, count);
}

static size_t reply_list_domains(struct proxy_ctx *ctx, struct rbuf *req, struct wbuf *w, uint8_t type,
                                 uint32_t serial)
{
    uint16_t first = rb_u16(req);
    uint16_t max = rb_u16(req);
    uint32_t options = rb_u32(req);
    if (req->bad || req->off != req->len)
        return error_frame(w->p, w->cap, type, serial, VP_E_BAD_REQUEST,
                           "LIST_DOMAINS payload must be exactly 8 bytes (first, max, options)");
    if (max == 0 || max > VP_MAX_DOMAINS_PER_REPLY)
        return error_frame(w->p, w->cap, type, serial, VP_E_BAD_REQUEST, "LIST_DOMAINS max must be 1..256");
    if ((options & ~(VP_LIST_OPT_DEVICES | VP_LIST_OPT_VCPUS)) != 0)
        return error_frame(w->p, w->cap, type, serial, VP_E_BAD_REQUEST, "LIST_DOMAINS has unknown option bits");

    char err[VP_MAX_ERROR_MSG];
    int st = xb_ensure(&ctx->xb, err, sizeof(err));
    if (st != VP_OK)
        return error_frame(w->p, w->cap, type, serial, st, err);
    vp_xc_domaininfo_t *info = calloc(max, sizeof(*info));
    if (info == NULL)
        return error_frame(w->p, w->cap, type, serial, VP_E_XEN_FAILED, "out of memory");
    int n = ctx->xb.getinfolist(ctx->xb.xch, first, max, info);
    if (n < 0 || n > (int)max) {
        free(info);
        xb_reset(&ctx->xb);
        return error_frame(w->p, w->cap, type, serial, VP_E_XEN_FAILED, "xc_domain_getinfolist failed");
    }

    struct netdev_snapshot net = {NULL, 0};
    int devices = (options & VP_LIST_OPT_DEVICES) != 0;
    int vcpus = (options & VP_LIST_OPT_VCPUS) != 0;
    if (devices)
        netdev_load(&net, ctx->proc_net_dev);

    begin_reply(w, type, serial, VP_OK);
    wb_u32(w, XC_PAGE_SIZE);
    wb_u16(w, (uint16_t)((unsigned)n | (vcpus ? VP_LIST_COUNT_VCPUS : 0u)));
    for (int i = 0; i < n; i++) {
        const vp_xc_domaininfo_t *d = &info[i];
        wb_u16(w, d->domain);
        wb_u32(w, d->flags);
        wb_bytes(w, d->handle, sizeof(d->handle));
        wb_u64(w, d->tot_pages);
        wb_u64(w, d->max_pages);
        wb_u64(w, d->cpu_time);
        wb_u32(w, d->nr_online_vcpus);
        wb_u32(w, d->max_vcpu_id);
        struct vbd_stats vbd[VP_MAX_VBDS_PER_DOMAIN];
        struct vif_stats vif[VP_MAX_VIFS_PER_DOMAIN];
        size_t nvbd = devices ? vbd_collect(ctx->sysfs_root, d->domain, vbd) : 0;
        size_t nvif = devices ? vif_collect(&net, d->domain, vif) : 0;
        wb_u8(w, (uint8_t)nvbd);
        for (size_t j = 0; j < nvbd; j++) {
            wb_u32(w, vbd[j].devid);
            wb_u64(w, vbd[j].rd_req);
            wb_u64(w, vbd[j].wr_req);
            wb_u64(w, vbd[j].rd_sect);
            wb_u64(w, vbd[j].wr_sect);
            wb_u64(w, vbd[j].oo_req);
        }
        wb_u8(w, (uint8_t)nvif);
        for (size_t j = 0; j < nvif; j++) {
            wb_u32(w, vif[j].index);
            wb_u64(w, vif[j].rx_bytes);
            wb_u64(w, vif[j].rx_packets);
            wb_u64(w, vif[j].rx_errs);
            wb_u64(w, vif[j].rx_drop);
            wb_u64(w, vif[j].tx_bytes);
            wb_u64(w, vif[j].tx_packets);
            wb_u64(w, vif[j].tx_errs);
            wb_u64(w, vif[j].tx_drop);
        }
        if (vcpus)
            wb_vcpus(ctx, w, d);
    }
    netdev_free(&net);
    free(info);
    if (w->overflow) /* cannot happen within the documented caps; never send a cut reply */
        return error_frame(w->p, w->cap, type, serial, VP_E_XEN_FAILED, "reply too large");
    return finish_reply(w);
}

size_t handle_frame(struct proxy_ctx *ctx, const uint8_t *frame, size_t len, int *close_after)
{
    struct wbuf w = {ctx->scratch, 0, VP_PREFIX_LEN + VP_MAX_REPLY_BODY, 0};
    struct rbuf r = {frame, len, VP_PREFIX_LEN, 0};
    uint8_t version = rb_u8(&r);
    uint8_t type = rb_u8(&r);
    uint16_t status = rb_u16(&r);
    uint32_t serial = rb_u32(&r);
    *close_after = 0;
    if (r.bad) {
        *close_after = 1;
        return error_frame(w.p, w.cap, VP_TYPE_ERROR, 0, VP_E_BAD_FRAME, "truncated header");
    }
    if (version != VP_PROTO_VERSION) {
        *close_after = 1;
        return error_frame(w.p, w.cap, VP_TYPE_ERROR, serial, VP_E_BAD_VERSION,
                           "unsupported protocol version (this virt-proxy speaks version 1)");
    }
    uint8_t rtype = (uint8_t)(type | VP_REPLY_BIT);
    if (type & VP_REPLY_BIT)
        rtype = VP_TYPE_ERROR;
    if (status != 0)
        return error_frame(w.p, w.cap, rtype, serial, VP_E_BAD_REQUEST, "request status field must be 0");
    switch (type) {
    case VP_REQ_VERSION:
        if (r.off != r.len)
            return error_frame(w.p, w.cap, rtype, serial, VP_E_BAD_REQUEST, "VERSION takes no payload");
        return reply_version(ctx, &w, rtype, serial);
    case VP_REQ_HOST_INFO:
        if (r.off != r.len)
            return error_frame(w.p, w.cap, rtype, serial, VP_E_BAD_REQUEST, "HOST_INFO takes no payload");
        return reply_host_info(ctx, &w, rtype, serial);
    case VP_REQ_LIST_DOMAINS:
        return reply_list_domains(ctx, &r, &w, rtype, serial);
    default:
        return error_frame(w.p, w.cap, rtype, serial, VP_E_UNKNOWN_TYPE, "unknown request type");
    }
}
