/* libxenctrl, loaded at run time: the same binary starts without Xen. */
#ifndef VIRT_PROXY_XEN_BACKEND_H
#define VIRT_PROXY_XEN_BACKEND_H

#include <stddef.h>

#include "xen-abi.h"

struct xen_backend {
    const char *lib_path; /* NULL: the system libxenctrl */
    void *lib;
    char lib_name[256]; /* what was actually loaded */
    vp_xc_interface *xch;
    vp_xc_interface_open_fn open;
    vp_xc_interface_close_fn close;
    vp_xc_domain_getinfolist_fn getinfolist;
    vp_xc_physinfo_fn physinfo;
    vp_xc_version_fn version;
    vp_xc_vcpu_getinfo_fn vcpu_getinfo;
};

/*
 * Loads the library and opens the interface if not done yet. Returns VP_OK
 * or a VP_E_* status with a one-line reason in err.
 */
int xb_ensure(struct xen_backend *xb, char *err, size_t errlen);

/* Xen version (major, minor, extraversion). Returns VP_OK or VP_E_*. */
int xb_version(struct xen_backend *xb, unsigned *major, unsigned *minor, char extra[VP_XEN_EXTRAVERSION_LEN + 1],
               char *err, size_t errlen);

/* Drops the interface (after a failed call) so the next request reopens it. */
void xb_reset(struct xen_backend *xb);
void xb_close(struct xen_backend *xb);

#endif
