// The process's own CPU time, page faults and peak resident memory (getrusage), for the load and
// checkpoint benchmarks: figures taken before and after what they time.
#pragma once
#include <sys/resource.h>

namespace dsalign::bench {

struct Usage {
  double user = 0, system = 0, minor_faults = 0, major_faults = 0, max_rss_bytes = 0;
};

inline Usage usage_now() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) * 1e-6; };
  return {seconds(u.ru_utime), seconds(u.ru_stime), static_cast<double>(u.ru_minflt), static_cast<double>(u.ru_majflt),
          static_cast<double>(u.ru_maxrss) * 1024.0};
}

}  // namespace dsalign::bench
