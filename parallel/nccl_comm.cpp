// NcclComm: collectives over CUDA tensors with NCCL, on a communication stream of its own.
//
// Ordering, with no host synchronisation anywhere (Megatron's and llm.c's overlap scheme):
//   start:  event recorded on the compute stream -> comm stream waits on it -> NCCL op on the
//           comm stream -> completion event recorded on the comm stream, kept under the handle;
//   finish: the compute stream waits on the completion event.
// Blocking calls of the base class are start + finish, so they too only order streams: the host
// returns at once and the result is valid for work enqueued afterwards on the compute stream.
//
// Point-to-point: NCCL ignores tags, so the messages between a pair must be issued in the same
// order on both sides (as matching sends and receives, and in the same order relative to the
// collectives of this communicator). A send is not enqueued when started but kept until the
// next receive, collective or finish of this communicator, and then issued in one NCCL group
// with it. Two ranks that each send to the other and then receive (1F1B steady state) would
// otherwise deadlock on one stream: each ncclSend waits on the GPU for a receive that is queued
// behind it. Grouped, the pair runs concurrently, which is what "sends never block" means for
// MPI. The send buffer is captured by an event recorded when the send is started.
//
// Ownership: the ncclComm_t, the comm stream and every event are owned here and released in
// the destructor. The MPI_Comm is used only to bootstrap and is not kept. One thread (the one
// that owns the Device) calls every method.
#include "parallel/nccl_comm.h"

#include <cuda_runtime.h>
#include <nccl.h>

#include <map>
#include <vector>

// state.cuh is written for nvcc: besides CudaState it holds inline device helpers naming CUDA
// built-ins that only nvcc declares. This file is plain C++ and calls none of them, so host
// declarations are enough for g++ to parse the header (nothing is emitted or linked).
#ifndef __CUDACC__
#include <device_launch_parameters.h>  // threadIdx, blockDim
float __shfl_xor_sync(unsigned mask, float var, int lane_mask, int width = 32);
void __syncthreads();
#endif
#include "runtime/cuda/state.cuh"
#include "runtime/error.h"

namespace tessera {
namespace {

ncclDataType_t nccl_type(DType t) {
  switch (t) {
    case DType::f32:
      return ncclFloat32;
    case DType::f64:
      return ncclFloat64;
    case DType::bf16:
      return ncclBfloat16;
    case DType::i32:
      return ncclInt32;
  }
  TS_ASSERT(false, "NCCL: unknown dtype");
  return ncclFloat32;
}

void check_device(const Tensor& t) {
  TS_ASSERT(t.device == DeviceKind::cuda, "NCCL communicator given a host tensor");
}

int comm_rank(MPI_Comm c) {
  int r = 0;
  TS_CHECK_MPI(MPI_Comm_rank(c, &r));
  return r;
}

int comm_size(MPI_Comm c) {
  int s = 0;
  TS_CHECK_MPI(MPI_Comm_size(c, &s));
  return s;
}

class NcclComm final : public Communicator {
 public:
  NcclComm(std::string name, MPI_Comm mpi, Device& dev);
  ~NcclComm() override;
  void abort() override;

 protected:
  CommHandle do_start(Kind kind, Tensor out, Tensor in, int peer_or_root, int tag) override;
  void do_all_reduce_max(Tensor t) override;
  void do_recv(Tensor t, int peer, int tag) override;
  void do_finish(CommHandle h) override;
  void do_finish_all() override;

 private:
  struct PendingSend {
    CommHandle id;
    Tensor t;
    int peer;
    cudaEvent_t ready;  // recorded on the compute stream when the send was started
  };

  cudaEvent_t event_acquire();
  void event_release(cudaEvent_t ev) { free_events_.push_back(ev); }
  // Comm stream waits for everything enqueued so far on the compute stream.
  void comm_wait_compute();
  // Records a completion event on the comm stream and files it under a new handle.
  CommHandle complete();
  // Issues the pending sends, in one group together with whatever `also` enqueues.
  template <typename F>
  void group_with_sends(F&& also);
  void flush_sends() {
    if (!sends_.empty()) group_with_sends([] {});
  }

