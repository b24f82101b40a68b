#include "data/idx.h"

#include <fmt/format.h>
#include <zlib.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstring>
#include <vector>

#include "common/error.h"
#include "io/atomic_file.h"

namespace maskgit {
namespace {

// The largest element count accepted from a header (1 TiB): anything bigger is a corrupt
// header, and rejecting it early avoids overflowing the size arithmetic.
constexpr uint64_t kMaxIdxElements = uint64_t{1} << 40;
// Deflate's largest expansion: 258 bytes from a 2-bit length/distance code pair.
constexpr uint64_t kMaxDeflateRatio = 1032;

const char* element_type_name(unsigned type) {
  switch (type) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "short";
    case 0x0C: return "int";
    case 0x0D: return "float";
    case 0x0E: return "double";
    default: return nullptr;
  }
}

// Sequential reads from a file's bytes, decompressing on the fly when the file is gzipped, so
// that a gzipped file never needs more memory than its decoded payload.
class IdxSource {
 public:
  IdxSource(const std::string& bytes, const std::string& path) : bytes_(bytes), path_(path) {
    gzipped_ = bytes.size() >= 2 && static_cast<unsigned char>(bytes[0]) == 0x1f &&
               static_cast<unsigned char>(bytes[1]) == 0x8b;
    if (!gzipped_) return;
    // 16 + MAX_WBITS: expect a gzip wrapper (header and CRC trailer), not raw zlib.
    if (inflateInit2(&stream_, 16 + MAX_WBITS) != Z_OK)
      throw_bad_input(fmt::format("{}: cannot start the gzip decoder", path_));
    stream_open_ = true;
  }
  ~IdxSource() {
    if (stream_open_) inflateEnd(&stream_);
  }
  IdxSource(const IdxSource&) = delete;
  IdxSource& operator=(const IdxSource&) = delete;

  bool gzipped() const { return gzipped_; }

  // Reads up to `size` bytes into `out`; fewer only at the end of the data.
  size_t read(char* out, size_t size) {
    if (!gzipped_) {
      const size_t count = std::min(size, bytes_.size() - raw_offset_);
      std::memcpy(out, bytes_.data() + raw_offset_, count);
      raw_offset_ += count;
      return count;
    }
    size_t produced = 0;
    while (produced < size && !finished_) {
      if (stream_.avail_in == 0 && input_offset_ < bytes_.size()) {
        const size_t chunk = std::min<size_t>(bytes_.size() - input_offset_, UINT_MAX);
        stream_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes_.data() + input_offset_));
        stream_.avail_in = static_cast<uInt>(chunk);
        input_offset_ += chunk;
      }
      const size_t want = std::min<size_t>(size - produced, UINT_MAX);
      stream_.next_out = reinterpret_cast<Bytef*>(out + produced);
      stream_.avail_out = static_cast<uInt>(want);
      const int status = inflate(&stream_, Z_NO_FLUSH);
      produced += want - stream_.avail_out;
      if (status == Z_STREAM_END) {
        finished_ = true;
      } else if (status == Z_BUF_ERROR && stream_.avail_in == 0 && input_offset_ >= bytes_.size()) {
        throw_bad_input(fmt::format("{}: truncated gzip stream", path_));
      } else if (status != Z_OK && status != Z_BUF_ERROR) {
        throw_bad_input(fmt::format("{}: corrupt gzip stream ({})", path_, stream_.msg ? stream_.msg : "error"));
      }
    }
    return produced;
  }

  // Reads and discards the rest, returning how many bytes there were.
  uint64_t skip_rest() {
    uint64_t total = 0;
    std::vector<char> sink(1 << 16);
    while (const size_t count = read(sink.data(), sink.size())) total += count;
    return total;
  }

 private:
  const std::string& bytes_;
  const std::string& path_;
  bool gzipped_ = false;
  bool stream_open_ = false;
  bool finished_ = false;
  size_t raw_offset_ = 0;
  size_t input_offset_ = 0;
  z_stream stream_{};
};

uint32_t big_endian_u32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

}  // namespace

torch::Tensor read_idx_u8(const std::string& path) { return parse_idx_u8(read_file_bytes(path), path); }

