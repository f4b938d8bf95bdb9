// HDF5's type and flag "constants" are macros that expand to function calls
// plus globals; Swift cannot import them, so each is wrapped in a tiny function.
#ifndef CONVLENS_CHDF5_SHIM_H
#define CONVLENS_CHDF5_SHIM_H
#include <hdf5.h>
#include <string.h>

static inline hid_t convlens_H5P_DEFAULT(void) { return H5P_DEFAULT; }
static inline unsigned convlens_H5F_ACC_RDONLY(void) { return H5F_ACC_RDONLY; }
static inline unsigned convlens_H5F_ACC_TRUNC(void) { return H5F_ACC_TRUNC; }
static inline hid_t convlens_H5P_FILE_ACCESS(void) { return H5P_FILE_ACCESS; }
static inline hid_t convlens_H5P_FILE_CREATE(void) { return H5P_FILE_CREATE; }
static inline hid_t convlens_H5T_NATIVE_FLOAT(void) { return H5T_NATIVE_FLOAT; }
static inline hid_t convlens_H5T_NATIVE_DOUBLE(void) { return H5T_NATIVE_DOUBLE; }
static inline hid_t convlens_H5T_NATIVE_INT64(void) { return H5T_NATIVE_INT64; }
static inline hid_t convlens_H5T_C_S1(void) { return H5T_C_S1; }
static inline hid_t convlens_H5S_ALL(void) { return H5S_ALL; }
static inline size_t convlens_H5T_VARIABLE(void) { return H5T_VARIABLE; }

/// Number of HDF5 objects (files, groups, datasets, types, attributes) open in the process.
static inline ssize_t convlens_h5_open_object_count(void) {
    return H5Fget_obj_count((hid_t)H5F_OBJ_ALL, H5F_OBJ_ALL);
}

/// Silences HDF5's automatic error-stack printing: errors are reported as Swift errors instead.
/// (This library is built thread-safe, where the setting is per thread: call it on the thread that reads.)
static inline void convlens_h5_silence_errors(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

typedef struct { char *buf; size_t size; size_t used; } convlens_h5_err_sink;

static herr_t convlens_h5_err_walker(unsigned n, const H5E_error2_t *err, void *data) {
    convlens_h5_err_sink *sink = (convlens_h5_err_sink *)data;
    const char *desc = (err && err->desc) ? err->desc : "";
    if (desc[0] == '\0' || sink->used + 3 >= sink->size) return 0;
    if (sink->used > 0) { sink->buf[sink->used++] = ';'; sink->buf[sink->used++] = ' '; }
    size_t len = strlen(desc);
    if (len > sink->size - sink->used - 1) len = sink->size - sink->used - 1;
    memcpy(sink->buf + sink->used, desc, len);
    sink->used += len;
    sink->buf[sink->used] = '\0';
    (void)n;
    return 0;
}

/// Writes the descriptions on the current thread's error stack (API call first, innermost last,
/// "; "-separated, NUL-terminated) into buf, then clears the stack. Returns the length.
static inline size_t convlens_h5_error_message(char *buf, size_t size) {
    if (size == 0) return 0;
    buf[0] = '\0';
    convlens_h5_err_sink sink = { buf, size, 0 };
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, convlens_h5_err_walker, &sink);
    H5Eclear2(H5E_DEFAULT);
    return sink.used;
}
#endif
