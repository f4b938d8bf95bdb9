#include "image_codecs.h"

#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <libdeflate.h>
#include <png.h>

static void set_message(cl_decoded *out, const char *msg) {
    snprintf(out->message, sizeof out->message, "%s", msg ? msg : "");
}

void cl_codec_free(void *p) { free(p); }

/* ------------------------------------------------------------------ JPEG */

struct cl_jpeg_error {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    cl_decoded *out;
};

static void cl_jpeg_error_exit(j_common_ptr cinfo) {
    struct cl_jpeg_error *err = (struct cl_jpeg_error *)cinfo->err;
    char buffer[JMSG_LENGTH_MAX];
    (*cinfo->err->format_message)(cinfo, buffer);
    set_message(err->out, buffer);
    longjmp(err->jump, 1);
}

/* Replaces the default (which prints to stderr): keep the first warning's text. */
static void cl_jpeg_output_message(j_common_ptr cinfo) {
    struct cl_jpeg_error *err = (struct cl_jpeg_error *)cinfo->err;
    if (err->out->message[0] == 0) {
        char buffer[JMSG_LENGTH_MAX];
        (*cinfo->err->format_message)(cinfo, buffer);
        set_message(err->out, buffer);
    }
}

/* Counts warnings (msg_level -1); ignores trace messages. */
static void cl_jpeg_emit_message(j_common_ptr cinfo, int msg_level) {
    if (msg_level < 0) {
        if (cinfo->err->num_warnings == 0) (*cinfo->err->output_message)(cinfo);
        cinfo->err->num_warnings++;
    }
}

/* Pillow's MULDIV255: a*b/255 rounded. */
static inline uint8_t muldiv255(int a, int b) {
    int tmp = a * b + 128;
    return (uint8_t)(((tmp >> 8) + tmp) >> 8);
}

