/* Bounded big-endian encoder/decoder for virt-proxy frames. */
#ifndef VIRT_PROXY_WIRE_H
#define VIRT_PROXY_WIRE_H

#include <stddef.h>
#include <stdint.h>

/* Writer over a fixed buffer: never writes past cap; sets overflow instead. */
struct wbuf {
    uint8_t *p;
    size_t len;
    size_t cap;
    int overflow;
};

void wb_u8(struct wbuf *w, uint8_t v);
void wb_u16(struct wbuf *w, uint16_t v);
void wb_u32(struct wbuf *w, uint32_t v);
void wb_u64(struct wbuf *w, uint64_t v);
void wb_bytes(struct wbuf *w, const void *src, size_t n);
/* u16 length + bytes, cut at max (and at the first NUL). */
void wb_str(struct wbuf *w, const char *s, size_t max);
void wb_put_u16_at(struct wbuf *w, size_t at, uint16_t v);
void wb_put_u32_at(struct wbuf *w, size_t at, uint32_t v);

/* Reader over received bytes: never reads past len; sets bad instead. */
struct rbuf {
    const uint8_t *p;
    size_t len;
    size_t off;
    int bad;
};

uint8_t rb_u8(struct rbuf *r);
uint16_t rb_u16(struct rbuf *r);
uint32_t rb_u32(struct rbuf *r);

uint32_t be32_get(const uint8_t *p);

#endif
