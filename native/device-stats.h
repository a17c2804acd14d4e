/* Per-device counters outside the hypercall API: vbd statistics in sysfs, vif lines of /proc/net/dev. */
#ifndef VIRT_PROXY_DEVICE_STATS_H
#define VIRT_PROXY_DEVICE_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "vp-protocol.h"

struct vbd_stats {
    uint32_t devid;
    uint64_t rd_req, wr_req, rd_sect, wr_sect, oo_req;
};

/* Host view, as /proc/net/dev prints it (the client swaps RX/TX for the guest view). */
struct vif_stats {
    uint32_t index;
    uint64_t rx_bytes, rx_packets, rx_errs, rx_drop;
    uint64_t tx_bytes, tx_packets, tx_errs, tx_drop;
};

/* Snapshot of /proc/net/dev, read once per request (bounded). */
struct netdev_snapshot {
    char *text;
    size_t len;
};

#define VP_MAX_NETDEV_BYTES (1024 * 1024)

void netdev_load(struct netdev_snapshot *snap, const char *path);
void netdev_free(struct netdev_snapshot *snap);

/* Fill at most VP_MAX_*_PER_DOMAIN entries, sorted by device id; return the count. */
size_t vbd_collect(const char *sysfs_root, uint32_t domid, struct vbd_stats out[VP_MAX_VBDS_PER_DOMAIN]);
size_t vif_collect(const struct netdev_snapshot *snap, uint32_t domid, struct vif_stats out[VP_MAX_VIFS_PER_DOMAIN]);

/* Parses a decimal u32 filling [s, end) exactly; returns 0 on success. Exposed for the vif/vbd names. */
int parse_u32_exact(const char *s, const char *end, uint32_t *out);

#endif
