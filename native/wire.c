#include "wire.h"

#include <string.h>

static int wb_room(struct wbuf *w, size_t n)
{
    if (w->overflow || n > w->cap - w->len) {
        w->overflow = 1;
        return 0;
    }
    return 1;
}

void wb_u8(struct wbuf *w, uint8_t v)
{
    if (wb_room(w, 1))
        w->p[w->len++] = v;
}

void wb_u16(struct wbuf *w, uint16_t v)
{
    if (!wb_room(w, 2))
        return;
    w->p[w->len++] = (uint8_t)(v >> 8);
    w->p[w->len++] = (uint8_t)v;
}

void wb_u32(struct wbuf *w, uint32_t v)
{
    if (!wb_room(w, 4))
        return;
    for (int s = 24; s >= 0; s -= 8)
        w->p[w->len++] = (uint8_t)(v >> s);
}

void wb_u64(struct wbuf *w, uint64_t v)
{
    if (!wb_room(w, 8))
        return;
    for (int s = 56; s >= 0; s -= 8)
        w->p[w->len++] = (uint8_t)(v >> s);
}

void wb_bytes(struct wbuf *w, const void *src, size_t n)
{
    if (!wb_room(w, n))
        return;
    memcpy(w->p + w->len, src, n);
    w->len += n;
}

void wb_str(struct wbuf *w, const char *s, size_t max)
{
    size_t n = 0;
    if (max > 0xffff)
        max = 0xffff;
    while (n < max && s[n] != '\0')
        n++;
    wb_u16(w, (uint16_t)n);
    wb_bytes(w, s, n);
}

void wb_put_u16_at(struct wbuf *w, size_t at, uint16_t v)
{
    if (at > w->len || w->len - at < 2)
        return;
    w->p[at] = (uint8_t)(v >> 8);
    w->p[at + 1] = (uint8_t)v;
}

void wb_put_u32_at(struct wbuf *w, size_t at, uint32_t v)
{
    if (at > w->len || w->len - at < 4)
        return;
    w->p[at] = (uint8_t)(v >> 24);
    w->p[at + 1] = (uint8_t)(v >> 16);
    w->p[at + 2] = (uint8_t)(v >> 8);
    w->p[at + 3] = (uint8_t)v;
}

static int rb_have(struct rbuf *r, size_t n)
{
    if (r->bad || n > r->len - r->off) {
        r->bad = 1;
        return 0;
    }
    return 1;
}

uint8_t rb_u8(struct rbuf *r)
{
    if (!rb_have(r, 1))
        return 0;
    return r->p[r->off++];
}

uint16_t rb_u16(struct rbuf *r)
{
    if (!rb_have(r, 2))
        return 0;
    uint16_t v = (uint16_t)((r->p[r->off] << 8) | r->p[r->off + 1]);
    r->off += 2;
    return v;
}

uint32_t rb_u32(struct rbuf *r)
{
    if (!rb_have(r, 4))
        return 0;
    uint32_t v = be32_get(r->p + r->off);
    r->off += 4;
    return v;
}

uint32_t be32_get(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}
