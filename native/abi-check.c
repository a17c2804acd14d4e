/*
 * Compile-time proof that xen-abi.h matches the installed Xen headers
 * (libxen-dev). Built by `make abi-check`; it has no run-time part.
 */
#define __XEN_TOOLS__ 1
#include <stddef.h>
#include <xenctrl.h>
#include "xen-abi.h"

#define SAME(T1, T2, f) _Static_assert(offsetof(T1, f) == offsetof(T2, f) && sizeof(((T1 *)0)->f) == sizeof(((T2 *)0)->f), #f)

_Static_assert(sizeof(xc_domaininfo_t) == sizeof(vp_xc_domaininfo_t), "xc_domaininfo_t size");
SAME(xc_domaininfo_t, vp_xc_domaininfo_t, domain);
SAME(xc_domaininfo_t, vp_xc_domaininfo_t, flags);
SAME(xc_domaininfo_t, vp_xc_domaininfo_t, tot_pages);
SAME(xc_domaininfo_t, vp_xc_domaininfo_t, max_pages);
SAME(xc_domaininfo_t, vp_xc_domaininfo_t, outstanding_pages);
SAME(xc_domaininfo_t, vp_xc_domaininfo_t, shr_pages);
SAME(xc_domaininfo_t, vp_xc_domaininfo_t, paged_pages);
SAME(xc_domaininfo_t, vp_xc_domaininfo_t, shared_info_frame);
SAME(xc_domaininfo_t, vp_xc_domaininfo_t, cpu_time);
SAME(xc_domaininfo_t, vp_xc_domaininfo_t, nr_online_vcpus);
SAME(xc_domaininfo_t, vp_xc_domaininfo_t, max_vcpu_id);
SAME(xc_domaininfo_t, vp_xc_domaininfo_t, ssidref);
SAME(xc_domaininfo_t, vp_xc_domaininfo_t, handle);
SAME(xc_domaininfo_t, vp_xc_domaininfo_t, cpupool);
SAME(xc_domaininfo_t, vp_xc_domaininfo_t, gpaddr_bits);
SAME(xc_domaininfo_t, vp_xc_domaininfo_t, arch_config);

_Static_assert(sizeof(xc_physinfo_t) == sizeof(vp_xc_physinfo_t), "xc_physinfo_t size");
SAME(xc_physinfo_t, vp_xc_physinfo_t, threads_per_core);
SAME(xc_physinfo_t, vp_xc_physinfo_t, cores_per_socket);
SAME(xc_physinfo_t, vp_xc_physinfo_t, nr_cpus);
SAME(xc_physinfo_t, vp_xc_physinfo_t, nr_nodes);
SAME(xc_physinfo_t, vp_xc_physinfo_t, cpu_khz);
SAME(xc_physinfo_t, vp_xc_physinfo_t, total_pages);
SAME(xc_physinfo_t, vp_xc_physinfo_t, free_pages);
SAME(xc_physinfo_t, vp_xc_physinfo_t, hw_cap);

_Static_assert(sizeof(xc_vcpuinfo_t) == sizeof(vp_xc_vcpuinfo_t), "xc_vcpuinfo_t size");
SAME(xc_vcpuinfo_t, vp_xc_vcpuinfo_t, vcpu);
SAME(xc_vcpuinfo_t, vp_xc_vcpuinfo_t, online);
SAME(xc_vcpuinfo_t, vp_xc_vcpuinfo_t, blocked);
SAME(xc_vcpuinfo_t, vp_xc_vcpuinfo_t, running);
SAME(xc_vcpuinfo_t, vp_xc_vcpuinfo_t, cpu_time);
SAME(xc_vcpuinfo_t, vp_xc_vcpuinfo_t, cpu);

_Static_assert(XENVER_version == VP_XENVER_version && XENVER_extraversion == VP_XENVER_extraversion, "XENVER_*");
_Static_assert(XEN_EXTRAVERSION_LEN == VP_XEN_EXTRAVERSION_LEN, "extraversion length");
_Static_assert(XEN_DOMINF_dying == VP_XEN_DOMINF_dying && XEN_DOMINF_shutdown == VP_XEN_DOMINF_shutdown &&
                   XEN_DOMINF_paused == VP_XEN_DOMINF_paused && XEN_DOMINF_blocked == VP_XEN_DOMINF_blocked &&
                   XEN_DOMINF_running == VP_XEN_DOMINF_running && XEN_DOMINF_hvm_guest == VP_XEN_DOMINF_hvm_guest &&
                   XEN_DOMINF_shutdownshift == VP_XEN_DOMINF_shutdownshift,
               "XEN_DOMINF_*");
_Static_assert(__XEN_LATEST_INTERFACE_VERSION__ >= 0x00040000, "xen headers present");

/* Entry points exist with the names virt-proxy resolves (their argument structs are checked above). */
static void *const checked_symbols[] __attribute__((unused)) = {
    (void *)xc_interface_open, (void *)xc_interface_close, (void *)xc_domain_getinfolist, (void *)xc_physinfo, (void *)xc_version,
    (void *)xc_vcpu_getinfo,
};

int vp_abi_check_unit;
