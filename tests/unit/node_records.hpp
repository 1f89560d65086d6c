// SPDX-License-Identifier: GPL-2.0-or-later
// The tests' job records of one node: owners and borrowers as maps, easy
// to edit, turned into the flat NodeBooks the book reads.
#pragma once

#include "core/model/loan_book.hpp"

#include <map>
#include <string>
#include <vector>

namespace flexslurm
{

struct NodeRecords {
	std::string node;
	bool known = true;
	std::vector<int> device_of_slice;
	std::vector<std::string> partitions;
	std::map<int, SliceOwner> owners;       // slice -> owner
	std::map<int, BorrowHolding> borrowers; // borrow unit -> borrower

	NodeBooks flat() const
	{
		NodeBooks nb;
		nb.node = node;
		nb.known = known;
		nb.device_of_slice = device_of_slice;
		nb.partitions = partitions;
		for (const auto &[u, o] : owners)
			nb.owner(static_cast<size_t>(u)) = o;
		for (const auto &[u, h] : borrowers)
			nb.borrower(static_cast<size_t>(u)) = h;
		return nb;
	}
};

} // namespace flexslurm
