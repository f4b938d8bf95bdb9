// C shims around libjpeg-turbo and libpng: both report errors through
// longjmp/callbacks, which Swift cannot catch. Each shim returns an error code
// and a message instead, and never leaks on failure.
#ifndef CONVLENS_IMAGE_CODECS_H
#define CONVLENS_IMAGE_CODECS_H
#include <stddef.h>
#include <stdint.h>
#endif
