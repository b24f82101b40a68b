#pragma once
// Image geometry as typed on the command line: "X,Y,W,H" boxes (--box, --crop), "WxH" sizes
// (--canvas) and "X,Y" points (--offset). Each value is bounded (at most kMaxImageSide pixels
// either way) so that no later sum can overflow; Error(usage) naming `flag` otherwise.
#include <cstdint>
#include <string>

#include "editing/region.h"

namespace maskgit {

PixelBox parse_box(const std::string& text, const std::string& flag);
void parse_size(const std::string& text, const std::string& flag, int64_t& width, int64_t& height);
void parse_point(const std::string& text, const std::string& flag, int64_t& x, int64_t& y);

}  // namespace maskgit
