/* The C ABI of focal, checked from C: known answers (tests/c/known_answers.h) for
 * every slice function, pinned to each backend this CPU has, and every status code.
 * Built by scripts/capi-check.sh with gcc -Wall -Wextra -Werror against libfocal.a.
 * Prints one line per group and "N passed, N failed"; exits 1 if anything failed. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "focal.h"
#include "known_answers.h"

#define N 10
/* 32 f32 ULP relative: the crate promises 8-16 ULP; reductions get some slack. */
#define REL 3.814697265625e-6

static unsigned passed, failed;

static void check(const char *what, int ok) {
  if (ok) {
    passed++;
  } else {
    failed++;
    printf("  failed: %s\n", what);
  }
}

static int close_to(float got, double want) {
  if (isnan(want)) return isnan(got);
  if (want == 0.0 || isinf(want)) return (double)got == want;
  return fabs((double)got - want) <= REL * fabs(want);
}

static void check_close(const char *what, size_t i, float got, double want) {
  if (close_to(got, want)) {
    passed++;
  } else {
    failed++;
    printf("  failed: %s[%zu]: got %.9g, want %.17g\n", what, i, (double)got, want);
  }
}

static void check_all(const char *what, const float *got, const double *want, size_t n,
                      double scale) {
  size_t i;
  for (i = 0; i < n; i++) check_close(what, i, got[i], want[i] * scale);
}

static void check_status(const char *what, int32_t got, int32_t want) {
  if (got == want) {
    passed++;
  } else {
    failed++;
    printf("  failed: %s: status %d (%s), want %d (%s)\n", what, got, focal_status_message(got),
           want, focal_status_message(want));
  }
}

static void sigmoid_case(const char *name, FocalSigmoidParams p, const float *t,
                         const double *loss, const double *grad, double sum, double active) {
  float out[N], v = -1.0f;
  unsigned before = failed;
  check_status("loss", focal_sigmoid_loss(&p, K_X, t, N, out), FOCAL_OK);
  check_all("loss", out, loss, N, 1.0);
  check_status("grad", focal_sigmoid_grad(&p, K_X, t, N, out), FOCAL_OK);
  check_all("grad", out, grad, N, 1.0);
  check_status("sum", focal_sigmoid_loss_reduced(&p, K_X, t, N, FOCAL_REDUCTION_SUM, 0.0f, &v),
               FOCAL_OK);
  check_close("sum", 0, v, sum);
  check_status("mean",
               focal_sigmoid_loss_reduced(&p, K_X, t, N, FOCAL_REDUCTION_MEAN, 0.0f, &v), FOCAL_OK);
  check_close("mean", 0, v, sum / active);
  check_status("fused mean", focal_sigmoid_loss_and_grad(&p, K_X, t, N, FOCAL_REDUCTION_MEAN,
                                                         0.0f, &v, out),
               FOCAL_OK);
  check_close("fused mean", 0, v, sum / active);
  check_all("fused mean grad", out, grad, N, 1.0 / active);
  check_status("fused /4", focal_sigmoid_loss_and_grad(&p, K_X, t, N, FOCAL_REDUCTION_DIVIDE_BY,
                                                       4.0f, &v, out),
               FOCAL_OK);
  check_close("fused /4", 0, v, sum / 4.0);
  check_all("fused /4 grad", out, grad, N, 0.25);
  printf("%s %s [%s]\n", failed == before ? "ok  " : "FAIL", name, focal_backend_name(p.backend));
}

static void softmax_case(const char *name, FocalSoftmaxParams p, const double *loss,
                         const double *grad, double sum, double active) {
  float out[5], g[25], v = -1.0f;
  unsigned before = failed;
  check_status("loss", focal_softmax_loss(&p, K_SM5_LOGITS, K_SM5_LABELS, 5, K_SM5_C, out),
               FOCAL_OK);
  check_all("loss", out, loss, 5, 1.0);
  check_status("mean", focal_softmax_loss_reduced(&p, K_SM5_LOGITS, K_SM5_LABELS, 5, K_SM5_C,
                                                  FOCAL_REDUCTION_MEAN, 0.0f, &v),
               FOCAL_OK);
  check_close("mean", 0, v, sum / active);
  check_status("fused sum", focal_softmax_loss_and_grad(&p, K_SM5_LOGITS, K_SM5_LABELS, 5,
                                                        K_SM5_C, FOCAL_REDUCTION_SUM, 0.0f, &v, g),
               FOCAL_OK);
  check_close("fused sum", 0, v, sum);
  check_all("fused sum grad", g, grad, 25, 1.0);
  printf("%s %s [%s]\n", failed == before ? "ok  " : "FAIL", name, focal_backend_name(p.backend));
}

