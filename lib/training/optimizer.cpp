#include "training/optimizer.h"

#include <fmt/format.h>

#include <limits>

#include "compat/torch_compat.h"
#include "training/engine.h"

namespace maskgit {

AdamWOptimizer::AdamWOptimizer(const std::vector<std::pair<std::string, torch::Tensor>>& named_parameters,
                               AdamWSettings settings, std::string prefix)
    : prefix_(std::move(prefix)) {
  std::vector<torch::Tensor> decayed, plain;
  for (const auto& [name, parameter] : named_parameters) {
    if (!parameter.requires_grad()) continue;
    names_.push_back(name);
    parameters_.push_back(parameter);
    (parameter.dim() >= 2 ? decayed : plain).push_back(parameter);
  }
  auto options = [&](double weight_decay) {
    return torch::optim::AdamWOptions(0.0)
        .betas(std::make_tuple(settings.beta1, settings.beta2))
        .eps(settings.eps)
        .weight_decay(weight_decay);
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  if (!decayed.empty())
    groups.emplace_back(decayed, std::make_unique<torch::optim::AdamWOptions>(options(settings.weight_decay)));
  if (!plain.empty()) groups.emplace_back(plain, std::make_unique<torch::optim::AdamWOptions>(options(0.0)));
  optimizer_ = std::make_unique<torch::optim::AdamW>(std::move(groups), options(0.0));
}

void AdamWOptimizer::zero_grad() {
  // Zeroed in place (not reset to undefined): the update of a step then reads the same
  // gradient buffers every step, and data-parallel averaging sees every gradient.
  for (torch::Tensor& parameter : parameters_) {
    torch::Tensor& grad = parameter.mutable_grad();
    if (grad.defined()) grad.zero_();
  }
}

void AdamWOptimizer::step(double learning_rate) {
  for (auto& group : optimizer_->param_groups()) group.options().set_lr(learning_rate);
  optimizer_->step();
  ++steps_;
}

torch::optim::AdamWParamState* AdamWOptimizer::state_of(const torch::Tensor& parameter) const {
  auto& states = optimizer_->state();
  const auto it = states.find(compat::optimizer_state_key(states, parameter));
  if (it == states.end()) return nullptr;
  return static_cast<torch::optim::AdamWParamState*>(it->second.get());
}

std::vector<torch::Tensor> AdamWOptimizer::moments() const {
  std::vector<torch::Tensor> tensors;
  for (const torch::Tensor& parameter : parameters_)
    if (const auto* state = state_of(parameter)) {
      tensors.push_back(state->exp_avg());
      tensors.push_back(state->exp_avg_sq());
    }
  return tensors;
}

void AdamWOptimizer::save(CheckpointWriter& checkpoint) const {
  for (size_t i = 0; i < parameters_.size(); ++i) {
    const auto* state = state_of(parameters_[i]);
    // A parameter not updated yet (a checkpoint before the first step) has zero moments.
    const torch::Tensor first = state ? state->exp_avg() : torch::zeros_like(parameters_[i]);
    const torch::Tensor second = state ? state->exp_avg_sq() : torch::zeros_like(parameters_[i]);
    checkpoint.add_tensor(prefix_ + "." + names_[i] + ".m", first);
    checkpoint.add_tensor(prefix_ + "." + names_[i] + ".v", second);
    // Each parameter counts its own updates (one that got no gradient in a step skipped it);
    // only a count that differs from the optimizer's is written.
    const int64_t taken = state ? state->step() : 0;
    if (taken != steps_) checkpoint.set(prefix_ + ".step." + names_[i], std::to_string(taken));
  }
  checkpoint.set(prefix_ + ".step", std::to_string(steps_));
}

void AdamWOptimizer::load(const CheckpointReader& checkpoint) {
  constexpr int64_t kMaxSteps = std::numeric_limits<int64_t>::max() / 2;
  steps_ = checkpoint.integer(prefix_ + ".step", 0, kMaxSteps);
  auto& states = optimizer_->state();
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < parameters_.size(); ++i) {
    const torch::Tensor& parameter = parameters_[i];
    auto restore = [&](const std::string& name) {
      torch::Tensor value = checkpoint.tensor(name, "optimizer tensor");
      if (value.sizes() != parameter.sizes())
        checkpoint.fail(fmt::format("optimizer tensor \"{}\" has shape {}, the parameter {}", name,
                                    fmt::join(value.sizes(), "×"), fmt::join(parameter.sizes(), "×")));
      return value.to(parameter.device(), parameter.scalar_type()).contiguous();
    };
    const std::string own_step = prefix_ + ".step." + names_[i];
    const int64_t taken = checkpoint.has(own_step) ? checkpoint.integer(own_step, 0, steps_) : steps_;
    auto state = std::make_unique<torch::optim::AdamWParamState>();
    state->step(taken);
    state->exp_avg(restore(prefix_ + "." + names_[i] + ".m"));
    state->exp_avg_sq(restore(prefix_ + "." + names_[i] + ".v"));
    states[compat::optimizer_state_key(states, parameter)] = std::move(state);
  }
}

}  // namespace maskgit
