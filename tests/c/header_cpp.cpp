// The header compiles as C++ (scripts/capi-check.sh: g++ -Wall -Wextra -Werror
// -pedantic) and its functions have C linkage there.
#include "focal.h"

static_assert(FOCAL_OK == 0, "FOCAL_OK is 0");

int main() {
  FocalSigmoidParams p = {2.0f, FOCAL_ALPHA_BALANCED, 0.25f, FOCAL_SOFT_TORCHVISION,
                          FOCAL_BACKEND_AUTO};
  float x[1] = {0.5f}, t[1] = {1.0f}, out[1];
  int32_t (*f)(const FocalSigmoidParams *, const float *, const float *, size_t, float *) =
      focal_sigmoid_loss;
  (void)f;
  return focal_sigmoid_loss(&p, x, t, 1, out) == FOCAL_OK ? 0 : 1;
}
