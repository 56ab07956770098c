// fpgan: the one C entry point for the shims' failure messages (see guarded.h).
#include "guarded.h"

// The message of the last failure of any shim on this thread.
extern "C" const char* fpgan_last_error() { return fpgan::last_error().c_str(); }
