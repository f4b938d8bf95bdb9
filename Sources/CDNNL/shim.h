// oneDNN 2.6 C API (Debian 12's libdnnl-dev). Pinned to the 2.x `*_desc_init` API.
#ifndef CONVLENS_CDNNL_SHIM_H
#define CONVLENS_CDNNL_SHIM_H
#include <dnnl.h>

// omp.h is not on Swift's include path; oneDNN here runs on libgomp's OpenMP
// threads, whose count is process-wide.
extern void omp_set_num_threads(int);
extern int omp_get_max_threads(void);

/// DNNL_MEMORY_ALLOCATE is a macro of a cast pointer; Swift cannot import it.
static inline void *convlens_dnnl_memory_allocate(void) { return DNNL_MEMORY_ALLOCATE; }
static inline void *convlens_dnnl_memory_none(void) { return DNNL_MEMORY_NONE; }
#endif
