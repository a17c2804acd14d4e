/*
 * virt-proxy wire protocol, version 1. Big-endian, length-prefixed frames;
 * every length and count is bounded. native/PROTOCOL.md is the reference;
 * src/drivers/xen/proxy-protocol.ts mirrors these constants.
 */
#ifndef VIRT_PROXY_PROTOCOL_H
#define VIRT_PROXY_PROTOCOL_H

#define VP_PROTO_VERSION 1

/* u32 length prefix, then the header: u8 version, u8 type, u16 status, u32 serial. */
#define VP_PREFIX_LEN 4
#define VP_HEADER_LEN 8
#define VP_MAX_REQUEST_BODY 64          /* header + payload of a request */
#define VP_MAX_REPLY_BODY (4 * 1024 * 1024) /* header + payload of a reply */

/* Request types. A reply carries type | VP_REPLY_BIT. There is no write request. */
#define VP_REQ_VERSION 0x01
#define VP_REQ_HOST_INFO 0x02
#define VP_REQ_LIST_DOMAINS 0x03
#define VP_REPLY_BIT 0x80
/* Sent by the server first on every connection (type 0x80, serial 0); a refused peer gets an error frame instead. */
#define VP_HELLO (0x00 | VP_REPLY_BIT)
#define VP_TYPE_ERROR 0xff /* reply type when the request type could not be read */

/* Reply status. */
#define VP_OK 0
#define VP_E_BAD_FRAME 1       /* length out of bounds; connection closed */
#define VP_E_BAD_VERSION 2     /* protocol version mismatch; connection closed */
#define VP_E_UNKNOWN_TYPE 3    /* well-formed frame, unknown request type */
#define VP_E_BAD_REQUEST 4     /* payload malformed or out of range */
#define VP_E_XEN_ABSENT 5      /* libxenctrl not loadable, or no hypervisor */
#define VP_E_XEN_FAILED 6      /* a hypercall failed */
#define VP_E_DENIED 7          /* peer credentials not allowed */
#define VP_E_BUSY 8            /* too many clients */
#define VP_E_UNSUPPORTED_XEN 9 /* hypervisor version differs from the built ABI */

#define VP_MAX_ERROR_MSG 512
#define VP_MAX_DOMAINS_PER_REPLY 256
#define VP_MAX_VBDS_PER_DOMAIN 32
#define VP_MAX_VIFS_PER_DOMAIN 32
#define VP_MAX_VCPUS_PER_DOMAIN 512
#define VP_LIST_OPT_DEVICES 0x1u
#define VP_LIST_OPT_VCPUS 0x2u
/* Bit 15 of a LIST_DOMAINS reply's count: every record ends with a vCPU block (option VCPUS was asked). */
#define VP_LIST_COUNT_VCPUS 0x8000u
/* vCPU flags in a vCPU record. */
#define VP_VCPU_ONLINE 0x1u
#define VP_VCPU_BLOCKED 0x2u
#define VP_VCPU_RUNNING 0x4u

#endif
