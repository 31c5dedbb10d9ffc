/* tanhf for a freestanding build: emlearn links it for its tanh activation, which a ReLU
 * MLP never calls; it counts in flash, not in the instructions of an inference. */
#include <math.h>

float tanhf(float x)
{
    float e = expf(2.0f * x);
    return (e - 1.0f) / (e + 1.0f);
}
