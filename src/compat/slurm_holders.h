/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Small RAII holders for what the plugins take from Slurm's C API: a list
 * walked with an iterator, a list or bitmap the plugin allocated. Each
 * gives back exactly what it took when it goes away, on every path out
 * (an exception included). Included by slurm_compat.h; not on its own.
 */
#ifndef FLEXSLURM_SLURM_HOLDERS_H
#define FLEXSLURM_SLURM_HOLDERS_H

#ifndef FLEXSLURM_SLURM_COMPAT_H
#error "include slurm_compat.h, not slurm_holders.h"
#endif

#include <cstddef>
#include <memory>
#include <type_traits>

namespace flexslurm::compat
{

/*
 * The items of a Slurm list as T*, for a range-for:
 *   for (auto *state : compat::list_items<gres_state_t>(job->gres_list_req))
 * A null list has no items. The iterator is destroyed with the range.
 */
template <class T>
class list_items
{
public:
	explicit list_items(list_ptr list) : it_(list ? list_iterator_create(list) : nullptr) {}
	~list_items()
	{
		if (it_)
			list_iterator_destroy(it_);
	}
	list_items(const list_items &) = delete;
	list_items &operator=(const list_items &) = delete;

	class iterator
	{
	public:
		iterator(list_iter it, T *item) : it_(it), item_(item) {}
		T *operator*() const noexcept { return item_; }
		iterator &operator++()
		{
			item_ = static_cast<T *>(list_next(it_));
			return *this;
		}
		bool operator!=(std::nullptr_t) const noexcept { return item_ != nullptr; }

	private:
		list_iter it_;
		T *item_;
	};

	// Walks once: begin() starts where the list's iterator stands.
	iterator begin() { return {it_, it_ ? static_cast<T *>(list_next(it_)) : nullptr}; }
	std::nullptr_t end() const noexcept { return nullptr; }

private:
	list_iter it_;
};

/* A list the plugin created (list_create): destroyed with its holder. */
struct list_destroyer {
	void operator()(list_ptr list) const noexcept { FREE_NULL_LIST(list); }
};
using list_holder = std::unique_ptr<std::remove_pointer_t<list_ptr>, list_destroyer>;

/* A bitmap the plugin allocated (bit_alloc, bit_copy): freed with its
 * holder. get() hands it to Slurm's calls; release() gives it away. */
struct bitmap_freer {
	void operator()(bitstr_t *bits) const noexcept { FREE_NULL_BITMAP(bits); }
};
using bitmap_holder = std::unique_ptr<bitstr_t, bitmap_freer>;

} // namespace flexslurm::compat

#endif
