/* Empty: emlearn includes it; a freestanding build needs nothing from it. */
#include <stddef.h>
