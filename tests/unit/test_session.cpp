// Which GPU a rank takes, for the visible-device layouts launchers give (no GPU needed).
#include <gtest/gtest.h>

#include "launch/session.h"
#include "runtime/error.h"

namespace tessera {
namespace {

TEST(Session, CudaOrdinalFromWhatIsVisible) {
  // mpirun / srun without GPU binding: every rank sees all of the node's GPUs.
  EXPECT_EQ(cuda_ordinal_for(8, 0, 8), 0);
  EXPECT_EQ(cuda_ordinal_for(8, 5, 8), 5);
  EXPECT_EQ(cuda_ordinal_for(4, 3, 4), 3);
  // srun --gpus-per-task=1 or a per-rank CUDA_VISIBLE_DEVICES: each rank sees one GPU, which is
  // its own whatever its local rank (ranks >= 1 used to fail with "no CUDA GPU visible").
  EXPECT_EQ(cuda_ordinal_for(1, 0, 8), 0);
  EXPECT_EQ(cuda_ordinal_for(1, 7, 8), 0);
  // More GPUs than ranks: the first ones.
  EXPECT_EQ(cuda_ordinal_for(8, 1, 2), 1);
  EXPECT_THROW(cuda_ordinal_for(0, 0, 1), UserError);
  try {
    cuda_ordinal_for(2, 3, 4);
    FAIL() << "4 ranks on 2 GPUs";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("4 ranks on this node but only 2 GPUs visible"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace tessera
