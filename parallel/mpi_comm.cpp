#include "parallel/mpi_comm.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "runtime/error.h"

namespace tessera {
namespace {

MPI_Datatype mpi_type(DType t) {
  switch (t) {
    case DType::f32: return MPI_FLOAT;
    case DType::f64: return MPI_DOUBLE;
    case DType::i32: return MPI_INT;
    case DType::bf16: return MPI_UINT16_T;  // moved, never reduced
  }
  return MPI_BYTE;
}

void check_host(const Tensor& t) {
  TS_ASSERT(t.device == DeviceKind::cpu, "MPI communicator given a device tensor");
}

void abort_world() { MPI_Abort(MPI_COMM_WORLD, 1); }

}  // namespace

// All-gather's send buffer: MPI_IN_PLACE when `in` is already this rank's block of `out`
// (ZeRO gathers the parameters in place).
const void* MpiComm::gather_send(const Tensor& out, const Tensor& in) const {
  const char* block = static_cast<const char*>(out.data) + static_cast<size_t>(rank()) * in.bytes();
  return in.data == block ? MPI_IN_PLACE : in.data;
}

namespace {

}  // namespace

int launcher_world_size() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_NTASKS"})
    if (const char* v = std::getenv(var)) return std::max(1, std::atoi(v));
  return 1;
}

MpiWorld::MpiWorld(int* argc, char*** argv) {
  int provided = 0;
  TS_CHECK_MPI(MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided));
  thread_multiple_ = provided >= MPI_THREAD_MULTIPLE;
  // Errors come back as codes that TS_CHECK_MPI reports, then abort every rank.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  MPI_Comm node;
  TS_CHECK_MPI(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node));
  MPI_Comm_size(node, &local_size_);
  MPI_Comm_rank(node, &local_rank_);
  MPI_Comm_free(&node);
  error_set_rank_label(rank_);
  error_set_abort_hook(abort_world);
}

MpiWorld::~MpiWorld() { MPI_Finalize(); }

// Non-blocking and polled with short sleeps: ranks that arrive early (a checkpoint's reads done,
// waiting for the others) wait without spinning, which on a node with more ranks than cores
// would take the cores from the ranks still working.
int MpiWorld::first_rank_with(bool flag) const {
  int mine = flag ? rank_ : size_, first = size_;
  MPI_Request request;
  TS_CHECK_MPI(MPI_Iallreduce(&mine, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD, &request));
  for (int done = 0;;) {
    TS_CHECK_MPI(MPI_Test(&request, &done, MPI_STATUS_IGNORE));
    if (done) break;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return first < size_ ? first : -1;
}

void MpiWorld::broadcast(std::string& text, int root) const {
  int64_t size = static_cast<int64_t>(text.size());
  TS_CHECK_MPI(MPI_Bcast(&size, 1, MPI_INT64_T, root, MPI_COMM_WORLD));
  text.resize(static_cast<size_t>(size));
  for (int64_t at = 0; at < size;) {  // MPI counts are ints
    const int n = static_cast<int>(std::min<int64_t>(size - at, 1 << 30));
    TS_CHECK_MPI(MPI_Bcast(text.data() + at, n, MPI_CHAR, root, MPI_COMM_WORLD));
    at += n;
  }
}

std::vector<std::string> MpiWorld::gather(const std::string& text, int root) const {
  const int mine = static_cast<int>(text.size());
  std::vector<int> sizes(rank_ == root ? size_ : 0), offsets(sizes.size(), 0);
  TS_CHECK_MPI(MPI_Gather(&mine, 1, MPI_INT, sizes.data(), 1, MPI_INT, root, MPI_COMM_WORLD));
  int total = 0;
  for (size_t r = 0; r < sizes.size(); ++r) offsets[r] = total, total += sizes[r];
  std::string all(static_cast<size_t>(total), '\0');
  TS_CHECK_MPI(MPI_Gatherv(text.data(), mine, MPI_CHAR, all.data(), sizes.data(), offsets.data(), MPI_CHAR,
                           root, MPI_COMM_WORLD));
  std::vector<std::string> out;
  for (size_t r = 0; r < sizes.size(); ++r) out.push_back(all.substr(static_cast<size_t>(offsets[r]), static_cast<size_t>(sizes[r])));
  return out;
}

void MpiWorld::or_to_root(void* data, size_t bytes, int root) const {
  // 8-byte words where the length allows (MPI's reduction loops run on whole elements), and MPI
  // counts are ints.
  const bool words = bytes % 8 == 0;
  const size_t elem = words ? 8 : 1, n = bytes / elem;
  for (size_t at = 0; at < n;) {
    const int count = static_cast<int>(std::min<size_t>(n - at, size_t{1} << 28));
    char* p = static_cast<char*>(data) + at * elem;
    TS_CHECK_MPI(MPI_Reduce(rank_ == root ? MPI_IN_PLACE : p, p, count,
                            words ? MPI_UINT64_T : MPI_BYTE, MPI_BOR, root, MPI_COMM_WORLD));
    at += static_cast<size_t>(count);
  }
}

void MpiWorld::abort(int code) const {
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);
}

