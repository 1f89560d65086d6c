// The last N durations of something that repeats (the lending tick's
// parts), and their percentiles: a fixed ring, no allocation after the
// first N.
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

namespace flexslurm
{

class RecentTimes
{
public:
	explicit RecentTimes(size_t capacity) : capacity_(capacity ? capacity : 1) {}

	void add(double ms)
	{
		if (ring_.size() < capacity_)
			ring_.push_back(ms);
		else
			ring_[next_] = ms;
		next_ = (next_ + 1) % capacity_;
		++count_;
	}
	size_t size() const noexcept { return ring_.size(); }
	size_t count() const noexcept { return count_; } // all ever added
	// The q-quantile (0..1) of the durations held, nearest rank; 0 if none.
	double quantile(double q) const
	{
		if (ring_.empty())
			return 0;
		scratch_ = ring_;
		const auto k = static_cast<size_t>(q * static_cast<double>(scratch_.size() - 1) + 0.5);
		std::nth_element(scratch_.begin(), scratch_.begin() + static_cast<std::ptrdiff_t>(k),
		                 scratch_.end());
		return scratch_[k];
	}

private:
	size_t capacity_;
	size_t next_ = 0;
	size_t count_ = 0;
	std::vector<double> ring_;
	mutable std::vector<double> scratch_;
};

} // namespace flexslurm
