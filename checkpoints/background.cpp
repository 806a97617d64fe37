#include "checkpoints/background.h"

#include <exception>

namespace tessera {

BackgroundJobs::BackgroundJobs() : thread_([this] { loop(); }) {}

BackgroundJobs::~BackgroundJobs() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void BackgroundJobs::submit(std::function<void()> job) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(std::move(job));
  }
  cv_.notify_all();
}

bool BackgroundJobs::idle() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.empty() && !busy_;
}

void BackgroundJobs::wait() const {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [this] { return queue_.empty() && !busy_; });
}

std::string BackgroundJobs::error() const {
  std::lock_guard<std::mutex> lock(mu_);
  return error_;
}

void BackgroundJobs::clear_error() {
  std::lock_guard<std::mutex> lock(mu_);
  error_.clear();
}

void BackgroundJobs::loop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, nothing left
    std::function<void()> job = std::move(queue_.front());
    queue_.pop_front();
    busy_ = true;
    lock.unlock();
    std::string failure;
    try {
      job();
    } catch (const std::exception& e) {
      failure = e.what();
    }
    lock.lock();
    busy_ = false;
    if (!failure.empty()) {
      if (error_.empty()) error_ = failure;
      queue_.clear();
    }
    cv_.notify_all();
  }
}

}  // namespace tessera