void cl_jpeg_decode(const uint8_t *data, size_t size, uint64_t max_pixels, cl_decoded *out) {
    struct jpeg_decompress_struct cinfo;
    struct cl_jpeg_error jerr;
    /* written after setjmp and read after longjmp: volatile */
    uint8_t *volatile pixels = NULL;
    uint8_t *volatile row = NULL;
    uint8_t *volatile exif = NULL;

    memset(out, 0, sizeof *out);
    memset(&cinfo, 0, sizeof cinfo);
    cinfo.err = jpeg_std_error(&jerr.pub);
    jerr.pub.error_exit = cl_jpeg_error_exit;
    jerr.pub.output_message = cl_jpeg_output_message;
    jerr.pub.emit_message = cl_jpeg_emit_message;
    jerr.out = out;

    if (setjmp(jerr.jump)) {
        jpeg_destroy_decompress(&cinfo);
        free(pixels);
        free(row);
        free(exif);
        out->pixels = NULL;
        out->exif = NULL;
        out->exif_size = 0;
        out->status = CL_ERR_CORRUPT;
        return;
    }
    jpeg_create_decompress(&cinfo);
    if (size > 0xFFFFFFFFu) {
        set_message(out, "JPEG larger than 4 GiB");
        out->status = CL_ERR_UNSUPPORTED;
        jpeg_destroy_decompress(&cinfo);
        return;
    }
    jpeg_mem_src(&cinfo, data, (unsigned long)size);
    jpeg_save_markers(&cinfo, JPEG_APP0 + 1, 0xFFFF);
    jpeg_read_header(&cinfo, TRUE);

    out->width = cinfo.image_width;
    out->height = cinfo.image_height;
    out->is_progressive = cinfo.progressive_mode ? 1 : 0;
    if ((uint64_t)cinfo.image_width * (uint64_t)cinfo.image_height > max_pixels) {
        out->status = CL_ERR_TOO_MANY_PIXELS;
        snprintf(out->message, sizeof out->message, "%ux%u exceeds the pixel limit",
                 cinfo.image_width, cinfo.image_height);
        jpeg_destroy_decompress(&cinfo);
        return;
    }

    /* EXIF: first APP1 marker starting with "Exif\0\0" */
    for (jpeg_saved_marker_ptr m = cinfo.marker_list; m != NULL; m = m->next) {
        if (m->marker == JPEG_APP0 + 1 && m->data_length >= 6 &&
            memcmp(m->data, "Exif\0\0", 6) == 0) {
            size_t n = m->data_length - 6;
            exif = (uint8_t *)malloc(n ? n : 1);
            if (!exif) {
                out->status = CL_ERR_NO_MEMORY;
                set_message(out, "out of memory");
                jpeg_destroy_decompress(&cinfo);
                return;
            }
            memcpy(exif, m->data + 6, n);
            out->exif_size = n;
            break;
        }
    }

    int cmyk = 0;
    switch (cinfo.jpeg_color_space) {
        case JCS_GRAYSCALE:
            cinfo.out_color_space = JCS_GRAYSCALE;
            break;
        case JCS_CMYK:
        case JCS_YCCK:
            cinfo.out_color_space = JCS_CMYK;
            cmyk = 1;
            break;
        default:
            cinfo.out_color_space = JCS_RGB;
            break;
    }
    out->is_cmyk = cmyk;
    out->adobe_inverted = (cmyk && cinfo.saw_Adobe_marker) ? 1 : 0;

    jpeg_start_decompress(&cinfo);
    const int comps = cinfo.output_components;
    const int channels = cmyk ? 3 : comps;
    if ((cmyk && comps != 4) || (!cmyk && comps != 1 && comps != 3)) {
        set_message(out, "unexpected number of JPEG output components");
        out->status = CL_ERR_UNSUPPORTED;
        jpeg_destroy_decompress(&cinfo);
        free(exif);
        return;
    }
    const size_t w = cinfo.output_width, h = cinfo.output_height;
    pixels = (uint8_t *)malloc(w * h * (size_t)channels ? w * h * (size_t)channels : 1);
    row = (uint8_t *)malloc(w * (size_t)comps ? w * (size_t)comps : 1);
    if (!pixels || !row) {
        free(pixels);
        free(row);
        free(exif);
        out->status = CL_ERR_NO_MEMORY;
        set_message(out, "out of memory");
        jpeg_destroy_decompress(&cinfo);
        return;
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        size_t y = cinfo.output_scanline;
        JSAMPROW rows[1] = {row};
        if (jpeg_read_scanlines(&cinfo, rows, 1) != 1) break;
        uint8_t *dst = pixels + y * w * (size_t)channels;
        if (!cmyk) {
            memcpy(dst, row, w * (size_t)comps);
        } else {
            for (size_t x = 0; x < w; x++) {
                int c = row[4 * x], m = row[4 * x + 1], yy = row[4 * x + 2], k = row[4 * x + 3];
                if (out->adobe_inverted) { c = 255 - c; m = 255 - m; yy = 255 - yy; k = 255 - k; }
                /* same arithmetic as Pillow's cmyk2rgb */
                int nk = 255 - k;
                dst[3 * x + 0] = (uint8_t)(nk - muldiv255(c, nk));
                dst[3 * x + 1] = (uint8_t)(nk - muldiv255(m, nk));
                dst[3 * x + 2] = (uint8_t)(nk - muldiv255(yy, nk));
            }
        }
    }
    jpeg_finish_decompress(&cinfo);
    out->num_warnings = (int)jerr.pub.num_warnings;
    jpeg_destroy_decompress(&cinfo);
    free(row);
    row = NULL;
    if (out->num_warnings > 0) {
        free(pixels);
        free(exif);
        out->status = CL_ERR_CORRUPT;
        return;
    }
    out->pixels = pixels;
    out->exif = exif;
    out->channels = channels;
    out->width = (uint32_t)w;
    out->height = (uint32_t)h;
    out->status = CL_OK;
}

