// The one executor of pipeline schedules (parallel/schedule.h makes the op lists): runs this
// rank's ops in order, receiving a chunk's input from the previous model chunk before its
// forward and the gradient of its output from the next before its backward, and sending
// without blocking (a slot's buffer is reused only after its previous send finished). Model
// chunk mc = chunk * pp + stage: activations flow to mc + 1 (the next stage, or stage 0's next
// chunk after the last stage), gradients back to mc - 1.
#pragma once
#include <vector>

#include "parallel/comm.h"
#include "parallel/schedule.h"
#include "runtime/arena.h"
#include "runtime/device.h"

namespace tessera {

// One model chunk as the executor drives it (the trainer adapts a model stage).
class PipelineChunk {
 public:
  virtual ~PipelineChunk() = default;
  virtual Tensor input(int slot) = 0;   // where the stream entering the chunk is received
  virtual Tensor output(int slot) = 0;  // the stream leaving it
  virtual Tensor grad_output() = 0;     // where d(output) is received
  virtual void forward(int slot, int microbatch) = 0;
  // Returns d(input). `last`: the chunk's final backward of the step (its parameters'
  // gradients are complete when it returns).
  virtual Tensor backward(int slot, int microbatch, Tensor grad_output, bool last) = 0;
};

class PipelineExecutor {
 public:
  // `ops`: this rank's schedule over `chunks` local chunks; `stage` of pipe.size() stages.
  PipelineExecutor(std::vector<PipeOp> ops, int chunks, Communicator& pipe);
  // Micro-batches whose activations are alive at once in one chunk (activation slots).
  int slots() const { return slots_; }
  // Carves the gradient send buffers ((stream) per chunk and slot, none for model chunk 0).
  void layout(Arena& arena, const Shape& stream, DType dtype);
  // One training step's ops; every send finished on return.
  void run(Device& dev, const std::vector<PipelineChunk*>& chunks);
  // Forward of one micro-batch (slot 0) through every local chunk in model order (evaluation);
  // finish() after the last.
  void run_forward(const std::vector<PipelineChunk*>& chunks);
  // Waits for every send still in flight.
  void finish();

 private:
  int model_chunk(int chunk) const { return chunk * pp_ + stage_; }
  // The tag of a message: direction (0 activations, 1 gradients), the receiving local chunk
  // and the micro-batch; fits MPI's guaranteed tag range (< 32768).
  static int tag(int dir, int recv_chunk, int microbatch);
  void send_forward(int chunk, int slot, int microbatch, Tensor output);

  std::vector<PipeOp> ops_;
  int chunks_, pp_, stage_, slots_;
  Communicator& pipe_;
  std::vector<size_t> last_backward_;  // per chunk: index in ops_ of its last backward
  std::vector<std::vector<Tensor>> grad_send_;  // [chunk][slot]
  std::vector<std::vector<CommHandle>> out_handle_, grad_handle_;
};

}  // namespace tessera
