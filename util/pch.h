// Precompiled header: the heavy, stable third-party headers every translation unit uses.
#pragma once
#include <torch/torch.h>
#include <nlohmann/json.hpp>
#include <filesystem>
#include <string>
#include <vector>
