// One background thread that runs file jobs in order (checkpoint shards, the commit), so that
// an asynchronous save writes while training continues. No collective ever runs here: ranks
// agree on progress at step boundaries through idle() and error().
#pragma once
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace tessera {

class BackgroundJobs {
 public:
  BackgroundJobs();
  ~BackgroundJobs();  // waits for queued jobs
  BackgroundJobs(const BackgroundJobs&) = delete;
  BackgroundJobs& operator=(const BackgroundJobs&) = delete;

  // Queues `job`; a UserError or std::exception it throws is kept as error() and the jobs
  // queued after it are dropped.
  void submit(std::function<void()> job);
  bool idle() const;
  void wait() const;
  // The first failure's message ("" when none); clear_error() forgets it.
  std::string error() const;
  void clear_error();

 private:
  void loop();

  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool busy_ = false, stop_ = false;
  std::string error_;
  std::thread thread_;
};

}  // namespace tessera
