// Linear layers through cuBLASLt: bf16 operands, fp32 accumulation, bias/GELU in the epilogue.
//
// Layout. Our tensors are row-major; cuBLASLt is column-major. A row-major (r, c) matrix with
// leading dimension c is, byte for byte, the column-major (c, r) matrix X^T. So each row-major
// product Y = A @ B is issued as the column-major product Y^T = B^T @ A^T, with every operand
// described by its stored (transposed) shape. The three products a linear layer needs:
//
//   forward   out (N,OC) = in (N,C) @ W(OC,C)^T   ->  out^T (OC,N) = op_T(W^T (C,OC)) @ in^T (C,N)
//             m=OC n=N k=C;  A = W  stored (C,OC) ld C, transposed;  B = in stored (C,N) ld C
//   input grad din (N,C) = dout (N,OC) @ W (OC,C) ->  din^T (C,N) = W^T (C,OC) @ dout^T (OC,N)
//             m=C n=N k=OC;  A = W  stored (C,OC) ld C;  B = dout stored (OC,N) ld OC
//   weight grad dW (OC,C) += dout^T @ in (N,C)    ->  dW^T (C,OC) += in^T (C,N) @ op_T(dout^T
//   (OC,N))
//             m=C n=OC k=N;  A = in stored (C,N) ld C;  B = dout stored (OC,N) ld OC, transposed
//
// The bias epilogue adds a length-m vector to every column of the column-major result, i.e. the
// OC-vector to every row of `out`: exactly the row-major bias broadcast.
#include "runtime/cuda/backend.h"
#include "runtime/cuda/state.cuh"

