/*
 * train_capi trains a booster through XGBoost's C API with nothing around
 * it: the baseline of BenchmarkTrainVsCAPI (bench_test.go), which compiles
 * and runs it.
 *
 *   train_capi DATA ROWS COLS ROUNDS [KEY VALUE]...
 *
 * DATA holds ROWS*COLS float32 values, row-major, then ROWS float32 labels,
 * in the machine's byte order. The booster gets the parameters in the order
 * given. The program times, with a monotonic clock, what the benchmark times
 * on the Go side: creating the matrix and setting its labels, creating the
 * booster and setting its parameters, ROUNDS rounds, and freeing both. It
 * prints "ns N" (that time) and "sum S", the sum over the rows of the
 * trained model's predictions on its training matrix (computed before the
 * frees, untimed) as a double with 17 significant digits, so that the
 * benchmark can check that both sides trained the same model on the same
 * matrix.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <xgboost/c_api.h>

#define CHECK(call)                                                        \
  do {                                                                     \
    if ((call) != 0) {                                                     \
      fprintf(stderr, "train_capi: %s: %s\n", #call, XGBGetLastError());  \
      exit(1);                                                             \
    }                                                                      \
  } while (0)

static long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv) {
  if (argc < 5 || (argc - 5) % 2 != 0) {
    fprintf(stderr, "usage: train_capi DATA ROWS COLS ROUNDS [KEY VALUE]...\n");
    return 2;
  }
  bst_ulong rows = strtoull(argv[2], NULL, 10), cols = strtoull(argv[3], NULL, 10);
  int rounds = atoi(argv[4]);
  size_t n = (size_t)rows * cols;
  float *x = malloc((n + rows) * sizeof(float));
  FILE *f = fopen(argv[1], "rb");
  if (x == NULL || f == NULL || fread(x, sizeof(float), n + rows, f) != n + rows) {
    fprintf(stderr, "train_capi: cannot read %zu values from %s\n", n + rows, argv[1]);
    return 1;
  }
  fclose(f);

  long long t0 = now_ns();
  DMatrixHandle d;
  BoosterHandle b;
  CHECK(XGDMatrixCreateFromMat(x, rows, cols, NAN, &d));
  CHECK(XGDMatrixSetFloatInfo(d, "label", x + n, rows));
  CHECK(XGBoosterCreate(&d, 1, &b));
  for (int i = 5; i + 1 < argc; i += 2) {
    CHECK(XGBoosterSetParam(b, argv[i], argv[i + 1]));
  }
  for (int i = 0; i < rounds; i++) {
    CHECK(XGBoosterUpdateOneIter(b, i, d));
  }
  long long t1 = now_ns();

  bst_ulong const *shape;
  bst_ulong dim;
  float const *pred;
  CHECK(XGBoosterPredictFromDMatrix(b, d,
      "{\"type\":0,\"training\":false,\"iteration_begin\":0,\"iteration_end\":0,\"strict_shape\":false}",
      &shape, &dim, &pred));
  double sum = 0;
  for (bst_ulong i = 0; i < rows; i++) {
    sum += pred[i];
  }

  long long t2 = now_ns();
  CHECK(XGBoosterFree(b));
  CHECK(XGDMatrixFree(d));
  long long elapsed = (t1 - t0) + (now_ns() - t2);
  free(x);
  printf("ns %lld\nsum %.17g\n", elapsed, sum);
  return 0;
}
