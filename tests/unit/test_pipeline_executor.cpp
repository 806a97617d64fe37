// The pipeline executor with fake chunks in one process: two pipeline ranks as two threads
// joined by an in-memory communicator, each holding two virtual chunks (interleaved 1F1B), so
// the order of ops, the routing of activations and gradients across ranks and chunks, and the
// "last backward" mark are checked without MPI.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "parallel/pipeline_executor.h"

namespace tessera {
namespace {

// Messages between the ranks of one in-process group, by (receiver, tag).
struct Mailbox {
  std::mutex mu;
  std::condition_variable cv;
  std::map<std::pair<int, int>, std::vector<float>> messages;
};

class MemoryComm final : public Communicator {
 public:
  MemoryComm(int rank, int size, Mailbox& box) : Communicator("pp", rank, size), box_(box) {}

 protected:
  CommHandle do_start(Kind kind, Tensor, Tensor in, int peer, int tag) override {
    if (kind != Kind::send) return -1;
    std::lock_guard<std::mutex> lock(box_.mu);
    auto& slot = box_.messages[{peer, tag}];
    EXPECT_TRUE(slot.empty()) << "two messages in flight to " << peer << " with tag " << tag;
    slot.assign(in.ptr<float>(), in.ptr<float>() + in.numel());
    box_.cv.notify_all();
    return -1;
  }
  void do_all_reduce_max(Tensor) override {}
  void do_recv(Tensor t, int, int tag) override {
    std::unique_lock<std::mutex> lock(box_.mu);
    const std::pair<int, int> key{rank(), tag};
    // A message that never comes is a routing bug: fail instead of hanging.
    if (!box_.cv.wait_for(lock, std::chrono::seconds(10), [&] { return box_.messages.count(key) > 0; })) {
      ADD_FAILURE() << "rank " << rank() << " waited 10 s for tag " << tag;
      std::memset(t.data, 0, t.bytes());
      return;
    }
    std::memcpy(t.data, box_.messages[key].data(), t.bytes());
    box_.messages.erase(key);
  }
  void do_finish(CommHandle) override {}
  void do_finish_all() override {}

 private:
  Mailbox& box_;
};

// "F11", "B3 last": an op's kind, value and mark (snprintf: GCC 12 warns falsely about
// concatenating a literal with std::to_string).
std::string label(char kind, int value, bool last = false) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%c%d%s", kind, value, last ? " last" : "");
  return buf;
}

// Model chunk 0 reads micro-batch mb as the value 100 mb + 1; every later chunk adds 10 to
// what it receives. Backward returns d(output) + 1 (the last chunk's d(output) is 0).
struct FakeChunk final : PipelineChunk {
  int model_chunk;
  std::vector<std::string>* log;
  std::vector<float> in, out, dout;
  FakeChunk(int mc, std::vector<std::string>* l, int slots) : model_chunk(mc), log(l), in(slots), out(slots), dout(1) {}
  static Tensor view(float* p) { return Tensor{p, DType::f32, DeviceKind::cpu, {1}}; }
  Tensor input(int slot) override { return view(&in[slot]); }
  Tensor output(int slot) override { return view(&out[slot]); }
  Tensor grad_output() override { return view(dout.data()); }
  void forward(int slot, int mb) override {
    out[slot] = model_chunk == 0 ? 100.0f * mb + 1 : in[slot] + 10;
    log->push_back(label('F', static_cast<int>(out[slot])));
  }
  Tensor backward(int slot, int, Tensor d, bool last) override {
    in[slot] = (d.empty() ? 0.0f : *d.ptr<float>()) + 1;
    log->push_back(label('B', static_cast<int>(in[slot]), last));
    return view(&in[slot]);
  }
};

TEST(PipelineExecutor, RoutesActivationsAndGradientsAcrossRanksAndChunks) {
  const int pp = 2, v = 2, n_micro = 4;
  Mailbox box;
  std::vector<std::string> logs[pp];
  std::vector<std::vector<PipeOp>> ops(pp);
  std::vector<std::thread> ranks;
  for (int s = 0; s < pp; ++s) {
    ops[s] = schedule_interleaved(pp, s, n_micro, v);
    ranks.emplace_back([&, s] {
      auto dev = Device::create(DeviceKind::cpu);
      MemoryComm pipe(s, pp, box);
      PipelineExecutor ex(ops[s], v, pipe);
      Arena measure("pipe", DeviceKind::cpu);
      ex.layout(measure, Shape{1}, DType::f32);
      Arena arena("pipe", *dev, measure.used());
      ex.layout(arena, Shape{1}, DType::f32);
      FakeChunk c0(s, &logs[s], ex.slots()), c1(pp + s, &logs[s], ex.slots());
      ex.run(*dev, {&c0, &c1});
      logs[s].push_back("eval");
      ex.run_forward({&c0, &c1});
      ex.finish();
    });
  }
  for (std::thread& t : ranks) t.join();
  for (int s = 0; s < pp; ++s) {
    ASSERT_EQ(logs[s].size(), ops[s].size() + 3) << "rank " << s;
    int lasts = 0;
    for (size_t k = 0; k < ops[s].size(); ++k) {
      const PipeOp& op = ops[s][k];
      const int mc = op.chunk * pp + s;
      if (op.kind == PipeOpKind::forward) {
        EXPECT_EQ(logs[s][k], label('F', 100 * op.microbatch + 1 + 10 * mc)) << "rank " << s << " op " << k;
      } else {
        // d(input) of model chunk mc is (chunks after it) + 1.
        EXPECT_EQ(logs[s][k].substr(0, logs[s][k].find(' ')), label('B', pp * v - mc)) << "rank " << s << " op " << k;
        lasts += logs[s][k].find(" last") != std::string::npos;
      }
    }
    EXPECT_EQ(lasts, v) << "one last backward per chunk on rank " << s;
    // Evaluation: micro-batch 0 through this rank's chunks in model order.
    EXPECT_EQ(logs[s][ops[s].size() + 1], label('F', 1 + 10 * s));
    EXPECT_EQ(logs[s][ops[s].size() + 2], label('F', 1 + 10 * (pp + s)));
  }
  EXPECT_TRUE(box.messages.empty()) << "every message received";
}

}  // namespace
}  // namespace tessera
