// The communicators of one rank, one per parallel axis, built from the Topology. Passed
// explicitly to whoever needs them; nothing reaches them globally.
#pragma once
#include <memory>

#include "parallel/comm.h"
#include "parallel/topology.h"

namespace tessera {

class MpiWorld;

struct Communicators {
  std::unique_ptr<Communicator> tp, pp, dp;
  // First and last pipeline stage of this rank's (dp, tp) column: they both hold the tied
  // token embedding and sum its gradient. Size 1 when pp = 1 or on a middle stage.
  std::unique_ptr<Communicator> embedding;
  // Every rank, on host memory (MPI): scalars such as the loss and the gradient norm.
  std::unique_ptr<Communicator> world;
};

// Collective over the world when `world` is not null (every rank calls it). Tensors on the
// CPU use MPI; on CUDA, NCCL (bootstrapped over MPI). Without an MpiWorld (one process) every
// communicator is a LocalComm.
// With `recorder`, every communicator of several ranks records its operations there (a hang
// report names them).
Communicators communicators_create(const Topology& topo, int rank, const MpiWorld* world,
                                   Device& dev, FlightRecorder* recorder = nullptr);
// Communicator::abort on every axis: nothing waits on a peer afterwards.
void communicators_abort(Communicators& c);
// Adds the counters of every axis (world excluded) into one set, for the step log.
CommStats communicators_stats(const Communicators& c);
void communicators_reset_stats(Communicators& c);

}  // namespace tessera
