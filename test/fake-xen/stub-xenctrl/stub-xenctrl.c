/*
 * A stand-in for libxenctrl, for tests only: virt-proxy loads it with
 * --xenctrl in place of the real library. Every call re-reads the fake
 * host's state file named by VIRT_FAKE_XEN_STATE, so a change the fake Xend
 * makes is seen by the next "hypercall". The file is UTF-8 text, replaced
 * atomically (temp file + rename); '#' comments and blank lines are ignored:
 *
 *   host cpus=4 mhz=2400 nodes=1 sockets=1 cores=4 threads=1 total_pages=4194304 free_pages=1048576 version=4.17.0
 *   dom domid=0 uuid=00000000-0000-0000-0000-000000000000 flags=0x20 tot_pages=262144 max_pages=262144 \
 *       cpu_time_ns=123456789 online_vcpus=2 max_vcpu_id=1
 *
 * (one dom line per domain, on one line). physinfo has no socket count, so
 * "sockets" is accepted and ignored; virt-proxy's client derives it.
 * A malformed file makes the call fail with errno EINVAL and a line on stderr.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xen-abi.h"

#define STUB_MAX_FILE (1024 * 1024)
#define STUB_MAX_DOMAINS 4096

struct xc_interface_core {
    uint32_t magic;
};
#define STUB_MAGIC 0x5354554bu

struct stub_host {
    vp_xc_physinfo_t phys;
    unsigned major, minor;
    char extra[VP_XEN_EXTRAVERSION_LEN];
    size_t ndom;
    vp_xc_domaininfo_t *dom;
};

/* The last xc_domain_getinfolist reading (for xc_vcpu_getinfo). */
static struct stub_host last_list;

