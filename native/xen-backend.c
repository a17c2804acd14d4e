#include "xen-backend.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "vp-protocol.h"

/* Tried in order when no path is configured: the dev symlink, then the 4.17 soname. */
static const char *const default_libs[] = {"libxenctrl.so", "libxenctrl.so.4.17"};

static int load_library(struct xen_backend *xb, char *err, size_t errlen)
{
    char last[200] = "";
    if (xb->lib_path != NULL) {
        xb->lib = dlopen(xb->lib_path, RTLD_NOW | RTLD_LOCAL);
        if (xb->lib == NULL) {
            const char *e = dlerror();
            snprintf(err, errlen, "Xen is absent: cannot load the Xen control library %s (%s)", xb->lib_path,
                     e != NULL ? e : "unknown error");
            return VP_E_XEN_ABSENT;
        }
        snprintf(xb->lib_name, sizeof(xb->lib_name), "%s", xb->lib_path);
    } else {
        for (size_t i = 0; i < sizeof(default_libs) / sizeof(default_libs[0]) && xb->lib == NULL; i++) {
            xb->lib = dlopen(default_libs[i], RTLD_NOW | RTLD_LOCAL);
            if (xb->lib != NULL) {
                snprintf(xb->lib_name, sizeof(xb->lib_name), "%s", default_libs[i]);
            } else {
                const char *e = dlerror();
                snprintf(last, sizeof(last), "%s", e != NULL ? e : "unknown error");
            }
        }
        if (xb->lib == NULL) {
            snprintf(err, errlen,
                     "Xen is absent: the Xen control library (libxenctrl.so / libxenctrl.so.4.17) is not installed (%s)",
                     last);
            return VP_E_XEN_ABSENT;
        }
    }
    /* dlsym returns void *; POSIX guarantees the conversion to a function pointer works. */
    struct {
        const char *name;
        void **slot;
    } syms[] = {
        {"xc_interface_open", (void **)&xb->open},
        {"xc_interface_close", (void **)&xb->close},
        {"xc_domain_getinfolist", (void **)&xb->getinfolist},
        {"xc_physinfo", (void **)&xb->physinfo},
        {"xc_version", (void **)&xb->version},
        {"xc_vcpu_getinfo", (void **)&xb->vcpu_getinfo},
    };
    for (size_t i = 0; i < sizeof(syms) / sizeof(syms[0]); i++) {
        dlerror();
        *syms[i].slot = dlsym(xb->lib, syms[i].name);
        if (*syms[i].slot == NULL) {
            snprintf(err, errlen, "the Xen control library %s has no %s: not a libxenctrl", xb->lib_name, syms[i].name);
            dlclose(xb->lib);
            xb->lib = NULL;
            return VP_E_XEN_ABSENT;
        }
    }
    return VP_OK;
}

int xb_ensure(struct xen_backend *xb, char *err, size_t errlen)
{
    if (xb->xch != NULL)
        return VP_OK;
    if (xb->lib == NULL) {
        int st = load_library(xb, err, errlen);
        if (st != VP_OK)
            return st;
    }
    errno = 0;
    xb->xch = xb->open(NULL, NULL, 0);
    if (xb->xch == NULL) {
        int e = errno;
        snprintf(err, errlen,
                 "Xen is absent: %s loaded but xc_interface_open failed (%s); not a Xen dom0, or no access to "
                 "/dev/xen/privcmd",
                 xb->lib_name, e != 0 ? strerror(e) : "no reason given");
        return VP_E_XEN_ABSENT;
    }
    /* The domctl/sysctl layouts in xen-abi.h are those of one Xen release. */
    int v = xb->version(xb->xch, VP_XENVER_version, NULL);
    if (v < 0) {
        snprintf(err, errlen, "xc_version failed (%s)", strerror(errno));
        xb_reset(xb);
        return VP_E_XEN_FAILED;
    }
    unsigned major = (unsigned)v >> 16, minor = (unsigned)v & 0xffff;
    if (major != VP_XEN_ABI_MAJOR || minor != VP_XEN_ABI_MINOR) {
        snprintf(err, errlen, "unsupported Xen %u.%u: this virt-proxy is built for the Xen %d.%d domctl/sysctl ABI",
                 major, minor, VP_XEN_ABI_MAJOR, VP_XEN_ABI_MINOR);
        xb_reset(xb);
        return VP_E_UNSUPPORTED_XEN;
    }
    return VP_OK;
}

int xb_version(struct xen_backend *xb, unsigned *major, unsigned *minor, char extra[VP_XEN_EXTRAVERSION_LEN + 1],
               char *err, size_t errlen)
{
    int st = xb_ensure(xb, err, errlen);
    if (st != VP_OK)
        return st;
    int v = xb->version(xb->xch, VP_XENVER_version, NULL);
    char buf[VP_XEN_EXTRAVERSION_LEN];
    memset(buf, 0, sizeof(buf));
    if (v < 0 || xb->version(xb->xch, VP_XENVER_extraversion, buf) < 0) {
        snprintf(err, errlen, "xc_version failed (%s)", strerror(errno));
        xb_reset(xb);
        return VP_E_XEN_FAILED;
    }
    *major = (unsigned)v >> 16;
    *minor = (unsigned)v & 0xffff;
    /* The hypervisor does not promise a terminating NUL within the 16 bytes. */
    memcpy(extra, buf, VP_XEN_EXTRAVERSION_LEN);
    extra[VP_XEN_EXTRAVERSION_LEN] = '\0';
    return VP_OK;
}

void xb_reset(struct xen_backend *xb)
{
    if (xb->xch != NULL) {
        xb->close(xb->xch);
        xb->xch = NULL;
    }
}

void xb_close(struct xen_backend *xb)
{
    xb_reset(xb);
    if (xb->lib != NULL) {
        dlclose(xb->lib);
        xb->lib = NULL;
    }
}