  cudaStream_t compute_ = nullptr;        // the device's stream; not owned
  cudaStream_t stream_ = nullptr;         // owned
  ncclComm_t comm_ = nullptr;             // owned
  std::vector<cudaEvent_t> all_events_;   // owned, every event ever created
  std::vector<cudaEvent_t> free_events_;  // the pool
  std::map<CommHandle, cudaEvent_t> in_flight_;
  std::vector<PendingSend> sends_;
  CommHandle next_ = 0;
};

NcclComm::NcclComm(std::string name, MPI_Comm mpi, Device& dev)
    : Communicator(std::move(name), comm_rank(mpi), comm_size(mpi)) {
  CudaState& s = cuda::state_of(dev);
  TS_CHECK_CUDA(cudaSetDevice(s.ordinal));
  compute_ = s.stream;
  // Highest priority: a reduction overlapping backward should get SMs as soon as it is ready.
  int least = 0, greatest = 0;
  TS_CHECK_CUDA(cudaDeviceGetStreamPriorityRange(&least, &greatest));
  TS_CHECK_CUDA(cudaStreamCreateWithPriority(&stream_, cudaStreamNonBlocking, greatest));

  ncclUniqueId id{};
  if (rank() == 0) TS_CHECK_NCCL(ncclGetUniqueId(&id));
  TS_CHECK_MPI(MPI_Bcast(&id, sizeof(id), MPI_BYTE, 0, mpi));
  TS_CHECK_NCCL(ncclCommInitRank(&comm_, size(), id, rank()));
}

NcclComm::~NcclComm() {
  if (comm_) {  // not aborted
    flush_sends();
    // Nothing may still read or write through the comm or the events once they are destroyed.
    TS_CHECK_CUDA(cudaStreamSynchronize(stream_));
    ncclCommDestroy(comm_);
  }
  for (cudaEvent_t ev : all_events_) cudaEventDestroy(ev);
  cudaStreamDestroy(stream_);
}

// ncclCommAbort ends the kernels of this communicator in flight (their stream then drains)
// without waiting for any peer; callable from the watchdog thread while the step's thread is
// blocked in finish(). The pending sends are dropped unissued.
void NcclComm::abort() {
  if (!comm_) return;
  ncclCommAbort(comm_);
  comm_ = nullptr;
}

cudaEvent_t NcclComm::event_acquire() {
  if (!free_events_.empty()) {
    cudaEvent_t ev = free_events_.back();
    free_events_.pop_back();
    return ev;
  }
  cudaEvent_t ev;
  TS_CHECK_CUDA(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
  all_events_.push_back(ev);
  return ev;
}

// cudaStreamWaitEvent captures the event's state at the call, so the event can go straight
// back to the pool.
void NcclComm::comm_wait_compute() {
  cudaEvent_t ev = event_acquire();
  TS_CHECK_CUDA(cudaEventRecord(ev, compute_));
  TS_CHECK_CUDA(cudaStreamWaitEvent(stream_, ev, 0));
  event_release(ev);
}

CommHandle NcclComm::complete() {
  cudaEvent_t ev = event_acquire();
  TS_CHECK_CUDA(cudaEventRecord(ev, stream_));
  const CommHandle id = next_++;
  in_flight_[id] = ev;
  return id;
}

template <typename F>
void NcclComm::group_with_sends(F&& also) {
  for (const PendingSend& p : sends_) {
    TS_CHECK_CUDA(cudaStreamWaitEvent(stream_, p.ready, 0));
    event_release(p.ready);
  }
  TS_CHECK_NCCL(ncclGroupStart());
  for (const PendingSend& p : sends_)
    TS_CHECK_NCCL(ncclSend(p.t.data, static_cast<size_t>(p.t.numel()), nccl_type(p.t.dtype), p.peer,
                           comm_, stream_));
  also();
  TS_CHECK_NCCL(ncclGroupEnd());
  // Each send handle gets its own completion event so that finish() can release it alone.
  for (const PendingSend& p : sends_) {
    cudaEvent_t ev = event_acquire();
    TS_CHECK_CUDA(cudaEventRecord(ev, stream_));
    in_flight_[p.id] = ev;
  }
  sends_.clear();
}

CommHandle NcclComm::do_start(Kind kind, Tensor out, Tensor in, int peer_or_root, int /*tag*/) {
  check_device(out);
  check_device(in);
  if (kind == Kind::send) {
    cudaEvent_t ready = event_acquire();
    TS_CHECK_CUDA(cudaEventRecord(ready, compute_));
    const CommHandle id = next_++;
    sends_.push_back({id, out, peer_or_root, ready});
    return id;
  }
  flush_sends();
  comm_wait_compute();
  const ncclDataType_t type = nccl_type(out.dtype);
  switch (kind) {
    case Kind::all_reduce:
      TS_CHECK_NCCL(ncclAllReduce(out.data, out.data, static_cast<size_t>(out.numel()), type,
                                  ncclSum, comm_, stream_));
      break;
    case Kind::reduce_scatter:
      TS_CHECK_NCCL(ncclReduceScatter(in.data, out.data, static_cast<size_t>(out.numel()), type,
                                      ncclSum, comm_, stream_));
      break;
    case Kind::all_gather:
      TS_CHECK_NCCL(
          ncclAllGather(in.data, out.data, static_cast<size_t>(in.numel()), type, comm_, stream_));
      break;
    case Kind::broadcast:
      TS_CHECK_NCCL(ncclBroadcast(out.data, out.data, static_cast<size_t>(out.numel()), type,
                                  peer_or_root, comm_, stream_));
      break;
    case Kind::send:
      break;
  }
  return complete();
}

void NcclComm::do_all_reduce_max(Tensor t) {
  check_device(t);
  flush_sends();
  comm_wait_compute();
  TS_CHECK_NCCL(ncclAllReduce(t.data, t.data, static_cast<size_t>(t.numel()), nccl_type(t.dtype),
                              ncclMax, comm_, stream_));
  do_finish(complete());
}

void NcclComm::do_recv(Tensor t, int peer, int /*tag*/) {
  check_device(t);
  // The receive buffer may still be read by earlier work on the compute stream.
  comm_wait_compute();
  group_with_sends([&] {
    TS_CHECK_NCCL(
        ncclRecv(t.data, static_cast<size_t>(t.numel()), nccl_type(t.dtype), peer, comm_, stream_));
  });
  do_finish(complete());
}

void NcclComm::do_finish(CommHandle h) {
  // A send still held back is issued now: finishing it means waiting for it.
  if (!sends_.empty() && !in_flight_.contains(h)) flush_sends();
  const auto it = in_flight_.find(h);
  TS_ASSERT(it != in_flight_.end(), "finish of an unknown handle");
  TS_CHECK_CUDA(cudaStreamWaitEvent(compute_, it->second, 0));
  event_release(it->second);
  in_flight_.erase(it);
}

void NcclComm::do_finish_all() {
  flush_sends();
  while (!in_flight_.empty()) do_finish(in_flight_.begin()->first);
}

}  // namespace

std::unique_ptr<Communicator> nccl_comm_create(std::string name, MPI_Comm comm, Device& dev) {
  TS_ASSERT(dev.kind() == DeviceKind::cuda, "nccl_comm_create needs a CUDA device");
  return std::make_unique<NcclComm>(std::move(name), comm, dev);
}

}  // namespace tessera
