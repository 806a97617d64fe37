// Built without the CUDA backend: there is no NCCL communicator.
#include "parallel/nccl_comm.h"

#include "runtime/error.h"

namespace tessera {

std::unique_ptr<Communicator> nccl_comm_create(std::string, MPI_Comm, Device&) {
  throw UserError("NCCL communicators need the CUDA backend, and this build has none");
}

}  // namespace tessera
