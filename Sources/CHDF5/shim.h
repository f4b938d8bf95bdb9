// HDF5's type and flag "constants" are macros that expand to function calls
// plus globals; Swift cannot import them, so each is wrapped in a tiny function.
#ifndef CONVLENS_CHDF5_SHIM_H
#define CONVLENS_CHDF5_SHIM_H
#include <hdf5.h>

static inline hid_t convlens_H5P_DEFAULT(void) { return H5P_DEFAULT; }
static inline unsigned convlens_H5F_ACC_RDONLY(void) { return H5F_ACC_RDONLY; }
static inline hid_t convlens_H5T_NATIVE_FLOAT(void) { return H5T_NATIVE_FLOAT; }
static inline hid_t convlens_H5T_NATIVE_DOUBLE(void) { return H5T_NATIVE_DOUBLE; }
static inline hid_t convlens_H5T_NATIVE_INT64(void) { return H5T_NATIVE_INT64; }
static inline hid_t convlens_H5T_C_S1(void) { return H5T_C_S1; }
static inline hid_t convlens_H5S_ALL(void) { return H5S_ALL; }

/// Silences HDF5's automatic error-stack printing: errors are reported as Swift errors instead.
static inline void convlens_h5_silence_errors(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }
#endif
