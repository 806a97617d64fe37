#include "parallel/pipeline_executor.h"

#include "parallel/flight_recorder.h"

#include <algorithm>

#include "runtime/ops.h"

namespace tessera {

PipelineExecutor::PipelineExecutor(std::vector<PipeOp> ops, int chunks, Communicator& pipe)
    : ops_(std::move(ops)), chunks_(chunks), pp_(pipe.size()), stage_(pipe.rank()), pipe_(pipe) {
  slots_ = schedule_max_in_flight_per_chunk(ops_, chunks_);
  last_backward_.assign(chunks_, 0);
  for (size_t i = 0; i < ops_.size(); ++i)
    if (ops_[i].kind == PipeOpKind::backward) last_backward_[ops_[i].chunk] = i;
  out_handle_.assign(chunks_, std::vector<CommHandle>(slots_, -1));
  grad_handle_.assign(chunks_, std::vector<CommHandle>(slots_, -1));
}

int PipelineExecutor::tag(int dir, int recv_chunk, int microbatch) {
  return (dir * 64 + recv_chunk) * 256 + microbatch % 256;
}

void PipelineExecutor::layout(Arena& arena, const Shape& stream, DType dtype) {
  grad_send_.assign(chunks_, {});
  for (int c = 0; c < chunks_; ++c)
    if (model_chunk(c) > 0)
      for (int s = 0; s < slots_; ++s) grad_send_[c].push_back(arena.take(stream, dtype));
}

void PipelineExecutor::send_forward(int c, int slot, int mb, Tensor output) {
  if (model_chunk(c) == pp_ * chunks_ - 1) return;  // the last model chunk keeps its output
  const bool last_stage = stage_ == pp_ - 1;
  out_handle_[c][slot] = pipe_.send_start(output, last_stage ? 0 : stage_ + 1,
                                          tag(0, last_stage ? c + 1 : c, mb));
}

void PipelineExecutor::run(Device& dev, const std::vector<PipelineChunk*>& chunks) {
  const int n_chunks = pp_ * chunks_;
  const int prev = stage_ > 0 ? stage_ - 1 : pp_ - 1, next = stage_ < pp_ - 1 ? stage_ + 1 : 0;
  for (size_t k = 0; k < ops_.size(); ++k) {
    const PipeOp& op = ops_[k];
    const int c = op.chunk, mb = op.microbatch, slot = mb % slots_, mc = model_chunk(c);
    PipelineChunk& chunk = *chunks[c];
    if (FlightRecorder* r = pipe_.recorder()) r->set_phase(mb, op.kind == PipeOpKind::forward ? "forward" : "backward");
    if (op.kind == PipeOpKind::forward) {
      pipe_.finish(out_handle_[c][slot]);  // the slot's previous output has left
      out_handle_[c][slot] = -1;
      if (mc > 0) pipe_.recv(chunk.input(slot), prev, tag(0, c, mb));
      chunk.forward(slot, mb);
      send_forward(c, slot, mb, chunk.output(slot));
    } else {
      Tensor dout;
      if (mc < n_chunks - 1) {
        dout = chunk.grad_output();
        pipe_.recv(dout, next, tag(1, c, mb));
      }
      Tensor dx = chunk.backward(slot, mb, dout, k == last_backward_[c]);
      if (mc > 0) {
        pipe_.finish(grad_handle_[c][slot]);
        ops::convert(dev, grad_send_[c][slot], dx);
        grad_handle_[c][slot] = pipe_.send_start(grad_send_[c][slot], prev, tag(1, stage_ > 0 ? c : c - 1, mb));
      }
    }
  }
  finish();
}

void PipelineExecutor::finish() {
  pipe_.finish_all();
  for (auto* handles : {&out_handle_, &grad_handle_})
    for (auto& row : *handles) std::fill(row.begin(), row.end(), -1);
}

void PipelineExecutor::run_forward(const std::vector<PipelineChunk*>& chunks) {
  const int prev = stage_ > 0 ? stage_ - 1 : pp_ - 1;
  for (int c = 0; c < chunks_; ++c) {
    PipelineChunk& chunk = *chunks[c];
    pipe_.finish(out_handle_[c][0]);
    out_handle_[c][0] = -1;
    if (model_chunk(c) > 0) pipe_.recv(chunk.input(0), prev, tag(0, c, 0));
    chunk.forward(0, 0);
    send_forward(c, 0, 0, chunk.output(0));
  }
}

}  // namespace tessera