static int parse_u64(const char *s, uint64_t *out)
{
    char *end = NULL;
    if (*s == '-' || *s == '\0')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

static int parse_u32(const char *s, uint32_t *out)
{
    uint64_t v;
    if (parse_u64(s, &v) != 0 || v > UINT32_MAX)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int parse_uuid(const char *s, uint8_t out[16])
{
    if (strlen(s) != 36)
        return -1;
    size_t n = 0;
    for (size_t i = 0; i < 36;) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return -1;
            i++;
            continue;
        }
        int hi = hexval(s[i]), lo = hexval(s[i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[n++] = (uint8_t)(hi << 4 | lo);
        i += 2;
    }
    return n == 16 ? 0 : -1;
}

static int parse_version(const char *s, struct stub_host *h)
{
    char *end = NULL;
    errno = 0;
    unsigned long major = strtoul(s, &end, 10);
    if (errno != 0 || end == s || *end != '.')
        return -1;
    const char *m = end + 1;
    unsigned long minor = strtoul(m, &end, 10);
    if (errno != 0 || end == m || major > 0xffff || minor > 0xffff)
        return -1;
    h->major = (unsigned)major;
    h->minor = (unsigned)minor;
    /* The rest (".0", ".7-pre") is the extraversion, as Xen reports it. */
    memset(h->extra, 0, sizeof(h->extra));
    strncpy(h->extra, end, sizeof(h->extra) - 1);
    return 0;
}

static int parse_host(char *kv, struct stub_host *h)
{
    char *eq = strchr(kv, '=');
    if (eq == NULL)
        return -1;
    *eq = '\0';
    const char *k = kv, *v = eq + 1;
    uint32_t u;
    if (strcmp(k, "version") == 0)
        return parse_version(v, h);
    if (strcmp(k, "total_pages") == 0)
        return parse_u64(v, &h->phys.total_pages);
    if (strcmp(k, "free_pages") == 0)
        return parse_u64(v, &h->phys.free_pages);
    if (parse_u32(v, &u) != 0)
        return -1;
    if (strcmp(k, "cpus") == 0) {
        h->phys.nr_cpus = u;
        h->phys.max_cpu_id = u > 0 ? u - 1 : 0;
    } else if (strcmp(k, "mhz") == 0) {
        h->phys.cpu_khz = u * 1000u;
    } else if (strcmp(k, "nodes") == 0) {
        h->phys.nr_nodes = u;
        h->phys.max_node_id = u > 0 ? u - 1 : 0;
    } else if (strcmp(k, "cores") == 0) {
        h->phys.cores_per_socket = u;
    } else if (strcmp(k, "threads") == 0) {
        h->phys.threads_per_core = u;
    } /* sockets and unknown keys: ignored (physinfo has no such field) */
    return 0;
}

static int parse_dom(char *kv, vp_xc_domaininfo_t *d)
{
    char *eq = strchr(kv, '=');
    if (eq == NULL)
        return -1;
    *eq = '\0';
    const char *k = kv, *v = eq + 1;
    uint32_t u;
    if (strcmp(k, "uuid") == 0)
        return parse_uuid(v, d->handle);
    if (strcmp(k, "tot_pages") == 0)
        return parse_u64(v, &d->tot_pages);
    if (strcmp(k, "max_pages") == 0)
        return parse_u64(v, &d->max_pages);
    if (strcmp(k, "cpu_time_ns") == 0)
        return parse_u64(v, &d->cpu_time);
    if (parse_u32(v, &u) != 0)
        return -1;
    if (strcmp(k, "domid") == 0) {
        if (u > 0x7fef) /* DOMID_FIRST_RESERVED - 1 */
            return -1;
        d->domain = (uint16_t)u;
    } else if (strcmp(k, "flags") == 0) {
        d->flags = u;
    } else if (strcmp(k, "online_vcpus") == 0) {
        d->nr_online_vcpus = u;
    } else if (strcmp(k, "max_vcpu_id") == 0) {
        d->max_vcpu_id = u;
    }
    return 0;
}

static int cmp_dom(const void *a, const void *b)
{
    uint16_t x = ((const vp_xc_domaininfo_t *)a)->domain, y = ((const vp_xc_domaininfo_t *)b)->domain;
    return x < y ? -1 : x > y;
}

static void fail(const char *path, unsigned line, const char *what)
{
    fprintf(stderr, "stub-xenctrl: %s:%u: %s\n", path, line, what);
}

/* Loads the state file; returns 0 or -1 with errno set. */
static int load_state(struct stub_host *h)
{
    memset(h, 0, sizeof(*h));
    const char *path = getenv("VIRT_FAKE_XEN_STATE");
    if (path == NULL || *path == '\0') {
        fprintf(stderr, "stub-xenctrl: VIRT_FAKE_XEN_STATE is not set\n");
        errno = ENOENT;
        return -1;
    }
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        int e = errno;
        fprintf(stderr, "stub-xenctrl: cannot open %s: %s\n", path, strerror(e));
        errno = e;
        return -1;
    }
    char *text = malloc(STUB_MAX_FILE + 1);
    h->dom = calloc(STUB_MAX_DOMAINS, sizeof(*h->dom));
    if (text == NULL || h->dom == NULL) {
        free(text);
        free(h->dom);
        h->dom = NULL;
        fclose(f);
        errno = ENOMEM;
        return -1;
    }
    size_t len = fread(text, 1, STUB_MAX_FILE + 1, f);
    fclose(f);
    if (len > STUB_MAX_FILE) {
        fail(path, 0, "file too large");
        goto bad;
    }
    text[len] = '\0';
    int have_host = 0;
    unsigned lineno = 0;
    char *save_line = NULL;
    for (char *line = strtok_r(text, "\n", &save_line); line != NULL; line = strtok_r(NULL, "\n", &save_line)) {
        lineno++;
        char *save = NULL;
        char *word = strtok_r(line, " \t\r", &save);
        if (word == NULL || word[0] == '#')
            continue;
        if (strcmp(word, "host") == 0) {
            have_host = 1;
            for (char *kv = strtok_r(NULL, " \t\r", &save); kv != NULL; kv = strtok_r(NULL, " \t\r", &save))
                if (parse_host(kv, h) != 0) {
                    fail(path, lineno, "bad host field");
                    goto bad;
                }
        } else if (strcmp(word, "dom") == 0) {
            if (h->ndom >= STUB_MAX_DOMAINS) {
                fail(path, lineno, "too many domains");
                goto bad;
            }
            vp_xc_domaininfo_t *d = &h->dom[h->ndom];
            d->max_vcpu_id = ~0U; /* XEN_INVALID_MAX_VCPU_ID unless given */
            int have_domid = 0;
            for (char *kv = strtok_r(NULL, " \t\r", &save); kv != NULL; kv = strtok_r(NULL, " \t\r", &save)) {
                if (strncmp(kv, "domid=", 6) == 0)
                    have_domid = 1;
                if (parse_dom(kv, d) != 0) {
                    fail(path, lineno, "bad dom field");
                    goto bad;
                }
            }
            if (!have_domid) {
                fail(path, lineno, "dom line without domid");
                goto bad;
            }
            h->ndom++;
        } else {
            fail(path, lineno, "unknown line kind");
            goto bad;
        }
    }
    if (!have_host) {
        fail(path, 0, "no host line");
        goto bad;
    }
    free(text);
    qsort(h->dom, h->ndom, sizeof(*h->dom), cmp_dom);
    return 0;
bad:
    free(text);
    free(h->dom);
    h->dom = NULL;
    errno = EINVAL;
    return -1;
}

vp_xc_interface *xc_interface_open(void *logger, void *dombuild_logger, unsigned open_flags)
{
    (void)logger;
    (void)dombuild_logger;
    (void)open_flags;
    struct stub_host h;
    if (load_state(&h) != 0)
        return NULL; /* like a machine without a hypervisor */
    free(h.dom);
    struct xc_interface_core *x = malloc(sizeof(*x));
    if (x == NULL)
        return NULL;
    x->magic = STUB_MAGIC;
    return x;
}

int xc_interface_close(vp_xc_interface *xch)
{
    if (xch == NULL)
        return 0;
    xch->magic = 0;
    free(xch);
    /* The library may be unloaded after this (virt-proxy dlcloses it on reset): keep nothing behind. */
    free(last_list.dom);
    memset(&last_list, 0, sizeof(last_list));
    return 0;
}

int xc_domain_getinfolist(vp_xc_interface *xch, uint32_t first_domain, unsigned int max_domains,
                          vp_xc_domaininfo_t *info)
{
    struct stub_host h;
    if (xch == NULL || xch->magic != STUB_MAGIC) {
        errno = EBADF;
        return -1;
    }
    if (load_state(&h) != 0)
        return -1;
    unsigned n = 0;
    for (size_t i = 0; i < h.ndom && n < max_domains; i++)
        if (h.dom[i].domain >= first_domain)
            info[n++] = h.dom[i];
    /* xc_vcpu_getinfo answers from this reading (re-reading the file per vCPU would cost a parse each). */
    free(last_list.dom);
    last_list = h;
    return (int)n;
}

/*
 * Per-vCPU info of a domain of the last xc_domain_getinfolist reading: vCPUs
 * 0..max_vcpu_id exist, the first online_vcpus of them are online, the
 * domain's CPU time is split evenly among the online ones (the remainder to
 * vCPU 0), vCPU v runs on host CPU v mod nr_cpus, and is "running" when the
 * domain's running flag is set (else blocked). ESRCH for an unknown domain
 * or vCPU, as the hypervisor answers.
 */
int xc_vcpu_getinfo(vp_xc_interface *xch, uint32_t domid, uint32_t vcpu, vp_xc_vcpuinfo_t *info)
{
    if (xch == NULL || xch->magic != STUB_MAGIC) {
        errno = EBADF;
        return -1;
    }
    for (size_t i = 0; i < last_list.ndom; i++) {
        const vp_xc_domaininfo_t *d = &last_list.dom[i];
        if (d->domain != domid)
            continue;
        if (d->max_vcpu_id == ~0U || vcpu > d->max_vcpu_id)
            break;
        memset(info, 0, sizeof(*info));
        info->vcpu = vcpu;
        uint32_t online = d->nr_online_vcpus;
        info->online = vcpu < online;
        if (info->online) {
            info->cpu_time = d->cpu_time / online + (vcpu == 0 ? d->cpu_time % online : 0);
            info->running = (d->flags & VP_XEN_DOMINF_running) != 0;
            info->blocked = !info->running;
        }
        info->cpu = last_list.phys.nr_cpus > 0 ? vcpu % last_list.phys.nr_cpus : 0;
        return 0;
    }
    errno = ESRCH;
    return -1;
}

int xc_physinfo(vp_xc_interface *xch, vp_xc_physinfo_t *info)
{
    struct stub_host h;
    if (xch == NULL || xch->magic != STUB_MAGIC) {
        errno = EBADF;
        return -1;
    }
    if (load_state(&h) != 0)
        return -1;
    free(h.dom);
    *info = h.phys;
    return 0;
}

int xc_version(vp_xc_interface *xch, int cmd, void *arg)
{
    struct stub_host h;
    if (xch == NULL || xch->magic != STUB_MAGIC) {
        errno = EBADF;
        return -1;
    }
    if (load_state(&h) != 0)
        return -1;
    free(h.dom);
    switch (cmd) {
    case VP_XENVER_version:
        return (int)(h.major << 16 | h.minor);
    case VP_XENVER_extraversion:
        memcpy(arg, h.extra, VP_XEN_EXTRAVERSION_LEN);
        return 0;
    default:
        errno = ENOSYS;
        return -1;
    }
}
