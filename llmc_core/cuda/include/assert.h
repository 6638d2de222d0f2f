// Device assert() for the CPU emulator; also what `#include <assert.h>` and <cassert> find, so
// a failed assert stops the kernel with an error naming the thread (cudaErrorAssert on a GPU)
// instead of aborting the whole process.  No include guard: like the C header, it follows the
// NDEBUG in force where it is included.
#undef assert
#ifdef NDEBUG
#define assert(e) ((void)0)
#else
#define assert(e) ((e) ? (void)0 : cuemu_trap("assert(" #e ") failed", __LINE__))
#endif