MPI_Comm MpiWorld::split(const std::vector<int>& group) const {
  const auto it = std::find(group.begin(), group.end(), rank_);
  TS_ASSERT(it != group.end(), "split: this rank is not in its own group");
  MPI_Comm comm;
  // Groups partition the world, so the smallest member names the group uniquely.
  const int color = *std::min_element(group.begin(), group.end());
  TS_CHECK_MPI(MPI_Comm_split(MPI_COMM_WORLD, color, static_cast<int>(it - group.begin()), &comm));
  MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
  return comm;
}

static int comm_rank(MPI_Comm c) { int r; MPI_Comm_rank(c, &r); return r; }
static int comm_size(MPI_Comm c) { int s; MPI_Comm_size(c, &s); return s; }

MpiComm::MpiComm(std::string name, MPI_Comm comm, bool progress_thread)
    : Communicator(std::move(name), comm_rank(comm), comm_size(comm)), comm_(comm),
      threaded_(progress_thread && size() > 1) {
  if (threaded_) worker_ = std::thread([this] { progress_loop(); });
}

MpiComm::~MpiComm() {
  if (threaded_) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    worker_.join();
  }
  MPI_Comm_free(&comm_);
}

void MpiComm::run_blocking(const Job& j) {
  const int n = static_cast<int>(j.kind == Kind::all_gather ? j.in.numel() : j.out.numel());
  const MPI_Datatype type = mpi_type(j.out.dtype);
  switch (j.kind) {
    case Kind::all_reduce:
      TS_CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, j.out.data, n, type, MPI_SUM, comm_));
      break;
    case Kind::reduce_scatter:
      TS_CHECK_MPI(MPI_Reduce_scatter_block(j.in.data, j.out.data, n, type, MPI_SUM, comm_));
      break;
    case Kind::all_gather:
      TS_CHECK_MPI(MPI_Allgather(gather_send(j.out, j.in), n, type, j.out.data, n, type, comm_));
      break;
    case Kind::broadcast:
      TS_CHECK_MPI(MPI_Bcast(j.out.data, n, type, j.root, comm_));
      break;
    case Kind::send: TS_ASSERT(false, "send on the progress thread"); break;
  }
}

void MpiComm::progress_loop() {
  for (;;) {
    Job job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;
      job = queue_.front();
    }
    run_blocking(job);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      queue_.pop_front();
      done_ = job.id + 1;
    }
    cv_.notify_all();
  }
}

CommHandle MpiComm::do_start(Kind kind, Tensor out, Tensor in, int peer_or_root, int tag) {
  check_host(out);
  check_host(in);
  const CommHandle id = next_++;
  if (kind == Kind::send) {
    MPI_Request req;
    TS_CHECK_MPI(MPI_Isend(out.data, static_cast<int>(out.numel()), mpi_type(out.dtype),
                           peer_or_root, tag, comm_, &req));
    requests_[id] = req;
    return id;
  }
  if (threaded_) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      queue_.push_back({id, kind, out, in, peer_or_root});
    }
    queued_ids_.push_back(id);
    cv_.notify_all();
    return id;
  }
  const MPI_Datatype type = mpi_type(out.dtype);
  MPI_Request req;
  const int n = static_cast<int>(out.numel());
  switch (kind) {
    case Kind::all_reduce:
      TS_CHECK_MPI(MPI_Iallreduce(MPI_IN_PLACE, out.data, n, type, MPI_SUM, comm_, &req));
      break;
    case Kind::reduce_scatter:
      TS_CHECK_MPI(MPI_Ireduce_scatter_block(in.data, out.data, n, type, MPI_SUM, comm_, &req));
      break;
    case Kind::all_gather: {
      const int m = static_cast<int>(in.numel());
      TS_CHECK_MPI(MPI_Iallgather(gather_send(out, in), m, type, out.data, m, type, comm_, &req));
      break;
    }
    case Kind::broadcast:
      TS_CHECK_MPI(MPI_Ibcast(out.data, n, type, peer_or_root, comm_, &req));
      break;
    case Kind::send: break;
  }
  requests_[id] = req;
  return id;
}

void MpiComm::do_all_reduce_max(Tensor t) {
  check_host(t);
  TS_CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, t.data, static_cast<int>(t.numel()), mpi_type(t.dtype),
                             MPI_MAX, comm_));
}

void MpiComm::do_recv(Tensor t, int peer, int tag) {
  check_host(t);
  TS_CHECK_MPI(MPI_Recv(t.data, static_cast<int>(t.numel()), mpi_type(t.dtype), peer, tag, comm_,
                        MPI_STATUS_IGNORE));
}

void MpiComm::do_finish(CommHandle h) {
  if (auto it = requests_.find(h); it != requests_.end()) {
    TS_CHECK_MPI(MPI_Wait(&it->second, MPI_STATUS_IGNORE));
    requests_.erase(it);
    return;
  }
  auto q = std::find(queued_ids_.begin(), queued_ids_.end(), h);
  TS_ASSERT(q != queued_ids_.end(), "finish of an unknown handle");
  queued_ids_.erase(q);
  std::unique_lock<std::mutex> lock(mutex_);
  cv_.wait(lock, [&] { return done_ > h; });
}

void MpiComm::do_finish_all() {
  while (!requests_.empty()) do_finish(requests_.begin()->first);
  while (!queued_ids_.empty()) do_finish(queued_ids_.front());
}

}  // namespace tessera
