#include "image_codecs.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
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

/* Classic libpng API with setjmp, used only for Adam7-interlaced 16-bit files:
   libpng 1.6.39-2+deb12u6's simplified API decodes those wrongly to 8 bits
   (png_image_read_direct_scaled keeps stale rows between passes;
   pnggroup/libpng issue #853). Same output as the simplified path. */
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
    png_set_scale_16(png);          /* 16 → 8 bits, rounded (as the simplified API) */
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

void cl_png_decode(const uint8_t *data, size_t size, uint64_t max_pixels, cl_decoded *out) {
    png_image image;
    memset(out, 0, sizeof *out);
    /* IHDR: signature(8) length(4) "IHDR"(4) width(4) height(4) depth(1) colour(1) compression(1) filter(1) interlace(1) */
    if (size >= 33 && memcmp(data + 12, "IHDR", 4) == 0 && data[24] == 16 && data[28] == 1) {
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

int cl_png_encode(const uint8_t *pixels, uint32_t width, uint32_t height, int channels, int fast,
                  uint8_t **out_data, size_t *out_size, char *message, size_t message_size) {
    png_image image;
    *out_data = NULL;
    *out_size = 0;
    if (message_size) message[0] = 0;
    memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
    image.width = width;
    image.height = height;
    if (fast) image.flags |= PNG_IMAGE_FLAG_FAST;
    switch (channels) {
        case 1: image.format = PNG_FORMAT_GRAY; break;
        case 2: image.format = PNG_FORMAT_GA; break;
        case 3: image.format = PNG_FORMAT_RGB; break;
        case 4: image.format = PNG_FORMAT_RGBA; break;
        default:
            snprintf(message, message_size, "unsupported channel count %d", channels);
            return CL_ERR_UNSUPPORTED;
    }
    png_alloc_size_t size = 0;
    /* first call: compute the size */
    if (!png_image_write_to_memory(&image, NULL, &size, 0, pixels, 0, NULL)) {
        snprintf(message, message_size, "%s", image.message);
        png_image_free(&image);
        return CL_ERR_CORRUPT;
    }
    uint8_t *buffer = (uint8_t *)malloc(size ? size : 1);
    if (!buffer) {
        png_image_free(&image);
        snprintf(message, message_size, "out of memory");
        return CL_ERR_NO_MEMORY;
    }
    if (!png_image_write_to_memory(&image, buffer, &size, 0, pixels, 0, NULL)) {
        snprintf(message, message_size, "%s", image.message);
        png_image_free(&image);
        free(buffer);
        return CL_ERR_CORRUPT;
    }
    png_image_free(&image);
    *out_data = buffer;
    *out_size = size;
    return CL_OK;
}