/* ------------------------------------------------------------------- PNG */

/* Classic libpng API with setjmp, for 16-bit files and files with a gAMA chunk: there it
   decodes as Pillow (so keras.utils.load_img) does — 16 → 8 bits by the high byte, the
   stored samples without a gamma curve — where the simplified API rounds and applies gAMA.
   (It also avoids libpng 1.6.39-2+deb12u6's simplified API on Adam7-interlaced 16-bit
   files, which png_image_read_direct_scaled decodes wrongly: pnggroup/libpng issue #853.) */
struct cl_png_read_state {
    cl_decoded *out;
    const uint8_t *data;
    size_t size;
    size_t pos;
};

static void cl_png_read_fn(png_structp png, png_bytep dst, png_size_t n) {
    struct cl_png_read_state *st = (struct cl_png_read_state *)png_get_io_ptr(png);
    if (n > st->size - st->pos) png_error(png, "unexpected end of PNG data");
    memcpy(dst, st->data + st->pos, n);
    st->pos += n;
}

static void cl_png_error_fn(png_structp png, png_const_charp msg) {
    struct cl_png_read_state *st = (struct cl_png_read_state *)png_get_error_ptr(png);
    set_message(st->out, msg);
    png_longjmp(png, 1);
}

static void cl_png_warning_fn(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg; /* warnings (e.g. bad ancillary chunks) are not fatal, as in the simplified API */
}

static void cl_png_decode_classic(const uint8_t *data, size_t size, uint64_t max_pixels, cl_decoded *out) {
    struct cl_png_read_state st = {out, data, size, 0};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &st, cl_png_error_fn, cl_png_warning_fn);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    uint8_t *volatile pixels = NULL;
    png_bytep *volatile rows = NULL;
    if (!png || !info) {
        png_destroy_read_struct(png ? &png : NULL, NULL, NULL);
        set_message(out, "out of memory");
        out->status = CL_ERR_NO_MEMORY;
        return;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        free(pixels);
        free(rows);
        out->pixels = NULL;
        out->status = CL_ERR_CORRUPT;
        return;
    }
    png_set_read_fn(png, &st, cl_png_read_fn);
    png_read_info(png, info);
    const png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    out->width = w;
    out->height = h;
    if ((uint64_t)w * (uint64_t)h > max_pixels) {
        snprintf(out->message, sizeof out->message, "%ux%u exceeds the pixel limit", w, h);
        png_destroy_read_struct(&png, &info, NULL);
        out->status = CL_ERR_TOO_MANY_PIXELS;
        return;
    }
    png_set_expand(png);            /* palette → RGB, grey < 8 bit → 8 bit, tRNS → alpha */
    png_set_strip_16(png);          /* 16 → 8 bits by the high byte, as Pillow */
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    const int channels = png_get_channels(png, info);
    const size_t rowbytes = png_get_rowbytes(png, info);
    if (channels < 1 || channels > 4 || rowbytes != (size_t)w * (size_t)channels) {
        png_destroy_read_struct(&png, &info, NULL);
        set_message(out, "unexpected PNG row layout");
        out->status = CL_ERR_UNSUPPORTED;
        return;
    }
    pixels = (uint8_t *)malloc(rowbytes * h ? rowbytes * h : 1);
    rows = (png_bytep *)malloc(sizeof(png_bytep) * (h ? h : 1));
    if (!pixels || !rows) {
        png_destroy_read_struct(&png, &info, NULL);
        free(pixels);
        free(rows);
        set_message(out, "out of memory");
        out->status = CL_ERR_NO_MEMORY;
        return;
    }
    for (png_uint_32 y = 0; y < h; y++) rows[y] = pixels + (size_t)y * rowbytes;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    free(rows);
    out->pixels = pixels;
    out->channels = channels;
    out->status = CL_OK;
}

static uint32_t cl_be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

