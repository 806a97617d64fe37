// NCCL communicator for CUDA tensors (see nccl_comm.cpp). Declared without NCCL headers so
// the rest of the code does not depend on the CUDA build.
#pragma once
#include <mpi.h>

#include <memory>
#include <string>

#include "parallel/comm.h"
#include "runtime/device.h"

namespace tessera {

// Collective over `comm`: rank 0 creates the ncclUniqueId and broadcasts it over MPI. The
// returned communicator runs every collective on its own CUDA stream, ordered against the
// device's compute stream by events (no host synchronisation per collective). Throws
// UserError when the CUDA backend is not built.
std::unique_ptr<Communicator> nccl_comm_create(std::string name, MPI_Comm comm, Device& dev);

}  // namespace tessera
