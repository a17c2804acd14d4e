#include "device-stats.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int parse_u32_exact(const char *s, const char *end, uint32_t *out)
{
    uint64_t v = 0;
    if (s >= end || end - s > 10)
        return -1;
    for (const char *c = s; c < end; c++) {
        if (*c < '0' || *c > '9')
            return -1;
        v = v * 10 + (uint64_t)(*c - '0');
    }
    if (v > UINT32_MAX)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

/* Reads a small sysfs counter file: one decimal u64, optional trailing newline. */
static int read_u64_file(const char *path, uint64_t *out)
{
    char buf[32];
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    char *end = NULL;
    if (buf[0] < '0' || buf[0] > '9')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(buf, &end, 10);
    if (errno != 0 || (*end != '\0' && *end != '\n'))
        return -1;
    *out = (uint64_t)v;
    return 0;
}

static int cmp_vbd(const void *a, const void *b)
{
    uint32_t x = ((const struct vbd_stats *)a)->devid, y = ((const struct vbd_stats *)b)->devid;
    return x < y ? -1 : x > y;
}

static int cmp_vif(const void *a, const void *b)
{
    uint32_t x = ((const struct vif_stats *)a)->index, y = ((const struct vif_stats *)b)->index;
    return x < y ? -1 : x > y;
}

size_t vbd_collect(const char *sysfs_root, uint32_t domid, struct vbd_stats out[VP_MAX_VBDS_PER_DOMAIN])
{
    char dir[PATH_MAX];
    if (snprintf(dir, sizeof(dir), "%s/bus/xen-backend/devices", sysfs_root) >= (int)sizeof(dir))
        return 0;
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0; /* no backend devices: not an error */
    char prefix[32];
    int plen = snprintf(prefix, sizeof(prefix), "vbd-%u-", domid);
    size_t n = 0;
    struct dirent *de;
    /* Bounded scan: a backend directory holds a few entries per domain. */
    unsigned scanned = 0;
    while (n < VP_MAX_VBDS_PER_DOMAIN && scanned++ < 65536 && (de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, prefix, (size_t)plen) != 0)
            continue;
        const char *idstr = de->d_name + plen;
        uint32_t devid;
        if (parse_u32_exact(idstr, idstr + strlen(idstr), &devid) != 0)
            continue;
        static const char *const names[] = {"rd_req", "wr_req", "rd_sect", "wr_sect", "oo_req"};
        uint64_t v[5];
        int ok = 1;
        for (size_t i = 0; i < 5 && ok; i++) {
            char path[PATH_MAX];
            if (snprintf(path, sizeof(path), "%s/%s/statistics/%s", dir, de->d_name, names[i]) >= (int)sizeof(path) ||
                read_u64_file(path, &v[i]) != 0)
                ok = 0;
        }
        if (!ok)
            continue;
        out[n].devid = devid;
        out[n].rd_req = v[0];
        out[n].wr_req = v[1];
        out[n].rd_sect = v[2];
        out[n].wr_sect = v[3];
        out[n].oo_req = v[4];
        n++;
    }
    closedir(d);
    qsort(out, n, sizeof(out[0]), cmp_vbd);
    return n;
}

void netdev_load(struct netdev_snapshot *snap, const char *path)
{
    snap->text = NULL;
    snap->len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    char *buf = malloc(VP_MAX_NETDEV_BYTES + 1);
    if (buf == NULL) {
        close(fd);
        return;
    }
    size_t len = 0;
    while (len < VP_MAX_NETDEV_BYTES) {
        ssize_t r = read(fd, buf + len, VP_MAX_NETDEV_BYTES - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    buf[len] = '\0';
    snap->text = buf;
    snap->len = len;
}

void netdev_free(struct netdev_snapshot *snap)
{
    free(snap->text);
    snap->text = NULL;
    snap->len = 0;
}

/* Parses up to count u64 fields separated by blanks from [p, end); returns how many were read. */
static size_t parse_u64_fields(const char *p, const char *end, uint64_t *vals, size_t count)
{
    size_t n = 0;
    while (n < count) {
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        if (p >= end || *p < '0' || *p > '9')
            break;
        uint64_t v = 0;
        int overflow = 0;
        while (p < end && *p >= '0' && *p <= '9') {
            uint64_t d = (uint64_t)(*p - '0');
            if (v > (UINT64_MAX - d) / 10)
                overflow = 1;
            v = v * 10 + d;
            p++;
        }
        if (overflow || (p < end && *p != ' ' && *p != '\t'))
            break;
        vals[n++] = v;
    }
    return n;
}

size_t vif_collect(const struct netdev_snapshot *snap, uint32_t domid, struct vif_stats out[VP_MAX_VIFS_PER_DOMAIN])
{
    size_t n = 0;
    const char *p = snap->text, *end = snap->text + snap->len;
    if (p == NULL)
        return 0;
    while (p < end && n < VP_MAX_VIFS_PER_DOMAIN) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (eol == NULL)
            eol = end;
        const char *s = p;
        p = eol < end ? eol + 1 : end;
        while (s < eol && *s == ' ')
            s++;
        const char *colon = memchr(s, ':', (size_t)(eol - s));
        if (colon == NULL || colon - s < 6 || strncmp(s, "vif", 3) != 0)
            continue;
        /* Name is exactly vif<domid>.<n>; vif3.0-emu (the HVM tap) is not the PV interface. */
        const char *dot = memchr(s + 3, '.', (size_t)(colon - (s + 3)));
        uint32_t d, idx;
        if (dot == NULL || parse_u32_exact(s + 3, dot, &d) != 0 || d != domid ||
            parse_u32_exact(dot + 1, colon, &idx) != 0)
            continue;
        uint64_t v[16];
        if (parse_u64_fields(colon + 1, eol, v, 16) != 16)
            continue;
        out[n].index = idx;
        out[n].rx_bytes = v[0];
        out[n].rx_packets = v[1];
        out[n].rx_errs = v[2];
        out[n].rx_drop = v[3];
        out[n].tx_bytes = v[8];
        out[n].tx_packets = v[9];
        out[n].tx_errs = v[10];
        out[n].tx_drop = v[11];
        n++;
    }
    qsort(out, n, sizeof(out[0]), cmp_vif);
    return n;
}