/* The PNG spec's Paeth predictor (9.4), for the filters written and read below. */
static inline uint8_t cl_paeth(int a, int b, int c) {
    const int pa = abs(b - c), pb = abs(a - c), pc = abs(a + b - 2 * c);
    /* Selected with masks, not branches: on photographs the choice is close to random. */
    const int take_a = -((pa <= pb) & (pa <= pc)), take_b = -(pb <= pc);
    const int b_or_c = (b & take_b) | (c & ~take_b);
    return (uint8_t)((a & take_a) | (b_or_c & ~take_a));
}

/* Average and Paeth rows with a constant pixel size (inlined per size, so the channels of
   a pixel run as independent chains): each byte needs the one reconstructed a pixel before. */
static inline void cl_unfilter_avg(uint8_t *row, const uint8_t *prev, size_t stride, const size_t bpp) {
    for (size_t k = 0; k < bpp; k++) row[k] = (uint8_t)(row[k] + (prev[k] >> 1));
    for (size_t i = bpp; i < stride; i += bpp)
        for (size_t k = 0; k < bpp; k++) row[i + k] = (uint8_t)(row[i + k] + ((row[i + k - bpp] + prev[i + k]) >> 1));
}

static inline void cl_unfilter_paeth(uint8_t *row, const uint8_t *prev, size_t stride, const size_t bpp) {
    for (size_t k = 0; k < bpp; k++) row[k] = (uint8_t)(row[k] + prev[k]);
    for (size_t i = bpp; i < stride; i += bpp)
        for (size_t k = 0; k < bpp; k++)
            row[i + k] = (uint8_t)(row[i + k] + cl_paeth(row[i + k - bpp], prev[i + k], prev[i + k - bpp]));
}

/* Reverses one row's PNG filter in place (PNG spec 9.2). The first row is read against a
   row of zeros (`zeros`, `stride` bytes), as the spec defines it. */
static int cl_png_unfilter_row(uint8_t *row, const uint8_t *prev, size_t stride, size_t bpp, int type) {
    switch (type) {
        case 0: return 1;
        case 1:
            for (size_t i = bpp; i < stride; i++) row[i] = (uint8_t)(row[i] + row[i - bpp]);
            return 1;
        case 2:
            for (size_t i = 0; i < stride; i++) row[i] = (uint8_t)(row[i] + prev[i]);
            return 1;
        case 3:
            switch (bpp) {
                case 1: cl_unfilter_avg(row, prev, stride, 1); return 1;
                case 2: cl_unfilter_avg(row, prev, stride, 2); return 1;
                case 3: cl_unfilter_avg(row, prev, stride, 3); return 1;
                default: cl_unfilter_avg(row, prev, stride, 4); return 1;
            }
        case 4:
            switch (bpp) {
                case 1: cl_unfilter_paeth(row, prev, stride, 1); return 1;
                case 2: cl_unfilter_paeth(row, prev, stride, 2); return 1;
                case 3: cl_unfilter_paeth(row, prev, stride, 3); return 1;
                default: cl_unfilter_paeth(row, prev, stride, 4); return 1;
            }
        default: return 0;
    }
}

/* The common upload — 8-bit grey, grey+alpha, RGB or RGBA, not interlaced, without tRNS or
   gAMA (the chunks that make libpng convert pixels) — decoded here: the IDAT stream inflated
   by libdeflate (about twice zlib's speed, and libpng's row filters are most of the rest).
   Every chunk's CRC is checked as libpng checks critical ones. Returns 0, having allocated
   nothing, for anything else or any irregularity, and libpng decodes the file: its pixels,
   its messages and its limits stay the reference. */
