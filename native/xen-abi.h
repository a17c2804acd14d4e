/*
 * The slice of the Xen 4.17 (x86) control-library ABI that virt-proxy uses,
 * declared here so the helper builds without libxen-dev and loads
 * libxenctrl at run time (dlopen). The layouts follow xen/domctl.h,
 * xen/sysctl.h and xenctrl.h of RELEASE-4.17.0; abi-check.c compares them
 * field by field against the real headers when those are installed.
 * The domctl/sysctl layouts change between Xen releases (protocols.md §7.3),
 * so virt-proxy refuses to read a hypervisor whose major.minor differs.
 */
#ifndef VIRT_PROXY_XEN_ABI_H
#define VIRT_PROXY_XEN_ABI_H

#include <stdint.h>

#define VP_XEN_ABI_MAJOR 4
#define VP_XEN_ABI_MINOR 17

/* xen/version.h */
#define VP_XENVER_version 0
#define VP_XENVER_extraversion 1
#define VP_XEN_EXTRAVERSION_LEN 16

/* xen/domctl.h: XEN_DOMINF_* */
#define VP_XEN_DOMINF_dying (1U << 0)
#define VP_XEN_DOMINF_hvm_guest (1U << 1)
#define VP_XEN_DOMINF_shutdown (1U << 2)
#define VP_XEN_DOMINF_paused (1U << 3)
#define VP_XEN_DOMINF_blocked (1U << 4)
#define VP_XEN_DOMINF_running (1U << 5)
#define VP_XEN_DOMINF_debugged (1U << 6)
#define VP_XEN_DOMINF_xs_domain (1U << 7)
#define VP_XEN_DOMINF_hap (1U << 8)
#define VP_XEN_DOMINF_shutdownmask 255U
#define VP_XEN_DOMINF_shutdownshift 16

/* uint64_aligned_t on x86_64 is a plain, naturally aligned uint64_t. */
struct vp_xen_arch_domainconfig {
    uint32_t emulation_flags;
    uint32_t misc_flags;
};

/* struct xen_domctl_getdomaininfo (DOMCTL interface 0x15) == xc_domaininfo_t */
typedef struct vp_xc_domaininfo {
    uint16_t domain;
    uint16_t pad1;
    uint32_t flags;
    uint64_t tot_pages;
    uint64_t max_pages;
    uint64_t outstanding_pages;
    uint64_t shr_pages;
    uint64_t paged_pages;
    uint64_t shared_info_frame;
    uint64_t cpu_time;
    uint32_t nr_online_vcpus;
    uint32_t max_vcpu_id;
    uint32_t ssidref;
    uint8_t handle[16];
    uint32_t cpupool;
    uint8_t gpaddr_bits;
    uint8_t pad2[7];
    struct vp_xen_arch_domainconfig arch_config;
} vp_xc_domaininfo_t;

/* struct xen_sysctl_physinfo (SYSCTL interface 0x15) == xc_physinfo_t */
typedef struct vp_xc_physinfo {
    uint32_t threads_per_core;
    uint32_t cores_per_socket;
    uint32_t nr_cpus;
    uint32_t max_cpu_id;
    uint32_t nr_nodes;
    uint32_t max_node_id;
    uint32_t cpu_khz;
    uint32_t capabilities;
    uint32_t arch_capabilities;
    uint32_t pad;
    uint64_t total_pages;
    uint64_t free_pages;
    uint64_t scrub_pages;
    uint64_t outstanding_pages;
    uint64_t max_mfn;
    uint32_t hw_cap[8];
} vp_xc_physinfo_t;

/* struct xen_domctl_getvcpuinfo == xc_vcpuinfo_t (vcpu is IN, the rest OUT) */
typedef struct vp_xc_vcpuinfo {
    uint32_t vcpu;
    uint8_t online;  /* currently online (not hotplugged)? */
    uint8_t blocked; /* blocked waiting for an event? */
    uint8_t running; /* currently scheduled on its CPU? */
    uint8_t pad1;
    uint64_t cpu_time; /* total CPU time consumed (ns) */
    uint32_t cpu;      /* current mapping */
    uint32_t pad2;
} vp_xc_vcpuinfo_t;

_Static_assert(sizeof(vp_xc_vcpuinfo_t) == 24, "xen_domctl_getvcpuinfo is 24 bytes in 4.17 x86_64");
_Static_assert(sizeof(vp_xc_domaininfo_t) == 112, "xen_domctl_getdomaininfo is 112 bytes in 4.17 x86_64");
_Static_assert(sizeof(vp_xc_physinfo_t) == 112, "xen_sysctl_physinfo is 112 bytes in 4.17");

/* xenctrl.h entry points, resolved with dlsym. The handle is opaque. */
typedef struct xc_interface_core vp_xc_interface;
typedef vp_xc_interface *(*vp_xc_interface_open_fn)(void *logger, void *dombuild_logger, unsigned open_flags);
typedef int (*vp_xc_interface_close_fn)(vp_xc_interface *xch);
typedef int (*vp_xc_domain_getinfolist_fn)(vp_xc_interface *xch, uint32_t first_domain, unsigned int max_domains,
                                           vp_xc_domaininfo_t *info);
typedef int (*vp_xc_physinfo_fn)(vp_xc_interface *xch, vp_xc_physinfo_t *info);
typedef int (*vp_xc_version_fn)(vp_xc_interface *xch, int cmd, void *arg);
typedef int (*vp_xc_vcpu_getinfo_fn)(vp_xc_interface *xch, uint32_t domid, uint32_t vcpu, vp_xc_vcpuinfo_t *info);

#endif
