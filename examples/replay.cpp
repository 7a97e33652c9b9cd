// replay — play a recorded trace (docs/trace.md) through the machine it
// names and print every output: events, actions, command results and the
// bytes the machine gave its transport. The same trace always prints the
// same bytes.
//
//   replay FILE                     print to stdout
//   replay --check EXPECTED FILE    compare with EXPECTED; on a difference
//                                   print the first differing line, exit 1
//
// Exit status: 0 success (or no difference), 1 a difference, 2 bad usage,
// an unreadable file, or a trace the replayer refuses (with its line).
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "tether/trace/replay.hpp"

namespace {

bool read_file(const char* path, std::string& out) {
    std::FILE* f = std::fopen(path, "rb");
    if (!f) {
        std::fprintf(stderr, "replay: cannot open %s: %s\n", path, std::strerror(errno));
        return false;
    }
    char buf[65536];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
    const bool ok = !std::ferror(f);
    std::fclose(f);
    if (!ok) std::fprintf(stderr, "replay: cannot read %s\n", path);
    return ok;
}

std::string_view line_at(std::string_view s, std::size_t& pos) {
    if (pos >= s.size()) return {};
    std::size_t nl = s.find('\n', pos);
    if (nl == std::string_view::npos) nl = s.size();
    const std::string_view l = s.substr(pos, nl - pos);
    pos = nl + 1;
    return l;
}

// 0: equal; else prints the first differing line and returns 1.
int compare(std::string_view expected, std::string_view got, const char* expected_path) {
    if (expected == got) return 0;
    std::size_t pe = 0, pg = 0, line = 0;
    for (;;) {
        ++line;
        const bool end_e = pe >= expected.size(), end_g = pg >= got.size();
        if (end_e && end_g) {
            // Same lines; only the final newline differs.
            std::printf("%s:%zu: first difference: the final newline\n", expected_path, line - 1);
            return 1;
        }
        const std::string_view e = line_at(expected, pe), g = line_at(got, pg);
        if (end_e != end_g || e != g) {
            std::printf("%s:%zu: first difference\n", expected_path, line);
            std::printf("- expected: %.*s\n", end_e ? 5 : static_cast<int>(e.size()), end_e ? "(end)" : e.data());
            std::printf("+ replayed: %.*s\n", end_g ? 5 : static_cast<int>(g.size()), end_g ? "(end)" : g.data());
            return 1;
        }
    }
}

[[noreturn]] void usage() {
    std::fprintf(stderr, "usage: replay FILE\n       replay --check EXPECTED FILE\n");
    std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
    const char* expected_path = nullptr;
    const char* path = nullptr;
    if (argc == 2 && std::strcmp(argv[1], "--check") != 0) {
        path = argv[1];
    } else if (argc == 4 && std::strcmp(argv[1], "--check") == 0) {
        expected_path = argv[2];
        path = argv[3];
    } else {
        usage();
    }

    std::string text;
    if (!read_file(path, text)) return 2;
    tether::trace::replay_result result;
    if (const auto err = tether::trace::replay_text(text, result)) {
        std::fprintf(stderr, "replay: %s:%zu: %s\n", path, err->line, err->message.c_str());
        return 2;
    }
    if (!expected_path) {
        std::fwrite(result.text.data(), 1, result.text.size(), stdout);
        return std::fflush(stdout) == 0 ? 0 : 2;
    }
    std::string expected;
    if (!read_file(expected_path, expected)) return 2;
    return compare(expected, result.text, expected_path);
}