static int cl_png_decode_fast(const uint8_t *data, size_t size, uint64_t max_pixels, cl_decoded *out) {
    static const uint8_t signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (size < 8 + 25 || memcmp(data, signature, 8) != 0) return 0;
    if (cl_be32(data + 8) != 13 || memcmp(data + 12, "IHDR", 4) != 0) return 0;
    const uint32_t w = cl_be32(data + 16), h = cl_be32(data + 20);
    const uint8_t depth = data[24], colour = data[25];
    if (w == 0 || h == 0 || w > 0x7fffffffu || h > 0x7fffffffu || depth != 8) return 0;
    if (data[26] != 0 || data[27] != 0 || data[28] != 0) return 0;
    size_t channels;
    switch (colour) {
        case 0: channels = 1; break;
        case 2: channels = 3; break;
        case 4: channels = 2; break;
        case 6: channels = 4; break;
        default: return 0;
    }
    if ((uint64_t)w * (uint64_t)h > max_pixels) return 0;
    /* First pass: the chunk list; only chunks that cannot change the pixels are allowed. */
    size_t pos = 8, idat_bytes = 0;
    int ended = 0, idat_closed = 0;
    while (!ended) {
        if (size - pos < 12) return 0;
        const uint32_t length = cl_be32(data + pos);
        if (length > 0x7fffffffu || length > size - pos - 12) return 0;
        const uint8_t *type = data + pos + 4;
        if (libdeflate_crc32(0, type, (size_t)length + 4) != cl_be32(data + pos + 8 + length)) return 0;
        const int is_idat = memcmp(type, "IDAT", 4) == 0;
        if (is_idat && idat_closed) return 0; /* IDAT chunks must be consecutive */
        if (is_idat) idat_bytes += length;
        if (!is_idat && idat_bytes > 0) idat_closed = 1;
        if (memcmp(type, "IEND", 4) == 0) ended = 1;
        const int harmless = is_idat || ended || pos == 8 || memcmp(type, "iCCP", 4) == 0 || memcmp(type, "sRGB", 4) == 0 ||
                             memcmp(type, "pHYs", 4) == 0 || memcmp(type, "tEXt", 4) == 0 || memcmp(type, "zTXt", 4) == 0 ||
                             memcmp(type, "iTXt", 4) == 0 || memcmp(type, "tIME", 4) == 0;
        if (!harmless) return 0;
        pos += 12 + (size_t)length;
    }
    if (idat_bytes == 0) return 0;
    const size_t stride = (size_t)w * channels;
    const size_t raw_size = (stride + 1) * (size_t)h;
    /* Deflate expands at most ~1032:1: a stream too short for the declared image cannot
       fill it, so nothing is allocated for it (libpng then says what is wrong). */
    if (raw_size / 1032 > idat_bytes + 64) return 0;
    uint8_t *compressed = (uint8_t *)malloc(idat_bytes);
    uint8_t *raw = (uint8_t *)malloc(raw_size);
    uint8_t *pixels = (uint8_t *)malloc(stride * (size_t)h);
    uint8_t *zeros = (uint8_t *)calloc(stride, 1);
    struct libdeflate_decompressor *inflater = libdeflate_alloc_decompressor();
    int ok = compressed && raw && pixels && zeros && inflater;
    if (ok) {
        size_t at = 0;
        for (pos = 8; pos < size;) {
            const uint32_t length = cl_be32(data + pos);
            if (memcmp(data + pos + 4, "IDAT", 4) == 0) {
                memcpy(compressed + at, data + pos + 8, length);
                at += length;
            }
            if (memcmp(data + pos + 4, "IEND", 4) == 0) break;
            pos += 12 + (size_t)length;
        }
        size_t consumed = 0, produced = 0;
        ok = libdeflate_zlib_decompress_ex(inflater, compressed, idat_bytes, raw, raw_size, &consumed, &produced) ==
                 LIBDEFLATE_SUCCESS &&
             consumed == idat_bytes && produced == raw_size;
    }
    for (uint32_t y = 0; ok && y < h; y++) {
        uint8_t *row = raw + (size_t)y * (stride + 1);
        ok = cl_png_unfilter_row(row + 1, y ? row - stride : zeros, stride, channels, row[0]);
    }
    if (ok)
        for (uint32_t y = 0; y < h; y++) memcpy(pixels + (size_t)y * stride, raw + (size_t)y * (stride + 1) + 1, stride);
    free(compressed);
    free(raw);
    free(zeros);
    if (inflater) libdeflate_free_decompressor(inflater);
    if (!ok) {
        free(pixels);
        return 0;
    }
    memset(out, 0, sizeof *out);
    out->width = w;
    out->height = h;
    out->channels = (int)channels;
    out->pixels = pixels;
    out->own_png_reader = 1;
    out->status = CL_OK;
    return 1;
}

