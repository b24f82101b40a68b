#include "cli/geometry_args.h"

#include <fmt/format.h>

#include <sstream>

#include "cli/usage.h"
#include "editing/canvas.h"
#include "io/image.h"

namespace maskgit {

PixelBox parse_box(const std::string& text, const std::string& flag) {
  PixelBox box;
  std::istringstream stream(text);
  char comma1 = 0, comma2 = 0, comma3 = 0;
  std::string rest;
  if (!(stream >> box.x >> comma1 >> box.y >> comma2 >> box.width >> comma3 >> box.height) || comma1 != ',' ||
      comma2 != ',' || comma3 != ',' || (stream >> rest))
    throw_usage(fmt::format("{}: \"{}\" is not X,Y,W,H (pixels)", flag, text));
  // Bounded here so that no later sum (x + width) can overflow.
  for (int64_t value : {box.x, box.y, box.width, box.height})
    if (value < -kMaxImageSide || value > kMaxImageSide)
      throw_usage(fmt::format("{}: {} is out of range (at most {} pixels)", flag, value, kMaxImageSide));
  return box;
}

namespace {

void parse_pair(const std::string& text, const std::string& flag, char separator, const char* form, int64_t& first,
                int64_t& second) {
  std::istringstream stream(text);
  char got = 0;
  std::string rest;
  if (!(stream >> first >> got >> second) || got != separator || (stream >> rest))
    throw_usage(fmt::format("{}: \"{}\" is not {}", flag, text, form));
  // Bounded here so that no later sum (offset + width) can overflow.
  for (int64_t value : {first, second})
    if (value < -kMaxCanvasSide || value > kMaxCanvasSide)
      throw_usage(fmt::format("{}: {} is out of range (at most {} pixels)", flag, value, kMaxCanvasSide));
}

}  // namespace

void parse_size(const std::string& text, const std::string& flag, int64_t& width, int64_t& height) {
  parse_pair(text, flag, 'x', "WxH", width, height);
}

void parse_point(const std::string& text, const std::string& flag, int64_t& x, int64_t& y) {
  parse_pair(text, flag, ',', "X,Y", x, y);
}

}  // namespace maskgit
