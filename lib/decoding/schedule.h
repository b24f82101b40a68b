#pragma once
// Mask schedules γ(r), r ∈ [0, 1]: the fraction of the initially unknown tokens still masked
// after a step that ends at ratio r (docs/decoding.md §2).
#include <cstdint>
#include <string>
#include <vector>

namespace maskgit {

enum class ScheduleKind { cosine, linear, square, cubic, exp, sqrt, log, arccos, custom };

struct MaskSchedule {
  ScheduleKind kind = ScheduleKind::cosine;
  // For `custom`: how many tokens to reveal at each step (the step count is its length).
  std::vector<int64_t> custom_reveals;

  // γ(r), clipped to [1e-6, 1]. `total_tokens` is N for the exp and log schedules.
  double gamma(double ratio, int64_t total_tokens) const;
  std::string name() const;
};

// Parses "cosine", "linear", ..., or a custom list "custom:4,8,12,25" (reveals per step).
// Throws std::runtime_error listing the accepted names.
MaskSchedule parse_schedule(const std::string& text);
const std::vector<std::string>& schedule_names();

// The number of decoding steps T: `steps`, or for a custom schedule start_step + its length
// (a custom list gives the reveals of the steps actually run).
int64_t decode_step_count(const MaskSchedule& schedule, int64_t steps, int64_t start_step);

// The release's count of tokens left masked after step t (0-based, t in [start, steps)),
// given `initially_unknown` N0 and `currently_unknown` before the step:
// floor(N0 · γ((t+1)/T)) clamped to [1, currently_unknown − 1]. For a custom schedule the
// count is currently_unknown − reveals[t − start] (start = steps − its length), same clamp.
int64_t masked_after_step(const MaskSchedule& schedule, int64_t step, int64_t steps, int64_t initially_unknown,
                          int64_t currently_unknown);

// Classifier-free guidance over the steps: constant is s at every step (the usual form);
// linear is after Muse's linearly rising guidance (Chang et al. 2023, "Classifier Free
// Guidance"; the formula is this project's): 1 + (s − 1)·(t+1)/T at step t of T, almost none
// while the layout is decided, all of s for the last tokens.
enum class GuidanceSchedule { constant, linear };

// "constant" or "linear"; parse_guidance_schedule throws std::invalid_argument for anything else.
const char* guidance_schedule_name(GuidanceSchedule schedule);
GuidanceSchedule parse_guidance_schedule(const std::string& name);

}  // namespace maskgit
