#include "training/adam.h"

#include <fmt/format.h>

#include <cmath>

#include "common/error.h"
#include "io/tensor_io.h"

namespace maskgit {

Adam::Adam(std::vector<std::pair<std::string, torch::Tensor>> named_parameters, AdamOptions options)
    : options_(options) {
  for (auto& [name, parameter] : named_parameters) {
    if (!parameter.requires_grad()) continue;
    slots_.push_back({name, parameter, torch::zeros_like(parameter), torch::zeros_like(parameter)});
  }
}

void Adam::zero_grad() {
  for (auto& slot : slots_) {
    auto& grad = slot.parameter.mutable_grad();
    if (grad.defined()) grad.zero_();
  }
}

void Adam::step(double learning_rate) {
  torch::NoGradGuard no_grad;
  ++step_;
  const double correction1 = 1.0 - std::pow(options_.beta1, static_cast<double>(step_));
  const double correction2 = 1.0 - std::pow(options_.beta2, static_cast<double>(step_));
  const double step_size = learning_rate / correction1;
  for (auto& slot : slots_) {
    const torch::Tensor& grad = slot.parameter.grad();
    if (!grad.defined()) continue;
    if (options_.weight_decay > 0 && slot.parameter.dim() >= 2)
      slot.parameter.mul_(1.0 - learning_rate * options_.weight_decay);
    slot.first_moment.mul_(options_.beta1).add_(grad, 1.0 - options_.beta1);
    slot.second_moment.mul_(options_.beta2).addcmul_(grad, grad, 1.0 - options_.beta2);
    torch::Tensor denominator = (slot.second_moment / correction2).sqrt_().add_(options_.eps);
    slot.parameter.addcdiv_(slot.first_moment, denominator, -step_size);
  }
}

std::vector<torch::Tensor> Adam::moments() const {
  std::vector<torch::Tensor> tensors;
  for (const auto& slot : slots_) {
    tensors.push_back(slot.first_moment);
    tensors.push_back(slot.second_moment);
  }
  return tensors;
}

void Adam::save_state(SafetensorsFile& file) const {
  for (const auto& slot : slots_) {
    file.tensors.push_back(tensor_to_entry("adam." + slot.name + ".m", slot.first_moment));
    file.tensors.push_back(tensor_to_entry("adam." + slot.name + ".v", slot.second_moment));
  }
  file.metadata["adam.step"] = std::to_string(step_);
}

void Adam::load_state(const SafetensorsFile& file, const std::string& source) {
  auto restore = [&](const std::string& name, torch::Tensor& target) {
    const SafetensorsEntry* entry = file.find(name);
    if (!entry) throw_bad_input(fmt::format("{}: missing optimizer tensor \"{}\"", source, name));
    torch::Tensor value = entry_to_tensor(*entry);
    if (value.sizes() != target.sizes())
      throw_bad_input(fmt::format("{}: optimizer tensor \"{}\" has the wrong shape", source, name));
    torch::NoGradGuard no_grad;
    target.copy_(value);
  };
  for (auto& slot : slots_) {
    restore("adam." + slot.name + ".m", slot.first_moment);
    restore("adam." + slot.name + ".v", slot.second_moment);
  }
  auto it = file.metadata.find("adam.step");
  if (it == file.metadata.end()) throw_bad_input(fmt::format("{}: missing metadata \"adam.step\"", source));
  try {
    step_ = std::stoll(it->second);
  } catch (const std::exception&) {
    throw_bad_input(fmt::format("{}: metadata \"adam.step\" is not an integer", source));
  }
}

double warmup_cosine_lr(int64_t step, int64_t total, int64_t warmup, double peak, double final_fraction) {
  if (warmup > 0 && step < warmup) return peak * static_cast<double>(step + 1) / static_cast<double>(warmup);
  if (total <= warmup) return peak;
  const double progress = std::min(1.0, static_cast<double>(step - warmup) / static_cast<double>(total - warmup));
  const double cosine = 0.5 * (1.0 + std::cos(M_PI * progress));
  return peak * (final_fraction + (1.0 - final_fraction) * cosine);
}

}  // namespace maskgit
