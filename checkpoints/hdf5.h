// Small RAII and attribute helpers over the HDF5 C API, shared by the weights file and the
// sharded checkpoints.
#pragma once
#include <hdf5.h>

#include <cstdint>
#include <string>
#include <vector>

namespace tessera::h5 {

// One hid_t with its matching close function.
class Handle {
 public:
  Handle() = default;
  Handle(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  ~Handle() { reset(); }
  Handle(Handle&& o) noexcept : id_(o.id_), close_(o.close_) { o.id_ = -1; }
  Handle& operator=(Handle&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = o.id_;
      close_ = o.close_;
      o.id_ = -1;
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  hid_t get() const { return id_; }
  bool ok() const { return id_ >= 0; }
  hid_t release() {  // the caller closes it now
    const hid_t id = id_;
    id_ = -1;
    return id;
  }
  void reset() {
    if (id_ >= 0 && close_) close_(id_);
    id_ = -1;
  }

 private:
  hid_t id_ = -1;
  herr_t (*close_)(hid_t) = nullptr;
};

// Silences HDF5's automatic error stack printing while alive (errors become return codes that
// the caller turns into one-line messages).
class QuietErrors {
 public:
  QuietErrors();
  ~QuietErrors();

 private:
  H5E_auto2_t func_ = nullptr;
  void* data_ = nullptr;
};

void write_string_attr(hid_t obj, const char* name, const std::string& value);
void write_int_attr(hid_t obj, const char* name, int64_t value);
void write_ints_attr(hid_t obj, const char* name, const std::vector<int64_t>& values);
bool read_string_attr(hid_t obj, const char* name, std::string& out);
// 0 when absent.
int64_t read_int_attr(hid_t obj, const char* name);
std::vector<int64_t> read_ints_attr(hid_t obj, const char* name);

// Creates every missing group on `path` ("a/b/c") below `loc`; returns the last one.
Handle create_groups(hid_t loc, const std::string& path);

}  // namespace tessera::h5