void cl_png_decode(const uint8_t *data, size_t size, uint64_t max_pixels, cl_decoded *out) {
    if (cl_png_decode_fast(data, size, max_pixels, out)) return;
    cl_png_decode_libpng(data, size, max_pixels, out);
}

/* Whether a gAMA chunk comes before the first IDAT (where the PNG spec puts it). The walk
   stops at the first chunk whose length runs past the data. */
static int cl_png_has_gamma(const uint8_t *data, size_t size) {
    size_t pos = 8;
    while (pos + 8 <= size) {
        const uint32_t length = cl_be32(data + pos);
        if (memcmp(data + pos + 4, "gAMA", 4) == 0) return 1;
        if (memcmp(data + pos + 4, "IDAT", 4) == 0) return 0;
        if ((uint64_t)length + 12 > (uint64_t)(size - pos)) return 0;
        pos += (size_t)length + 12;
    }
    return 0;
}

void cl_png_decode_libpng(const uint8_t *data, size_t size, uint64_t max_pixels, cl_decoded *out) {
    png_image image;
    memset(out, 0, sizeof *out);
    /* IHDR: signature(8) length(4) "IHDR"(4) width(4) height(4) depth(1) colour(1) compression(1) filter(1) interlace(1) */
    if (size >= 33 && memcmp(data + 12, "IHDR", 4) == 0 && (data[24] == 16 || cl_png_has_gamma(data, size))) {
        cl_png_decode_classic(data, size, max_pixels, out);
        return;
    }
    memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;

    if (!png_image_begin_read_from_memory(&image, data, size)) {
        set_message(out, image.message);
        png_image_free(&image);
        out->status = CL_ERR_CORRUPT;
        return;
    }
    /* 16-bit files are taken as sRGB-encoded (as viewers and Pillow do), so
       16→8 is a plain rounding scale, not a linear→sRGB curve. Set after
       begin_read, which clears the struct. */
    image.flags |= PNG_IMAGE_FLAG_16BIT_sRGB;
    out->width = image.width;
    out->height = image.height;
    if ((uint64_t)image.width * (uint64_t)image.height > max_pixels) {
        snprintf(out->message, sizeof out->message, "%ux%u exceeds the pixel limit",
                 image.width, image.height);
        png_image_free(&image);
        out->status = CL_ERR_TOO_MANY_PIXELS;
        return;
    }
    const int color = (image.format & PNG_FORMAT_FLAG_COLOR) != 0;
    const int alpha = (image.format & PNG_FORMAT_FLAG_ALPHA) != 0;
    image.format = (color ? PNG_FORMAT_FLAG_COLOR : 0) | (alpha ? PNG_FORMAT_FLAG_ALPHA : 0);
    const int channels = (color ? 3 : 1) + (alpha ? 1 : 0);
    const size_t bytes = PNG_IMAGE_SIZE(image);
    uint8_t *pixels = (uint8_t *)malloc(bytes ? bytes : 1);
    if (!pixels) {
        png_image_free(&image);
        set_message(out, "out of memory");
        out->status = CL_ERR_NO_MEMORY;
        return;
    }
    if (!png_image_finish_read(&image, NULL, pixels, 0, NULL)) {
        set_message(out, image.message);
        png_image_free(&image); /* finish_read frees on error too; harmless */
        free(pixels);
        out->status = CL_ERR_CORRUPT;
        return;
    }
    png_image_free(&image);
    out->pixels = pixels;
    out->channels = channels;
    out->status = CL_OK;
}

