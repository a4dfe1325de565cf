// Where this process stands among the ranks of a run, from the launcher's environment: torchrun
// (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT; with
// TORCHELASTIC_USE_AGENT_STORE=True the agent already serves the store), Slurm (SLURM_PROCID,
// SLURM_NTASKS, SLURM_LOCALID, with MASTER_ADDR / MASTER_PORT given) or `dsalign launch` (which
// sets torchrun's variables). Without any of them: one process. Pure: the environment is passed in.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace dsalign {

struct LaunchEnv {
  int64_t rank = 0, world_size = 1;
  int64_t local_rank = 0, local_world_size = 1;
  std::string master_addr = "127.0.0.1";
  int64_t master_port = 0;
  // torchrun's elastic agent hosts the TCPStore (TORCHELASTIC_USE_AGENT_STORE=True): every rank,
  // rank 0 included, connects as a client (torch.distributed's _create_c10d_store does the same).
  bool agent_store = false;
  // Our keys in the store: apart from the agent's, and per restart attempt.
  std::string store_prefix = "dsalign/attempt_0";
  std::string launcher = "none";  // none | torchrun | slurm
  bool distributed() const { return world_size > 1 || launcher != "none"; }
};

// Reads the variables through `get` (nullopt: unset). Errors name the variable and what was
// expected: a non-integer, a rank outside the world, a missing MASTER_ADDR / MASTER_PORT.
LaunchEnv launch_env_from(const std::function<std::optional<std::string>(const std::string&)>& get);

// The process's own environment.
LaunchEnv launch_env_from_process();

}  // namespace dsalign
