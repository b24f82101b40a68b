#pragma once
// SHA-256 of files and bytes (OpenSSL's libcrypto), as lowercase hex: the identity of a model's
// weights and of an edit's input in the images' metadata (the same value `sha256sum FILE` prints).
#include <string>
#include <string_view>

namespace maskgit {

// Throws Error(bad_input) naming `path` when it cannot be read.
std::string sha256_file(const std::string& path);
std::string sha256_bytes(std::string_view bytes);

}  // namespace maskgit
