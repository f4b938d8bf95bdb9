// C shims around libjpeg-turbo and libpng: both report errors through
// longjmp/callbacks, which Swift cannot catch. Each shim returns a status code
// and a message instead, and frees everything it allocated on every path
// (except the pixel/EXIF buffers it hands to the caller on success, which the
// caller releases with cl_codec_free).
#ifndef CONVLENS_IMAGE_CODECS_H
#define CONVLENS_IMAGE_CODECS_H
#include <stddef.h>
#include <stdint.h>

#define CL_OK 0
#define CL_ERR_UNSUPPORTED 1   /* not a format/variant we decode */
#define CL_ERR_CORRUPT 2       /* libjpeg/libpng error, or libjpeg warnings */
#define CL_ERR_TOO_MANY_PIXELS 3
#define CL_ERR_NO_MEMORY 4

typedef struct {
    int status;            /* CL_OK or CL_ERR_* */
    char message[256];     /* libjpeg/libpng message on failure */
    uint32_t width;        /* valid after the header was read (also for TOO_MANY_PIXELS) */
    uint32_t height;
    int channels;          /* 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA (PNG) ; JPEG: 1 or 3 */
    uint8_t *pixels;       /* width*height*channels bytes, row-major, interleaved */
    uint8_t *exif;         /* JPEG only: payload of the first APP1 "Exif\0\0" marker (TIFF header onwards), or NULL */
    size_t exif_size;
    int num_warnings;      /* JPEG: libjpeg warnings seen (any warning makes the decode fail) */
    int is_cmyk;           /* JPEG: source was CMYK/YCCK (converted to RGB here) */
    int adobe_inverted;    /* JPEG: CMYK samples were Adobe-inverted */
    int is_progressive;    /* JPEG: progressive scan */
    int own_png_reader;    /* PNG: 1 when cl_png_decode's own reader decoded it, 0 when libpng did */
} cl_decoded;

/* Decode a JPEG held in memory. Output is grey (1 channel) for greyscale
   JPEGs and RGB (3 channels) otherwise; CMYK/YCCK is converted to RGB
   (Adobe APP14 marker → inverted samples). max_pixels: refuse (status
   CL_ERR_TOO_MANY_PIXELS) if width*height exceeds it, before allocating pixels. */
void cl_jpeg_decode(const uint8_t *data, size_t size, uint64_t max_pixels, cl_decoded *out);

/* Decode a PNG held in memory: 8-bit grey/GA/RGB/RGBA files that are not interlaced and
   have no tRNS or gAMA chunk with ConvLens' own reader (libdeflate + the row filters),
   everything else — and anything irregular — with libpng's simplified API. Output channels:
   1 (grey), 2 (grey+alpha), 3 (RGB), 4 (RGBA), 8 bits each; 16-bit samples
   are scaled to 8 bits with rounding (treated as sRGB-encoded, no gamma
   conversion); palette images are expanded; tRNS becomes an alpha channel. */
void cl_png_decode(const uint8_t *data, size_t size, uint64_t max_pixels, cl_decoded *out);
/* The same decode by libpng alone (cl_png_decode's reference; tests compare the two). */
void cl_png_decode_libpng(const uint8_t *data, size_t size, uint64_t max_pixels, cl_decoded *out);

/* Encode 8-bit grey (1), grey+alpha (2), RGB (3) or RGBA (4) pixels as PNG (libdeflate).
   fast != 0: the Up filter and deflate level 1 (for answers computed per request);
   otherwise a filter chosen per row and level 6 (for results that are cached).
   On success *out_data is malloc'ed (free with cl_codec_free) and CL_OK returned. */
int cl_png_encode(const uint8_t *pixels, uint32_t width, uint32_t height, int channels, int fast,
                  uint8_t **out_data, size_t *out_size, char *message, size_t message_size);

void cl_codec_free(void *p);

#endif