/* ------------------------------------------------------------------ PNG encoding */

/* PNG is written here rather than through libpng: libpng's simplified writer compresses
   twice (once to learn the size) and its "fast" flag drops row filtering, which leaves a
   photo-like overlay about 1.5x the size it needs. Each row is filtered (the PNG spec's
   filter types), the whole image deflated in one call by libdeflate, and the chunks
   framed with their CRCs. */

static void cl_put32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Writes one chunk (length, type, data, CRC over type and data) at out; returns its size. */
static size_t cl_png_chunk(uint8_t *out, const char *type, const uint8_t *data, uint32_t length) {
    cl_put32(out, length);
    memcpy(out + 4, type, 4);
    if (length) memcpy(out + 8, data, length);
    cl_put32(out + 8 + length, libdeflate_crc32(0, out + 4, 4 + (size_t)length));
    return 12 + (size_t)length;
}

/* Filters `row` (prev: the row above, NULL for the first) with PNG filter `type` into
   out[0] = type, out[1...] = the filtered bytes; bpp is bytes per pixel. */
static void cl_png_filter_row(const uint8_t *row, const uint8_t *prev, size_t stride, int bpp, int type, uint8_t *out) {
    out[0] = (uint8_t)type;
    uint8_t *o = out + 1;
    for (size_t i = 0; i < stride; i++) {
        const int a = i >= (size_t)bpp ? row[i - bpp] : 0;
        const int b = prev ? prev[i] : 0;
        const int c = (prev && i >= (size_t)bpp) ? prev[i - bpp] : 0;
        switch (type) {
            case 0: o[i] = row[i]; break;
            case 1: o[i] = (uint8_t)(row[i] - a); break;
            case 2: o[i] = (uint8_t)(row[i] - b); break;
            case 3: o[i] = (uint8_t)(row[i] - ((a + b) >> 1)); break;
            default: o[i] = (uint8_t)(row[i] - cl_paeth(a, b, c)); break;
        }
    }
}

/* The filtered row's "sum of absolute differences" (bytes read as signed), the heuristic
   libpng and the PNG spec suggest for choosing a filter per row. */
static uint64_t cl_png_row_cost(const uint8_t *filtered, size_t stride) {
    uint64_t sum = 0;
    for (size_t i = 1; i <= stride; i++) sum += (uint64_t)abs((int)(int8_t)filtered[i]);
    return sum;
}