static void known_answers(int32_t backend) {
  FocalSigmoidParams g2 = {2.0f, FOCAL_ALPHA_BALANCED, 0.25f, FOCAL_SOFT_TORCHVISION, backend};
  FocalSigmoidParams g15 = {1.5f, FOCAL_ALPHA_BALANCED, 0.25f, FOCAL_SOFT_TORCHVISION, backend};
  FocalSoftmaxParams s2 = {2.0f, FOCAL_ALPHA_OFF, 0.0f, NULL, backend};
  FocalSoftmaxParams s0 = {0.0f, FOCAL_ALPHA_PER_CLASS, 0.0f, K_SM5_WEIGHTS, backend};
  float out[N];
  unsigned before;
  sigmoid_case("sigmoid gamma 2, balanced, hard", g2, K_T_HARD, K_G2_BALANCED_HARD_LOSS,
               K_G2_BALANCED_HARD_GRAD, K_G2_BALANCED_HARD_SUM, K_G2_BALANCED_HARD_ACTIVE);
  sigmoid_case("sigmoid gamma 1.5, balanced, hard", g15, K_T_HARD, K_G15_BALANCED_HARD_LOSS,
               K_G15_BALANCED_HARD_GRAD, K_G15_BALANCED_HARD_SUM, K_G15_BALANCED_HARD_ACTIVE);
  sigmoid_case("sigmoid gamma 2, balanced, soft", g2, K_T_SOFT, K_G2_BALANCED_SOFT_LOSS,
               K_G2_BALANCED_SOFT_GRAD, K_G2_BALANCED_SOFT_SUM, K_G2_BALANCED_SOFT_ACTIVE);
  softmax_case("softmax C=5 gamma 2", s2, K_SM5_G2_OFF_LOSS, K_SM5_G2_OFF_GRAD, K_SM5_G2_OFF_SUM,
               K_SM5_G2_OFF_ACTIVE);
  softmax_case("softmax C=5 gamma 0, per-class alpha", s0, K_SM5_G0_PERCLASS_LOSS,
               K_SM5_G0_PERCLASS_GRAD, K_SM5_G0_PERCLASS_SUM, K_SM5_G0_PERCLASS_ACTIVE);
  /* The building blocks run on the forced (active) backend. */
  before = failed;
  check_status("force", focal_backend_force(backend), FOCAL_OK);
  check_status("sigmoid", focal_sigmoid(K_X, N, out), FOCAL_OK);
  check_close("sigmoid(0)", 3, out[3], 0.5);
  check_close("sigmoid(2)", 5, out[5], 0.88079707797788244);
  check_status("softplus", focal_softplus(K_X, N, out), FOCAL_OK);
  check_close("softplus(0)", 3, out[3], 0.69314718055994531);
  check_status("log_sigmoid", focal_log_sigmoid(K_X, N, out), FOCAL_OK);
  check_close("log_sigmoid(-4)", 0, out[0], -4.0181499279178094);
  check_status("auto", focal_backend_force(FOCAL_BACKEND_AUTO), FOCAL_OK);
  printf("%s sigmoid, softplus, log_sigmoid [%s]\n", failed == before ? "ok  " : "FAIL",
         focal_backend_name(backend));
}