namespace tessera::cuda {
namespace {

// RAII for the three cuBLASLt descriptor kinds, so early returns cannot leak them.
struct MatmulDesc {
  cublasLtMatmulDesc_t d = nullptr;
  MatmulDesc() { TS_CHECK_CUBLAS(cublasLtMatmulDescCreate(&d, CUBLAS_COMPUTE_32F, CUDA_R_32F)); }
  ~MatmulDesc() { (void)cublasLtMatmulDescDestroy(d); }
  MatmulDesc(const MatmulDesc&) = delete;
  MatmulDesc& operator=(const MatmulDesc&) = delete;
  template <typename V>
  void set(cublasLtMatmulDescAttributes_t attr, const V& value) {
    TS_CHECK_CUBLAS(cublasLtMatmulDescSetAttribute(d, attr, &value, sizeof(value)));
  }
};

struct Layout {
  cublasLtMatrixLayout_t d = nullptr;
  Layout(cudaDataType_t type, int64_t rows, int64_t cols, int64_t ld) {
    TS_CHECK_CUBLAS(cublasLtMatrixLayoutCreate(&d, type, static_cast<uint64_t>(rows),
                                               static_cast<uint64_t>(cols), ld));
  }
  ~Layout() { (void)cublasLtMatrixLayoutDestroy(d); }
  Layout(const Layout&) = delete;
  Layout& operator=(const Layout&) = delete;
};

struct Preference {
  cublasLtMatmulPreference_t d = nullptr;
  explicit Preference(uint64_t workspace_bytes) {
    TS_CHECK_CUBLAS(cublasLtMatmulPreferenceCreate(&d));
    TS_CHECK_CUBLAS(cublasLtMatmulPreferenceSetAttribute(
        d, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace_bytes, sizeof(workspace_bytes)));
  }
  ~Preference() { (void)cublasLtMatmulPreferenceDestroy(d); }
  Preference(const Preference&) = delete;
  Preference& operator=(const Preference&) = delete;
};

// One column-major GEMM D (m,n) = alpha op(A) op(B) + beta D, A/B bf16, D bf16 or f32.
struct Gemm {
  bool transpose_a = false, transpose_b = false;
  int64_t m = 0, n = 0, k = 0;
  const void* a = nullptr;
  int64_t lda = 0;
  const void* b = nullptr;
  int64_t ldb = 0;
  void* d = nullptr;
  cudaDataType_t d_type = CUDA_R_16BF;
  int64_t ldd = 0;
  float beta = 0.0f;
  cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
  const void* bias = nullptr;  // bf16, length m
  void* aux = nullptr;         // GELU pre-activation, bf16 (m,n) with leading dimension aux_ld
  int64_t aux_ld = 0;
};

// Returns false (having launched nothing) when `may_fail` and cuBLASLt has no algorithm for
// this epilogue/shape; otherwise any failure is fatal.
bool gemm_run(CudaState& s, const Gemm& g, bool may_fail = false) {
  MatmulDesc op;
  const cublasOperation_t ta = g.transpose_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t tb = g.transpose_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  op.set(CUBLASLT_MATMUL_DESC_TRANSA, ta);
  op.set(CUBLASLT_MATMUL_DESC_TRANSB, tb);
  if (g.epilogue != CUBLASLT_EPILOGUE_DEFAULT) op.set(CUBLASLT_MATMUL_DESC_EPILOGUE, g.epilogue);
  if (g.bias) op.set(CUBLASLT_MATMUL_DESC_BIAS_POINTER, g.bias);
  if (g.aux) {
    op.set(CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, g.aux);
    op.set(CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, g.aux_ld);
  }
  // Stored shapes: op(X) is (m,k) for A and (k,n) for B, so a transposed operand is stored the
  // other way round.
  Layout a(CUDA_R_16BF, g.transpose_a ? g.k : g.m, g.transpose_a ? g.m : g.k, g.lda);
  Layout b(CUDA_R_16BF, g.transpose_b ? g.n : g.k, g.transpose_b ? g.k : g.n, g.ldb);
  Layout d(g.d_type, g.m, g.n, g.ldd);
  Preference pref(CudaState::kCublasLtWorkspaceBytes);

  cublasLtMatmulHeuristicResult_t heuristic{};
  int found = 0;
  const cublasStatus_t rc = cublasLtMatmulAlgoGetHeuristic(s.cublaslt, op.d, a.d, b.d, d.d, d.d,
                                                           pref.d, 1, &heuristic, &found);
  if (rc != CUBLAS_STATUS_SUCCESS || found == 0) {
    if (may_fail) return false;
    TS_CHECK_CUBLAS(rc);
    TS_ASSERT(found > 0, "cuBLASLt found no algorithm for a " + std::to_string(g.m) + "x" +
                             std::to_string(g.n) + "x" + std::to_string(g.k) + " GEMM");
  }
  const float alpha = 1.0f;
  // C is D: beta = 1 accumulates into D (weight gradients), beta = 0 overwrites it.
  TS_CHECK_CUBLAS(cublasLtMatmul(s.cublaslt, op.d, &alpha, g.a, a.d, g.b, b.d, &g.beta, g.d, d.d,
                                 g.d, d.d, &heuristic.algo, s.cublaslt_workspace,
                                 CudaState::kCublasLtWorkspaceBytes, s.stream));
  return true;
}

struct LinearShape {
  int64_t n, c, oc;
};

// Checks in (N,C), weight (OC,C), out (N,OC), bias (OC) or empty; all bf16.
LinearShape check_linear(const Tensor& out, const Tensor& in, const Tensor& weight,
                         const Tensor& bias, const char* op) {
  const std::string name(op);
  check_dtype(in, DType::bf16, (name + " in").c_str());
  check_dtype(weight, DType::bf16, (name + " weight").c_str());
  check_dtype(out, DType::bf16, (name + " out").c_str());
  const LinearShape sh{in.rows(), in.cols(), weight.shape.rank ? weight.dim(0) : 0};
  TS_ASSERT(weight.shape.rank == 2 && weight.cols() == sh.c,
            name + ": weight " + weight.shape.str() + " does not match in " + in.shape.str());
  TS_ASSERT(out.rows() == sh.n && out.cols() == sh.oc, name + ": out " + out.shape.str() +
                                                           " should be (" + std::to_string(sh.n) +
                                                           ", " + std::to_string(sh.oc) + ")");
  if (!bias.empty()) {
    check_dtype(bias, DType::bf16, (name + " bias").c_str());
    TS_ASSERT(bias.numel() == sh.oc, name + ": bias " + bias.shape.str() + " length != OC");
  }
  return sh;
}

Gemm forward_gemm(const LinearShape& sh, const Tensor& out, const Tensor& in,
                  const Tensor& weight) {
  Gemm g;
  g.transpose_a = true;
  g.m = sh.oc;
  g.n = sh.n;
  g.k = sh.c;
  g.a = weight.data;
  g.lda = sh.c;
  g.b = in.data;
  g.ldb = sh.c;
  g.d = out.data;
  g.d_type = CUDA_R_16BF;
  g.ldd = sh.oc;
  return g;
}

}  // namespace

void matmul_forward(Device& dev, Tensor out, Tensor in, Tensor weight, Tensor bias) {
  CudaState& s = state_of(dev);
  const LinearShape sh = check_linear(out, in, weight, bias, "matmul_forward");
  if (sh.n == 0 || sh.oc == 0) return;
  Gemm g = forward_gemm(sh, out, in, weight);
  if (!bias.empty()) {
    g.epilogue = CUBLASLT_EPILOGUE_BIAS;
    g.bias = bias.data;
  }
  gemm_run(s, g);
}

void matmul_bias_gelu_forward(Device& dev, Tensor out, Tensor pre, Tensor in, Tensor weight,
                              Tensor bias) {
  CudaState& s = state_of(dev);
  const LinearShape sh = check_linear(out, in, weight, bias, "matmul_bias_gelu_forward");
  check_dtype(pre, DType::bf16, "matmul_bias_gelu_forward pre");
  TS_ASSERT(pre.numel() == out.numel(), "matmul_bias_gelu_forward: pre and out differ in size");
  if (sh.n == 0 || sh.oc == 0) return;
  // cuBLASLt's GELU epilogue is the tanh approximation (as GPT-2), applied to the fp32
  // accumulator; the aux output is the bias-added pre-activation rounded to bf16, exactly what
  // gelu_backward reads. The aux leading dimension must be a multiple of 8.
  if (sh.oc % 8 == 0) {
    Gemm g = forward_gemm(sh, out, in, weight);
    g.epilogue = bias.empty() ? CUBLASLT_EPILOGUE_GELU_AUX : CUBLASLT_EPILOGUE_GELU_AUX_BIAS;
    g.bias = bias.empty() ? nullptr : bias.data;
    g.aux = pre.data;
    g.aux_ld = sh.oc;
    if (gemm_run(s, g, /*may_fail=*/true)) return;
  }
  // No fused algorithm for this shape: the same result in two passes.
  matmul_forward(dev, pre, in, weight, bias);
  gelu_forward(dev, out, pre);
}

void matmul_backward(Device& dev, Tensor din, Tensor dweight, Tensor dbias, Tensor dout, Tensor in,
                     Tensor weight) {
  CudaState& s = state_of(dev);
  check_dtype(dout, DType::bf16, "matmul_backward dout");
  check_dtype(in, DType::bf16, "matmul_backward in");
  check_dtype(weight, DType::bf16, "matmul_backward weight");
  const int64_t N = in.rows(), C = in.cols();
  TS_ASSERT(
      weight.shape.rank == 2 && weight.cols() == C,
      "matmul_backward: weight " + weight.shape.str() + " does not match in " + in.shape.str());
  const int64_t OC = weight.dim(0);
  TS_ASSERT(dout.rows() == N && dout.cols() == OC,
            "matmul_backward: dout " + dout.shape.str() + " does not match in/weight");
  if (N == 0) return;

  if (!dbias.empty()) {
    check_dtype(dbias, DType::f32, "matmul_backward dbias");
    TS_ASSERT(dbias.numel() == OC, "matmul_backward: dbias length != OC");
    column_sum_accumulate(s, dbias.ptr<float>(), dout.data, dout.dtype, N, OC);
  }
  if (!din.empty()) {
    check_dtype(din, DType::bf16, "matmul_backward din");
    TS_ASSERT(din.rows() == N && din.cols() == C,
              "matmul_backward: din " + din.shape.str() + " does not match in " + in.shape.str());
    Gemm g;
    g.m = C;
    g.n = N;
    g.k = OC;
    g.a = weight.data;
    g.lda = C;
    g.b = dout.data;
    g.ldb = OC;
    g.d = din.data;
    g.d_type = CUDA_R_16BF;
    g.ldd = C;
    gemm_run(s, g);
  }
  if (!dweight.empty()) {
    check_dtype(dweight, DType::f32, "matmul_backward dweight");
    TS_ASSERT(dweight.numel() == OC * C, "matmul_backward: dweight " + dweight.shape.str() +
                                             " does not match weight " + weight.shape.str());
    // bf16 operands with an f32 C/D and beta = 1: gradients accumulate across micro-batches
    // in fp32 without a separate bf16 partial.
    Gemm g;
    g.transpose_b = true;
    g.m = C;
    g.n = OC;
    g.k = N;
    g.a = in.data;
    g.lda = C;
    g.b = dout.data;
    g.ldb = OC;
    g.d = dweight.data;
    g.d_type = CUDA_R_32F;
    g.ldd = C;
    g.beta = 1.0f;
    gemm_run(s, g);
  }
}

}  // namespace tessera::cuda