int cl_png_encode(const uint8_t *pixels, uint32_t width, uint32_t height, int channels, int fast,
                  uint8_t **out_data, size_t *out_size, char *message, size_t message_size) {
    static const uint8_t signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    *out_data = NULL;
    *out_size = 0;
    if (message_size) message[0] = 0;
    uint8_t colour;
    switch (channels) {
        case 1: colour = 0; break; /* grey */
        case 2: colour = 4; break; /* grey + alpha */
        case 3: colour = 2; break; /* RGB */
        case 4: colour = 6; break; /* RGBA */
        default:
            snprintf(message, message_size, "unsupported channel count %d", channels);
            return CL_ERR_UNSUPPORTED;
    }
    /* The PNG spec's limits: 1 ... 2^31 - 1 pixels each way. */
    if (width == 0 || height == 0 || width > 0x7fffffffu || height > 0x7fffffffu) {
        snprintf(message, message_size, "image size %ux%u is outside PNG's limits", width, height);
        return CL_ERR_UNSUPPORTED;
    }
    const size_t stride = (size_t)width * (size_t)channels;
    if (stride / (size_t)channels != width || stride + 1 > SIZE_MAX / height) {
        snprintf(message, message_size, "image size %ux%u is too large", width, height);
        return CL_ERR_NO_MEMORY;
    }
    const size_t filtered_size = (stride + 1) * (size_t)height;
    uint8_t *filtered = (uint8_t *)malloc(filtered_size);
    /* fast: the Up filter for every row but the first (Sub) — one subtraction per byte, and
       on overlays and grids within a few percent of the adaptive choice; otherwise each
       row gets the cheapest of the five filters by the sum-of-absolute-differences rule. */
    uint8_t *candidates = fast ? NULL : (uint8_t *)malloc(5 * (stride + 1));
    struct libdeflate_compressor *compressor = libdeflate_alloc_compressor(fast ? 1 : 6);
    uint8_t *deflated = NULL;
    uint8_t *png = NULL;
    int status = CL_ERR_NO_MEMORY;
    if (!filtered || (!fast && !candidates) || !compressor) goto done;

    for (uint32_t y = 0; y < height; y++) {
        const uint8_t *row = pixels + (size_t)y * stride;
        const uint8_t *prev = y ? row - stride : NULL;
        uint8_t *out = filtered + (size_t)y * (stride + 1);
        if (fast) {
            cl_png_filter_row(row, prev, stride, channels, y ? 2 : 1, out);
            continue;
        }
        int best = 0;
        uint64_t best_cost = UINT64_MAX;
        for (int type = 0; type < 5; type++) {
            uint8_t *candidate = candidates + (size_t)type * (stride + 1);
            cl_png_filter_row(row, prev, stride, channels, type, candidate);
            const uint64_t cost = cl_png_row_cost(candidate, stride);
            if (cost < best_cost) {
                best_cost = cost;
                best = type;
            }
        }
        memcpy(out, candidates + (size_t)best * (stride + 1), stride + 1);
    }

    const size_t bound = libdeflate_zlib_compress_bound(compressor, filtered_size);
    deflated = (uint8_t *)malloc(bound);
    if (!deflated) goto done;
    const size_t length = libdeflate_zlib_compress(compressor, filtered, filtered_size, deflated, bound);
    if (length == 0) {
        snprintf(message, message_size, "deflate failed");
        status = CL_ERR_CORRUPT;
        goto done;
    }
    /* IDAT chunks of at most 2^30 bytes (a chunk's length must stay below 2^31). */
    const size_t idat_max = (size_t)1 << 30;
    const size_t idat_count = (length + idat_max - 1) / idat_max;
    const size_t total = sizeof signature + 25 + length + 12 * idat_count + 12;
    png = (uint8_t *)malloc(total);
    if (!png) goto done;
    uint8_t ihdr[13];
    cl_put32(ihdr, width);
    cl_put32(ihdr + 4, height);
    ihdr[8] = 8;      /* bits per sample */
    ihdr[9] = colour;
    ihdr[10] = 0;     /* deflate */
    ihdr[11] = 0;     /* adaptive filtering, the five types */
    ihdr[12] = 0;     /* not interlaced */
    size_t at = 0;
    memcpy(png, signature, sizeof signature);
    at += sizeof signature;
    at += cl_png_chunk(png + at, "IHDR", ihdr, 13);
    for (size_t offset = 0; offset < length; offset += idat_max) {
        const size_t n = length - offset < idat_max ? length - offset : idat_max;
        at += cl_png_chunk(png + at, "IDAT", deflated + offset, (uint32_t)n);
    }
    at += cl_png_chunk(png + at, "IEND", NULL, 0);
    *out_data = png;
    *out_size = at;
    png = NULL;
    status = CL_OK;

done:
    if (status == CL_ERR_NO_MEMORY) snprintf(message, message_size, "out of memory");
    if (compressor) libdeflate_free_compressor(compressor);
    free(candidates);
    free(filtered);
    free(deflated);
    free(png);
    return status;
}
