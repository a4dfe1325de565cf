#include "dist/launch_env.h"

#include <cstdlib>

#include "util/error.h"

namespace dsalign {
namespace {

int64_t integer_var(const std::function<std::optional<std::string>(const std::string&)>& get, const std::string& name,
                    int64_t min_value) {
  std::optional<std::string> v = get(name);
  if (!v) fail("environment: ", name, " is not set (expected an integer >= ", min_value, ")");
  size_t used = 0;
  int64_t out = 0;
  try {
    out = std::stoll(*v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != v->size() || out < min_value)
    fail("environment: ", name, "='", *v, "' (expected an integer >= ", min_value, ")");
  return out;
}

}  // namespace

LaunchEnv launch_env_from(const std::function<std::optional<std::string>(const std::string&)>& get) {
  LaunchEnv env;
  std::string rank_var, world_var, local_var;
  if (get("RANK") || get("WORLD_SIZE")) {
    env.launcher = "torchrun";
    rank_var = "RANK", world_var = "WORLD_SIZE", local_var = "LOCAL_RANK";
  } else if (get("SLURM_PROCID")) {
    env.launcher = "slurm";
    rank_var = "SLURM_PROCID", world_var = "SLURM_NTASKS", local_var = "SLURM_LOCALID";
  } else {
    return env;
  }
  env.rank = integer_var(get, rank_var, 0);
  env.world_size = integer_var(get, world_var, 1);
  if (env.rank >= env.world_size)
    fail("environment: ", rank_var, "=", env.rank, " is not below ", world_var, "=", env.world_size);
  env.local_rank = get(local_var) ? integer_var(get, local_var, 0) : env.rank;
  if (env.launcher == "torchrun") {
    env.local_world_size = get("LOCAL_WORLD_SIZE") ? integer_var(get, "LOCAL_WORLD_SIZE", 1) : env.world_size;
  } else {
    env.local_world_size = get("SLURM_NTASKS_PER_NODE") ? integer_var(get, "SLURM_NTASKS_PER_NODE", 1) : env.world_size;
  }
  if (env.local_rank >= env.local_world_size)
    fail("environment: ", local_var, "=", env.local_rank, " is not below the ranks on this node (", env.local_world_size, ")");
  std::optional<std::string> addr = get("MASTER_ADDR");
  if (!addr || addr->empty())
    fail("environment: MASTER_ADDR is not set (the host of rank 0, where the c10d store listens)");
  env.master_addr = *addr;
  env.master_port = integer_var(get, "MASTER_PORT", 1);
  if (env.master_port > 65535) fail("environment: MASTER_PORT=", env.master_port, " (expected a port, 1..65535)");
  std::optional<std::string> agent = get("TORCHELASTIC_USE_AGENT_STORE");
  env.agent_store = env.launcher == "torchrun" && agent && (*agent == "True" || *agent == "true" || *agent == "1");
  env.store_prefix = "dsalign/attempt_" + get("TORCHELASTIC_RESTART_COUNT").value_or("0");
  return env;
}

LaunchEnv launch_env_from_process() {
  return launch_env_from([](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (!v) return std::nullopt;
    return std::string(v);
  });
}

}  // namespace dsalign
