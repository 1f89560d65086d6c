// SPDX-License-Identifier: GPL-2.0-or-later
// A small stand-in for libFuzzer where it is not available (g++ with
// -fsanitize=address,undefined): runs every seed, then seeded random
// mutations of them (bit flips, byte edits, chunk copies and splices,
// interesting numbers) until the time is up. The same arguments as
// libFuzzer's for what scripts/fuzz.sh uses:
//   driver [-max_total_time=S] [-seed=N] [-runs=N] [-max_len=N] CORPUS_DIR_OR_FILE...
// A crash is the sanitizer's report or an abort(); the input that caused
// it is then written to ./crash-standalone-<driver>.
#include <dirent.h>
#include <sanitizer/common_interface_defs.h>
#include <signal.h>
#include <unistd.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

// A sanitizer's report ends in abort(), which on_abort() below turns into
// the crashing input on disk (the die callback alone misses UBSan's).
extern "C" const char *__asan_default_options()
{
	return "abort_on_error=1";
}
extern "C" const char *__ubsan_default_options()
{
	return "abort_on_error=1:print_stacktrace=1";
}

namespace
{
std::vector<std::string> seeds;
std::string crash_path;

void load(const std::string &path)
{
	struct stat st {
	};
	if (stat(path.c_str(), &st) != 0)
		return;
	if (S_ISDIR(st.st_mode)) {
		if (DIR *d = opendir(path.c_str())) {
			while (dirent *e = readdir(d))
				if (e->d_name[0] != '.')
					load(path + "/" + e->d_name);
			closedir(d);
		}
		return;
	}
	std::ifstream in(path, std::ios::binary);
	seeds.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

const std::string *current = nullptr;

// On a sanitizer's death or an abort(): the input that did it, on disk.
void save_current()
{
	static bool saved = false;
	if (saved || !current)
		return;
	saved = true;
	if (FILE *f = std::fopen(crash_path.c_str(), "wb")) {
		std::fwrite(current->data(), 1, current->size(), f);
		std::fclose(f);
		std::fprintf(stderr, "standalone: crashing input written to %s\n", crash_path.c_str());
	}
}

void on_abort(int)
{
	save_current();
	signal(SIGABRT, SIG_DFL);
	raise(SIGABRT);
}

void run(const std::string &input)
{
	current = &input;
	LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t *>(input.data()), input.size());
	current = nullptr;
}

const char *const interesting[] = {"0",
                                   "-1",
                                   "1",
                                   "2147483647",
                                   "2147483648",
                                   "4294967295",
                                   "4294967296",
                                   "9223372036854775807",
                                   "9223372036854775808",
                                   "18446744073709551615",
                                   "-9223372036854775808",
                                   "1e308",
                                   "nan",
                                   "inf",
                                   "\n",
                                   " ",
                                   "\t",
                                   ",",
                                   ":",
                                   "=",
                                   "-",
                                   "\x01",
                                   "00",
                                   "4102444800"};

std::string mutate(std::string s, std::mt19937_64 &rng, size_t max_len)
{
	auto pick = [&](size_t n) { return n ? static_cast<size_t>(rng() % n) : 0; };
	const int edits = 1 + static_cast<int>(pick(4));
	for (int e = 0; e < edits; ++e) {
		switch (pick(7)) {
		case 0: // flip a bit
			if (!s.empty())
				s[pick(s.size())] ^= static_cast<char>(1u << pick(8));
			break;
		case 1: // set a random byte
			if (!s.empty())
				s[pick(s.size())] = static_cast<char>(rng());
			break;
		case 2: // insert a byte
			s.insert(s.begin() + static_cast<long>(pick(s.size() + 1)), static_cast<char>(rng()));
			break;
		case 3: // erase a run
			if (!s.empty()) {
				const size_t at = pick(s.size());
				s.erase(at, 1 + pick(std::min<size_t>(16, s.size() - at)));
			}
			break;
		case 4: { // replace a run of digits (or insert) with an interesting token
			const std::string token = interesting[pick(std::size(interesting))];
			size_t at = pick(s.size() + 1);
			size_t end = at;
			while (end < s.size() && s[end] >= '0' && s[end] <= '9')
				++end;
			s.replace(at, end - at, token);
			break;
		}
		case 5: { // duplicate a chunk (lines, records)
			if (s.empty())
				break;
			const size_t at = pick(s.size());
			const std::string chunk = s.substr(at, 1 + pick(64));
			s.insert(pick(s.size() + 1), chunk);
			break;
		}
		default: { // splice with another seed
			const std::string &other = seeds[pick(seeds.size())];
			const size_t from = pick(other.size() + 1);
			s = s.substr(0, pick(s.size() + 1)) +
			    other.substr(from, pick(other.size() - from + 1));
			break;
		}
		}
	}
	if (s.size() > max_len)
		s.resize(max_len);
	return s;
}
} // namespace

int main(int argc, char **argv)
{
	double seconds = 10;
	unsigned long long seed = 1, runs = ~0ULL;
	size_t max_len = 4096;
	for (int i = 1; i < argc; ++i) {
		const std::string a = argv[i];
		if (a.rfind("-max_total_time=", 0) == 0)
			seconds = std::atof(a.c_str() + 16);
		else if (a.rfind("-seed=", 0) == 0)
			seed = std::strtoull(a.c_str() + 6, nullptr, 10);
		else if (a.rfind("-runs=", 0) == 0)
			runs = std::strtoull(a.c_str() + 6, nullptr, 10);
		else if (a.rfind("-max_len=", 0) == 0)
			max_len = std::strtoull(a.c_str() + 9, nullptr, 10);
		else if (a[0] != '-')
			load(a);
	}
	const char *slash = std::strrchr(argv[0], '/');
	crash_path = std::string("crash-standalone-") + (slash ? slash + 1 : argv[0]);
	if (seeds.empty())
		seeds.emplace_back();
	__sanitizer_set_death_callback(save_current);
	signal(SIGABRT, on_abort);
	std::mt19937_64 rng(seed);
	unsigned long long done = 0;
	for (const std::string &s : std::vector<std::string>(seeds)) {
		run(s);
		++done;
	}
	const auto start = std::chrono::steady_clock::now();
	const auto until = start + std::chrono::duration<double>(seconds);
	while (done < runs && std::chrono::steady_clock::now() < until) {
		for (int i = 0; i < 64 && done < runs; ++i, ++done) {
			std::string input = mutate(seeds[rng() % seeds.size()], rng, max_len);
			run(input);
			if (rng() % 256 == 0 && seeds.size() < 4096)
				seeds.push_back(std::move(input)); // keep some mutants: deeper edits
		}
	}
	const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
	std::printf("Done %llu runs in %.0f second(s) (standalone, seed %llu)\n", done, took, seed);
	return 0;
}