torch::Tensor parse_idx_u8(const std::string& bytes, const std::string& path) {
  IdxSource source(bytes, path);

  unsigned char magic[4];
  const size_t magic_size = source.read(reinterpret_cast<char*>(magic), 4);
  if (magic_size < 4)
    throw_bad_input(fmt::format("{}: not an IDX file (only {} bytes)", path, magic_size));
  if (magic[0] != 0 || magic[1] != 0)
    throw_bad_input(fmt::format("{}: not an IDX file (bad magic 0x{:08x})", path, big_endian_u32(magic)));
  const unsigned type = magic[2];
  if (type != 0x08) {
    const char* name = element_type_name(type);
    if (!name) throw_bad_input(fmt::format("{}: not an IDX file (bad magic 0x{:08x})", path, big_endian_u32(magic)));
    throw_bad_input(fmt::format("{}: IDX element type 0x{:02x} ({}) is not supported, only unsigned bytes (0x08)",
                                path, type, name));
  }
  const unsigned rank = magic[3];
  if (rank == 0 || rank > 4)
    throw_bad_input(fmt::format("{}: IDX rank {} is not supported (1 to 4 dimensions)", path, rank));

  unsigned char dims[16];
  const size_t dims_size = source.read(reinterpret_cast<char*>(dims), 4 * size_t{rank});
  if (dims_size < 4 * size_t{rank})
    throw_bad_input(fmt::format("{}: truncated IDX header ({} of {} dimension bytes)", path, dims_size, 4 * rank));
  std::vector<int64_t> shape;
  uint64_t count = 1;
  for (unsigned d = 0; d < rank; ++d) {
    const uint32_t size = big_endian_u32(dims + 4 * d);
    if (size == 0) throw_bad_input(fmt::format("{}: IDX dimension {} is zero", path, d));
    if (count > kMaxIdxElements / size)
      throw_bad_input(fmt::format("{}: IDX dimensions are implausibly large (corrupt header?)", path));
    count *= size;
    shape.push_back(static_cast<int64_t>(size));
  }

  // A lying header must not make us allocate more than the file holds. A raw file's data size
  // is known: compare before allocating anything. A gzip stream cannot expand more than
  // deflate's 1032:1 ratio, and below that bound the buffer grows by doubling as data really
  // arrives, so it never exceeds twice what the stream decodes to.
  const uint64_t header_size = 4 + 4 * uint64_t{rank};
  if (!source.gzipped() && count != bytes.size() - header_size)
    throw_bad_input(fmt::format("{}: data is {} bytes, header says {}", path, bytes.size() - header_size, count));
  if (source.gzipped() && count / kMaxDeflateRatio > bytes.size())
    throw_bad_input(fmt::format("{}: header says {} bytes of data, more than a {}-byte gzip file can hold", path,
                                count, bytes.size()));
  std::string data;
  constexpr size_t kFirstStep = size_t{1} << 20;
  while (data.size() < count) {
    const size_t old_size = data.size();
    const size_t want = static_cast<size_t>(std::min<uint64_t>(count - old_size, std::max(kFirstStep, old_size)));
    data.resize(old_size + want);
    const size_t got = source.read(data.data() + old_size, want);
    data.resize(old_size + got);
    if (got < want) break;
  }
  const uint64_t trailing = data.size() == count ? source.skip_rest() : 0;
  if (data.size() != count || trailing != 0)
    throw_bad_input(fmt::format("{}: data is {} bytes, header says {}", path, data.size() + trailing, count));

  torch::Tensor tensor = torch::empty(shape, torch::kUInt8);
  std::memcpy(tensor.data_ptr(), data.data(), data.size());
  return tensor;
}

torch::Tensor read_idx_images(const std::string& path, int64_t limit) {
  torch::Tensor raw = read_idx_u8(path);
  if (raw.dim() != 3)
    throw_bad_input(fmt::format("{}: expected an idx3 image file ([N,H,W]), found {} dimensions", path, raw.dim()));
  if (limit >= 0 && limit < raw.size(0)) raw = raw.slice(0, 0, limit);
  return raw.unsqueeze(1).to(torch::kFloat32).div_(255.0f);
}

torch::Tensor read_idx_labels(const std::string& path, int64_t limit) {
  torch::Tensor raw = read_idx_u8(path);
  if (raw.dim() != 1)
    throw_bad_input(fmt::format("{}: expected an idx1 label file ([N]), found {} dimensions", path, raw.dim()));
  if (limit >= 0 && limit < raw.size(0)) raw = raw.slice(0, 0, limit);
  return raw.to(torch::kLong);
}

}  // namespace maskgit
