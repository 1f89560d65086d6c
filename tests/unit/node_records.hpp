// The tests' job records of one node: owners and borrowers as maps, easy
// to edit, filled into the flat NodeBooks the book reads.
#pragma once

#include "core/model/loan_book.hpp"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace flexslurm
{

struct NodeRecords {
	std::string node;
	bool known = true;
	std::vector<int> device_of_slice;
	std::map<int, SliceOwner> owners;       // slice -> owner
	std::map<int, BorrowHolding> borrowers; // borrow unit -> borrower

	// Over the records of the last fill, as the controller does.
	void fill(NodeBooks &nb, uint64_t &generations) const
	{
		nb.begin_fill(node, known, device_of_slice);
		for (const auto &[u, o] : owners)
			nb.set_owner(static_cast<size_t>(u), o.job, o.partition, o.end);
		for (const auto &[u, h] : borrowers)
			nb.set_borrower(static_cast<size_t>(u), h);
		nb.end_fill(generations);
	}
};

} // namespace flexslurm
