#include "parallel/communicators.h"

#include "parallel/mpi_comm.h"
#include "parallel/nccl_comm.h"

namespace tessera {
namespace {

std::unique_ptr<Communicator> make(const std::string& name, const std::vector<int>& group,
                                   const MpiWorld* world, Device& dev) {
  if (!world) return std::make_unique<LocalComm>(name, dev);
  MPI_Comm comm = world->split(group);
  if (dev.kind() == DeviceKind::cuda) {
    auto c = nccl_comm_create(name, comm, dev);
    MPI_Comm_free(&comm);
    return c;
  }
  return std::make_unique<MpiComm>(name, comm, world->thread_multiple());
}

void add(CommCounters& a, const CommCounters& b) {
  a.calls += b.calls;
  a.bytes += b.bytes;
  a.wait_ms += b.wait_ms;
}

}  // namespace

Communicators communicators_create(const Topology& topo, int rank, const MpiWorld* world,
                                   Device& dev, FlightRecorder* recorder) {
  Communicators c;
  c.tp = make("tp", topo.tp_group(rank), world, dev);
  c.pp = make("pp", topo.pp_group(rank), world, dev);
  c.dp = make("dp", topo.dp_group(rank), world, dev);
  // Embedding group: {first, last} stage of this pipeline; others sit alone.
  const std::vector<int> pipe = topo.pp_group(rank);
  std::vector<int> emb = {rank};
  if (topo.pp() > 1 && (topo.first_stage(rank) || topo.last_stage(rank)))
    emb = {pipe.front(), pipe.back()};
  c.embedding = make("embedding", emb, world, dev);
  if (world) {
    std::vector<int> all(topo.world());
    for (int r = 0; r < topo.world(); ++r) all[r] = r;
    c.world = std::make_unique<MpiComm>("world", world->split(all), false);
  } else {
    c.world = std::make_unique<LocalComm>("world", dev);
  }
  if (recorder) {
    c.tp->set_recorder(recorder, topo.tp_group(rank));
    c.pp->set_recorder(recorder, topo.pp_group(rank));
    c.dp->set_recorder(recorder, topo.dp_group(rank));
    c.embedding->set_recorder(recorder, emb);
    std::vector<int> all(topo.world());
    for (int r = 0; r < topo.world(); ++r) all[r] = r;
    c.world->set_recorder(recorder, all);
  }
  return c;
}

void communicators_abort(Communicators& c) {
  for (Communicator* comm : {c.tp.get(), c.pp.get(), c.dp.get(), c.embedding.get(), c.world.get()})
    if (comm) comm->abort();
}

CommStats communicators_stats(const Communicators& c) {
  CommStats s;
  for (const Communicator* comm : {c.tp.get(), c.pp.get(), c.dp.get(), c.embedding.get()}) {
    const CommStats& x = comm->stats();
    add(s.all_reduce, x.all_reduce);
    add(s.reduce_scatter, x.reduce_scatter);
    add(s.all_gather, x.all_gather);
    add(s.broadcast, x.broadcast);
    add(s.p2p, x.p2p);
  }
  return s;
}

void communicators_reset_stats(Communicators& c) {
  for (Communicator* comm : {c.tp.get(), c.pp.get(), c.dp.get(), c.embedding.get(), c.world.get()})
    comm->reset_stats();
}

}  // namespace tessera
