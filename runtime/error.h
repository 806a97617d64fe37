// Two kinds of failure, two mechanisms:
//  - UserError: something the user can fix (config, paths, data). Thrown, caught once in main,
//    printed as one line, exit code 2.
//  - Fatal checks (TS_ASSERT, TS_CHECK_*): programming or device failures. They print the
//    statement, file, line and rank, then abort every rank through the installed abort hook.
#pragma once
#include <stdexcept>
#include <string>

namespace tessera {

class UserError : public std::runtime_error {
 public:
  explicit UserError(const std::string& what) : std::runtime_error(what) {}
};

// A UserError that every rank raised together (they agreed on it during setup): only the rank
// with `report()` prints it, so a multi-rank job fails with one line, and every rank exits
// cleanly with code 2.
class AgreedError : public UserError {
 public:
  AgreedError(const std::string& what, bool report) : UserError(what), report_(report) {}
  bool report() const { return report_; }

 private:
  bool report_;
};

// Label used in fatal messages ("rank 3"); set once by the launcher. Not parallel state:
// nothing reads it to decide anything.
void error_set_rank_label(int rank);
// Called after a fatal message is printed (e.g. MPI_Abort). Defaults to std::abort().
void error_set_abort_hook(void (*hook)());

[[noreturn]] void fatal_check_failed(const char* library, const char* statement,
                                     const std::string& detail, const char* file, int line);

}  // namespace tessera

#define TS_ASSERT(cond, msg)                                                          \
  do {                                                                                \
    if (!(cond)) ::tessera::fatal_check_failed("assert", #cond, (msg), __FILE__, __LINE__); \
  } while (0)

#define TS_CHECK_MPI(stmt)                                                       \
  do {                                                                           \
    int ts_mpi_rc_ = (stmt);                                                     \
    if (ts_mpi_rc_ != MPI_SUCCESS) {                                             \
      char ts_buf_[MPI_MAX_ERROR_STRING];                                        \
      int ts_len_ = 0;                                                           \
      MPI_Error_string(ts_mpi_rc_, ts_buf_, &ts_len_);                           \
      ::tessera::fatal_check_failed("MPI", #stmt, ts_buf_, __FILE__, __LINE__);  \
    }                                                                            \
  } while (0)

// HDF5 calls return a negative herr_t / hid_t on failure.
#define TS_CHECK_HDF5(stmt)                                                                  \
  do {                                                                                       \
    if ((stmt) < 0) ::tessera::fatal_check_failed("HDF5", #stmt, "call failed", __FILE__, __LINE__); \
  } while (0)

#define TS_CHECK_CUDA(stmt)                                                                    \
  do {                                                                                         \
    cudaError_t ts_rc_ = (stmt);                                                               \
    if (ts_rc_ != cudaSuccess)                                                                 \
      ::tessera::fatal_check_failed("CUDA", #stmt, cudaGetErrorString(ts_rc_), __FILE__, __LINE__); \
  } while (0)

#define TS_CHECK_CUBLAS(stmt)                                                              \
  do {                                                                                     \
    cublasStatus_t ts_rc_ = (stmt);                                                        \
    if (ts_rc_ != CUBLAS_STATUS_SUCCESS)                                                   \
      ::tessera::fatal_check_failed("cuBLAS", #stmt, cublasGetStatusString(ts_rc_), __FILE__, \
                                    __LINE__);                                             \
  } while (0)

#define TS_CHECK_CUDNN(stmt)                                                             \
  do {                                                                                   \
    cudnnStatus_t ts_rc_ = (stmt);                                                       \
    if (ts_rc_ != CUDNN_STATUS_SUCCESS)                                                  \
      ::tessera::fatal_check_failed("cuDNN", #stmt, cudnnGetErrorString(ts_rc_), __FILE__, \
                                    __LINE__);                                           \
  } while (0)

// cudnn-frontend calls return an error_t with is_good() / get_message().
#define TS_CHECK_CUDNN_FE(stmt)                                                              \
  do {                                                                                       \
    auto ts_rc_ = (stmt);                                                                    \
    if (!ts_rc_.is_good())                                                                   \
      ::tessera::fatal_check_failed("cudnn-frontend", #stmt, ts_rc_.get_message(), __FILE__, \
                                    __LINE__);                                               \
  } while (0)

#define TS_CHECK_NCCL(stmt)                                                                \
  do {                                                                                     \
    ncclResult_t ts_rc_ = (stmt);                                                          \
    if (ts_rc_ != ncclSuccess)                                                             \
      ::tessera::fatal_check_failed("NCCL", #stmt, ncclGetErrorString(ts_rc_), __FILE__, \
                                    __LINE__);                                             \
  } while (0)
