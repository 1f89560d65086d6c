// Shared by the telemetry backends: telemetry is sampled every few seconds,
// so a file or device that stays broken must not fill slurmd's log.
#pragma once

#include "core/util/log.hpp"

#include <map>
#include <string>

namespace flexslurm
{

// The first report of a problem (or a changed one) is an error, repeats go to debug.
class ProblemLog
{
public:
	void report(const std::string &subject, const std::string &problem)
	{
		auto [it, inserted] = last_.try_emplace(subject, problem);
		if (inserted || it->second != problem) {
			it->second = problem;
			log_error(problem);
		} else {
			log_debug(problem);
		}
	}
	void clear(const std::string &subject) { last_.erase(subject); }

private:
	std::map<std::string, std::string> last_;
};

} // namespace flexslurm
