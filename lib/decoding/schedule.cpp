#include "decoding/schedule.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "tokenizer/config.h"

namespace maskgit {

double MaskSchedule::gamma(double ratio, int64_t total_tokens) const {
  const double r = std::clamp(ratio, 0.0, 1.0);
  const double n = static_cast<double>(std::max<int64_t>(total_tokens, 2));
  double value = 0;
  switch (kind) {
    case ScheduleKind::cosine: value = std::cos(M_PI / 2.0 * r); break;
    case ScheduleKind::linear: value = 1.0 - r; break;
    case ScheduleKind::square: value = 1.0 - r * r; break;
    case ScheduleKind::cubic: value = 1.0 - r * r * r; break;
    case ScheduleKind::exp: value = 1.0 - std::pow(n, -(1.0 - r)); break;
    case ScheduleKind::sqrt: value = 1.0 - std::sqrt(r); break;
    case ScheduleKind::log: value = r <= 0 ? 1.0 : -std::log(r) / std::log(n); break;
    case ScheduleKind::arccos: value = std::acos(r) / (M_PI / 2.0); break;
    case ScheduleKind::custom: throw std::logic_error("a custom schedule has no γ; use masked_after_step");
  }
  return std::clamp(value, 1e-6, 1.0);
}

const std::vector<std::string>& schedule_names() {
  static const std::vector<std::string> names = {"cosine", "linear", "square", "cubic",
                                                 "exp",    "sqrt",   "log",    "arccos"};
  return names;
}

std::string MaskSchedule::name() const {
  if (kind == ScheduleKind::custom) return fmt::format("custom:{}", fmt::join(custom_reveals, ","));
  return schedule_names()[static_cast<size_t>(kind)];
}

MaskSchedule parse_schedule(const std::string& text) {
  MaskSchedule schedule;
  const auto& names = schedule_names();
  const auto it = std::find(names.begin(), names.end(), text);
  if (it != names.end()) {
    schedule.kind = static_cast<ScheduleKind>(it - names.begin());
    return schedule;
  }
  if (text.rfind("custom:", 0) == 0) {
    schedule.kind = ScheduleKind::custom;
    schedule.custom_reveals = parse_int_list(text.substr(7));
    for (int64_t reveals : schedule.custom_reveals)
      if (reveals < 1) throw std::runtime_error(fmt::format("\"{}\": every step must reveal at least one token", text));
    return schedule;
  }
  throw std::runtime_error(fmt::format("unknown schedule \"{}\" (use one of {} or custom:N1,N2,...)", text,
                                       fmt::join(names, ", ")));
}

int64_t decode_step_count(const MaskSchedule& schedule, int64_t steps, int64_t start_step) {
  return schedule.kind == ScheduleKind::custom ? start_step + static_cast<int64_t>(schedule.custom_reveals.size())
                                               : steps;
}

int64_t masked_after_step(const MaskSchedule& schedule, int64_t step, int64_t steps, int64_t initially_unknown,
                          int64_t currently_unknown) {
  int64_t masked = 0;
  if (schedule.kind == ScheduleKind::custom) {
    // The list covers the last custom_reveals.size() steps (those from --start-step on).
    const int64_t index = step - (steps - static_cast<int64_t>(schedule.custom_reveals.size()));
    const int64_t reveals = index >= 0 && index < static_cast<int64_t>(schedule.custom_reveals.size())
                                ? schedule.custom_reveals[static_cast<size_t>(index)]
                                : currently_unknown;
    masked = currently_unknown - reveals;
  } else {
    const double ratio = static_cast<double>(step + 1) / static_cast<double>(steps);
    masked = static_cast<int64_t>(std::floor(static_cast<double>(initially_unknown) *
                                             schedule.gamma(ratio, initially_unknown)));
  }
  return std::max<int64_t>(1, std::min(currently_unknown - 1, masked));
}

const char* guidance_schedule_name(GuidanceSchedule schedule) {
  return schedule == GuidanceSchedule::linear ? "linear" : "constant";
}

GuidanceSchedule parse_guidance_schedule(const std::string& name) {
  if (name == "constant") return GuidanceSchedule::constant;
  if (name == "linear") return GuidanceSchedule::linear;
  throw std::invalid_argument(fmt::format("\"{}\" is not constant or linear", name.substr(0, 64)));
}

}  // namespace maskgit
