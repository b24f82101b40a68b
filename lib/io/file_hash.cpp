#include "io/file_hash.h"

#include <fmt/format.h>
#include <openssl/evp.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <vector>

#include "common/error.h"

namespace maskgit {

namespace {

struct DigestContext {
  DigestContext() : context(EVP_MD_CTX_new()) {
    if (context == nullptr || EVP_DigestInit_ex(context, EVP_sha256(), nullptr) != 1)
      throw std::runtime_error("SHA-256: cannot initialise libcrypto's digest");
  }
  ~DigestContext() { EVP_MD_CTX_free(context); }
  DigestContext(const DigestContext&) = delete;
  DigestContext& operator=(const DigestContext&) = delete;

  void update(const void* data, size_t size) {
    if (EVP_DigestUpdate(context, data, size) != 1) throw std::runtime_error("SHA-256: digest update failed");
  }
  std::string hex() {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    if (EVP_DigestFinal_ex(context, digest, &length) != 1) throw std::runtime_error("SHA-256: digest failed");
    std::string out;
    out.reserve(length * 2);
    for (unsigned int i = 0; i < length; ++i) out += fmt::format("{:02x}", digest[i]);
    return out;
  }

  EVP_MD_CTX* context;
};

}  // namespace

std::string sha256_bytes(std::string_view bytes) {
  DigestContext digest;
  digest.update(bytes.data(), bytes.size());
  return digest.hex();
}

std::string sha256_file(const std::string& path) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!file) throw_bad_input(fmt::format("{}: cannot read: {}", path, std::strerror(errno)));
  DigestContext digest;
  std::vector<char> buffer(size_t{1} << 20);
  for (;;) {
    const size_t got = std::fread(buffer.data(), 1, buffer.size(), file.get());
    if (got > 0) digest.update(buffer.data(), got);
    if (got < buffer.size()) {
      if (std::ferror(file.get())) throw_bad_input(fmt::format("{}: cannot read: {}", path, std::strerror(errno)));
      break;
    }
  }
  return digest.hex();
}

}  // namespace maskgit