/* Every status code, from the call that should produce it. */
static void status_codes(void) {
  FocalSigmoidParams p = {2.0f, FOCAL_ALPHA_BALANCED, 0.25f, FOCAL_SOFT_TORCHVISION,
                          FOCAL_BACKEND_AUTO};
  FocalSigmoidParams q;
  FocalSoftmaxParams s = {2.0f, FOCAL_ALPHA_OFF, 0.0f, NULL, FOCAL_BACKEND_AUTO};
  FocalSoftmaxParams sw;
  float x[4] = {0.5f, -1.0f, 2.0f, 0.0f};
  float t[4] = {1.0f, 0.0f, 1.0f, -1.0f};
  float out[16], v = 7.0f;
  int32_t labels[4] = {0, 1, 2, FOCAL_IGNORE_INDEX};
  float w[4] = {1.0f, 1.0f, -2.0f, 1.0f};
  unsigned before = failed;
  int32_t b;
  int has_unavailable = 0;

  /* NULL pointers: parameters, slices with n > 0, the loss output. */
  check_status("NULL params", focal_sigmoid_loss(NULL, x, t, 4, out), FOCAL_ERR_NULL_POINTER);
  check_status("NULL logits", focal_sigmoid_loss(&p, NULL, t, 4, out), FOCAL_ERR_NULL_POINTER);
  check_status("NULL targets", focal_sigmoid_grad(&p, x, NULL, 4, out), FOCAL_ERR_NULL_POINTER);
  check_status("NULL out", focal_sigmoid_loss(&p, x, t, 4, NULL), FOCAL_ERR_NULL_POINTER);
  check_status("NULL loss",
               focal_sigmoid_loss_reduced(&p, x, t, 4, FOCAL_REDUCTION_SUM, 0.0f, NULL),
               FOCAL_ERR_NULL_POINTER);
  check_status("NULL grad",
               focal_sigmoid_loss_and_grad(&p, x, t, 4, FOCAL_REDUCTION_SUM, 0.0f, &v, NULL),
               FOCAL_ERR_NULL_POINTER);
  check_status("NULL softmax labels",
               focal_softmax_loss(&s, x, NULL, 2, 2, out), FOCAL_ERR_NULL_POINTER);
  check_status("NULL unary", focal_sigmoid(NULL, 3, out), FOCAL_ERR_NULL_POINTER);
  /* n = 0 with NULL everywhere is an empty call: Mean of nothing is 0. */
  check_status("empty", focal_sigmoid_loss(&p, NULL, NULL, 0, NULL), FOCAL_OK);
  check_status("empty mean",
               focal_sigmoid_loss_and_grad(&p, NULL, NULL, 0, FOCAL_REDUCTION_MEAN, 0.0f, &v, NULL),
               FOCAL_OK);
  check("empty mean is 0", v == 0.0f);
  /* Lengths whose bytes overflow, and rows * classes overflowing. */
  check_status("n overflow", focal_sigmoid_loss(&p, x, t, SIZE_MAX / 2, out), FOCAL_ERR_OVERFLOW);
  check_status("rows * classes overflow",
               focal_softmax_loss_reduced(&s, x, labels, SIZE_MAX / 2, 3, FOCAL_REDUCTION_SUM,
                                          0.0f, &v),
               FOCAL_ERR_OVERFLOW);
  /* Outputs overlapping inputs. */
  check_status("out overlaps logits", focal_sigmoid_grad(&p, x, t, 4, x + 2), FOCAL_ERR_OVERLAP);
  check_status("unary in place", focal_softplus(out, 4, out), FOCAL_ERR_OVERLAP);
  check_status("loss inside grad",
               focal_sigmoid_loss_and_grad(&p, x, t, 4, FOCAL_REDUCTION_SUM, 0.0f, out + 1, out),
               FOCAL_ERR_OVERLAP);
  /* Enum values that name nothing. */
  q = p;
  q.alpha_kind = 7;
  check_status("alpha kind", focal_sigmoid_loss(&q, x, t, 4, out), FOCAL_ERR_INVALID_ARGUMENT);
  q = p;
  q.alpha_kind = FOCAL_ALPHA_PER_CLASS; /* softmax only */
  check_status("per-class sigmoid", focal_sigmoid_loss(&q, x, t, 4, out),
               FOCAL_ERR_INVALID_ARGUMENT);
  q = p;
  q.soft_targets = 2;
  check_status("soft option", focal_sigmoid_loss(&q, x, t, 4, out), FOCAL_ERR_INVALID_ARGUMENT);
  q = p;
  q.backend = 42;
  check_status("backend 42", focal_sigmoid_loss(&q, x, t, 4, out), FOCAL_ERR_INVALID_ARGUMENT);
  check_status("reduction 9",
               focal_sigmoid_loss_reduced(&p, x, t, 4, 9, 0.0f, &v), FOCAL_ERR_INVALID_ARGUMENT);
  check_status("force 42", focal_backend_force(42), FOCAL_ERR_INVALID_ARGUMENT);
  check_status("is_available AUTO", focal_backend_is_available(FOCAL_BACKEND_AUTO),
               FOCAL_ERR_INVALID_ARGUMENT);
  check("name of 42 is NULL", focal_backend_name(42) == NULL);
  /* The crate's own errors, one code each. */
  check_status("length mismatch: never from C (one n for all slices)",
               FOCAL_ERR_LENGTH_MISMATCH, -2);
  t[1] = 2.0f;
  check_status("target 2", focal_sigmoid_loss(&p, x, t, 4, out), FOCAL_ERR_INVALID_TARGET);
  t[1] = NAN;
  check_status("target NaN", focal_sigmoid_grad(&p, x, t, 4, out), FOCAL_ERR_INVALID_TARGET);
  t[1] = 0.0f;
  q = p;
  q.gamma = -1.0f;
  check_status("gamma -1", focal_sigmoid_loss(&q, x, t, 4, out), FOCAL_ERR_INVALID_GAMMA);
  q.gamma = NAN;
  check_status("gamma NaN", focal_sigmoid_loss(&q, x, t, 4, out), FOCAL_ERR_INVALID_GAMMA);
  q = p;
  q.alpha = 1.5f;
  check_status("alpha 1.5", focal_sigmoid_loss(&q, x, t, 4, out), FOCAL_ERR_INVALID_ALPHA);
  check_status("normaliser 0", focal_sigmoid_loss_reduced(&p, x, t, 4, FOCAL_REDUCTION_DIVIDE_BY,
                                                          0.0f, &v),
               FOCAL_ERR_INVALID_NORMALIZER);
  check_status("normaliser inf",
               focal_sigmoid_loss_and_grad(&p, x, t, 4, FOCAL_REDUCTION_DIVIDE_BY, INFINITY, &v,
                                           out),
               FOCAL_ERR_INVALID_NORMALIZER);
  for (b = FOCAL_BACKEND_SCALAR; b <= FOCAL_BACKEND_AVX512; b++) {
    if (focal_backend_is_available(b) == 0) {
      has_unavailable = 1;
      q = p;
      q.backend = b;
      check_status("pinned unavailable", focal_sigmoid_loss(&q, x, t, 4, out),
                   FOCAL_ERR_BACKEND_UNAVAILABLE);
      check_status("force unavailable", focal_backend_force(b), FOCAL_ERR_BACKEND_UNAVAILABLE);
    }
  }
  if (!has_unavailable) printf("  (every backend is available here: no BACKEND_UNAVAILABLE)\n");
  check_status("softmax shape: never from C (one shape for all slices)",
               FOCAL_ERR_SHAPE_MISMATCH, -8);
  check_status("no classes", focal_softmax_loss(&s, x, labels, 2, 0, out), FOCAL_ERR_NO_CLASSES);
  labels[1] = 4;
  check_status("label 4 of 4", focal_softmax_loss(&s, out + 8, labels, 2, 4, out),
               FOCAL_ERR_INVALID_LABEL);
  labels[1] = -1;
  check_status("label -1", focal_softmax_loss(&s, out + 8, labels, 2, 4, out),
               FOCAL_ERR_INVALID_LABEL);
  labels[1] = 1;
  sw = s;
  sw.alpha_kind = FOCAL_ALPHA_PER_CLASS;
  sw.class_alpha = w;
  check_status("class alpha -2", focal_softmax_loss(&sw, out + 8, labels, 2, 4, out),
               FOCAL_ERR_INVALID_CLASS_ALPHA);
  sw.class_alpha = NULL;
  check_status("class alpha NULL", focal_softmax_loss(&sw, out + 8, labels, 2, 4, out),
               FOCAL_ERR_NULL_POINTER);
  sw = s;
  sw.alpha_kind = FOCAL_ALPHA_BALANCED; /* sigmoid only */
  check_status("balanced softmax", focal_softmax_loss(&sw, out + 8, labels, 2, 4, out),
               FOCAL_ERR_INVALID_ARGUMENT);
  sw = s;
  sw.alpha_kind = FOCAL_ALPHA_UNIFORM;
  sw.alpha = -0.5f;
  check_status("softmax alpha -0.5", focal_softmax_loss(&sw, out + 8, labels, 2, 4, out),
               FOCAL_ERR_INVALID_ALPHA);
  check("unknown status has a message", focal_status_message(12345) != NULL);
  printf("%s status codes\n", failed == before ? "ok  " : "FAIL");
}

int main(void) {
  int32_t b, active = focal_backend_active();
  printf("active backend: %s\n", focal_backend_name(active));
  check("active is available", focal_backend_is_available(active) == 1);
  check("scalar available", focal_backend_is_available(FOCAL_BACKEND_SCALAR) == 1);
  for (b = FOCAL_BACKEND_SCALAR; b <= FOCAL_BACKEND_AVX512; b++) {
    if (focal_backend_is_available(b) == 1) known_answers(b);
  }
  check("detection again after AUTO", focal_backend_active() == active);
  status_codes();
  printf("%u passed, %u failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
